"""Key and role lineage that never outgrows an item, on DynamoDB Local.

A role re-created on every deploy used to append each CreateRole and DeleteRole to one item, which reached
DynamoDB's 400 KB item limit after about 750 re-creations; every later event for the role then failed. The
re-creations below therefore fail on that layout by design (its 1,497th event is refused): 5,000 at full size
(`make reliability`), 800 at CI size, whose first 1,500 events go through the recorder one by one."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore, fact_sk, key_pk, role_fact_to_map, role_pk
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.hazards import RoleFact, normalise_hazard, role_key
from grantwatch.domain.records import EvaluationRequest
from grantwatch.recorder import EventOutcome, Outcome, Recorder
from grantwatch.settings import Settings
from tests.support.dynamodb_size import item_size
from tests.support.reliability.scale import SCALE
from tests.support.samples import ACCOUNT, KEY_ARN
from tests.support.scenarios import create_role, delete_role, disable_key, enable_key, put_key_policy

RE_CREATIONS = SCALE.role_re_creations
ROLE = "ci-deployed-role"
THROUGH_THE_RECORDER = SCALE.role_events_recorded  # events, past the 1,497th, which the old layout refused
assert 1_497 <= THROUGH_THE_RECORDER < 2 * RE_CREATIONS - 2
MAX_ITEM_BYTES = 2_048


class Scheduled:
    def __init__(self) -> None:
        self.requests: list[EvaluationRequest] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


def recorder_of(settings: Settings) -> Recorder:
    return Recorder(
        DynamoGrantStore(settings), DynamoFunctionStore(settings), DynamoHazardStore(settings), Scheduled()
    )


def partition(settings: Settings, pk: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", endpoint_url=settings.endpoint_url, region_name=settings.region).Table(
        settings.table_name
    )
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": pk},
    }
    while True:
        page = table.query(**query)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def re_creations(count: int) -> Iterator[dict[str, Any]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        at = start + timedelta(minutes=10 * n)
        yield delete_role(ROLE, _iso(at))
        yield create_role(ROLE, _iso(at + timedelta(seconds=20)))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Store role events' facts as the recorder does, 25 to a request (BatchWriteItem): most of the
    re-creations, written fast (all 10,000 events through the corridor, two requests each, took 91 s on
    DynamoDB Local on two busy cores). The state item is left to the newest events, recorded through the
    corridor after them."""
    recorder, hazards = recorder_of(settings), DynamoHazardStore(settings)
    with hazards.facts.batch_write() as batch:
        for event in events:
            record = recorder.parse(event)
            assert not isinstance(record, EventOutcome)
            fact = normalise_hazard(record)
            assert isinstance(fact, RoleFact)
            stored = role_fact_to_map(fact)
            sk = fact_sk(stored["eventTime"], stored["eventId"])
            batch.save(hazards.facts(role_pk(fact.role_key), sk, **stored))


@pytest.mark.size
def test_a_role_re_created_thousands_of_times_keeps_every_event_in_items_of_a_few_hundred_bytes(
    table_settings: Settings,
) -> None:
    events = list(re_creations(RE_CREATIONS))
    first, seeded, last = events[:THROUGH_THE_RECORDER], events[THROUGH_THE_RECORDER:-2], events[-2:]
    recorder = recorder_of(table_settings)
    started = time.monotonic()
    outcomes = Counter(recorder.record(event).outcome for event in first)  # old layout: fails at 1,497
    elapsed = time.monotonic() - started
    seed(table_settings, seeded)
    outcomes.update(recorder.record(event).outcome for event in last)
    assert outcomes == {Outcome.RECORDED: len(first) + len(last)}

    items = partition(table_settings, role_pk(role_key(ACCOUNT, ROLE)))
    sizes = {item["sk"]: item_size(item) for item in items}
    largest = max(sizes, key=sizes.__getitem__)
    print(
        f"\n{len(first)} role events recorded in {elapsed:.1f} s, {len(seeded)} seeded, {len(last)} more; "
        f"{len(items)} items, the largest {sizes[largest]} bytes ({largest.split('#')[0]})"
    )
    assert len(items) == 2 * RE_CREATIONS + 1  # one per event, and the role's state
    assert sizes[largest] < MAX_ITEM_BYTES

    hazards = DynamoHazardStore(table_settings)
    lineage = hazards.role_lineage(ACCOUNT, ROLE)
    assert [f.event_id for f in lineage] == [e["detail"]["eventID"] for e in events]
    status = hazards.role(ACCOUNT, ROLE)
    assert status is not None and status.recreated
    assert status.created is not None and status.created.event_id == events[-1]["detail"]["eventID"]
    assert status.deleted is not None and status.deleted.event_id == events[-2]["detail"]["eventID"]

    again = Counter(recorder.record(event).outcome for event in [*events[:4], *events[-4:]])
    assert again == {Outcome.DUPLICATE: 8}


@pytest.fixture
def requests(table_settings: Settings) -> Iterator[tuple[Recorder, Counter[str]]]:
    """A recorder, and the DynamoDB requests it sends, by operation."""
    recorder = recorder_of(table_settings)
    counter: Counter[str] = Counter()
    hazards = recorder.hazards
    assert isinstance(hazards, DynamoHazardStore)
    clients = {
        id(m._get_connection().connection.client): m._get_connection().connection.client
        for m in (
            hazards.keys,
            hazards.roles,
            hazards.facts,
            hazards.dependencies,
            hazards.functions.functions,
        )
    }

    def count(model: Any, **_: Any) -> None:
        counter[model.name] += 1

    for client in clients.values():
        client.meta.events.register("provide-client-params.dynamodb.*", count)
    yield recorder, counter
    for client in clients.values():
        client.meta.events.unregister("provide-client-params.dynamodb.*", count)


@pytest.mark.parametrize(
    ("event", "budget"),
    [
        (disable_key("2026-11-01T10:00:00Z"), {"UpdateItem": 2}),
        (enable_key("2026-11-01T10:00:00Z"), {"UpdateItem": 2}),
        (put_key_policy("2026-11-01T10:00:00Z"), {"TransactWriteItems": 1}),
        (delete_role(ROLE, "2026-11-01T10:00:00Z"), {"UpdateItem": 2}),
        (create_role(ROLE, "2026-11-01T10:00:00Z"), {"UpdateItem": 2}),
    ],
    ids=["DisableKey", "EnableKey", "PutKeyPolicy", "DeleteRole", "CreateRole"],
)
def test_a_key_or_role_event_costs_what_it_did_when_lineage_was_one_item(
    requests: tuple[Recorder, Counter[str]], event: dict[str, Any], budget: dict[str, int]
) -> None:
    """Before: 2 UpdateItem per key state change or role event, 1 per key policy change, the same for a
    redelivery. No read either way."""
    recorder, counter = requests
    assert recorder.record(event).outcome is Outcome.RECORDED
    assert counter == budget
    counter.clear()
    assert recorder.record(event).outcome is Outcome.DUPLICATE
    assert counter == budget


def test_dependents_and_lineage_each_read_only_their_own_kind_of_item(table_settings: Settings) -> None:
    recorder = recorder_of(table_settings)
    hazards = DynamoHazardStore(table_settings)
    function = f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:billing"
    assert hazards.link(function, key=KEY_ARN, role=role_key(ACCOUNT, ROLE), was=(None, None))
    for event in (disable_key("2026-11-01T10:00:00Z"), put_key_policy("2026-11-01T10:05:00Z")):
        recorder.record(event)
    recorder.record(delete_role(ROLE, "2026-11-01T10:00:00Z"))

    assert hazards.dependents_of_key(KEY_ARN) == [function]
    assert hazards.dependents_of_role(ACCOUNT, ROLE) == [function]
    assert [f.event_name for f in hazards.key_lineage(KEY_ARN)] == ["DisableKey", "PutKeyPolicy"]
    assert [f.change.value for f in hazards.role_lineage(ACCOUNT, ROLE)] == ["deleted"]
    kinds = sorted(item["sk"].split("#")[0] for item in partition(table_settings, key_pk(KEY_ARN)))
    assert kinds == ["EVENT", "EVENT", "FUNCTION", "KEY"]
