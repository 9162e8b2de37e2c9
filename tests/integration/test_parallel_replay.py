"""Replay on several workers against DynamoDB Local: the same notices and the same table as the serial
pipeline, with and without coalesced evaluations; a bad event in a worker is reported and loses no other."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from bench.workload import create, end, mixed_events
from grantwatch import local as local_dynamo
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.facts import GrantFact
from grantwatch.domain.notices import Notice
from grantwatch.parallel import ParallelPipeline, Recorded, Stores, record_all
from grantwatch.ports import GrantStore, RecordedGrant
from grantwatch.recorder import Outcome
from grantwatch.settings import Settings
from grantwatch.wiring import dynamo_stores, local_pipeline
from tests.support.iam_contract import stands_for
from tests.support.samples import TEMPLATE
from tests.support.scenarios import (
    create_grant,
    create_role,
    decrypt_failed,
    delete_function,
    delete_role,
    disable_key,
    enable_key,
    grant_id,
    put_key_policy,
    retire_grant,
    revoke_grant,
    schedule_key_deletion,
    update_function,
)


def _at(day: int, hour: int, second: int = 0) -> str:
    return f"2026-11-{day:02d}T{hour:02d}:{second // 60:02d}:{second % 60:02d}Z"


def _burst(function: str, day: int) -> list[dict[str, Any]]:
    """One function touched by many events within one settle window."""
    return [
        update_function(function, _at(day, 9, 0)),
        create_grant(function, f"{function}-{day}-a", _at(day, 9, 5)),
        update_function(function, _at(day, 9, 10)),
        create_grant(function, f"{function}-{day}-b", _at(day, 9, 15)),
        retire_grant(f"{function}-{day}-a", _at(day, 9, 20), by_lambda=True),
        update_function(function, _at(day, 9, 30)),
    ]


SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "grants, bursts and losses": [
        *_burst("billing", 1),
        *_burst("payroll", 1),
        create_grant("orders", "o1", _at(1, 9, 40)),
        retire_grant("billing-1-b", _at(2, 10)),  # billing's last grant: an alert
        revoke_grant("o1", _at(2, 10, 30)),  # and orders'
        create_grant("billing", "b-again", _at(2, 10, 50)),  # billing recovers within the window
        create_grant("orders", "o2", _at(3, 8)),  # orders recovers later: resolved
        delete_function("payroll", _at(4, 8)),
    ],
    "keys and roles": [
        create_grant("billing", "b1", _at(1, 10)),
        create_grant("payroll", "p1", _at(1, 11)),
        update_function("billing", _at(1, 11, 5)),
        delete_role("billing-role", _at(2, 9)),
        create_role("billing-role", _at(2, 9, 20)),
        disable_key(_at(3, 9)),
        enable_key(_at(3, 12)),
        put_key_policy(_at(4, 9)),
        schedule_key_deletion(_at(5, 9)),
        decrypt_failed("payroll", _at(5, 9, 30)),
        retire_grant("p1", _at(5, 9, 40)),
    ],
    "failed Decrypt before the alert": [
        create_grant("reports", "r1", _at(1, 10)),
        retire_grant("r1", _at(2, 10)),
        decrypt_failed("reports", _at(2, 10, 10)),
        create_grant("reports", "r2", _at(2, 10, 20)),
        decrypt_failed("mailer", _at(3, 10)),
    ],
}


def _settings(endpoint: str) -> Settings:
    settings = Settings(
        table_name=f"grantwatch-test-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, region="us-east-1"
    )
    local_dynamo.ensure_table(endpoint, settings.table_name, TEMPLATE)
    stands_for("GrantsTable", settings.table_name)
    return settings


def _table(settings: Settings) -> list[dict[str, Any]]:
    client = local_dynamo.dynamodb_client(settings.endpoint_url or "")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=settings.table_name, ConsistentRead=True):
        items += page["Items"]
    return sorted((_canonical(i) for i in items), key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def _canonical(item: dict[str, Any]) -> Any:
    """Sets come back in any order, and so do the lineage facts two workers appended."""
    if isinstance(item, dict):
        if set(item) == {"SS"}:
            return {"SS": sorted(item["SS"])}
        if set(item) == {"L"}:
            return {"L": sorted((_canonical(v) for v in item["L"]), key=json.dumps)}
        return {k: _canonical(v) for k, v in item.items()}
    return item


def _serial(settings: Settings, events: list[dict[str, Any]]) -> tuple[list[Notice], list[str]]:
    pipeline = local_pipeline(settings, timedelta(seconds=120))
    notices: list[Notice] = []
    outcomes: list[str] = []
    for event in events:
        fired, outcome = pipeline.feed(event)
        notices += fired
        outcomes.append(outcome.outcome.value)
    return notices + pipeline.drain(), outcomes


def _parallel(
    settings: Settings, events: list[dict[str, Any]], *, coalesce: bool
) -> tuple[list[Notice], list[str], ParallelPipeline[int]]:
    with ParallelPipeline[int](
        dynamo_stores(settings), timedelta(seconds=120), workers=4, coalesce=coalesce
    ) as pipeline:
        steps = record_all(pipeline, [(event, n) for n, event in enumerate(events)])
    recorded = [s for s in steps if isinstance(s, Recorded)]
    assert [r.tag for r in recorded] == list(range(len(events)))  # one outcome per event, in order
    notices = [s for s in steps if not isinstance(s, Recorded)]
    return notices, [r.outcome.outcome.value for r in recorded], pipeline


def _as_json(notices: list[Notice]) -> list[dict[str, Any]]:
    return [n.as_json() for n in notices]


@pytest.mark.parametrize("name", [*SCENARIOS, "bench mix"])
def test_parallel_and_coalesced_replays_match_the_serial_one(
    name: str, dynamodb_local: local_dynamo.LocalDynamo
) -> None:
    events = SCENARIOS[name] if name in SCENARIOS else list(mixed_events(200, seed=5))
    endpoint = dynamodb_local.endpoint_url
    serial, parallel, coalesced = _settings(endpoint), _settings(endpoint), _settings(endpoint)
    serial_notices, serial_outcomes = _serial(serial, events)
    parallel_notices, parallel_outcomes, _ = _parallel(parallel, events, coalesce=False)
    coalesced_notices, coalesced_outcomes, run = _parallel(coalesced, events, coalesce=True)

    assert serial_notices, "the scenario raises notices, so the comparison means something"
    assert _as_json(parallel_notices) == _as_json(serial_notices)
    assert _as_json(coalesced_notices) == _as_json(serial_notices)
    assert parallel_outcomes == coalesced_outcomes == serial_outcomes
    assert _table(parallel) == _table(serial)
    assert _table(coalesced) == _table(serial)
    if name == "grants, bursts and losses":
        assert run.coalesced >= 8  # each burst's six events: one evaluation, not six


def test_an_event_recorded_since_a_functions_evaluation_is_not_coalesced_away(
    dynamodb_local: local_dynamo.LocalDynamo,
) -> None:
    """Evaluations due at 9:02, 9:03 and 9:04:30: the retire at 9:02:30 falls between the first two, so the
    one at 9:03 runs and alerts then; nothing is recorded after it, so the one at 9:04:30 is skipped."""
    events = [
        create_grant("ledger", "l1", _at(1, 9)),
        update_function("ledger", _at(1, 9, 60)),
        retire_grant("l1", _at(1, 9, 150)),
    ]
    notices, _, run = _parallel(_settings(dynamodb_local.endpoint_url), events, coalesce=True)
    serial_notices, _ = _serial(_settings(dynamodb_local.endpoint_url), events)
    assert _as_json(notices) == _as_json(serial_notices)
    [alert] = notices
    assert alert.as_json()["incidentId"].startswith("20261101T090300Z")
    assert (run.evaluations, run.coalesced) == (2, 1)


def test_grants_of_no_function_are_recorded_past_a_functions_due_time(
    dynamodb_local: local_dynamo.LocalDynamo,
) -> None:
    """EBS volumes' grants change no evaluation, so they join one batch across the evaluation of a Lambda
    function due in their midst; the retire of the function's grant, past its due time, starts the next."""
    volumes = [create(f"volume-{n}", 10 * n + 5, lambda_grant=False) for n in range(40)]
    events = [create("function", 0, lambda_grant=True), *volumes, end("function", 500, revoke=False)]
    notices, _, run = _parallel(_settings(dynamodb_local.endpoint_url), events, coalesce=True)
    serial_notices, _ = _serial(_settings(dynamodb_local.endpoint_url), events)
    assert _as_json(notices) == _as_json(serial_notices) and len(notices) == 1
    assert run.batches == 2


class _FailingFor:
    """A grant store that fails for one grant, as a bug in recording would."""

    def __init__(self, store: GrantStore, failing_grant: str) -> None:
        self.store, self.failing_grant = store, failing_grant

    def record(self, fact: GrantFact) -> RecordedGrant:
        if fact.grant_id == self.failing_grant:
            raise RuntimeError("a defect in recording")
        return self.store.record(fact)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_bad_event_in_a_worker_is_reported_and_loses_no_other(
    dynamodb_local: local_dynamo.LocalDynamo,
) -> None:
    settings = _settings(dynamodb_local.endpoint_url)
    made = dynamo_stores(settings)
    stores = Stores(_FailingFor(made.grants, grant_id("broken")), made.functions, made.hazards, made.failures)

    malformed = create_grant("orders", "bad", _at(1, 10, 2))
    del malformed["detail"]["eventTime"]
    events = [
        *(create_grant(f"fn{n}", f"g{n}", _at(1, 10, n)) for n in range(12)),
        create_grant("orders", "broken", _at(1, 10, 3)),
        malformed,
    ]
    with ParallelPipeline[int](stores, timedelta(seconds=120), workers=4) as pipeline:
        steps = record_all(pipeline, [(event, n) for n, event in enumerate(events)])
    outcomes = {s.tag: s.outcome for s in steps if isinstance(s, Recorded)}
    assert [outcomes[n].outcome for n in range(12)] == [Outcome.RECORDED] * 12
    assert outcomes[12].outcome is Outcome.REJECTED
    assert outcomes[12].error == "could not be recorded: RuntimeError"
    assert outcomes[13].outcome is Outcome.REJECTED and "eventTime" in (outcomes[13].error or "")
    store = DynamoGrantStore(settings)
    assert all(store.get(grant_id(f"g{n}")) is not None for n in range(12))
    assert store.get(grant_id("broken")) is None
