"""Retention (`RetentionDays`): DynamoDB's TTL attribute `expiresAt` on what has ended, never on what a live
decision reads, on DynamoDB Local."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from grantwatch.adapters.functions import FUNCTION_SK, IncidentItem, function_pk
from grantwatch.adapters.hazards import FactItem, key_pk, role_pk
from grantwatch.adapters.store import GRANT_SK, GrantItem, grant_pk
from grantwatch.cli import app
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.hazards import role_key
from grantwatch.pipeline import LocalPipeline
from grantwatch.settings import Settings, SettingsError
from grantwatch.wiring import local_pipeline
from tests.support.samples import ACCOUNT, KEY_ARN, TEMPLATE
from tests.support.scenarios import (
    create_grant,
    create_role,
    delete_role,
    disable_key,
    function_arn,
    grant_id,
    put_key_policy,
    replay,
    retire_grant,
)
from tests.support.templates import load_template

DAYS = 30
DAY = 86400
runner = CliRunner()


def epoch(at: str, days: int = DAYS) -> int:
    moment = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int((moment + timedelta(days=days)).timestamp())


def counted_from(at: str, since: int) -> range:
    """The expiries allowed for what ended at `at` and was written from `since` until now: counted from the
    later of the two."""
    until = int(time.time()) + 1
    return range(max(epoch(at), since + DAYS * DAY), max(epoch(at), until + DAYS * DAY) + 1)


def kept(settings: Settings, days: int) -> Settings:
    return dataclasses.replace(settings, retention_days=days)


def items(settings: Settings, pk: str) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb", endpoint_url=settings.endpoint_url, region_name=settings.region).Table(
        settings.table_name
    )
    found: list[dict[str, Any]] = table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk}
    )["Items"]
    return {str(item["sk"]): item for item in found}


def expiry(item: dict[str, Any]) -> int | None:
    value = item.get("expiresAt")
    return None if value is None else int(value)


@pytest.fixture
def since() -> int:
    """When the test began: nothing it writes was written before."""
    return int(time.time())


@pytest.fixture
def pipeline(table_settings: Settings) -> LocalPipeline:
    return local_pipeline(kept(table_settings, DAYS))


def test_a_grant_gets_its_expiry_when_it_ends_and_not_before(
    pipeline: LocalPipeline, table_settings: Settings, since: int
) -> None:
    replay(pipeline, [create_grant("billing", "b1", "2026-11-01T10:00:00Z")])
    [grant] = items(table_settings, grant_pk(grant_id("b1"))).values()
    assert expiry(grant) is None  # active: what the evaluator reads
    replay(pipeline, [retire_grant("b1", "2026-11-20T16:42:31Z")])
    [grant] = items(table_settings, grant_pk(grant_id("b1"))).values()
    assert expiry(grant) in counted_from("2026-11-20T16:42:31Z", since)


def test_an_incident_gets_its_expiry_when_it_is_resolved(
    pipeline: LocalPipeline, table_settings: Settings, since: int
) -> None:
    replay(
        pipeline,
        [create_grant("billing", "b1", "2026-11-01T10:00:00Z"), retire_grant("b1", "2026-11-20T16:42:31Z")],
    )
    function = items(table_settings, function_pk(function_arn("billing")))
    [opened] = [item for sk, item in function.items() if sk.startswith("INCIDENT#")]
    assert opened["status"] == "open" and expiry(opened) is None
    assert expiry(function[FUNCTION_SK]) is None

    replay(pipeline, [create_grant("billing", "b2", "2026-11-21T08:00:00Z")])  # a usable grant again
    function = items(table_settings, function_pk(function_arn("billing")))
    [resolved] = [item for sk, item in function.items() if sk.startswith("INCIDENT#")]
    assert resolved["status"] == "resolved"
    assert expiry(resolved) in counted_from(resolved["resolvedAt"], since)
    assert expiry(function[FUNCTION_SK]) is None
    assert expiry(items(table_settings, grant_pk(grant_id("b2")))[GRANT_SK]) is None


def test_a_superseded_incident_gets_its_expiry_and_the_one_opened_in_its_place_none(
    pipeline: LocalPipeline, table_settings: Settings, since: int
) -> None:
    replay(
        pipeline,
        [create_grant("billing", "b1", "2026-11-01T10:00:00Z"), retire_grant("b1", "2026-11-20T16:42:31Z")],
    )
    replay(pipeline, [disable_key("2026-11-20T17:00:00Z")])
    function = items(table_settings, function_pk(function_arn("billing")))
    incidents = {item["status"]: item for sk, item in function.items() if sk.startswith("INCIDENT#")}
    assert set(incidents) == {"superseded", "open"}
    assert expiry(incidents["superseded"]) in counted_from(incidents["superseded"]["resolvedAt"], since)
    assert expiry(incidents["open"]) is None


def test_key_and_role_events_expire_but_their_state_and_dependencies_never(
    pipeline: LocalPipeline, table_settings: Settings, since: int
) -> None:
    events = [
        create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
        disable_key("2026-11-05T09:00:00Z"),
        put_key_policy("2026-11-06T09:00:00Z"),
        delete_role("billing-role", "2026-11-10T09:00:00Z"),
        create_role("billing-role", "2026-11-10T09:00:20Z"),
    ]
    replay(pipeline, events)
    for pk in (key_pk(KEY_ARN), role_pk(role_key(ACCOUNT, "billing-role"))):
        found = items(table_settings, pk)
        facts = {sk: item for sk, item in found.items() if sk.startswith("EVENT#")}
        assert facts and all(
            expiry(item) in counted_from(item["eventTime"], since) for item in facts.values()
        ), pk
        others = {sk: item for sk, item in found.items() if not sk.startswith("EVENT#")}
        assert any(sk.startswith("FUNCTION#") for sk in others), pk  # the dependency the evaluator wrote
        assert all(expiry(item) is None for item in others.values()), pk


def test_what_is_recorded_after_its_retention_period_expires_a_period_after_it_is_written(
    pipeline: LocalPipeline, table_settings: Settings, since: int
) -> None:
    """A backfill of old events: an expiry already past would let TTL delete them at once, and with them
    the ids that make a second backfill, or a late CreateGrant, a duplicate."""
    old = datetime.now(UTC) - timedelta(days=3 * DAYS)
    events = [
        create_grant("billing", "b1", utc_iso(old)),
        retire_grant("b1", utc_iso(old + timedelta(hours=1))),
        disable_key(utc_iso(old + timedelta(hours=2))),
        delete_role("billing-role", utc_iso(old + timedelta(hours=3))),
    ]
    replay(pipeline, events)
    table = boto3.client("dynamodb", endpoint_url=table_settings.endpoint_url, region_name="us-east-1")
    stamped = [
        item for item in table.scan(TableName=table_settings.table_name)["Items"] if "expiresAt" in item
    ]
    kinds = {item["sk"]["S"].split("#")[0] for item in stamped}
    assert kinds >= {"GRANT", "EVENT"}, kinds
    assert all(int(item["expiresAt"]["N"]) >= since + DAYS * DAY for item in stamped)

    for event in events:
        assert pipeline.feed(event)[1].outcome == "duplicate"


def test_nothing_expires_without_a_retention_period(table_settings: Settings) -> None:
    replay(
        local_pipeline(table_settings),
        [
            create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
            retire_grant("b1", "2026-11-20T16:42:31Z"),
            create_grant("billing", "b2", "2026-11-21T08:00:00Z"),
            disable_key("2026-11-22T09:00:00Z"),
            delete_role("billing-role", "2026-11-23T09:00:00Z"),
        ],
    )
    table = boto3.client("dynamodb", endpoint_url=table_settings.endpoint_url, region_name="us-east-1")
    scanned = table.scan(TableName=table_settings.table_name)["Items"]
    assert len(scanned) > 8 and not [item for item in scanned if "expiresAt" in item]


def test_migrate_with_a_retention_period_stamps_what_ended_before_it_was_set(
    table_settings: Settings, since: int
) -> None:
    replay(
        local_pipeline(table_settings),  # recorded while everything was kept
        [
            create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
            retire_grant("b1", "2026-11-20T16:42:31Z"),
            create_grant("billing", "b2", "2026-11-21T08:00:00Z"),
            create_grant("payroll", "p1", "2026-11-01T10:00:00Z"),
            retire_grant("p1", "2026-11-22T10:00:00Z"),
        ],
    )
    args = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    result = runner.invoke(app, ["migrate", "--retention-days", str(DAYS), "--json", *args])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["grantsStamped"], summary["incidentsStamped"]) == (2, 1)
    assert expiry(items(table_settings, grant_pk(grant_id("b1")))[GRANT_SK]) in counted_from(
        "2026-11-20T16:42:31Z", since
    )
    assert expiry(items(table_settings, grant_pk(grant_id("b2")))[GRANT_SK]) is None
    billing = items(table_settings, function_pk(function_arn("billing")))
    [resolved] = [item for sk, item in billing.items() if sk.startswith("INCIDENT#")]
    assert expiry(resolved) in counted_from(resolved["resolvedAt"], since)
    payroll = items(table_settings, function_pk(function_arn("payroll")))
    [still_open] = [item for sk, item in payroll.items() if sk.startswith("INCIDENT#")]
    assert still_open["status"] == "open" and expiry(still_open) is None

    again = runner.invoke(app, ["migrate", "--retention-days", str(DAYS), "--json", *args])
    assert (
        json.loads(again.stdout)["grantsStamped"] == 0 and json.loads(again.stdout)["incidentsStamped"] == 0
    )


def test_migrate_with_a_retention_period_stamps_the_key_and_role_events_recorded_before_it(
    table_settings: Settings, since: int
) -> None:
    replay(
        local_pipeline(table_settings),  # recorded while everything was kept
        [
            create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
            disable_key("2026-11-05T09:00:00Z"),
            put_key_policy("2026-11-06T09:00:00Z"),
            delete_role("billing-role", "2026-11-10T09:00:00Z"),
            create_role("billing-role", "2026-11-10T09:00:20Z"),
        ],
    )
    lineage = (key_pk(KEY_ARN), role_pk(role_key(ACCOUNT, "billing-role")))

    def events() -> list[dict[str, Any]]:
        return [
            item
            for pk in lineage
            for sk, item in items(table_settings, pk).items()
            if sk.startswith("EVENT#")
        ]

    assert len(events()) == 4 and all(expiry(item) is None for item in events())
    args = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]

    dry = runner.invoke(app, ["migrate", "--retention-days", str(DAYS), "--dry-run", "--json", *args])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["eventsStamped"] == 4
    assert all(expiry(item) is None for item in events())

    result = runner.invoke(app, ["migrate", "--retention-days", str(DAYS), "--json", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["eventsStamped"] == 4
    assert all(expiry(item) in counted_from(item["eventTime"], since) for item in events())
    for pk in lineage:
        others = {sk: item for sk, item in items(table_settings, pk).items() if not sk.startswith("EVENT#")}
        assert others and all(expiry(item) is None for item in others.values()), pk

    again = runner.invoke(app, ["migrate", "--retention-days", str(DAYS), "--json", *args])
    assert json.loads(again.stdout)["eventsStamped"] == 0


TEMPLATE_DOCUMENT = load_template(TEMPLATE)
PARAMETER = TEMPLATE_DOCUMENT["Parameters"]["RetentionDays"]


def test_the_table_expires_items_by_the_attribute_the_code_writes() -> None:
    table = TEMPLATE_DOCUMENT["Resources"]["GrantsTable"]["Properties"]
    ttl = table["TimeToLiveSpecification"]
    assert ttl["AttributeName"] == "expiresAt"
    assert ttl["Enabled"] == {"Fn::If": ["HasRetention", True, False]}
    for model in (GrantItem, IncidentItem, FactItem):
        assert model.get_attributes()["expiresAt"].attr_name == ttl["AttributeName"]
    environment = TEMPLATE_DOCUMENT["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["GRANTWATCH_RETENTION_DAYS"] == {"Ref": "RetentionDays"}
    assert PARAMETER["Default"] == "0"


@pytest.mark.parametrize("days", [0, 1, 7, 29, 30, 31, 90, 365, 3653, 9999, 10000, -30])
def test_the_template_and_the_settings_accept_the_same_retention_periods(days: int) -> None:
    allowed = re.fullmatch(PARAMETER["AllowedPattern"], str(days)) is not None
    try:
        Settings.from_environ({"GRANTWATCH_RETENTION_DAYS": str(days)})
        accepted = True
    except SettingsError:
        accepted = False
    assert allowed == accepted == (days == 0 or 30 <= days <= 9999)


def test_settings_read_the_retention_period_and_date_expiries_from_it() -> None:
    assert Settings.from_environ({}).expires_at(datetime(2026, 1, 1, tzinfo=UTC)) is None
    settings = Settings.from_environ({"GRANTWATCH_RETENTION_DAYS": "30"})
    written = datetime(2026, 1, 1, tzinfo=UTC)
    assert settings.expires_at(written, now=written) == epoch("2026-01-01T00:00:00Z")


def test_migrate_moves_every_expiry_to_a_changed_retention_period_once(
    table_settings: Settings, since: int
) -> None:
    replay(
        local_pipeline(kept(table_settings, DAYS)),  # recorded with RetentionDays=30
        [
            create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
            retire_grant("b1", "2026-11-20T16:42:31Z"),
            create_grant("billing", "b2", "2026-11-21T08:00:00Z"),
            disable_key("2026-11-22T09:00:00Z"),
        ],
    )
    table = boto3.client("dynamodb", endpoint_url=table_settings.endpoint_url, region_name="us-east-1")
    scanned = table.scan(TableName=table_settings.table_name)["Items"]
    events = [i for i in scanned if i["sk"]["S"].startswith("EVENT#") and "expiresAt" in i]
    assert events
    retired = items(table_settings, grant_pk(grant_id("b1")))[GRANT_SK]
    assert expiry(retired) in counted_from("2026-11-20T16:42:31Z", since)
    args = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]

    dry = runner.invoke(app, ["migrate", "--retention-days", "90", "--dry-run", "--json", *args])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["grantsRestamped"] == 1
    assert items(table_settings, grant_pk(grant_id("b1")))[GRANT_SK] == retired  # a dry run writes nothing

    result = runner.invoke(app, ["migrate", "--retention-days", "90", "--json", *args])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["grantsStamped"], summary["incidentsStamped"], summary["eventsStamped"]) == (0, 0, 0)
    assert (summary["grantsRestamped"], summary["incidentsRestamped"]) == (1, 1)
    assert summary["eventsRestamped"] == len(events)
    ninety = range(int(time.time()) - 5 + 90 * DAY, int(time.time()) + 1 + 90 * DAY)
    assert expiry(items(table_settings, grant_pk(grant_id("b1")))[GRANT_SK]) in ninety
    assert expiry(items(table_settings, grant_pk(grant_id("b2")))[GRANT_SK]) is None  # still active
    billing = items(table_settings, function_pk(function_arn("billing")))
    [closed] = [i for sk, i in billing.items() if sk.startswith("INCIDENT#") and i["status"] != "open"]
    assert expiry(closed) in ninety
    after = table.scan(TableName=table_settings.table_name)["Items"]
    assert all(int(i["expiresAt"]["N"]) in ninety for i in after if i["sk"]["S"].startswith("EVENT#"))

    again = runner.invoke(app, ["migrate", "--retention-days", "90", "--json", *args])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert [second[k] for k in ("grantsRestamped", "incidentsRestamped", "eventsRestamped")] == [0, 0, 0]
    assert [second[k] for k in ("grantsStamped", "incidentsStamped", "eventsStamped")] == [0, 0, 0]
    assert table.scan(TableName=table_settings.table_name)["Items"] == after
    text = runner.invoke(app, ["migrate", "--retention-days", "90", *args])
    assert "expiresAt of another retention period: moved 0 ended grant(s)" in text.stdout


def test_a_grants_link_expires_with_the_grant_whichever_of_its_events_arrives_first(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    """A link outliving its grant would be read, and its grant asked for, by every evaluation after."""
    replay(
        pipeline,
        [
            create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
            retire_grant("b1", "2026-11-01T11:00:00Z"),
            retire_grant("b2", "2026-11-01T12:00:00Z"),  # its end first, then its creation
            create_grant("billing", "b2", "2026-11-01T11:30:00Z"),
            create_grant("billing", "b3", "2026-11-01T13:00:00Z"),  # still active
        ],
    )
    table = boto3.client("dynamodb", endpoint_url=table_settings.endpoint_url, region_name="us-east-1")
    items = table.scan(TableName=table_settings.table_name)["Items"]

    def expiry_of(pk: str, sk: str) -> str | None:
        [item] = [i for i in items if (i["pk"]["S"], i["sk"]["S"]) == (pk, sk)]
        value: str | None = item.get("expiresAt", {}).get("N")
        return value

    function = function_pk(function_arn("billing"))
    for ended in ("b1", "b2"):
        grant = expiry_of(grant_pk(grant_id(ended)), GRANT_SK)
        assert grant is not None and expiry_of(function, f"GRANT#{grant_id(ended)}") == grant, ended
    assert expiry_of(function, f"GRANT#{grant_id('b3')}") is None


def test_a_link_keeps_its_expiry_through_redeliveries_and_gets_it_from_one_after_a_failure(
    pipeline: LocalPipeline, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grantwatch.adapters.store import DynamoGrantStore

    created, retired = (
        create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
        retire_grant("b1", "2026-11-01T11:00:00Z"),
    )
    table = boto3.client("dynamodb", endpoint_url=table_settings.endpoint_url, region_name="us-east-1")
    key = {"pk": {"S": function_pk(function_arn("billing"))}, "sk": {"S": f"GRANT#{grant_id('b1')}"}}

    def link_expiry() -> str | None:
        value: str | None = (
            table.get_item(TableName=table_settings.table_name, Key=key)["Item"].get("expiresAt", {}).get("N")
        )
        return value

    pipeline.feed(created)
    real = DynamoGrantStore._expire_link

    def fails(self: DynamoGrantStore, *args: Any) -> None:
        raise ConnectionError("the recorder stopped after the grant's write")

    monkeypatch.setattr(DynamoGrantStore, "_expire_link", fails)
    with pytest.raises(ConnectionError):
        pipeline.feed(retired)
    monkeypatch.setattr(DynamoGrantStore, "_expire_link", real)
    assert link_expiry() is None

    assert pipeline.feed(retired)[1].outcome == "duplicate"  # the redelivery gives the link its expiry
    expiry = link_expiry()
    grant = table.get_item(
        TableName=table_settings.table_name,
        Key={"pk": {"S": grant_pk(grant_id("b1"))}, "sk": {"S": GRANT_SK}},
    )
    assert expiry is not None and expiry == grant["Item"]["expiresAt"]["N"]
    assert pipeline.feed(created)[1].outcome == "duplicate"
    assert link_expiry() == expiry  # a redelivered creation writes the link's key and role only
