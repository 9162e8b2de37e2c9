"""What a disabled or deleted key does to other services' resources: the pure analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from grantwatch.domain.facts import GrantFact
from grantwatch.domain.hazards import KeyState
from grantwatch.domain.impact import ChangeKind, Hypothesis, Scenario, resources_on_changed_keys
from grantwatch.domain.lineage import GrantState, fold
from grantwatch.domain.services import SERVICES, Service
from tests.support.facts import fact_of
from tests.support.samples import KEY_ARN, KEY_ID
from tests.support.service_grants import (
    dynamodb_grant,
    ebs_grant,
    rds_grant,
    retire_service_grant,
)

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
OTHER_KEY = KEY_ARN.replace("5f1e2d3c", "0a0b0c0d")


def state(*events: dict[str, Any]) -> GrantState:
    facts: list[GrantFact] = [fact_of(e) for e in events]
    return fold(facts)


GRANTS = [
    state(dynamodb_grant("orders", "2026-11-01T09:00:00Z")),
    state(dynamodb_grant("invoices", "2026-11-01T09:00:01Z")),
    state(  # a table deleted since: DynamoDB retired its grant
        dynamodb_grant("drafts", "2026-11-01T09:00:02Z"),
        retire_service_grant(f"dynamodb drafts {KEY_ARN}", "2026-11-02T09:00:00Z"),
    ),
    state(ebs_grant("vol-0123456789abcdef0", "i-0a1b2c3d4e5f60718", "2026-11-01T10:00:00Z")),
    state(rds_grant("db-ABCDEFGHIJKLMNOPQRSTUVWXY", "vol-0fedcba987654321f", "2026-11-01T11:00:00Z")),
    state(dynamodb_grant("elsewhere", "2026-11-01T09:00:03Z", key=OTHER_KEY)),
]


def ask(*hypotheses: Hypothesis) -> Scenario:
    return Scenario(hypotheses)


def test_a_disabled_key_lists_each_services_live_resources_with_its_documented_effect() -> None:
    found = resources_on_changed_keys(
        ask(Hypothesis(ChangeKind.KEY_DISABLED, KEY_ARN, "--disable-key")), GRANTS, now=NOW
    )
    assert [(s.service, [r.resource_id for r in s.resources]) for s in found] == [
        (Service.DYNAMODB, ["invoices", "orders"]),
        (Service.EBS, ["vol-0123456789abcdef0"]),
        (Service.RDS, ["db-ABCDEFGHIJKLMNOPQRSTUVWXY"]),
    ]
    dynamodb, ebs, rds = found
    assert dynamodb.effect is SERVICES[Service.DYNAMODB].on_key_disabled
    assert dynamodb.deadline == NOW + timedelta(days=7)
    assert rds.deadline == NOW + timedelta(days=7)
    assert ebs.deadline is None
    assert {s.key_arn for s in found} == {KEY_ARN}
    assert all(s.cause.kind is ChangeKind.KEY_DISABLED for s in found)


def test_a_deletion_wins_over_a_disable_of_the_same_key_and_a_key_id_finds_its_arn() -> None:
    found = resources_on_changed_keys(
        ask(Hypothesis(ChangeKind.KEY_DISABLED, KEY_ID), Hypothesis(ChangeKind.KEY_PENDING_DELETION, KEY_ID)),
        GRANTS,
        now=NOW,
    )
    assert all(s.cause.kind is ChangeKind.KEY_PENDING_DELETION for s in found)
    ebs = next(s for s in found if s.service is Service.EBS)
    assert ebs.effect is SERVICES[Service.EBS].on_key_pending_deletion
    assert ebs.effect.ends_with_key_deletion and ebs.deadline is None


def test_a_key_already_disabled_is_not_this_changes_doing_but_its_deletion_is() -> None:
    disable = ask(Hypothesis(ChangeKind.KEY_DISABLED, KEY_ARN))
    already = {KEY_ARN: KeyState.DISABLED}
    assert resources_on_changed_keys(disable, GRANTS, now=NOW, key_states=already) == ()
    delete = ask(Hypothesis(ChangeKind.KEY_PENDING_DELETION, KEY_ARN))
    assert len(resources_on_changed_keys(delete, GRANTS, now=NOW, key_states=already)) == 3
    pending = {KEY_ARN: KeyState.PENDING_DELETION}
    assert resources_on_changed_keys(delete, GRANTS, now=NOW, key_states=pending) == ()


def test_role_and_grant_changes_touch_no_resource() -> None:
    scenario = ask(
        Hypothesis(ChangeKind.ROLE_DELETED, "shared-role"), Hypothesis(ChangeKind.GRANT_RETIRED, "g")
    )
    assert resources_on_changed_keys(scenario, GRANTS, now=NOW) == ()
