"""The grant table on DynamoDB Local: idempotent, order-independent, one request per event."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from grantwatch.adapters.store import GRANT_SK, DynamoGrantStore, grant_pk
from grantwatch.domain.facts import GrantFact
from grantwatch.domain.lineage import GrantStatus
from grantwatch.local import LocalDynamo, ensure_table
from grantwatch.ports import RecordResult
from grantwatch.settings import Settings
from grantwatch.views import grant_json
from tests.support.facts import fact_of
from tests.support.iam_contract import stands_for
from tests.support.samples import FUNCTION_ARN, KEY_ARN, SEED_GRANT, TEMPLATE, load_event


def seed() -> tuple[GrantFact, GrantFact]:
    return fact_of(load_event("kms-create-grant-lambda.json")), fact_of(
        load_event("kms-retire-grant-by-admin.json")
    )


def raw_item(settings: Settings, grant_id: str) -> dict[str, Any]:
    client = boto3.client("dynamodb", endpoint_url=settings.endpoint_url, region_name=settings.region)
    item: dict[str, Any] = client.get_item(
        TableName=settings.table_name, Key={"pk": {"S": grant_pk(grant_id)}, "sk": {"S": GRANT_SK}}
    )["Item"]
    return item


@pytest.fixture
def requests(store: DynamoGrantStore) -> Iterator[Counter[str]]:
    """Counts the DynamoDB requests the store sends, by operation."""
    counter: Counter[str] = Counter()
    clients = {id(c): c for c in (m._get_connection().connection.client for m in (store.model, store.links))}

    def count(model: Any, **_: Any) -> None:
        counter[model.name] += 1

    for client in clients.values():
        client.meta.events.register("provide-client-params.dynamodb.*", count)
    yield counter
    for client in clients.values():
        client.meta.events.unregister("provide-client-params.dynamodb.*", count)


def test_a_grant_created_and_retired(store: DynamoGrantStore) -> None:
    created, retired = seed()
    assert store.record(created).result is RecordResult.RECORDED
    assert store.record(retired).result is RecordResult.RECORDED
    state = store.get(SEED_GRANT)
    assert state is not None
    assert state.status is GrantStatus.ENDED
    assert state.lineage == (created, retired)
    view = grant_json(state)
    assert view["functionArn"] == FUNCTION_ARN
    assert view["keyArn"] == KEY_ARN
    assert (view["endedHow"], view["endedBy"]) == ("retired", retired.actor.principal)
    assert store.get("0" * 64) is None


def test_the_same_event_three_times_leaves_the_table_as_once(
    store: DynamoGrantStore, table_settings: Settings
) -> None:
    created, retired = seed()
    store.record(created)
    store.record(retired)
    once = raw_item(table_settings, SEED_GRANT)
    assert [store.record(retired).result, store.record(created).result] == [RecordResult.DUPLICATE] * 2
    assert [store.record(retired).result, store.record(created).result] == [RecordResult.DUPLICATE] * 2
    assert raw_item(table_settings, SEED_GRANT) == once


def test_a_retire_before_its_create_ends_as_the_same_grant(
    store: DynamoGrantStore, table_settings: Settings, dynamodb_local: LocalDynamo
) -> None:
    created, retired = seed()
    store.record(retired)
    early = store.get(SEED_GRANT)
    assert early is not None and early.status is GrantStatus.ENDED and early.created is None
    store.record(created)

    in_order_settings = dataclasses.replace(
        table_settings, table_name=table_settings.table_name + "-in-order"
    )
    ensure_table(dynamodb_local.endpoint_url, in_order_settings.table_name, TEMPLATE)
    stands_for("GrantsTable", in_order_settings.table_name)
    in_order = DynamoGrantStore(in_order_settings)
    in_order.record(created)
    in_order.record(retired)

    assert store.get(SEED_GRANT) == in_order.get(SEED_GRANT)
    reversed_item, in_order_item = (
        raw_item(table_settings, SEED_GRANT),
        raw_item(in_order_settings, SEED_GRANT),
    )
    for name in ("keyArn", "functionArn", "granteePrincipal", "state", "terms", "eventIds"):
        assert reversed_item.get(name) == in_order_item.get(name), name


def test_an_alias_seen_first_gives_way_to_the_key_arn(
    store: DynamoGrantStore, table_settings: Settings
) -> None:
    event = load_event("kms-revoke-grant-bare-key-id.json")
    event["detail"]["resources"] = None
    event["detail"]["requestParameters"]["keyId"] = "alias/ops"
    revoked = fact_of(event)
    created = fact_of(load_event("kms-create-grant-ebs-volume.json"))
    store.record(revoked)
    assert raw_item(table_settings, revoked.grant_id)["keyArn"] == {"S": "alias/ops"}
    store.record(created)
    assert raw_item(table_settings, revoked.grant_id)["keyArn"] == {"S": KEY_ARN}


def test_one_request_per_event_and_one_more_for_the_link_of_a_functions_grant(
    store: DynamoGrantStore, requests: Counter[str]
) -> None:
    created, retired = seed()
    for fact in (created, retired, created):
        store.record(fact)
    # a creation for a function first writes the grant's link in the function's partition (again when
    # redelivered: a failure between the two writes is repaired so)
    assert requests == Counter({"UpdateItem": 5})


def test_queries_use_the_indexes(store: DynamoGrantStore, requests: Counter[str]) -> None:
    names = [
        "kms-create-grant-lambda.json",
        "kms-retire-grant-by-admin.json",
        "kms-create-grant-ebs-volume.json",
        "kms-revoke-grant-bare-key-id.json",
        "kms-create-grant-dynamodb-service-principal.json",
    ]
    for name in names:
        store.record(fact_of(load_event(name)))
    requests.clear()
    assert [s.grant_id for s in store.grants(function=FUNCTION_ARN)] == [SEED_GRANT]
    by_key = {s.grant_id for s in store.grants(key=KEY_ARN)}
    assert len(by_key) == 3
    active = [s for s in store.grants(key=KEY_ARN, status=GrantStatus.ACTIVE)]
    assert [s.terms.service for s in active if s.terms] == ["dynamodb"]
    grantee = "dynamodb.eu-central-1.amazonaws.com"
    assert [s.terms.grantee_principal for s in store.grants(grantee=grantee) if s.terms] == [grantee]
    # no scan; the one GetItem is the table's layout item (whether every grant has its link), read once
    assert set(requests) == {"Query", "BatchGetItem", "GetItem"} and requests["GetItem"] == 1
    assert len({s.grant_id for s in store.grants(status=GrantStatus.ENDED)}) == 2


def test_the_key_owner_and_caller_copies_of_one_call_are_recorded_once(store: DynamoGrantStore) -> None:
    owner_copy = load_event("kms-create-grant-lambda.json")
    owner_copy["detail"]["sharedEventID"] = "5d1c7c4e-2f0a-4b8e-9d6f-0e1f2a3b4c5d"
    caller_copy = load_event("kms-create-grant-lambda.json")
    caller_copy["detail"] |= {
        "eventID": "e0a4b1c2-3d4e-4f50-8a6b-7c8d9e0f1a2b",
        "recipientAccountId": "123456789012",
        "sharedEventID": "5d1c7c4e-2f0a-4b8e-9d6f-0e1f2a3b4c5d",
    }
    assert store.record(fact_of(owner_copy)).result is RecordResult.RECORDED
    assert store.record(fact_of(caller_copy)).result is RecordResult.DUPLICATE
    state = store.get(SEED_GRANT)
    assert state is not None and len(state.lineage) == 1
