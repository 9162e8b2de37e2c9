"""Bad input: thousands of malformed events through the recorder's Lambda handler, between good ones.
Not one uncaught exception; each rejected with a structured error that names its eventID when it has one,
and sent to the dead-letter queue as SQS would accept it; every good event around them recorded."""

from __future__ import annotations

import copy
import io
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.rejected import SqsRejectedEventSink
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.records import EvaluationRequest
from grantwatch.handlers import recorder as handler
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings
from tests.support.lambda_context import FakeLambdaContext
from tests.support.reliability.malformed import Malformed, malformed_events
from tests.support.reliability.scale import SCALE, Scale, report
from tests.support.scenarios import create_grant
from tests.support.sqs import SqsRules

SCALE_PARSER_EXAMPLES = SCALE.fuzz_events // 10


class Scheduled:
    def __init__(self) -> None:
        self.requests: list[EvaluationRequest] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


@pytest.fixture
def wired(table_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[SqsRules, io.StringIO]:
    """The recorder's handler on a DynamoDB Local table, its dead-letter queue checked as SQS would."""
    queue = SqsRules()
    sink = SqsRejectedEventSink("https://sqs.us-east-1.amazonaws.com/210987654321/dlq", queue)  # type: ignore[arg-type]
    recorder = Recorder(
        DynamoGrantStore(table_settings),
        DynamoFunctionStore(table_settings),
        DynamoHazardStore(table_settings),
        Scheduled(),
    )
    monkeypatch.setattr(handler, "recorder", lambda: recorder)
    monkeypatch.setattr(handler, "rejected_sink", lambda: sink)
    logs = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", logs)
    # Its own JSON lines only: pytest's capture of 10,000 records would cost more than the test.
    monkeypatch.setattr(logging.getLogger(handler.logger.name), "propagate", False)
    return queue, logs


def test_malformed_events_are_rejected_to_the_dead_letter_queue_and_good_ones_recorded(
    wired: tuple[SqsRules, io.StringIO],
    table_settings: Settings,
    scale: Scale,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue, logs = wired
    context = FakeLambdaContext("grantwatch-recorder")
    crashes: list[tuple[str, str]] = []
    wrong: list[tuple[str, dict[str, Any]]] = []
    kinds: Counter[str] = Counter()
    good_ids: list[str] = []
    started = time.perf_counter()
    for number, case in enumerate(malformed_events(scale.fuzz_events)):
        kinds[case.kind] += 1
        try:
            result = handler.lambda_handler(case.event, context)
        except Exception as error:
            crashes.append((case.kind, f"{type(error).__name__}: {str(error)[:200]}"))
            continue
        if not _properly_rejected(case, result, queue.messages[-1] if queue.messages else None):
            wrong.append((case.kind, {k: str(v)[:200] for k, v in result.items()}))
        if number % 20 == 0:
            good = create_grant(f"fn{number}", f"good {number}", "2026-11-01T10:00:00Z")
            assert handler.lambda_handler(good, context)["outcome"] == Outcome.RECORDED
            good_ids.append(good["detail"]["eventID"])
        if number % 500 == 0:
            capsys.readouterr()  # the metrics lines on stdout
            logs.seek(0)
            logs.truncate()
    elapsed = time.perf_counter() - started

    assert crashes == []
    assert Counter(kind for kind, _ in wrong) == Counter(), wrong[:3]
    assert len(queue.messages) == scale.fuzz_events
    store = DynamoGrantStore(table_settings)
    recorded = {fact.event_id for grant in store.grants() for fact in grant.lineage}
    assert recorded == set(good_ids)
    report(
        "bad input: recorder handler",
        malformed=scale.fuzz_events,
        rejectedToDlq=len(queue.messages),
        uncaught=len(crashes),
        goodEventsBetween=len(good_ids),
        goodRecorded=len(recorded),
        padded256KB=sum(n for k, n in kinds.items() if "256" in k),
        seconds=round(elapsed, 1),
    )


def _properly_rejected(case: Malformed, result: dict[str, Any], message: dict[str, Any] | None) -> bool:
    if result.get("outcome") != Outcome.REJECTED or not result.get("error") or message is None:
        return False
    if message.get("grantwatch") != "rejected-event" or not message.get("error"):
        return False
    if len(result["error"]) > 2_000:
        return False
    if case.event_id is not None:
        return result.get("eventID") == case.event_id and message.get("eventID") == case.event_id
    return True


class InMemoryStores:
    """Grant, function and scheduling stores in memory: the parser and the domain alone, fast."""

    def __init__(self) -> None:
        self.applied: list[Any] = []

    def record(self, fact: Any) -> Any:
        from grantwatch.ports import RecordedGrant, RecordResult

        self.applied.append(fact)
        if hasattr(fact, "grant_id"):
            return RecordedGrant(RecordResult.RECORDED, fact.terms.function_arn if fact.terms else None)
        return True

    def record_key(self, fact: Any) -> bool:
        self.applied.append(fact)
        return True

    def record_role(self, fact: Any) -> bool:
        self.applied.append(fact)
        return True

    def record_failure(self, fact: Any) -> Any:
        from grantwatch.ports import FailureRecorded

        self.applied.append(fact)
        return FailureRecorded(newest=True, attached=False)

    def get(self, function_arn: str) -> None:
        """No function is known: a failed Decrypt named only by its caller's session is ignored."""

    def schedule(self, request: EvaluationRequest) -> None:
        pass


SAMPLES = [
    json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((Path(__file__).resolve().parents[2] / "events").glob("*.json"))
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates and controls included
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _corrupted(draw: st.DrawFn) -> Any:
    event = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(event) or [()]))
        if not path:
            return draw(_JSON)
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = draw(_JSON)
    return event


@hypothesis_settings(max_examples=SCALE_PARSER_EXAMPLES)
@given(event=_corrupted() | _JSON)
def test_the_parser_and_the_domain_answer_any_json_with_an_outcome(event: Any) -> None:
    """Anything JSON can hold, anywhere in a sample event: recorded, ignored or rejected, never an exception;
    a rejection always says why, in a bounded message."""
    stores = InMemoryStores()
    result = Recorder(stores, stores, stores, stores).record(event)  # type: ignore[arg-type]
    assert result.outcome in set(Outcome)
    if result.outcome is Outcome.REJECTED:
        assert result.error and len(result.error) <= 2_000
    json.dumps(result.as_json())


def test_text_that_is_not_valid_unicode_is_rejected_at_the_edge() -> None:
    """Found by the fuzzer: half a surrogate pair, as JSON may escape it, was recorded (DynamoDB Local took
    it; a UTF-8 store, log or queue would not)."""
    event = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "kms-retire-grant-by-admin.json").read_text()
    )
    event["detail"]["userIdentity"]["arn"] += "\ud800"
    stores = InMemoryStores()
    result = Recorder(stores, stores, stores, stores).record(event)  # type: ignore[arg-type]
    assert result.outcome is Outcome.REJECTED
    assert result.event_id == event["detail"]["eventID"]
    assert "not valid Unicode" in (result.error or "")
    assert stores.applied == []
