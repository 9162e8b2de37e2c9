"""`grantwatch migrate` on DynamoDB Local: key and role items in the layout before lineage moved to one item
per event (their `events`, `eventIds` and a key's `noticesSent`, put here as that layout stored them) are
readable as they are, converted in place, and read the same afterwards; running it again, or after an
interruption, finishes the job and changes nothing more."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import (
    KEY_ENTITY,
    KEY_SK,
    ROLE_SK,
    DynamoHazardStore,
    key_fact_to_map,
    key_pk,
    role_fact_to_map,
    role_pk,
)
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import EXIT_UNAVAILABLE, app
from grantwatch.domain.facts import Actor, utc_iso
from grantwatch.domain.hazards import KeyChange, KeyFact, RoleChange, RoleFact, normalise_hazard, role_key
from grantwatch.domain.records import EvaluationRequest
from grantwatch.local import LocalDynamo, ensure_table
from grantwatch.recorder import EventOutcome, Outcome, Recorder
from grantwatch.settings import Settings
from tests.support.dynamodb_size import item_size
from tests.support.iam_contract import stands_for
from tests.support.samples import ACCOUNT, KEY_ARN, TEMPLATE
from tests.support.scenarios import (
    cancel_key_deletion,
    create_grant,
    create_role,
    delete_role,
    disable_key,
    enable_key,
    function_arn,
    grant_id,
    put_key_policy,
    schedule_key_deletion,
)
from tests.support.tables import new_table

runner = CliRunner()
ROLE = "billing-role"
GRANTS = [
    create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
    create_grant("billing", "b2", "2026-11-02T10:00:00Z"),
]
KEY_EVENTS = [
    disable_key("2026-11-05T09:00:00Z"),
    enable_key("2026-11-06T09:00:00Z"),
    put_key_policy("2026-11-07T09:00:00Z"),
    schedule_key_deletion("2026-11-08T09:00:00Z"),
    cancel_key_deletion("2026-11-09T09:00:00Z"),
]
ROLE_EVENTS = [delete_role(ROLE, "2026-11-10T09:00:00Z"), create_role(ROLE, "2026-11-10T09:00:20Z")]


class Scheduled:
    def schedule(self, request: EvaluationRequest) -> None:
        pass


def recorder_of(settings: Settings) -> Recorder:
    return Recorder(
        DynamoGrantStore(settings), DynamoFunctionStore(settings), DynamoHazardStore(settings), Scheduled()
    )


def run(settings: Settings, *args: str) -> Any:
    return runner.invoke(
        app, [*args, "--table", settings.table_name, "--endpoint-url", settings.endpoint_url or ""]
    )


def table(settings: Settings) -> Any:
    resource = boto3.resource("dynamodb", endpoint_url=settings.endpoint_url, region_name=settings.region)
    return resource.Table(settings.table_name)


def facts_of(settings: Settings, events: list[dict[str, Any]]) -> list[Any]:
    recorder = recorder_of(settings)
    facts = []
    for event in events:
        record = recorder.parse(event)
        assert not isinstance(record, EventOutcome)
        facts.append(normalise_hazard(record))
    return facts


def put_old_layout(
    settings: Settings, *, key_events: list[dict[str, Any]], role_events: list[dict[str, Any]]
) -> None:
    """The key's and the role's items as the earlier layout wrote them: one item each, the lineage in
    `events` (in arrival order: here newest first) and `eventIds`, a key's sent notices in `noticesSent`."""
    key_facts: list[KeyFact] = facts_of(settings, key_events)
    role_facts: list[RoleFact] = facts_of(settings, role_events)
    by_time = sorted(key_facts, key=lambda f: (f.event_time, f.event_id))
    state = [f for f in by_time if f.change.state_after is not None][-1]
    key_item: dict[str, Any] = {
        "pk": key_pk(KEY_ARN),
        "sk": KEY_SK,
        "arn": KEY_ARN,
        "entity": KEY_ENTITY,
        "events": [key_fact_to_map(f) for f in reversed(key_facts)],
        "eventIds": {f.event_id for f in key_facts},
        "keyState": state.change.state_after.value if state.change.state_after else None,
        "stateAt": utc_iso(state.event_time),
        "stateEventId": state.event_id,
        "noticesSent": {f.event_id for f in key_facts if f.change is KeyChange.POLICY_CHANGED},
    }
    role_item: dict[str, Any] = {"pk": role_pk(role_key(ACCOUNT, ROLE)), "sk": ROLE_SK}
    role_item |= {
        "events": [role_fact_to_map(f) for f in reversed(role_facts)],
        "eventIds": {f.event_id for f in role_facts},
    }
    for fact in role_facts:
        kind = "created" if fact.change is RoleChange.CREATED else "deleted"
        role_item |= {
            f"{kind}At": utc_iso(fact.event_time),
            f"{kind}EventId": fact.event_id,
            kind: role_fact_to_map(fact),
        }
    table(settings).put_item(Item=key_item)
    table(settings).put_item(Item=role_item)


def outputs(settings: Settings) -> dict[str, Any]:
    """What the CLI shows of the key's and the role's lineage."""
    shown = {}
    for name, args in {
        "function": ("lineage", "--function", function_arn("billing"), "--json"),
        "key": ("lineage", "--key", KEY_ARN, "--json"),
        "history": ("history", grant_id("b1"), "--json"),
        "functions": ("functions", "--json"),
    }.items():
        result = run(settings, *args)
        assert result.exit_code == 0, result.output
        shown[name] = json.loads(result.stdout)
    return shown


def another_table(settings: Settings) -> Settings:
    other = dataclasses.replace(settings, table_name=f"grantwatch-test-{uuid.uuid4().hex[:12]}")
    ensure_table(other.endpoint_url or "", other.table_name, TEMPLATE)
    stands_for("GrantsTable", other.table_name)
    return other


def drop_links(settings: Settings) -> int:
    """The grants as an earlier version recorded them: no link, Lambda's encryption context stored whole.
    How many links there were."""
    items = table(settings).scan()["Items"]
    links = [i for i in items if str(i["pk"]).startswith("FUNCTION#") and str(i["sk"]).startswith("GRANT#")]
    for item in links:
        table(settings).delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    for item in items:
        if item["sk"] == "GRANT" and "functionArn" in item:
            if item["terms"].pop("lambdaContext", False):
                context = {"aws:lambda:FunctionArn": item["functionArn"]}
                item["terms"]["constraints"] = {"encryptionContextEquals": context}
            table(settings).put_item(Item=item)
    return len(links)


@pytest.fixture
def old_table(dynamodb_local: LocalDynamo) -> Settings:
    """A table an earlier version wrote: the grants recorded without links and no layout item, the key's
    and the role's events in the old layout."""
    settings = new_table(dynamodb_local.endpoint_url, "grantwatch-test", migrated=False)
    recorder = recorder_of(settings)
    assert all(recorder.record(e).outcome is Outcome.RECORDED for e in GRANTS)
    assert drop_links(settings) == len(GRANTS)
    put_old_layout(settings, key_events=KEY_EVENTS, role_events=ROLE_EVENTS)
    return settings


def raw_items(settings: Settings, pk: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = table(settings).query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk}
    )["Items"]
    return found


def test_migrate_moves_the_old_lineage_to_one_item_per_event_and_reads_the_same(old_table: Settings) -> None:
    reference = another_table(old_table)
    recorder = recorder_of(reference)
    for event in [*GRANTS, *KEY_EVENTS, *ROLE_EVENTS]:
        assert recorder.record(event).outcome is Outcome.RECORDED
    expected = outputs(reference)
    key_rows = [row for row in expected["key"] if row["what"].startswith("key-")]
    assert len(key_rows) == len(KEY_EVENTS)
    assert sum(row["what"].startswith("role-") for row in expected["function"]) == len(ROLE_EVENTS)

    before = outputs(old_table)  # the upgrade window: the deployed code reads the old layout as it is
    assert before == expected

    dry = run(old_table, "migrate", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) | {"dryRun": None} == {
        "dryRun": None,
        "keys": 1,
        "roles": 1,
        "facts": len(KEY_EVENTS) + len(ROLE_EVENTS),
        "written": 0,
        "claims": 1,
        "links": len(GRANTS),
        "linksComplete": False,
        "retentionDays": 0,
        "grantsStamped": 0,
        "incidentsStamped": 0,
        "eventsStamped": 0,
        "grantsRestamped": 0,
        "incidentsRestamped": 0,
        "eventsRestamped": 0,
    }
    assert outputs(old_table) == expected and "events" in raw_items(old_table, key_pk(KEY_ARN))[0]

    result = run(old_table, "migrate", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["keys"], summary["roles"], summary["written"], summary["claims"]) == (1, 1, 7, 1)
    assert (summary["links"], summary["linksComplete"]) == (len(GRANTS), True)
    assert outputs(old_table) == expected
    links = [
        i["sk"] for i in raw_items(old_table, f"FUNCTION#{function_arn('billing')}") if i["sk"] != "FUNCTION"
    ]
    assert sorted(links) == sorted(f"GRANT#{grant_id(g)}" for g in ("b1", "b2"))

    for pk, state_sk in ((key_pk(KEY_ARN), KEY_SK), (role_pk(role_key(ACCOUNT, ROLE)), ROLE_SK)):
        items = raw_items(old_table, pk)
        [state] = [item for item in items if item["sk"] == state_sk]
        assert not {"events", "eventIds", "noticesSent"} & set(state), pk
        assert sorted(item["sk"].split("#")[0] for item in items if item["sk"] != state_sk) == ["EVENT"] * (
            len(KEY_EVENTS) if state_sk == KEY_SK else len(ROLE_EVENTS)
        )
    assert set(raw_items(old_table, key_pk(KEY_ARN))[-1]) >= {"stateFact"}  # the state item sorts last

    again = run(old_table, "migrate", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {
        "dryRun": False,
        "keys": 0,
        "roles": 0,
        "facts": 0,
        "written": 0,
        "claims": 0,
        "links": 0,
        "linksComplete": True,
        "retentionDays": 0,
        "grantsStamped": 0,
        "incidentsStamped": 0,
        "eventsStamped": 0,
        "grantsRestamped": 0,
        "incidentsRestamped": 0,
        "eventsRestamped": 0,
    }
    assert outputs(old_table) == expected
    text = run(old_table, "migrate")
    assert text.exit_code == 0 and "0 key(s) and 0 role(s)" in text.stdout


def test_a_notice_sent_before_the_migration_is_not_sent_again(old_table: Settings) -> None:
    hazards = DynamoHazardStore(old_table)
    [policy] = [f for f in facts_of(old_table, KEY_EVENTS) if f.change is KeyChange.POLICY_CHANGED]
    assert run(old_table, "migrate").exit_code == 0
    assert hazards.key_fact(KEY_ARN, policy.event_id, policy.event_time) == policy
    assert not hazards.claim_key_notice(policy)


def test_an_interrupted_migration_is_finished_by_the_next_run(
    old_table: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hazards = DynamoHazardStore(old_table)
    calls = {"n": 0}
    real = DynamoHazardStore._add_fact

    def stop_after_three(self: DynamoHazardStore, pk: str, stored: dict[str, Any]) -> bool:
        calls["n"] += 1
        if calls["n"] > 3:
            raise ConnectionError("the process stopped here")
        return real(self, pk, stored)

    monkeypatch.setattr(DynamoHazardStore, "_add_fact", stop_after_three)
    with pytest.raises(ConnectionError):
        run_migrate_in_process(old_table)
    monkeypatch.setattr(DynamoHazardStore, "_add_fact", real)
    assert [f.event_id for f in hazards.key_lineage(KEY_ARN)] == [
        f.event_id for f in sorted(facts_of(old_table, KEY_EVENTS), key=lambda f: f.event_time)
    ]  # half moved, half not: still read whole

    result = run(old_table, "migrate", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["facts"] == len(KEY_EVENTS) + len(ROLE_EVENTS)
    assert summary["written"] == summary["facts"] - 3  # the three written before the stop
    assert not list(hazards.unmigrated())


def run_migrate_in_process(settings: Settings) -> None:
    from grantwatch.migration import migrate

    migrate(settings, dry_run=False)


def test_the_deployed_code_records_onto_an_unmigrated_item_without_losing_or_doubling_an_event(
    old_table: Settings,
) -> None:
    """Between deploying and migrating: a new event and a redelivery of an old one."""
    recorder, hazards = recorder_of(old_table), DynamoHazardStore(old_table)
    later = enable_key("2026-11-12T09:00:00Z")
    assert recorder.record(later).outcome is Outcome.RECORDED
    assert recorder.record(KEY_EVENTS[0]).outcome in (Outcome.RECORDED, Outcome.DUPLICATE)
    recreated = create_role(ROLE, "2026-11-12T10:00:00Z")
    assert recorder.record(recreated).outcome is Outcome.RECORDED

    def ids(facts: list[Any]) -> list[str]:
        return [f.event_id for f in facts]

    key_ids = ids(sorted(facts_of(old_table, [*KEY_EVENTS, later]), key=lambda f: f.event_time))
    role_ids = ids(facts_of(old_table, [*ROLE_EVENTS, recreated]))
    status = hazards.key(KEY_ARN)
    assert status is not None and status.changed_by is not None
    assert status.changed_by.event_id == later["detail"]["eventID"]
    assert ids(hazards.key_lineage(KEY_ARN)) == key_ids
    assert ids(hazards.role_lineage(ACCOUNT, ROLE)) == role_ids

    assert run(old_table, "migrate").exit_code == 0
    assert ids(hazards.key_lineage(KEY_ARN)) == key_ids
    assert ids(hazards.role_lineage(ACCOUNT, ROLE)) == role_ids
    role = hazards.role(ACCOUNT, ROLE)
    assert role is not None and role.created is not None
    assert role.created.event_id == recreated["detail"]["eventID"]


def test_a_key_unmigrated_keeps_the_fact_that_moved_its_state(old_table: Settings) -> None:
    status = DynamoHazardStore(old_table).key(KEY_ARN)
    assert status is not None and status.changed_by is not None
    assert status.changed_by.change is KeyChange.DELETION_CANCELLED
    assert run(old_table, "migrate").exit_code == 0
    assert DynamoHazardStore(old_table).key(KEY_ARN) == status


def test_migrate_exits_3_when_the_table_cannot_be_used(table_settings: Settings) -> None:
    missing = dataclasses.replace(table_settings, table_name="grantwatch-no-such-table")
    result = run(missing, "migrate")
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_migrate_refuses_a_retention_shorter_than_a_month(table_settings: Settings) -> None:
    result = run(table_settings, "migrate", "--retention-days", "7")
    assert result.exit_code == 2 and "at least 30" in result.output


ITEM_LIMIT = 400 * 1024


def old_role_item(facts: list[RoleFact]) -> dict[str, Any]:
    """A role's item as the old layout left it after these facts, in this order."""
    item: dict[str, Any] = {
        "pk": role_pk(role_key(ACCOUNT, ROLE)),
        "sk": ROLE_SK,
        "events": [role_fact_to_map(f) for f in facts],
        "eventIds": {f.event_id for f in facts},
    }
    for fact in sorted(facts, key=lambda f: f.event_time):
        kind = fact.change.value
        item |= {
            f"{kind}At": utc_iso(fact.event_time),
            f"{kind}EventId": fact.event_id,
            kind: role_fact_to_map(fact),
        }
    return item


def fill_to_the_limit(settings: Settings) -> list[RoleFact]:
    """Re-creations of the role in its old-layout item, until DynamoDB takes not one byte more."""
    actor = Actor(
        principal=f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci", identity_type="AssumedRole", via=None
    )
    start = datetime(2024, 1, 1, tzinfo=UTC)

    def re_created(count: int) -> list[RoleFact]:
        facts = []
        for n in range(1, count + 1):
            change = RoleChange.DELETED if n % 2 else RoleChange.CREATED
            at = start + timedelta(minutes=10 * n)
            facts.append(
                RoleFact(change, ACCOUNT, ROLE, f"{uuid.UUID(int=n)}", at, actor, role_id=f"AROA{n:017d}")
            )
        return facts

    def short(count: int) -> bool:
        return item_size(old_role_item(re_created(count))) < ITEM_LIMIT - 1_000

    # The fewest facts that fill the item to within 1,000 bytes of the limit, found by doubling and then
    # bisection: the item grows with every fact, and measuring it once per added fact took minutes.
    high = 1
    while short(high):
        high *= 2
    low = high // 2  # short(low) (or no fact at all), not short(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if short(middle) else (low, middle)
    facts = re_created(high)

    def padded(length: int) -> list[RoleFact]:  # the oldest event, made longer: it is no state
        first = replace(facts[0], actor=replace(actor, principal=actor.principal + "x" * length))
        return [first, *facts[1:]]

    low, high = 0, 2_000  # the longest padding DynamoDB accepts, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        try:
            table(settings).put_item(Item=old_role_item(padded(middle)))
            low = middle
        except ClientError as error:
            if "maximum allowed size" not in str(error):
                raise
            high = middle - 1
    table(settings).put_item(Item=old_role_item(padded(low)))
    return padded(low)


@pytest.mark.exceeds_aws_limits("finds the item size limit by bisection: the writes just over it are refused")
def test_an_unmigrated_role_item_at_the_size_limit_still_takes_its_next_events(
    table_settings: Settings,
) -> None:
    """The old layout refused every event of a role whose item had reached 400 KB ("Item size to update has
    exceeded the maximum allowed size"). The deployed code migrates such an item when it refuses to grow,
    and records the event."""
    facts = fill_to_the_limit(table_settings)
    recorder = recorder_of(table_settings)
    later = [delete_role(ROLE, "2026-11-10T09:00:00Z"), create_role(ROLE, "2026-11-10T09:00:20Z")]
    assert [recorder.record(event).outcome for event in later] == [Outcome.RECORDED, Outcome.RECORDED]

    hazards = DynamoHazardStore(table_settings)
    lineage = [f.event_id for f in hazards.role_lineage(ACCOUNT, ROLE)]
    assert lineage == [f.event_id for f in facts] + [e["detail"]["eventID"] for e in later]
    role = hazards.role(ACCOUNT, ROLE)
    assert role is not None and role.created is not None and role.recreated
    assert role.created.event_id == later[1]["detail"]["eventID"]
    [state] = [i for i in raw_items(table_settings, role_pk(role_key(ACCOUNT, ROLE))) if i["sk"] == ROLE_SK]
    assert "events" not in state and item_size(state) < 1024  # migrated on the spot


def many_grants(count: int) -> list[dict[str, Any]]:
    return [create_grant(f"fn{n}", f"g{n}", "2026-11-03T10:00:00Z") for n in range(count)]


def test_an_unmigrated_table_is_evaluated_from_the_function_index_until_its_grants_are_linked(
    old_table: Settings,
) -> None:
    """During the upgrade the evaluation still finds grants that have no link, and reads the same after."""
    from grantwatch.adapters.snapshot import DynamoSnapshotReader

    grants, functions = DynamoGrantStore(old_table), DynamoFunctionStore(old_table)
    reader = DynamoSnapshotReader(grants, functions, DynamoHazardStore(old_table))
    billing = function_arn("billing")
    before = reader.snapshot(billing)
    assert sorted(g.grant_id for g in before.grants) == sorted(grant_id(g) for g in ("b1", "b2"))
    assert not grants.links_complete()

    assert run(old_table, "migrate").exit_code == 0
    migrated = DynamoGrantStore(old_table)
    assert migrated.links_complete()
    after = DynamoSnapshotReader(migrated, functions, DynamoHazardStore(old_table)).snapshot(billing)
    assert sorted(after.grants, key=lambda g: g.grant_id) == sorted(before.grants, key=lambda g: g.grant_id)
    assert after.looked_up_keys == {KEY_ARN}  # the links name the key: read in the same request


def test_an_interrupted_link_migration_resumes_where_it_stopped(
    old_table: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = recorder_of(old_table)
    assert all(recorder.record(e).outcome is Outcome.RECORDED for e in many_grants(7))
    assert drop_links(old_table) == 7
    store = DynamoGrantStore(old_table)
    real = DynamoGrantStore._link_of
    calls = {"n": 0}

    def stop_on_the_fifth(self: DynamoGrantStore, raw: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise ConnectionError("the process stopped here")
        return real(self, raw)

    monkeypatch.setattr(DynamoGrantStore, "_link_of", stop_on_the_fifth)
    with pytest.raises(ConnectionError):
        store.link_all(dry_run=False, page_size=2)
    monkeypatch.setattr(DynamoGrantStore, "_link_of", real)
    assert not store.links_complete()

    resumed = DynamoGrantStore(old_table).link_all(dry_run=False, page_size=2)
    assert resumed.complete and 0 < resumed.links < 7 + len(GRANTS)  # not from the start again
    linked = [
        i
        for i in table(old_table).scan()["Items"]
        if str(i["pk"]).startswith("FUNCTION#") and str(i["sk"]).startswith("GRANT#")
    ]
    assert len(linked) == 7 + len(GRANTS)
    assert DynamoGrantStore(old_table).link_all(dry_run=False).links == 0  # complete: nothing more to do
