"""The whole service in one process, on a virtual clock driven by eventTime: what `grantwatch replay` runs.

Each event first lets every evaluation that fell due before its eventTime run (as the delay queue would
have delivered them), then is recorded; at the end every pending evaluation runs. The same scenario
therefore raises the same notices, in the same order, every time, and as it would in AWS. An evaluation is
due the settle window after the event *arrived*: at its eventTime, or at the clock if it arrived late, as
the delay queue counts from the moment the recorder sends the message.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime, timedelta

from grantwatch.domain.notices import Notice
from grantwatch.domain.records import EvaluationRequest
from grantwatch.evaluator import Evaluator
from grantwatch.ports import (
    DiscoveredResources,
    FunctionStore,
    GrantStore,
    HazardStore,
    NoDiscoveredResources,
    ResourceIncidentStore,
)
from grantwatch.recorder import EventOutcome, Recorder

DEFAULT_SETTLE = timedelta(seconds=120)


class VirtualClockScheduler:
    def __init__(self, settle: timedelta, coalescer: Coalescer | None = None) -> None:
        self.settle = settle
        self.coalescer = coalescer
        self._pending: list[tuple[datetime, int, EvaluationRequest]] = []
        self._sequence = 0
        self.clock: datetime | None = None  # when the event being recorded arrived

    def schedule(self, request: EvaluationRequest) -> None:
        if self.coalescer is not None:
            self.coalescer.asked(request)
        self._sequence += 1
        arrived = max(request.event_time, self.clock or request.event_time)
        due = arrived + (timedelta(0) if request.immediate else self.settle)
        heapq.heappush(self._pending, (due, self._sequence, request))

    def pop_due(self, before: datetime | None) -> tuple[datetime, EvaluationRequest] | None:
        if self._pending and (before is None or self._pending[0][0] < before):
            due, _, request = heapq.heappop(self._pending)
            return due, request
        return None


class Coalescer:
    """Skips the evaluation of a function that nothing it reads has changed for since its last one: no
    evaluation of it, and no key or role evaluation, was asked for after it (whoever asked: the recorder
    for each event it records, a reconciliation for each repair). A function touched by many events in
    one settle window is evaluated once. The serial and the parallel pipeline both use it; requests may be
    asked for from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tick = 0
        self._asked: dict[str, int] = {}  # function ARN -> when its evaluation was last asked for
        self._hazard = 0  # when a key or role evaluation was last asked for
        self._evaluated: dict[str, int] = {}  # function ARN -> when it was last evaluated
        self.skipped = 0

    def asked(self, request: EvaluationRequest) -> None:
        with self._lock:
            self._tick += 1
            if request.function_arn is None:
                self._hazard = self._tick
            else:
                self._asked[request.function_arn] = self._tick

    def wanted(self, function_arn: str) -> bool:
        """Whether to evaluate the function now; if so, it counts as evaluated."""
        with self._lock:
            evaluated = self._evaluated.get(function_arn, 0)
            if evaluated > max(self._asked.get(function_arn, 0), self._hazard):
                self.skipped += 1
                return False
            self._tick += 1
            self._evaluated[function_arn] = self._tick
            return True


class CollectingNotifier:
    """Keeps notices in order: where a local run's notices go, for the CLI to print."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def publish(self, notice: Notice) -> None:
        self.notices.append(notice)


class LocalPipeline:
    def __init__(
        self,
        grants: GrantStore,
        functions: FunctionStore,
        hazards: HazardStore,
        settle: timedelta = DEFAULT_SETTLE,
        temporary_role: str | None = None,
        resource_incidents: ResourceIncidentStore | None = None,
        *,
        canary_key_arn: str | None = None,
        discovered: DiscoveredResources | None = None,
    ) -> None:
        self.grants = grants
        self.functions = functions
        self.hazards = hazards
        self.coalescer = Coalescer()
        self.scheduler = VirtualClockScheduler(settle, self.coalescer)
        self.notifier = CollectingNotifier()
        self.recorder = Recorder(grants, functions, hazards, self.scheduler, canary_key_arn=canary_key_arn)
        self.evaluator = Evaluator(
            grants,
            functions,
            hazards,
            self.notifier,
            self.scheduler,
            temporary_role=temporary_role,
            resource_incidents=resource_incidents,
            discovered=discovered or NoDiscoveredResources(),
        )
        self.clock: datetime | None = None  # the latest eventTime seen: time never runs backwards

    def feed(self, raw: object) -> tuple[list[Notice], EventOutcome]:
        """The notices that fell due before this event, and what recording it did."""
        parsed = self.recorder.parse(raw)
        if isinstance(parsed, EventOutcome):
            return [], parsed
        notices = self._run_due(before=parsed.event_time)
        self.clock = max(self.clock or parsed.event_time, parsed.event_time)
        self.scheduler.clock = self.clock
        return notices, self.recorder.apply(parsed)

    def drain(self) -> list[Notice]:
        """Let the clock run out: every pending evaluation runs."""
        return self._run_due(before=None)

    def _run_due(self, before: datetime | None) -> list[Notice]:
        notices: list[Notice] = []
        while (due := self.scheduler.pop_due(before)) is not None:
            at, request = due
            at = max(at, self.clock or at)  # events fed out of time order: it is later than they say
            if request.function_arn is None or self.coalescer.wanted(request.function_arn):
                notices += self.evaluator.run(request, at)
        return notices
