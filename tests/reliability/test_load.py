"""Load: tens of thousands of events recorded by 8 concurrent workers against DynamoDB Local, many of them
on the same few grant and function items, a tenth of them redelivered. No update lost, every count exact."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.workload import mixed_events
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.records import EvaluationRequest
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings
from tests.support.reliability.harness import scan_all
from tests.support.reliability.scale import Scale, report
from tests.support.scenarios import create_grant, function_arn, grant_id, revoke_grant, update_function

CONCURRENCY = 8
HOT_GRANTS = 40
HOT_FUNCTIONS = 20


class Discard:
    def schedule(self, request: EvaluationRequest) -> None:
        pass


def _at(seconds: int) -> str:
    return (datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def workload(total: int, seed: int = 17) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The deliveries, shuffled, and what the table must hold after them."""
    rng = random.Random(seed)
    distinct = total - total // 10
    hot_facts: Counter[str] = Counter()
    newest_config: dict[str, tuple[str, str]] = {}
    events: list[dict[str, Any]] = []
    for number in range(distinct * 3 // 10):  # facts on a few grants: creations and ends
        label = f"hot-{number % HOT_GRANTS}"
        if number % 8 == 7:
            event = revoke_grant(label, _at(number))
        else:
            event = create_grant(f"hot-fn-{number % HOT_GRANTS}", label, _at(number))
        hot_facts[grant_id(label)] += 1
        events.append(event)
    for number in range(distinct // 10):  # configurations of a few functions
        name = f"busy-{number % HOT_FUNCTIONS}"
        event = update_function(name, _at(rng.randrange(10**6)), role=f"role-{number}")
        detail = event["detail"]
        key = function_arn(name)
        newest_config[key] = max(newest_config.get(key, ("", "")), (detail["eventTime"], detail["eventID"]))
        events.append(event)
    events += mixed_events(distinct - len(events), seed=seed)  # and many grants of their own
    ids = {e["detail"]["eventID"] for e in events}
    assert len(ids) == len(events), "the workload's events must be distinct"
    events += rng.choices(events, k=total - len(events))  # redeliveries
    rng.shuffle(events)
    config_ids = {e["detail"]["eventID"] for e in events if e["source"] == "aws.lambda"}
    expected = {"hot": hot_facts, "newest_config": newest_config, "distinct": ids, "config_ids": config_ids}
    return events, expected


def test_concurrent_recording_loses_no_update(table_settings: Settings, scale: Scale) -> None:
    events, expected = workload(scale.load_events)
    recorder = Recorder(
        DynamoGrantStore(table_settings),
        DynamoFunctionStore(table_settings),
        DynamoHazardStore(table_settings),
        Discard(),
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(recorder.record, events, chunksize=50))
    elapsed = time.perf_counter() - started

    items = scan_all(table_settings)
    grants = [i for i in items if i["sk"]["S"] == "GRANT"]
    applied = Counter(e["M"]["eventId"]["S"] for g in grants for e in g["events"]["L"])
    facts_per_grant = {g["pk"]["S"].removeprefix("GRANT#"): len(g["events"]["L"]) for g in grants}
    configured = {
        i["arn"]["S"]: (i["configuredAt"]["S"], i["configuredEventId"]["S"])
        for i in items
        if i["sk"]["S"] == "FUNCTION"
    }
    grant_results = Counter(
        r.outcome for r, e in zip(results, events, strict=True) if e["source"] == "aws.kms"
    )
    grant_deliveries = sum(1 for e in events if e["source"] == "aws.kms")
    grant_distinct = {i for i in expected["distinct"] if i not in expected["config_ids"]}

    lost = len(grant_distinct - set(applied))
    duplicated = sum(n - 1 for n in applied.values())
    assert (lost, duplicated) == (0, 0)
    assert set(applied) == grant_distinct
    assert {g: facts_per_grant[g] for g in expected["hot"]} == dict(expected["hot"])
    assert grant_results == {
        Outcome.RECORDED: len(grant_distinct),
        Outcome.DUPLICATE: grant_deliveries - len(grant_distinct),
    }
    assert configured == expected["newest_config"]  # the newest configuration won, whatever the order
    assert {r.outcome for r in results} <= {Outcome.RECORDED, Outcome.DUPLICATE}
    report(
        "load: concurrency 8",
        events=len(events),
        distinct=len(expected["distinct"]),
        redeliveries=len(events) - len(expected["distinct"]),
        hotGrants=HOT_GRANTS,
        factsOnHotGrants=sum(expected["hot"].values()),
        configEventsOnHotFunctions=len(expected["config_ids"]),
        grantFactsRecorded=grant_results[Outcome.RECORDED],
        lostUpdates=lost,
        duplicated=duplicated,
        seconds=round(elapsed, 1),
        eventsPerSecond=round(len(events) / elapsed),
    )
