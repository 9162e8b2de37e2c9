"""The benchmark keeps working (a small run): every figure is there, and the request budgets hold. Its
request meter counts every DynamoDB request of every store, checked against the requests leaving botocore
for the wire. Times are printed by the benchmark, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.httpsession import URLLib3Session

from bench.run import EvaluationsOf, RequestMeter
from bench.workload import create, end, mixed_events
from grantwatch import local
from grantwatch.parallel import ParallelPipeline, record_all
from grantwatch.settings import Settings
from grantwatch.wiring import dynamo_stores, local_pipeline
from tests.support.samples import ROOT


@contextmanager
def on_the_wire(endpoint: str) -> Iterator[Counter[str]]:
    """DynamoDB requests to `endpoint` by operation (their X-Amz-Target), as botocore's HTTP session sends
    them: whichever client, session or store sent them."""
    sent: Counter[str] = Counter()
    lock = threading.Lock()
    send = URLLib3Session.send

    def counted(session: URLLib3Session, request: Any) -> Any:
        target = request.headers.get("X-Amz-Target") or b""
        target = target.decode() if isinstance(target, bytes) else target
        if request.url.startswith(endpoint) and target.startswith("DynamoDB_20120810."):
            with lock:
                sent[target.partition(".")[2]] += 1
        return send(session, request)

    setattr(URLLib3Session, "send", counted)  # noqa: B010
    try:
        yield sent
    finally:
        setattr(URLLib3Session, "send", send)  # noqa: B010


def test_the_meter_counts_what_the_recorder_sends_in_a_replay_without_evaluations(
    table_settings: Settings,
) -> None:
    events = [create(f"meter-ebs-{n}", n, lambda_grant=False) for n in range(3)]
    events += [end(f"meter-ebs-{n}", 10 + n, revoke=n == 0) for n in range(3)]
    with on_the_wire(table_settings.endpoint_url or "") as wire, RequestMeter() as meter:
        pipeline = local_pipeline(table_settings)
        evaluations = EvaluationsOf(pipeline, meter)
        for event in events:
            pipeline.feed(event)
        pipeline.drain()
    assert meter.by_operation() == Counter({"UpdateItem": 6}) == wire  # one write per event, nothing else
    assert (evaluations.messages, evaluations.runs) == (0, 0)  # an EBS grant asks for no evaluation
    assert meter.wru["recorder"] > 0 and meter.wru["evaluator"] == 0


def test_the_meter_counts_every_request_of_every_store_in_a_replay(table_settings: Settings) -> None:
    events = list(mixed_events(12, seed=5))  # 3 Lambda grants created and ended: 6 evaluations
    with on_the_wire(table_settings.endpoint_url or "") as wire, RequestMeter() as meter:
        pipeline = local_pipeline(table_settings)
        evaluations = EvaluationsOf(pipeline, meter)
        for event in events:
            pipeline.feed(event)
        pipeline.drain()
    assert meter.by_operation() == wire and meter.sent == sum(wire.values())
    # one write per event, and a Lambda grant's creation writes its link first
    assert meter.by_operation("recorder") == Counter({"UpdateItem": 15})
    # each function is asked for twice (its grant's creation and end) and evaluated once: nothing it reads
    # changed between the two
    assert (evaluations.messages, evaluations.runs) == (6, 3)
    evaluator = meter.by_operation("evaluator")
    # an evaluation reads the function's partition (one Query) and what it names (one BatchGetItem), then
    # opens its incident (one transaction) and marks the alert sent (one UpdateItem); the table's layout
    # item is read once, by the first
    assert evaluator == Counter(
        {"Query": 3, "BatchGetItem": 3, "TransactWriteItems": 3, "UpdateItem": 3, "GetItem": 1}
    )
    assert evaluations.notices == 3  # each ended grant's function is alerted on
    assert meter.clients >= 1


def test_the_meter_counts_the_parallel_replays_requests_on_every_thread(table_settings: Settings) -> None:
    events = list(mixed_events(24, seed=6))
    with (
        on_the_wire(table_settings.endpoint_url or "") as wire,
        RequestMeter() as meter,
        ParallelPipeline[int](dynamo_stores(table_settings), workers=3) as pipeline,
    ):
        record_all(pipeline, [(event, n) for n, event in enumerate(events)])
    assert meter.by_operation() == wire and sum(wire.values()) > 24


def test_the_meter_counts_clients_of_any_session_created_while_it_is_on(table_settings: Settings) -> None:
    endpoint = table_settings.endpoint_url or ""
    before = local.dynamodb_client(endpoint)  # created before the meter: not its to count
    with on_the_wire(endpoint) as wire, RequestMeter() as meter:
        own_session: Any = botocore.session.get_session().create_client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        own_session.describe_table(TableName=table_settings.table_name)
        boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        ).list_tables()
        before.list_tables()
    assert meter.by_operation() == Counter({"DescribeTable": 1, "ListTables": 1})
    assert wire == Counter({"DescribeTable": 1, "ListTables": 2})
    own_session.list_tables()  # after the meter: not counted
    assert sum(meter.by_operation().values()) == 2


def test_a_small_benchmark_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--events", "200", "--runs", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "recorder events/s" in run.stdout and "cost per million grant events" in run.stdout
    figures = json.loads(out.read_text())
    assert figures["events"] == 200
    assert (
        figures["recorder"]["events_per_second"] > 0 and figures["recorder"]["floor_put_item_per_second"] > 0
    )
    assert set(figures["import_ratio"]) == {
        f"grantwatch.handlers.{name}" for name in ("recorder", "evaluator", "reconciler", "remediation")
    }
    assert figures["peak_rss_mb"] > 0
    costs = figures["cost_per_million_grant_events_usd"]
    assert costs["total"] == sum(
        costs[part]
        for part in (
            "recorder_lambda",
            "recorder_dynamodb",
            "sqs",
            "evaluator_lambda",
            "evaluator_dynamodb",
            "sns",
        )
    )
    assert (
        costs["evaluator_dynamodb"] > 0 and costs["sqs_messages_per_event"] == 0.5
    )  # a Lambda grant asks twice
    capacity = figures["capacity_per_event_type"]
    for event_type, measured in capacity.items():
        if event_type in ("create-lambda", "duplicate-create"):  # the link in the function's partition first
            assert measured["requests"] == {"UpdateItem": 2}, measured
        elif not event_type.startswith("evaluation"):
            assert measured["writes"] <= 1 and measured["reads"] <= 1, (event_type, measured)
    assert capacity["failed-call"]["requests"] == {}
    assert capacity["evaluation: nothing to do"]["outcome"] == "no notice"
    assert capacity["evaluation: opens, notifies"]["outcome"] == "alert"
    assert capacity["evaluation: resolves, notifies"]["outcome"] == "resolved"
    backfill = figures["backfill"]
    assert (backfill["archive_events"], backfill["grant_events"]) == (2_000, 10)
    assert backfill["scan_ratio"] > 0 and backfill["end_to_end_ratio"] > 0
    replay = figures["replay"]
    assert replay["events"] == 100 and replay["workers"] >= 1
    for kind in ("serial", "parallel"):
        assert replay[f"{kind}_events_per_second"] > 0 and replay[f"{kind}_floor_put_item_per_second"] > 0
    assert replay["evaluations"] > 0 and replay["evaluations"] + replay["evaluations_coalesced"] >= 25
    serial, parallel = replay["serial_dynamodb"], replay["parallel_dynamodb"]
    # one write per event, and the link of each Lambda grant created (a quarter of the mix)
    assert serial["by_part"]["recorder"]["requests"] == {"UpdateItem": 125}
    assert sum(serial["requests"].values()) == pytest.approx(serial["requests_per_event"] * 100)
    assert serial["requests_per_event"] > 1 and parallel["requests_per_event"] > 1  # evaluations too
    evaluator = replay["serial_evaluator"]
    # 25 Lambda grants, each asking twice (creation and end), each function evaluated once
    assert (evaluator["evaluations"], evaluator["messages_scheduled"]) == (25, 50)
    assert "DynamoDB requests per replayed event, serial" in run.stdout
    assert set(figures["backfill_peak_rss_mb"]) == {"200", "2000"}
    assert all(peak > 0 for peak in figures["backfill_peak_rss_mb"].values())
    assert "replay events/s" in run.stdout and "backfill peak memory" in run.stdout
    assert "make test" in run.stdout
