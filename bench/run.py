"""grantwatch benchmarks: every figure side by side with its floor, measured in the same run.

    python bench/run.py [--events 10000] [--workers N] [--out bench/results/latest.json]
    python bench/run.py --memory-only --backfill-sizes 10000,100000,1000000   (make bench-memory)
    python bench/run.py --cold-start-only [--runs 5]   (the handlers' cold starts and imports alone)

Starts its own DynamoDB Local (in memory), prints a table, writes the figures as JSON. Nothing here asserts
a time: the figures are ratios to floors measured on the same machine in the same run, so they hold on a
noisy one.
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import botocore.session  # noqa: E402

from bench.workload import (  # noqa: E402
    EVENT_TYPES,
    create,
    end,
    function_arn,
    mixed_events,
    typed_event,
    write_archive,
)
from grantwatch import local  # noqa: E402
from grantwatch.backfill import LocalArchive, backfill_archive  # noqa: E402
from grantwatch.domain.records import EvaluationRequest  # noqa: E402
from grantwatch.parallel import ParallelPipeline, default_workers, record_all  # noqa: E402
from grantwatch.pipeline import LocalPipeline  # noqa: E402
from grantwatch.recorder import Recorder  # noqa: E402
from grantwatch.settings import Settings  # noqa: E402
from grantwatch.wiring import dynamo_stores, local_pipeline  # noqa: E402

# On-demand and request prices, us-east-1, as published by AWS (Lambda arm64 per GB-second and per request;
# DynamoDB per write and read request unit; SQS standard per request; SNS per publish).
PRICES = {
    "lambda_arm64_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "sns_publish": 0.50 / 1e6,
}
LAMBDA_MEMORY_MB = 256  # the recorder's and the evaluator's (template.yaml)
# An evaluation request is one SQS message: SendMessage from the recorder, then the evaluator's event source
# mapping receives and deletes it. It receives up to 10 at a time, but with no batching window a message
# waiting out its own delay mostly arrives alone: one receive and one delete each, one invocation each.
SQS_REQUESTS_PER_MESSAGE = 3
DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"
MEMORY_FIGURES = ROOT / "bench" / "results" / "memory.json"  # make bench-memory
TEST_TIME = ROOT / "build" / "test-time.json"  # written at the end of a pytest run
BUDGETS = {
    "replay_ratio": 0.7,
    "replay_requests_per_event": 1.5,
    "recorder_ratio": 0.7,
    "backfill_scan_ratio": 0.5,
    "import_ratio": 1.25,
    "cold_start_ratio": 1.25,
    "peak_rss_mb": 100.0,
    "backfill_memory_growth_mb": 5.0,  # peak at 1,000,000 archived events over the peak at 10,000
    "test_seconds": 150.0,  # make test's pytest run, on 2 cores
    "cost_per_million": 1.00,
}
MEMORY_SIZES = ("10000", "1000000")
TEST_CORES = 2
READS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"})


def budget_cell(value: float, limit: float, *, at_least: bool, shown: Callable[[float], str]) -> str:
    """The budget column of one figure: its limit in the figure's own unit (a budget ratio times the floor
    measured in the same run, or a fixed limit), and MISS when the figure is on the wrong side of it."""
    met = value >= limit if at_least else value <= limit
    cell = f"{'>=' if at_least else '<='} {shown(limit)}"
    return cell if met else f"{cell}  MISS"


def _per_second(value: float) -> str:
    return f"{value:,.0f}/s"


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


class Collecting:
    def __init__(self) -> None:
        self.requests: list[EvaluationRequest] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


class RequestMeter:
    """Every DynamoDB request sent by every botocore client created while the meter is on (`with
    RequestMeter() as meter:`), whatever store, model or session created it: the meter wraps botocore's
    `Session.create_client`, so a store with a client of its own cannot be missed. Each request is counted
    by operation and by the part of the pipeline that sent it (`part`, per thread: `recorder` unless said
    otherwise), with the capacity DynamoDB says it consumed (table and indexes). Retries are counted apart:
    `requests` are calls, `sent` HTTP requests."""

    def __init__(self, default_part: str = "recorder") -> None:
        self.default_part = default_part
        self.requests: dict[str, Counter[str]] = {}
        self.wru: Counter[str] = Counter()
        self.rru: Counter[str] = Counter()
        self.sent = 0
        self.clients = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._on = False
        self._create_client: Callable[..., Any] | None = None

    def __enter__(self) -> RequestMeter:
        create_client = botocore.session.Session.create_client
        self._create_client, self._on = create_client, True

        def metered(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = create_client(session, *args, **kwargs)
            self.attach(client)
            return client

        setattr(botocore.session.Session, "create_client", metered)  # noqa: B010 - mypy: a method
        return self

    def __exit__(self, *_: object) -> None:
        self._on = False
        setattr(botocore.session.Session, "create_client", self._create_client)  # noqa: B010

    def attach(self, client: Any) -> None:
        with self._lock:
            self.clients += client.meta.service_model.service_name == "dynamodb"
        client.meta.events.register("provide-client-params.dynamodb.*", self._before)
        client.meta.events.register("before-send.dynamodb.*", self._send)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Requests sent by this thread meanwhile are `name`'s."""
        outer = getattr(self._local, "part", None)
        self._local.part = name
        try:
            yield
        finally:
            self._local.part = outer

    def _part(self) -> str:
        return getattr(self._local, "part", None) or self.default_part

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self._on:
            return
        with self._lock:
            self.requests.setdefault(self._part(), Counter())[model.name] += 1
        if model.input_shape is not None and "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "INDEXES")

    def _send(self, **_: Any) -> None:
        if self._on:
            with self._lock:
                self.sent += 1

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity") if self._on else None
        units = sum(
            entry.get("CapacityUnits", 0.0)
            for entry in (consumed if isinstance(consumed, list) else [consumed] if consumed else [])
        )
        with self._lock:
            (self.rru if model.name in READS else self.wru)[self._part()] += units

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.wru.clear()
            self.rru.clear()
            self.sent = 0

    def by_operation(self, part: str | None = None) -> Counter[str]:
        """Requests by operation: of one part, or of all."""
        parts = [part] if part else list(self.requests)
        return sum((self.requests.get(name, Counter()) for name in parts), Counter())

    def figures(self, part: str | None = None) -> dict[str, Any]:
        requests = self.by_operation(part)
        return {
            "requests": dict(requests),
            "writes": sum(n for operation, n in requests.items() if operation not in READS),
            "reads": sum(n for operation, n in requests.items() if operation in READS),
            "wru": self.wru[part] if part else sum(self.wru.values()),
            "rru": self.rru[part] if part else sum(self.rru.values()),
        }


def new_table(endpoint: str, name: str) -> Settings:
    local.ensure_table(endpoint, name, ROOT / "template.yaml")
    return Settings(table_name=name, endpoint_url=endpoint, region="us-east-1")


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def put_floor(endpoint: str, table: str, count: int) -> float:
    """Raw conditional PutItem of one small item, from boto3: the fastest a write to this table can go."""
    client = local.dynamodb_client(endpoint)

    def run() -> None:
        for index in range(count):
            client.put_item(
                TableName=table,
                Item={"pk": {"S": f"FLOOR#{index}"}, "sk": {"S": "FLOOR"}},
                ConditionExpression="attribute_not_exists(pk)",
            )

    return count / timed(run)


def parallel_put_floor(endpoint: str, table: str, count: int, writers: int) -> float:
    """The same conditional PutItem from `writers` threads, each with its own boto3 client."""
    clients = [local.dynamodb_client(endpoint) for _ in range(writers)]

    def write(writer: int) -> None:
        for index in range(writer, count, writers):
            clients[writer].put_item(
                TableName=table,
                Item={"pk": {"S": f"PARALLEL-FLOOR#{writers}#{index}"}, "sk": {"S": "FLOOR"}},
                ConditionExpression="attribute_not_exists(pk)",
            )

    with ThreadPoolExecutor(writers) as pool:
        return count / timed(lambda: list(pool.map(write, range(writers))))


class EvaluationsOf:
    """What the serial pipeline's evaluator does: the messages its scheduler sends (each an SQS message in
    AWS), the evaluations run (one per message), the time they take, the notices they publish, and their
    DynamoDB requests, metered apart from the recorder's."""

    def __init__(self, pipeline: LocalPipeline, meter: RequestMeter) -> None:
        self.messages = self.runs = self.notices = 0
        self.seconds = 0.0
        schedule, run = pipeline.scheduler.schedule, pipeline.evaluator.run

        def scheduled(request: EvaluationRequest) -> None:
            self.messages += 1
            schedule(request)

        def evaluated(request: EvaluationRequest, now: datetime) -> Any:
            with meter.part("evaluator"):
                started = time.perf_counter()
                notices = run(request, now)
                self.seconds += time.perf_counter() - started
            self.runs += 1
            self.notices += len(notices)
            return notices

        pipeline.scheduler.schedule = scheduled  # type: ignore[method-assign]
        pipeline.evaluator.run = evaluated  # type: ignore[method-assign]


def requests_per_event(meter: RequestMeter, events: int) -> dict[str, Any]:
    requests = meter.by_operation()
    return {
        "requests": dict(requests),
        "requests_per_event": sum(requests.values()) / events,
        "sent_per_event": meter.sent / events,
        "dynamodb_clients": meter.clients,
    }


def replay_throughput(endpoint: str, events: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """The whole pipeline (recorder, settle window, evaluator) as `grantwatch replay` runs it: serially,
    and on `workers` threads with coalesced evaluations; each against its floor, measured just before.
    Every DynamoDB request of each run is counted (the serial run's by recorder and evaluator)."""
    floor_table = new_table(endpoint, f"bench-replay-floor-{workers}").table_name
    serial_floor = put_floor(endpoint, floor_table, len(events))
    serial_table = new_table(endpoint, "bench-replay-serial")
    with RequestMeter() as serial_meter:
        serial = local_pipeline(serial_table)
        evaluations = EvaluationsOf(serial, serial_meter)

        def run_serial() -> None:
            for event in events:
                serial.feed(event)
            serial.drain()

        serial_rate = len(events) / timed(run_serial)
    parallel_floor = parallel_put_floor(endpoint, floor_table, len(events), workers)
    parallel_table = new_table(endpoint, "bench-replay-parallel")
    with (
        RequestMeter() as parallel_meter,
        ParallelPipeline[int](dynamo_stores(parallel_table), workers=workers) as pipeline,
    ):
        parallel_rate = len(events) / timed(
            lambda: record_all(pipeline, [(event, n) for n, event in enumerate(events)])
        )
    runs = max(evaluations.runs, 1)
    return {
        "events": len(events),
        "workers": workers,
        "serial_events_per_second": serial_rate,
        "serial_floor_put_item_per_second": serial_floor,
        "serial_ratio": serial_rate / serial_floor,
        "parallel_events_per_second": parallel_rate,
        "parallel_floor_put_item_per_second": parallel_floor,
        "parallel_ratio": parallel_rate / parallel_floor,
        "evaluations": pipeline.evaluations,
        "evaluations_coalesced": pipeline.coalesced,
        "budget": f">= {BUDGETS['replay_ratio']}",
        "serial_dynamodb": requests_per_event(serial_meter, len(events))
        | {
            "by_part": {part: serial_meter.figures(part) for part in ("recorder", "evaluator")},
        },
        "parallel_dynamodb": requests_per_event(parallel_meter, len(events)),
        "serial_evaluator": {
            "messages_scheduled": evaluations.messages,
            "evaluations": evaluations.runs,
            "notices": evaluations.notices,
            "seconds_per_evaluation": evaluations.seconds / runs,
            "requests_per_evaluation": sum(serial_meter.by_operation("evaluator").values()) / runs,
            "wru_per_evaluation": serial_meter.wru["evaluator"] / runs,
            "rru_per_evaluation": serial_meter.rru["evaluator"] / runs,
        },
    }


def bench_recorder(settings: Settings) -> Recorder:
    """The recorder on the table's stores, its evaluation requests kept in a list."""
    stores = dynamo_stores(settings)
    return Recorder(stores.grants, stores.functions, stores.hazards, Collecting())


def recorder_throughput(endpoint: str, events: list[dict[str, Any]], round_: int) -> tuple[float, float]:
    recorder = bench_recorder(new_table(endpoint, f"bench-recorder-{round_}"))
    seconds = timed(lambda: [recorder.record(event) for event in events])
    return len(events) / seconds, seconds / len(events)


# Evaluations of one function, each after recording an event: (row, event). After its grant's creation it
# finds nothing to do (the replay's first evaluation of every Lambda grant); after the grant is retired it
# opens an incident and sends the alert; after a new grant for the function it resolves it and says so.
EVALUATED = "typed-evaluated"
EVALUATIONS = (
    ("evaluation: nothing to do", create(EVALUATED, 10, lambda_grant=True)),
    ("evaluation: opens, notifies", end(EVALUATED, 20, revoke=False)),
    (
        "evaluation: resolves, notifies",
        create(f"{EVALUATED}-again", 30, lambda_grant=True, function=EVALUATED),
    ),
)


def capacity_per_event_type(endpoint: str) -> dict[str, dict[str, Any]]:
    """Requests by operation and the capacity they consumed: recording one event of each type, and each
    outcome of an evaluation."""
    settings = new_table(endpoint, "bench-capacity")
    figures: dict[str, dict[str, Any]] = {}
    with RequestMeter() as meter:
        pipeline = local_pipeline(settings)
        for name in EVENT_TYPES:
            meter.reset()
            outcome = pipeline.recorder.record(typed_event(name))
            figures[name] = {"outcome": outcome.outcome.value} | meter.figures()
        for name, event in EVALUATIONS:
            pipeline.recorder.record(event)
            meter.reset()
            notices = pipeline.evaluator.evaluate(function_arn(EVALUATED), datetime.now(UTC))
            kinds = ", ".join(notice.kind.value for notice in notices) or "no notice"
            figures[name] = {"outcome": kinds} | meter.figures()
    return figures


def backfill_throughput(endpoint: str, events: int, workers: int) -> dict[str, Any]:
    """Backfill over a generated archive (0.5 % grant events) against decompressing the same files."""
    root = Path(tempfile.mkdtemp(prefix="grantwatch-archive-"))
    archive = write_archive(root, events=events, relevant_share=0.005)
    floor = timed(lambda: [gzip.decompress(path.read_bytes()) for path in archive.files])
    matched: list[object] = []
    scan = timed(lambda: backfill_archive(LocalArchive(root), matched.append))
    settings = new_table(endpoint, "bench-backfill")
    with ParallelPipeline[None](dynamo_stores(settings), workers=workers) as pipeline:

        def feed(record: object) -> None:
            pipeline.feed(record, None)

        def run() -> None:
            backfill_archive(LocalArchive(root), feed, before_checkpoint=pipeline.flush)
            pipeline.drain()

        full = timed(run)
    return {
        "archive_events": events,
        "files": len(archive.files),
        "grant_events": len(matched),
        "decompress_events_per_second": events / floor,
        "scan_events_per_second": events / scan,
        "end_to_end_events_per_second": events / full,
        "scan_ratio": floor / scan,
        "end_to_end_ratio": floor / full,
        "workers": workers,
    }


HANDLERS = tuple(
    f"grantwatch.handlers.{name}" for name in ("recorder", "evaluator", "reconciler", "remediation")
)
FLOOR = "floor (boto3 only)"


def compile_sources() -> None:
    """Bytecode for grantwatch's modules, so that every import measured reads it as the libraries' is read:
    otherwise the figures depend on whether something ran the code before (the tests write it). The
    deployment package ships source only, so a Lambda cold start compiles grantwatch's modules too."""
    compileall.compile_dir(ROOT / "functions" / "grantwatch", quiet=1)


def import_seconds(module: str) -> float:
    """Time to import a module in a fresh interpreter (interpreter start-up excluded)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench"), "PYTHONDONTWRITEBYTECODE": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return float(completed.stdout)


# A cold start does more than import: the first invocation builds the corridor (its adapters are imported
# lazily, by grantwatch.wiring) and creates the AWS clients it calls on, whether the corridor creates them
# when it is built or on first use; the floor imports boto3 and creates its one client. Measured as far as
# the first call to AWS, which neither makes. Every client a corridor holds is created (each pynamodb
# model's and each adapter's: bench/first_invocation.py), the most a first invocation creates.
CORRIDORS = {
    "grantwatch.handlers.recorder": "handler.recorder()",
    "grantwatch.handlers.evaluator": "handler.evaluator()",
    "grantwatch.handlers.reconciler": "handler.reconciler('123456789012')",
    "grantwatch.handlers.remediation": "handler.healer()",
    "floor_handler": "handler.boto3.client('sqs')",
}
COLD_START_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "GRANTWATCH_EVALUATION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/evaluations",
    "GRANTWATCH_ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
}
_COLD_START = """
import time
started = time.perf_counter()
import {module} as handler
imported = time.perf_counter()
corridor = {corridor}
built = time.perf_counter()
from first_invocation import create_clients
clients = create_clients(corridor)
done = time.perf_counter()
print(imported - started, built - imported, done - built, clients)
"""


def cold_start_parts(module: str) -> tuple[float, float, float, int]:
    """A handler module's cold start in a fresh interpreter: the seconds to import it, to build what its
    first invocation needs and to create the clients that calls on, and how many clients that was."""
    code = _COLD_START.format(module=module, corridor=CORRIDORS[module])
    env = {**os.environ, **COLD_START_ENVIRONMENT, "PYTHONPATH": str(ROOT / "bench")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    imported, built, created, clients = completed.stdout.split()
    return float(imported), float(built), float(created), int(clients)


def cold_start_seconds(module: str) -> float:
    """Time to import a handler module and build what its first invocation needs, in a fresh interpreter."""
    return sum(cold_start_parts(module)[:3])


def cold_start_figures(runs: int = 5) -> dict[str, dict[str, float]]:
    """Each handler's cold start against the floor's, in interleaved pairs: the median ratio of the pairs'
    totals, and the median of each part (milliseconds) with the clients created."""
    compile_sources()
    figures: dict[str, dict[str, float]] = {}
    floors: list[tuple[float, float, float, int]] = []
    for module in HANDLERS:
        pairs = [(cold_start_parts("floor_handler"), cold_start_parts(module)) for _ in range(runs)]
        floors.extend(floor for floor, _ in pairs)
        figures[module] = {
            "ratio": statistics.median(sum(h[:3]) / sum(f[:3]) for f, h in pairs),
            **_cold_start_milliseconds([handler for _, handler in pairs]),
        }
    return {FLOOR: {"ratio": 1.0, **_cold_start_milliseconds(floors)}} | figures


def _cold_start_milliseconds(parts: list[tuple[float, float, float, int]]) -> dict[str, float]:
    return {
        "import_ms": 1000 * statistics.median(p[0] for p in parts),
        "corridor_ms": 1000 * statistics.median(p[1] for p in parts),
        "clients_ms": 1000 * statistics.median(p[2] for p in parts),
        "clients": statistics.median(p[3] for p in parts),
        "total_ms": 1000 * statistics.median(sum(p[:3]) for p in parts),
    }


def cold_start_ratios(runs: int = 5) -> dict[str, float]:
    """Each handler's import and corridor against the floor's import and client, in interleaved pairs."""
    figures = cold_start_figures(runs)
    return {module: figures[module]["ratio"] for module in HANDLERS}


def print_cold_starts(figures: dict[str, dict[str, float]], import_ratios: dict[str, float]) -> None:
    """The per-handler cold-start ratio and where its time goes (medians, in milliseconds)."""
    print(
        f"{'cold start':<24} {'ratio':>6} {'import':>8} {'corridor':>9} {'clients':>8} {'n':>3} "
        f"{'total':>7} {'import ratio':>13}"
    )
    for module, f in figures.items():
        imported = f"{import_ratios[module]:.2f}" if module in import_ratios else "-"
        print(
            f"{module.rsplit('.', 1)[-1]:<24} {f['ratio']:>6.2f} {f['import_ms']:>8.0f} "
            f"{f['corridor_ms']:>9.0f} {f['clients_ms']:>8.0f} {f['clients']:>3.0f} {f['total_ms']:>7.0f} "
            f"{imported:>13}"
        )
    print(
        f"  budget: a ratio <= {BUDGETS['import_ratio']} of the floor (import boto3, create one client); "
        "clients: every AWS client the corridor holds, created"
    )


def import_figures(runs: int = 9) -> tuple[dict[str, float], dict[str, float]]:
    """Each handler against the floor in interleaved pairs, so that a busy machine slows both alike: the
    median times, and for each handler the median of its pairs' ratios."""
    compile_sources()
    seconds: dict[str, float] = {}
    ratios: dict[str, float] = {}
    floors: list[float] = []
    for module in HANDLERS:
        pairs = [(import_seconds("floor_handler"), import_seconds(module)) for _ in range(runs)]
        floors.extend(floor for floor, _ in pairs)
        seconds[module] = statistics.median(handler for _, handler in pairs)
        ratios[module] = statistics.median(handler / floor for floor, handler in pairs)
    return {FLOOR: statistics.median(floors)} | seconds, ratios


# The backfill's peak memory may grow by this much at most from 10,000 to 1,000,000 archived events: what it
# holds must not grow with the archive (files are read one at a time, notices handed over as they come).
BACKFILL_GROWTH_BUDGET_MB = 5.0
BACKFILL_GROWTH_SIZES = (10_000, 1_000_000)


def backfill_peak_growth(peaks: dict[str, float]) -> dict[str, Any] | None:
    """How much more the backfill of the largest archive measured peaked at than that of the smallest,
    against the budget (set for 10,000 and 1,000,000 events: other sizes are shown, never judged)."""
    if len(peaks) < 2:
        return None
    sizes = sorted(peaks, key=int)
    smallest, largest = sizes[0], sizes[-1]
    growth = peaks[largest] - peaks[smallest]
    judged = (int(smallest), int(largest)) == BACKFILL_GROWTH_SIZES
    return {
        "from_events": int(smallest),
        "to_events": int(largest),
        "growth_mb": round(growth, 1),
        "budget_mb": BACKFILL_GROWTH_BUDGET_MB,
        "within_budget": growth <= BACKFILL_GROWTH_BUDGET_MB if judged else None,
    }


def backfill_peak_rss_mb(endpoint: str, sizes: list[int], workers: int) -> dict[str, float]:
    """VmHWM of a fresh process that backfills an archive of each size (0.5 % grant events) through the
    parallel pipeline into DynamoDB Local. Each archive is generated first, in a temporary folder (by this
    process: its memory is not the backfill's), read file by file, and deleted."""
    peaks: dict[str, float] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="grantwatch-memory-") as root:
            write_archive(Path(root), events=size, relevant_share=0.005)
            completed = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child-backfill-rss",
                    root,
                    "--endpoint",
                    endpoint,
                    "--workers",
                    str(workers),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        peaks[str(size)] = float(completed.stdout.strip().splitlines()[-1])
    return peaks


def child_backfill_rss(root: str, endpoint: str, workers: int) -> None:
    settings = new_table(endpoint, f"bench-memory-{Path(root).name}")
    with ParallelPipeline[None](dynamo_stores(settings), workers=workers) as pipeline:
        backfill_archive(
            LocalArchive(Path(root)),
            lambda record: pipeline.feed(record, None),
            before_checkpoint=pipeline.flush,
        )
        pipeline.drain()
    print(peak_rss_of_this_process_mb())


def peak_rss_mb(endpoint: str, count: int) -> float:
    """Peak RSS of a fresh process that records `count` events (DynamoDB Local's own memory not counted)."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child-rss", str(count), "--endpoint", endpoint],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def child_rss(count: int, endpoint: str) -> None:
    recorder = bench_recorder(new_table(endpoint, "bench-rss"))
    for event in mixed_events(count, seed=3):  # generated as they go, as events arrive one by one
        recorder.record(event)
    print(peak_rss_of_this_process_mb())


def peak_rss_of_this_process_mb() -> float:
    """VmHWM: this process's own peak. (ru_maxrss would carry the parent's peak over fork and exec.)"""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lambda_cost(invocations: float, seconds: float) -> float:
    """One invocation's request and duration (billed per millisecond, rounded up), times `invocations`."""
    billed = max(1, math.ceil(seconds * 1000)) / 1000
    gb_seconds = billed * LAMBDA_MEMORY_MB / 1024
    return invocations * (PRICES["lambda_request"] + gb_seconds * PRICES["lambda_arm64_gb_second"])


def cost_per_million(recorder_seconds: float, replay: dict[str, Any]) -> dict[str, float]:
    """AWS's bill for a million grant events of the replay's mix, from figures of this run: the recorder's
    time per event (recorder alone), and from the serial replay, which runs every evaluation as the
    evaluator in AWS does, the requests, capacity, messages, evaluations and notices per event."""
    events = replay["events"]
    recorder = replay["serial_dynamodb"]["by_part"]["recorder"]
    evaluator = replay["serial_dynamodb"]["by_part"]["evaluator"]
    evaluations = replay["serial_evaluator"]
    million = 1e6
    per_event = {
        "messages": evaluations["messages_scheduled"] / events,
        "evaluations": evaluations["evaluations"] / events,
        "notices": evaluations["notices"] / events,
    }
    parts = {
        "recorder_lambda": million * lambda_cost(1, recorder_seconds),
        "recorder_dynamodb": million
        * (recorder["wru"] * PRICES["dynamodb_wru"] + recorder["rru"] * PRICES["dynamodb_rru"])
        / events,
        "sqs": million * per_event["messages"] * SQS_REQUESTS_PER_MESSAGE * PRICES["sqs_request"],
        "evaluator_lambda": million
        * lambda_cost(per_event["evaluations"], evaluations["seconds_per_evaluation"]),
        "evaluator_dynamodb": million
        * (evaluator["wru"] * PRICES["dynamodb_wru"] + evaluator["rru"] * PRICES["dynamodb_rru"])
        / events,
        "sns": million * per_event["notices"] * PRICES["sns_publish"],
    }
    return parts | {
        "total": sum(parts.values()),
        "wru_per_event": (recorder["wru"] + evaluator["wru"]) / events,
        "rru_per_event": (recorder["rru"] + evaluator["rru"]) / events,
        "recorder_seconds_per_event": recorder_seconds,
        "evaluator_seconds_per_evaluation": evaluations["seconds_per_evaluation"],
        "sqs_messages_per_event": per_event["messages"],
        "evaluations_per_event": per_event["evaluations"],
        "notices_per_event": per_event["notices"],
    }


COST_PARTS = ("recorder_lambda", "recorder_dynamodb", "sqs", "evaluator_lambda", "evaluator_dynamodb", "sns")


def last_memory_figures(path: Path = MEMORY_FIGURES) -> dict[str, Any] | None:
    """`make bench-memory`'s last figures at 10,000 and 1,000,000 archived events, or None: not measured."""
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
        peaks = figures["backfill_peak_rss_mb"]
        small, large = (float(peaks[size]) for size in MEMORY_SIZES)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"when": figures.get("when"), "peak_mb": {MEMORY_SIZES[0]: small, MEMORY_SIZES[1]: large}}


def last_test_time(path: Path = TEST_TIME) -> dict[str, Any] | None:
    """The last pytest run's time ({"seconds", "workers", "tests", "when"}), or None: not measured."""
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
        return {key: figures[key] for key in ("seconds", "workers", "tests", "when")} | {
            "seconds": float(figures["seconds"])
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=default_workers(), help="for replay and backfill")
    parser.add_argument(
        "--backfill-sizes",
        help="archive sizes (events) whose backfill peak memory is measured (default: --events and ten "
        "times as many); make bench-memory measures 10,000, 100,000 and 1,000,000",
    )
    parser.add_argument("--memory-only", action="store_true", help="only the backfill peak memory")
    parser.add_argument(
        "--cold-start-only",
        action="store_true",
        help="only the handlers' cold starts and imports against the floor's, with where the time goes",
    )
    parser.add_argument(
        "--runs", type=int, help="pairs per handler for the import and cold-start figures (default 9 and 5)"
    )
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-backfill-rss", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_rss(args.child_rss, args.endpoint)
        return 0
    if args.child_backfill_rss:
        child_backfill_rss(args.child_backfill_rss, args.endpoint, args.workers)
        return 0
    if args.cold_start_only:
        print_cold_starts(cold_start_figures(args.runs or 5), import_figures(args.runs or 5)[1])
        return 0
    sizes = [int(size) for size in (args.backfill_sizes or f"{args.events},{args.events * 10}").split(",")]

    state = Path(tempfile.mkdtemp(prefix="grantwatch-bench-"))
    dynamo = local.start(ROOT, state, port=local.free_port(), in_memory=True)
    try:
        endpoint = dynamo.endpoint_url
        if args.memory_only:
            return write_memory_figures(backfill_peak_rss_mb(endpoint, sizes, args.workers), args)
        events = list(mixed_events(args.events, seed=1))
        mix = Counter(kind for kind, _ in mixed_events(args.events, seed=1, with_kind=True))
        floor_table = new_table(endpoint, "bench-floor").table_name
        recorder_throughput(endpoint, events[: min(500, len(events))], 0)  # warm the emulator and the code
        floor_rate = put_floor(endpoint, floor_table, len(events))
        recorder_rate, per_event = recorder_throughput(endpoint, events, 1)
        capacity = capacity_per_event_type(endpoint)
        imports, import_ratios = import_figures(args.runs or 9)
        cold_starts = cold_start_ratios(args.runs or 5)
        rss = peak_rss_mb(endpoint, args.events)
        backfill = backfill_throughput(endpoint, args.events * 10, args.workers)
        replay = replay_throughput(endpoint, events[: args.events // 2], args.workers)
        backfill_memory = backfill_peak_rss_mb(endpoint, sizes, args.workers)
    finally:
        local.stop(state)

    costs = cost_per_million(per_event, replay)
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "events": args.events,
        "mix": dict(mix),
        "replay": replay,
        "recorder": {
            "events_per_second": recorder_rate,
            "floor_put_item_per_second": floor_rate,
            "ratio": recorder_rate / floor_rate,
            "budget": f">= {BUDGETS['recorder_ratio']}",
        },
        "capacity_per_event_type": capacity,
        "import_seconds": imports,
        "import_ratio": import_ratios,
        "cold_start_ratio": cold_starts,
        "peak_rss_mb": rss,
        "backfill": backfill,
        "backfill_peak_rss_mb": backfill_memory,
        "backfill_memory": last_memory_figures(),
        "test_time": last_test_time(),
        "cost_per_million_grant_events_usd": costs,
        "prices_usd": PRICES,
        "lambda_memory_mb": LAMBDA_MEMORY_MB,
        "sqs_requests_per_message": SQS_REQUESTS_PER_MESSAGE,
        "budgets": BUDGETS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"\nfigures written to {args.out}")
    return 0


def write_memory_figures(peaks: dict[str, float], args: argparse.Namespace) -> int:
    out = args.out if args.out != DEFAULT_OUT else ROOT / "bench" / "results" / "memory.json"
    figures = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workers": args.workers,
        "backfill_peak_rss_mb": peaks,
        "backfill_peak_growth": backfill_peak_growth(peaks),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print_memory(peaks)
    print(f"\nfigures written to {out}")
    return 0


def print_memory(peaks: dict[str, float]) -> None:
    print("backfill peak memory (VmHWM of the backfilling process; archives of 0.5 % grant events):")
    for size, peak in peaks.items():
        print(f"  {int(size):>9,} archived events  {peak:6.1f} MB")
    growth = backfill_peak_growth(peaks)
    if growth is None:
        return
    budget = f"<= {BACKFILL_GROWTH_BUDGET_MB:.0f} MB"
    if growth["within_budget"] is None:
        low, high = BACKFILL_GROWTH_SIZES
        judged = f"budget {budget} from {low:,} to {high:,} events: not measured here"
    else:
        judged = f"budget {budget}{'' if growth['within_budget'] else '  MISS'}"
    print(
        f"  growth from {growth['from_events']:,} to {growth['to_events']:,} events: "
        f"{growth['growth_mb']:+.1f} MB ({judged})"
    )


def _when(moment: str | None) -> str:
    return f"measured {moment[:10]}" if moment else "measured at an unknown time"


def print_table(r: dict[str, Any]) -> None:
    """Every figure with its budget, MISS where it is not met; `not measured` where another command
    measures it and has not yet."""

    def row(figure: str, value: str, floor: str, ratio: str, budget: str) -> None:
        print(f"{figure:<66} {value:>12} {floor:>16} {ratio:>8}  {budget}")

    rec, rep = r["recorder"], r["replay"]
    print(
        f"grantwatch benchmarks: {r['events']} events, {r['machine']['cpus']} CPUs, "
        f"Python {r['machine']['python']}"
    )
    row("figure", "value", "floor", "ratio", "budget")
    row(
        f"replay events/s, {rep['events']} events, serial",
        f"{rep['serial_events_per_second']:.0f}",
        f"{rep['serial_floor_put_item_per_second']:.0f} put/s",
        f"{rep['serial_ratio']:.2f}",
        budget_cell(
            rep["serial_events_per_second"],
            BUDGETS["replay_ratio"] * rep["serial_floor_put_item_per_second"],
            at_least=True,
            shown=_per_second,
        ),
    )
    row(
        f"replay events/s, {rep['workers']} workers",
        f"{rep['parallel_events_per_second']:.0f}",
        f"{rep['parallel_floor_put_item_per_second']:.0f} put/s",
        f"{rep['parallel_ratio']:.2f}",
        budget_cell(
            rep["parallel_events_per_second"],
            BUDGETS["replay_ratio"] * rep["parallel_floor_put_item_per_second"],
            at_least=True,
            shown=_per_second,
        ),
    )
    for label, key in (("serial", "serial_dynamodb"), (f"{rep['workers']} workers", "parallel_dynamodb")):
        row(
            f"DynamoDB requests per replayed event, {label}",
            f"{rep[key]['requests_per_event']:.2f}",
            "-",
            "-",
            budget_cell(
                rep[key]["requests_per_event"],
                BUDGETS["replay_requests_per_event"],
                at_least=False,
                shown=lambda n: f"{n:.2f}",
            ),
        )
    row(
        "recorder events/s (DynamoDB Local)",
        f"{rec['events_per_second']:.0f}",
        f"{rec['floor_put_item_per_second']:.0f} put/s",
        f"{rec['ratio']:.2f}",
        budget_cell(
            rec["events_per_second"],
            BUDGETS["recorder_ratio"] * rec["floor_put_item_per_second"],
            at_least=True,
            shown=_per_second,
        ),
    )
    floor = r["import_seconds"][FLOOR]
    for module, ratio in r["import_ratio"].items():
        row(
            f"import {module}",
            _milliseconds(r["import_seconds"][module]),
            _milliseconds(floor),
            f"{ratio:.2f}",
            budget_cell(
                r["import_seconds"][module],
                BUDGETS["import_ratio"] * floor,
                at_least=False,
                shown=_milliseconds,
            ),
        )
    for module, ratio in r["cold_start_ratio"].items():
        row(
            f"cold start {module.rsplit('.', 1)[1]}: import and corridor",
            "-",
            "import, client",
            f"{ratio:.2f}",
            budget_cell(ratio, BUDGETS["cold_start_ratio"], at_least=False, shown=lambda x: f"{x:.2f}"),
        )
    row(
        f"peak RSS, {r['events']} events",
        f"{r['peak_rss_mb']:.0f} MB",
        "-",
        "-",
        budget_cell(
            r["peak_rss_mb"], BUDGETS["peak_rss_mb"], at_least=False, shown=lambda mb: f"{mb:.0f} MB"
        ),
    )
    memory = r.get("backfill_memory")
    memory_budget = f"<= {BUDGETS['backfill_memory_growth_mb']:.0f} MB"
    if memory is None:
        row(
            "backfill peak memory, 1,000,000 over 10,000 (bench-memory)",
            "not measured",
            "-",
            "-",
            memory_budget,
        )
    else:
        small, large = (memory["peak_mb"][size] for size in MEMORY_SIZES)
        row(
            f"backfill peak memory, 1,000,000 over 10,000 ({_when(memory['when'])})",
            f"{large - small:+.1f} MB",
            f"{small:.0f} MB",
            "-",
            budget_cell(
                large - small,
                BUDGETS["backfill_memory_growth_mb"],
                at_least=False,
                shown=lambda mb: f"{mb:.0f} MB",
            ),
        )
    tests = r.get("test_time")
    test_budget = f"<= {BUDGETS['test_seconds']:.0f} s on {TEST_CORES} cores"
    if tests is None:
        row("make test, pytest", "not measured", "-", "-", test_budget)
    else:
        row(
            f"make test, {tests['tests']} tests, {tests['workers']} workers ({_when(tests['when'])})",
            f"{tests['seconds']:.0f} s",
            "-",
            "-",
            budget_cell(
                tests["seconds"], BUDGETS["test_seconds"], at_least=False, shown=lambda x: f"{x:.0f} s"
            )
            + ("" if tests["workers"] == TEST_CORES else f"  (not on {TEST_CORES} cores)"),
        )
    costs = r["cost_per_million_grant_events_usd"]
    row(
        "cost per million grant events (AWS)",
        f"${costs['total']:.2f}",
        "-",
        "-",
        budget_cell(
            costs["total"], BUDGETS["cost_per_million"], at_least=False, shown=lambda usd: f"${usd:.2f}"
        ),
    )
    print("  of which: " + ", ".join(f"{part} ${costs[part]:.2f}" for part in COST_PARTS))
    print(
        f"  per grant event: recorder {costs['recorder_seconds_per_event'] * 1000:.1f} ms, "
        f"{costs['evaluations_per_event']:.2f} evaluations of "
        f"{costs['evaluator_seconds_per_evaluation'] * 1000:.1f} ms, "
        f"{costs['sqs_messages_per_event']:.2f} SQS messages "
        f"({r['sqs_requests_per_message']} requests each), "
        f"{costs['notices_per_event']:.2f} notices; "
        f"DynamoDB {costs['wru_per_event']:.2f} WRU, {costs['rru_per_event']:.2f} RRU"
    )
    print(
        f"\nreplay: {rep['evaluations']} evaluations run on {rep['workers']} workers, "
        f"{rep['evaluations_coalesced']} coalesced; "
        f"floors: one boto3 writer, and {rep['workers']} writer threads"
    )
    for label, key in (("serial", "serial_dynamodb"), (f"{rep['workers']} workers", "parallel_dynamodb")):
        metered = rep[key]
        print(
            f"  DynamoDB requests, {label}: {metered['requests']} "
            f"({metered['dynamodb_clients']} clients metered, "
            f"{metered['sent_per_event']:.2f} HTTP requests per event)"
        )
    for part, figures in rep["serial_dynamodb"]["by_part"].items():
        print(f"    {part}: {figures['requests']}  WRU {figures['wru']:.0f} RRU {figures['rru']:.0f}")
    evaluator = rep["serial_evaluator"]
    print(
        f"  serial evaluator: {evaluator['evaluations']} evaluations, "
        f"{evaluator['seconds_per_evaluation'] * 1000:.1f} ms, "
        f"{evaluator['requests_per_evaluation']:.1f} requests, "
        f"{evaluator['wru_per_evaluation']:.1f} WRU and {evaluator['rru_per_evaluation']:.1f} RRU each; "
        f"{evaluator['notices']} notices"
    )
    print("\nDynamoDB per event type and per evaluation (requests; write and read units, table + indexes):")
    for name, figures in r["capacity_per_event_type"].items():
        print(
            f"  {name:<32} {figures['outcome']:<12} writes {figures['writes']} reads {figures['reads']}  "
            f"WRU {figures['wru']:.1f} RRU {figures['rru']:.1f}  {figures['requests']}"
        )
    b = r["backfill"]
    print(
        f"\nbackfill over {b['archive_events']} archived events in {b['files']} files "
        f"({b['grant_events']} grant events):"
    )
    scan_budget = budget_cell(
        b["scan_events_per_second"],
        BUDGETS["backfill_scan_ratio"] * b["decompress_events_per_second"],
        at_least=True,
        shown=_per_second,
    )
    print(
        f"  scan and filter {b['scan_events_per_second']:,.0f} events/s, decompress floor "
        f"{b['decompress_events_per_second']:,.0f} events/s: ratio {b['scan_ratio']:.2f} "
        f"(budget {scan_budget})"
    )
    print(
        f"  end to end, recording into DynamoDB Local on {b['workers']} workers: "
        f"{b['end_to_end_events_per_second']:,.0f} events/s, ratio {b['end_to_end_ratio']:.2f}"
    )
    print()
    print_memory(r["backfill_peak_rss_mb"])


if __name__ == "__main__":
    raise SystemExit(main())
