"""`grantwatch replay` and `grantwatch backfill` on several workers, on the virtual clock of
`grantwatch.pipeline`, with the same notices and the same table as the serial pipeline.

Recording is order-independent (the lineage fold, the conditional writes, the incident transactions), so
the events between two moments at which an evaluation falls due are recorded together, in worker threads
that share the stores (botocore clients are thread-safe; one set of clients keeps memory flat). A batch
ends at the first event that could change what an evaluation due before it reads: an event about a
function with an evaluation due (pending, or asked for by the batch's own events) before it; a key, role
or failed-Decrypt event, or the end of a grant not seen created, past any due time. An event about no
function (an EBS volume's grant) never ends one. Then the evaluations due before the next event run, those
of different functions together, each at the clock it would have run at serially; key and role requests,
which fan out to the functions on them, run alone, in order. An evaluation therefore sees every event up
to its due time that can change it, and none after it.

Coalescing: an evaluation reads the function's state, so once a function has been evaluated, another
request for it is skipped while no evaluation of it, and no key or role evaluation, has been asked for
since (`grantwatch.pipeline.Coalescer`, which the serial pipeline uses too). A function touched by many
events in one settle window is evaluated once.
"""

from __future__ import annotations

import bisect
import heapq
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from grantwatch.domain.catalogue import EventKind, selection_of
from grantwatch.domain.facts import GrantFact, RejectedRecord, normalise
from grantwatch.domain.functions import FunctionFact, normalise_function_event
from grantwatch.domain.notices import Notice
from grantwatch.domain.records import CloudTrailRecord, EvaluationRequest
from grantwatch.evaluator import Evaluator
from grantwatch.pipeline import DEFAULT_SETTLE, Coalescer
from grantwatch.ports import FunctionStore, GrantStore, HazardStore, ResourceIncidentStore
from grantwatch.recorder import EventOutcome, Outcome, Recorder

T = TypeVar("T")

MAX_BATCH = 2_000  # events held back at most while a batch grows: bounds memory, not correctness
MAX_KNOWN_GRANTS = 200_000  # grants whose function is remembered: bounds memory, not correctness


def default_workers() -> int:
    """Twice the CPUs, at most 8: a worker spends most of its time waiting on DynamoDB."""
    return min(8, 2 * (os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class Stores:
    """The stores the workers share, and the errors that mean they cannot be reached: such an error stops
    the run (a clear error and exit code, as in the serial pipeline); anything else going wrong with one
    event is that event's outcome, and the others are still recorded."""

    grants: GrantStore
    functions: FunctionStore
    hazards: HazardStore
    failures: tuple[type[Exception], ...] = ()
    resource_incidents: ResourceIncidentStore | None = None  # other services' resources on a key


@dataclass(frozen=True, slots=True)
class Recorded[T]:
    """What recording one event did; `tag` is what the caller fed with it (where it came from)."""

    tag: T
    outcome: EventOutcome


type Step[U] = Notice | Recorded[U]

Order = tuple[int, ...]  # serial order of a request: (phase, position in the phase, request of that event)


class _Due:
    """The pending evaluations, ordered by due time and then by when they were asked for."""

    def __init__(self, settle: timedelta) -> None:
        self.settle = settle
        self._heap: list[tuple[datetime, Order, EvaluationRequest]] = []
        self._lock = threading.Lock()

    def push(self, request: EvaluationRequest, arrived: datetime, order: Order) -> None:
        due = max(request.event_time, arrived) + (timedelta(0) if request.immediate else self.settle)
        with self._lock:
            heapq.heappush(self._heap, (due, order, request))

    def earliest(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def pending(self) -> list[tuple[datetime, EvaluationRequest]]:
        return [(due, request) for due, _, request in self._heap]

    def pop_before(self, before: datetime | None) -> list[tuple[datetime, EvaluationRequest]]:
        popped = []
        while self._heap and (before is None or self._heap[0][0] < before):
            due, _, request = heapq.heappop(self._heap)
            popped.append((due, request))
        return popped


class _Arrivals:
    """The scheduler one recording (or one fan-out) sees: its requests arrive at its own clock."""

    def __init__(self, due: _Due, coalescer: Coalescer | None) -> None:
        self.due = due
        self.coalescer = coalescer
        self.arrived: datetime | None = None
        self.order: Order = ()
        self._count = 0

    def at(self, arrived: datetime, order: Order) -> None:
        self.arrived, self.order, self._count = arrived, order, 0

    def schedule(self, request: EvaluationRequest) -> None:
        if self.coalescer is not None:
            self.coalescer.asked(request)
        self._count += 1
        self.due.push(request, self.arrived or request.event_time, (*self.order, self._count))


class _Returned:
    """Where a worker's evaluator publishes: nowhere. Its notices reach the caller in the steps `run`
    returns; a list of them here too would only grow with the history (a backfill's alerts, all kept)."""

    def publish(self, notice: Notice) -> None:
        return None


class _Worker:
    """One worker thread's recorder and evaluator (each with the scheduler of the work in hand)."""

    def __init__(
        self,
        stores: Stores,
        due: _Due,
        coalescer: Coalescer | None,
        temporary_role: str | None,
        canary_key_arn: str | None = None,
    ) -> None:
        self.arrivals = _Arrivals(due, coalescer)
        self.recorder = Recorder(
            stores.grants, stores.functions, stores.hazards, self.arrivals, canary_key_arn=canary_key_arn
        )
        self.evaluator = Evaluator(
            stores.grants,
            stores.functions,
            stores.hazards,
            _Returned(),
            self.arrivals,
            temporary_role=temporary_role,
            resource_incidents=stores.resource_incidents,
        )


@dataclass(frozen=True, slots=True)
class _Event[T]:
    tag: T
    record: CloudTrailRecord | None  # None: already decided (ignored or rejected) when parsed
    outcome: EventOutcome | None = None
    shard: str = ""


class _Anyone:
    """An event whose effect on evaluations is not known in advance (a key, role or failed Decrypt, or
    the end of a grant not seen created): it may change what any function's evaluation reads."""


ANYONE = _Anyone()
Reach = str | None | _Anyone  # the one function an event can change the evaluation of; None: none


class _Batch:
    """The events gathered for recording together, and what bounds them: an event may not reach an
    evaluation due before it. Evaluations of one function are only reached by events about it, so an
    event about no function (an EBS volume's grant) or about a function with nothing due before it may
    join the batch past other functions' due times."""

    def __init__(self, due: _Due, clock: datetime | None) -> None:
        self.settle = due.settle
        self.clock = clock
        self.by_function: dict[str, datetime] = {}
        self.shared: datetime | None = None  # key and role requests, and requests of unknown reach
        self.earliest: datetime | None = None
        for at, request in due.pending():
            if request.function_arn is None:
                self.shared = _min(self.shared, at)
            else:
                self.by_function[request.function_arn] = _min(self.by_function.get(request.function_arn), at)
            self.earliest = _min(self.earliest, at)

    def admit(self, record: CloudTrailRecord, reach: Reach) -> bool:
        at = record.event_time
        if _after(at, self.shared) or (isinstance(reach, _Anyone) and _after(at, self.earliest)):
            return False
        if isinstance(reach, str) and _after(at, self.by_function.get(reach)):
            return False
        self.clock = max(self.clock or at, at)
        if reach is None:
            return True
        due = self.clock if _asks_at_once(record) else self.clock + self.settle
        if isinstance(reach, str):
            self.by_function[reach] = _min(self.by_function.get(reach), due)
        else:
            self.shared = _min(self.shared, due)
        self.earliest = _min(self.earliest, due)
        return True


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None else min(a, b)


def _after(at: datetime, bound: datetime | None) -> bool:
    return bound is not None and at > bound


class ParallelPipeline[T]:
    """Feed events in order with `feed`; call `drain` at the end. Both return what happened since, in
    order: each event's `Recorded`, and the notices of the evaluations that fell due."""

    def __init__(
        self,
        stores: Stores,
        settle: timedelta = DEFAULT_SETTLE,
        workers: int | None = None,
        temporary_role: str | None = None,
        *,
        coalesce: bool = True,
        canary_key_arn: str | None = None,
    ) -> None:
        self.workers = max(1, workers or default_workers())
        self.coalesce = coalesce
        self.clock: datetime | None = None
        self.evaluations = 0  # run, after coalescing
        self._coalescer = Coalescer() if coalesce else None
        self.batches = 0  # recorded side by side
        self._due = _Due(settle)
        self._store_failures = stores.failures
        self._make: Callable[[], _Worker] = lambda: _Worker(
            stores, self._due, self._coalescer, temporary_role, canary_key_arn
        )
        self._main = self._make()  # parses, and runs key and role requests (their fan-out is ordered)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="grantwatch-worker")
        self._buffer: list[_Event[T]] = []
        self._open: _Batch | None = None
        self._clocks: list[tuple[datetime, datetime]] = []  # (eventTime, clock) after each recorded event
        self._grant_functions: dict[str, str | None] = {}  # grant id -> its function, from its creation
        self._phase = 0

    def __enter__(self) -> ParallelPipeline[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def feed(self, raw: object, tag: T) -> list[Step[T]]:
        parsed = self._main.recorder.parse(raw)
        if isinstance(parsed, EventOutcome):
            return self.decided(parsed, tag)
        steps: list[Step[T]] = []
        shard, reach = self._reach(parsed)
        if self._open is None:  # the batch's first event: what fell due before it runs first
            steps += self.flush()
            steps += self._sweep(before=parsed.event_time)
            self._open = _Batch(self._due, self.clock)
            self._open.admit(parsed, reach)
        elif not self._open.admit(parsed, reach):
            steps += self.flush()
            return steps + self.feed(raw, tag)
        self._buffer.append(_Event(tag, parsed, shard=shard))
        return steps + (self.flush() if len(self._buffer) >= MAX_BATCH else [])

    def decided(self, outcome: EventOutcome, tag: T) -> list[Step[T]]:
        """An event already decided elsewhere (unreadable input): reported in its place in the order."""
        self._buffer.append(_Event(tag, None, outcome))
        return self.flush() if len(self._buffer) >= MAX_BATCH else []

    def flush(self) -> list[Step[T]]:
        """Record every event fed so far; evaluations due after them wait."""
        batch, self._buffer, self._open = self._buffer, [], None
        return self._record(batch) if batch else []

    def drain(self) -> list[Step[T]]:
        """Let the clock run out: every event is recorded and every pending evaluation runs."""
        steps = self.flush()
        return steps + self._sweep(before=None)

    def _reach(self, record: CloudTrailRecord) -> tuple[str, Reach]:
        """The event's shard (events of one shard keep their order) and which evaluation it can change."""
        selection = selection_of(record.event_source, record.event_name)
        if selection is not None and selection.kind is EventKind.FUNCTION:
            change = normalise_function_event(record)
            return "hazards", change.function_arn if isinstance(change, FunctionFact) else None
        if selection is not None and selection.kind is not EventKind.GRANT:
            return "hazards", ANYONE
        try:
            fact = normalise(record)
        except RejectedRecord:
            return f"event {record.event_id}", None
        if not isinstance(fact, GrantFact):
            return f"event {record.event_id}", None
        if fact.terms is not None:
            if len(self._grant_functions) >= MAX_KNOWN_GRANTS:
                self._grant_functions.clear()  # forgetting only makes later batches smaller
            self._grant_functions[fact.grant_id] = fact.terms.function_arn
            return f"grant {fact.grant_id}", fact.terms.function_arn
        return f"grant {fact.grant_id}", self._grant_functions.get(fact.grant_id, ANYONE)

    @property
    def coalesced(self) -> int:
        """Evaluations skipped: nothing the function's evaluation reads had changed."""
        return self._coalescer.skipped if self._coalescer is not None else 0

    def _record(self, batch: list[_Event[T]]) -> list[Step[T]]:
        """Events about one grant (or any function, key or role) in their order, one worker each; the
        others side by side. Each then reports what the serial pipeline would have."""
        self._phase += 1
        self.batches += 1
        phase, clock = self._phase, self.clock
        shards: dict[str, list[tuple[int, CloudTrailRecord, datetime]]] = {}
        for position, event in enumerate(batch):
            if event.record is not None:
                clock = max(clock or event.record.event_time, event.record.event_time)
                shards.setdefault(event.shard, []).append((position, event.record, clock))
                self._clocks.append((event.record.event_time, clock))
        self.clock = clock
        results: dict[int, EventOutcome | BaseException] = {}
        for done in self._pool.map(lambda shard: self._apply_all(phase, shard), shards.values()):
            results |= done
        steps: list[Step[T]] = []
        failure: BaseException | None = None
        for position, event in enumerate(batch):
            result = event.outcome or results[position]
            if isinstance(result, BaseException):
                failure = failure or result
                continue
            steps.append(Recorded(event.tag, result))
        if failure is not None:
            raise failure
        return steps

    def _apply_all(
        self, phase: int, shard: list[tuple[int, CloudTrailRecord, datetime]]
    ) -> dict[int, EventOutcome | BaseException]:
        return {position: self._apply(phase, position, record, at) for position, record, at in shard}

    def _apply(
        self, phase: int, position: int, record: CloudTrailRecord, arrived: datetime
    ) -> EventOutcome | BaseException:
        worker = self._worker()
        worker.arrivals.at(arrived, (phase, position))
        try:
            return worker.recorder.apply(record)
        except self._store_failures as error:
            return error
        except Exception as error:  # one event's failure is its own outcome, never the batch's
            return EventOutcome(
                Outcome.REJECTED,
                record.event_id,
                record.event_name,
                error=f"could not be recorded: {type(error).__name__}",
            )

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = self._make()
        return worker

    def _sweep(self, before: datetime | None) -> list[Step[T]]:
        """Run the evaluations due before `before`, in rounds until none is left (a key or role request
        asks for more, due at once)."""
        steps: list[Step[T]] = []
        fanned = 0
        while due := self._due.pop_before(before):
            self._phase += 1
            functions: list[tuple[datetime, EvaluationRequest]] = []
            for at, request in due:
                if request.function_arn is None:  # a key or role: after the evaluations due before it
                    steps += self._evaluate(functions)
                    functions = []
                    # its fan-out arrives at the clock, as the serial scheduler has it
                    fanned += 1
                    self._main.arrivals.at(self._clock_at(at) or at, (self._phase, fanned))
                    steps += self._main.evaluator.run(request, self._now(at))
                elif self._coalescer is None or self._coalescer.wanted(request.function_arn):
                    functions.append((at, request))
            steps += self._evaluate(functions)
        self._forget_clocks()
        return steps

    def _evaluate(self, requests: list[tuple[datetime, EvaluationRequest]]) -> list[Step[T]]:
        """Evaluations of different functions at once; a function's own requests one after another."""
        steps: list[Step[T]] = []
        while requests:
            seen: set[str | None] = set()
            now_: list[tuple[datetime, EvaluationRequest]] = []
            later: list[tuple[datetime, EvaluationRequest]] = []
            for at, request in requests:
                (later if request.function_arn in seen else now_).append((at, request))
                seen.add(request.function_arn)
            self.evaluations += len(now_)
            for notices in self._pool.map(self._run_one, now_):
                steps += notices
            requests = later
        return steps

    def _run_one(self, job: tuple[datetime, EvaluationRequest]) -> list[Notice]:
        at, request = job
        return self._worker().evaluator.run(request, self._now(at))

    def _clock_at(self, at: datetime) -> datetime | None:
        """The clock when an evaluation due at `at` runs serially: just before the first event after it
        (events of other functions past it may have been recorded already)."""
        index = bisect.bisect_right(self._clocks, at, key=lambda entry: entry[1])
        if index == len(self._clocks):
            return self.clock
        return self._clocks[index - 1][1] if index else None

    def _now(self, at: datetime) -> datetime:
        return max(at, self._clock_at(at) or at)  # events fed out of time order: it is later than they say

    def _forget_clocks(self) -> None:
        """Keep the clocks an evaluation still pending can ask for."""
        earliest = self._due.earliest()
        keep = len(self._clocks) - 1
        if earliest is not None:
            keep = bisect.bisect_right(self._clocks, earliest, key=lambda entry: entry[1]) - 1
        del self._clocks[: max(0, keep)]


def _asks_at_once(record: CloudTrailRecord) -> bool:
    """A failed Decrypt asks for its function's evaluation at once: nothing may be recorded after it first."""
    selection = selection_of(record.event_source, record.event_name)
    return selection is not None and selection.kind is EventKind.DECRYPT_FAILURE


def record_all[T](pipeline: ParallelPipeline[T], events: Iterable[tuple[object, T]]) -> list[Step[T]]:
    """Feed every event and drain: everything that happened, in order."""
    steps: list[Step[T]] = []
    for raw, tag in events:
        steps += pipeline.feed(raw, tag)
    return steps + pipeline.drain()
