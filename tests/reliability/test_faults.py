"""Faults: DynamoDB Local killed in the middle of a replay, invocations refused, SNS failing. Retries as
template.yaml configures them (tests/support/reliability/delivery.py); in the end nothing lost, nothing
twice."""

from __future__ import annotations

import io
import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.workload import mixed_events
from grantwatch import local as local_dynamo
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.alerts import Incident
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.domain.records import EvaluationRequest
from grantwatch.evaluator import Evaluator
from grantwatch.handlers import recorder as handler
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings
from tests.support.lambda_context import FakeLambdaContext
from tests.support.reliability.delivery import AsyncDelivery, RetryPolicy
from tests.support.reliability.harness import assert_one_notice_of_each_kind_per_incident, new_table, scan_all
from tests.support.reliability.scale import Scale, report
from tests.support.samples import ROOT
from tests.support.scenarios import create_grant, function_arn, retire_grant

POLICY = RetryPolicy.from_template()


class Scheduled:
    def __init__(self) -> None:
        self.requests: list[EvaluationRequest] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


class NoRejections:
    def send(self, event: object, *, event_id: str | None, error: str) -> None:
        raise AssertionError(f"{event_id} rejected: {error}")


@pytest.fixture
def file_backed(tmp_path: Path) -> Iterator[Path]:
    """A DynamoDB Local of this test's own that keeps its tables on disk, so a kill loses nothing."""
    state = tmp_path / "dynamodb-local"
    local_dynamo.start(ROOT, state, port=local_dynamo.free_port(), in_memory=False)
    try:
        yield state
    finally:
        local_dynamo.stop(state)


def _kill(state: Path) -> None:
    running = local_dynamo.status(state)
    assert running is not None
    os.killpg(running.pid, signal.SIGKILL)  # no shutdown: as a crashed host
    os.waitpid(running.pid, 0)


def _wire_recorder(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    grants = DynamoGrantStore(settings)
    # No retries inside the invocation: each attempt during an outage fails at once, and every retry the
    # test counts is one Lambda or EventBridge makes.
    grants.model.Meta.max_retry_attempts = 0  # type: ignore[attr-defined]
    recorder = Recorder(grants, DynamoFunctionStore(settings), DynamoHazardStore(settings), Scheduled())
    monkeypatch.setattr(handler, "recorder", lambda: recorder)
    monkeypatch.setattr(handler, "rejected_sink", lambda: NoRejections())
    monkeypatch.setattr(handler.logger.registered_handler, "stream", io.StringIO())
    monkeypatch.setattr(logging.getLogger(handler.logger.name), "propagate", False)


def _event_ids(events: list[dict[str, Any]]) -> set[str]:
    return {str(e["detail"]["eventID"]) for e in events}


def assert_whole_and_exact(settings: Settings, sent: set[str]) -> tuple[int, int]:
    """Every event applied exactly once, and every grant item whole: each fact both in the lineage and
    among the applied ids, the state what its facts say. Returns (lost, duplicated)."""
    applied: Counter[str] = Counter()
    for item in scan_all(settings):
        if item["sk"]["S"] != "GRANT":
            continue
        lineage = [e["M"] for e in item["events"]["L"]]
        ids = [e["eventId"]["S"] for e in lineage]
        applied.update(ids)
        assert set(ids) == {i for i in item["eventIds"]["SS"] if not i.startswith("shared:")}, item["pk"]
        ended = any(e["kind"]["S"] != "created" for e in lineage)
        assert item["state"]["S"] == ("ended" if ended else "active"), item["pk"]
    lost = len(sent - set(applied))
    duplicated = sum(n - 1 for n in applied.values() if n > 1)
    assert set(applied) <= sent
    return lost, duplicated


@pytest.mark.filterwarnings("ignore:No application metrics")  # a failed invocation adds none
def test_dynamodb_local_killed_and_restarted_mid_replay_loses_and_doubles_nothing(
    file_backed: Path, monkeypatch: pytest.MonkeyPatch, scale: Scale
) -> None:
    running = local_dynamo.status(file_backed)
    assert running is not None
    settings = new_table(running.endpoint_url)
    _wire_recorder(settings, monkeypatch)
    events = list(mixed_events(scale.fault_events, seed=11))
    # Virtual seconds between events as EventBridge delivers them: at least 6,000 s in all, so that the
    # spells below never overlap whatever the number of events.
    interval = max(2.0, 6_000 / len(events))
    span = len(events) * interval
    # Two outages: one shorter than Lambda's retries (1 + 2 minutes), one longer, so that some events reach
    # the on-failure destination and are redriven from there. And a spell of refused invocations.
    outages = [(span * 0.3, span * 0.3 + 150.0), (span * 0.7, span * 0.7 + 400.0)]
    refused = (span * 0.5, span * 0.5 + 600.0)
    state = {"down": False, "kills": 0}
    killers: list[threading.Timer] = []

    def at_time(now: float) -> None:
        inside = any(start <= now < end for start, end in outages)
        if inside and not state["down"]:
            state["down"], state["kills"] = True, state["kills"] + 1
            killer = threading.Timer(0.02, _kill, (file_backed,))  # lands in the middle of a write
            killers.append(killer)
            killer.start()
        elif not inside and state["down"]:
            killers[-1].join()
            local_dynamo.start(ROOT, file_backed, port=running.port, in_memory=False)
            state["down"] = False

    context = FakeLambdaContext("grantwatch-recorder")

    def invoke(event: Any) -> None:
        result = handler.lambda_handler(event, context)
        assert result["outcome"] in {Outcome.RECORDED, Outcome.DUPLICATE}

    started = time.perf_counter()
    delivery = AsyncDelivery(
        POLICY, invoke, at_time=at_time, invoke_refused=lambda t: refused[0] <= t < refused[1]
    )
    outcome = delivery.run(events, interval)
    assert not state["down"]
    dead = outcome.dead_lettered
    assert dead and {reason for reason, _ in dead} == {"lambda: on-failure destination"}
    for _reason, event in dead:  # the operator's redrive from the dead-letter queue
        invoke(event)
    elapsed = time.perf_counter() - started

    lost, duplicated = assert_whole_and_exact(settings, _event_ids(events))
    assert (lost, duplicated) == (0, 0)
    assert state["kills"] == 2
    assert max(outcome.attempts_per_event) == 1 + POLICY.lambda_retries
    report(
        "faults: DynamoDB Local killed and restarted",
        events=len(events),
        kills=state["kills"],
        outageSeconds="150 and 400 (virtual)",
        invocations=outcome.attempts,
        failedInvocations=outcome.function_failures,
        refusedDeliveries=outcome.delivery_failures,
        eventsRetried=outcome.retried,
        attemptsPerEvent=dict(sorted(outcome.attempts_per_event.items())),
        deadLetteredThenRedriven=len(dead),
        lost=lost,
        duplicated=duplicated,
        seconds=round(elapsed, 1),
    )


class FlakySns:
    """SNS down for a spell, and failing now and then outside it (seeded)."""

    def __init__(self, down: tuple[datetime, datetime], rate: float, seed: int) -> None:
        self.down = down
        self.rate = rate
        self.random = random.Random(seed)
        self.now = datetime.min.replace(tzinfo=UTC)
        self.sent: list[Notice] = []
        self.failures = 0

    def publish(self, notice: Notice) -> None:
        if self.down[0] <= self.now < self.down[1] or self.random.random() < self.rate:
            self.failures += 1
            raise ConnectionError("SNS: service unavailable")
        self.sent.append(notice)


class ReleaseSometimesFails(DynamoFunctionStore):
    """After a failed publish, releasing the claim fails too at times (DynamoDB throttled): the claim then
    stays until its lease runs out."""

    def __init__(self, settings: Settings, rate: float, seed: int) -> None:
        super().__init__(settings)
        self.random = random.Random(seed)
        self.rate = rate
        self.stuck_claims = 0

    def release_notice(self, incident: Incident, *, resolved: bool) -> None:
        if self.random.random() < self.rate:
            self.stuck_claims += 1
            raise ConnectionError("DynamoDB: throttled")
        super().release_notice(incident, resolved=resolved)


def test_sns_failing_sends_each_alert_and_resolved_notice_exactly_once(
    table_settings: Settings, scale: Scale
) -> None:
    """The outbox equivalent: the incident is recorded first (a transaction), each notice claimed,
    published, then marked sent; a failed evaluation is received again after the visibility timeout."""
    grants = DynamoGrantStore(table_settings)
    functions = ReleaseSometimesFails(table_settings, rate=0.2, seed=5)
    scheduled = Scheduled()
    hazards = DynamoHazardStore(table_settings)
    recorder = Recorder(grants, functions, hazards, scheduled)
    start = datetime(2026, 11, 1, 10, tzinfo=UTC)
    alerting = start + timedelta(days=2)
    sns = FlakySns((alerting, alerting + timedelta(minutes=10)), rate=0.05, seed=3)
    evaluator = Evaluator(grants, functions, hazards, sns, scheduled)
    events: list[dict[str, Any]] = []
    for number in range(scale.alert_incidents):
        name, offset = f"svc{number}", timedelta(seconds=number)
        when = {
            day: (start + timedelta(days=day) + offset).strftime("%Y-%m-%dT%H:%M:%SZ") for day in (0, 2, 3)
        }
        events += [
            create_grant(name, f"{name}-a", when[0]),
            retire_grant(f"{name}-a", when[2]),  # the alert
            create_grant(name, f"{name}-b", when[3]),  # the resolved notice
        ]
    events.sort(key=lambda e: str(e["detail"]["eventTime"]))

    settle = timedelta(seconds=120)
    visibility = timedelta(seconds=POLICY.evaluation_visibility)
    pending: list[tuple[datetime, int, str, int]] = []  # (visible at, order, function, receive count)
    dead: list[str] = []
    receives = failures = 0

    def run_until(moment: datetime | None) -> None:
        nonlocal receives, failures
        while pending and (moment is None or min(pending)[0] < moment):
            pending.sort()
            visible, order, function, count = pending.pop(0)
            sns.now = visible
            receives += 1
            try:
                evaluator.evaluate(function, visible)
            except ConnectionError:
                failures += 1
                if count + 1 >= POLICY.evaluation_receives:
                    dead.append(function)
                else:
                    pending.append((visible + visibility, order, function, count + 1))

    for order, event in enumerate(events):
        at = datetime.strptime(str(event["detail"]["eventTime"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        run_until(at)
        assert recorder.record(event).outcome is Outcome.RECORDED
        for request in scheduled.requests:
            assert request.function_arn is not None  # grant events ask about one function
            pending.append((at + settle, order, request.function_arn, 0))
        scheduled.requests.clear()
    run_until(None)

    assert dead == []
    alerts = [n for n in sns.sent if n.kind is NoticeKind.ALERT]
    resolved = [n for n in sns.sent if n.kind is NoticeKind.RESOLVED]
    assert sorted(n.details["functionArn"] for n in alerts) == sorted(
        function_arn(f"svc{n}") for n in range(scale.alert_incidents)
    )
    assert sorted(n.incident_id for n in resolved) == sorted(n.incident_id for n in alerts)
    assert_one_notice_of_each_kind_per_incident(sns.sent)
    assert sns.failures > scale.alert_incidents  # the outage alone fails every alert at least once
    assert functions.stuck_claims > 0
    report(
        "faults: SNS publish failing",
        incidents=scale.alert_incidents,
        evaluations=receives,
        failedEvaluations=failures,
        publishFailures=sns.failures,
        claimsLeftToExpire=functions.stuck_claims,
        alertsSent=len(alerts),
        resolvedSent=len(resolved),
        duplicatesSent=len(sns.sent) - len({(n.incident_id, n.kind) for n in sns.sent}),
        deadLettered=len(dead),
    )
