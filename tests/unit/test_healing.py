"""Self-healing's pure decision, rule by rule, and the grant that proves a heal worked."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from grantwatch.domain.alerts import Incident
from grantwatch.domain.facts import Actor
from grantwatch.domain.hazards import KeyState, KeyStatus, RoleChange, RoleFact, RoleStatus
from grantwatch.domain.healing import (
    HEALABLE,
    HealInputs,
    HealOutcome,
    HealPolicy,
    HealState,
    HealStatus,
    LiveFunction,
    decide,
    expected_grantee,
    heal_notice,
    new_grant,
)
from grantwatch.domain.reconcile import ListedGrant
from grantwatch.domain.risk import Cause, Evidence

ACCOUNT = "210987654321"
FUNCTION = f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:billing"
KEY = f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service/billing-role"
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
ADMIN = Actor(principal="arn:aws:sts::210987654321:assumed-role/admin/dana", identity_type=None, via=None)


def incident(cause: Cause = Cause.GRANT_RETIRED) -> Incident:
    return Incident(
        incident_id="20261101T100000Z-g1",
        function_arn=FUNCTION,
        key_arn=KEY,
        role=ROLE,
        cause=cause,
        evidence=Evidence("retired", "RetireGrant", "e1", T0, ADMIN),
        detected_at=T0,
        grant_id="g1",
    )


def live(**changes: object) -> LiveFunction:
    function = LiveFunction(
        function_arn=FUNCTION,
        role=ROLE,
        kms_key_arn=KEY,
        tags={"grantwatch:self-heal": "true", "team": "billing"},
        revision_id="r1",
        last_update_status="Successful",
    )
    return dataclasses.replace(function, **changes)  # type: ignore[arg-type]


def inputs(**changes: object) -> HealInputs:
    healable = HealInputs(
        incident=incident(),
        incident_open=True,
        function=live(),
        live_key_state="Enabled",
        recorded_key=None,
        role=None,
        state=HealState(),
    )
    return dataclasses.replace(healable, **changes)  # type: ignore[arg-type]


def role_status(*, deleted: bool, recreated: bool = False) -> RoleStatus:
    def fact(change: RoleChange, hour: int) -> RoleFact:
        return RoleFact(change, ACCOUNT, "billing-role", f"e{hour}", T0.replace(hour=hour), ADMIN)

    return RoleStatus(
        ACCOUNT,
        "billing-role",
        created=fact(RoleChange.CREATED, 12) if recreated else None,
        deleted=fact(RoleChange.DELETED, 11) if deleted else None,
    )


def test_a_tagged_function_with_an_enabled_key_and_attempts_left_is_healed() -> None:
    decision = decide(inputs(), HealPolicy())
    assert decision.heal, decision.reason


@pytest.mark.parametrize("cause", sorted(HEALABLE))
def test_each_healable_kind_is_healed(cause: Cause) -> None:
    assert decide(inputs(incident=incident(cause)), HealPolicy()).heal


@pytest.mark.parametrize(
    "cause", [Cause.KEY_DISABLED, Cause.KEY_PENDING_DELETION, Cause.ROLE_DELETED, Cause.DECRYPT_FAILED]
)
def test_other_kinds_are_never_healed(cause: Cause) -> None:
    decision = decide(inputs(incident=incident(cause)), HealPolicy())
    assert (decision.heal, decision.reason) == (False, f"{cause.value} is not a kind self-healing repairs")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"incident_open": False}, "the incident is no longer open"),
        ({"function": None}, "the function no longer exists"),
        ({"function": live(tags={})}, "not tagged grantwatch:self-heal=true"),
        ({"function": live(tags={"grantwatch:self-heal": "false"})}, "not tagged"),
        ({"function": live(tags={"grantwatch:self-heal": ""})}, "not tagged"),
        ({"function": live(tags={"Grantwatch:Self-Heal": "true"})}, "not tagged"),  # keys are exact
        ({"function": live(kms_key_arn=None)}, "no customer managed key"),
        ({"function": live(kms_key_arn=KEY.replace("5f1e", "0000"))}, "on another key"),
        ({"function": live(last_update_status="InProgress")}, "update of the function is in progress"),
        ({"function": live(role=None)}, "execution role is unknown"),
        ({"live_key_state": "Disabled"}, "key's state is Disabled"),
        ({"live_key_state": "PendingDeletion"}, "key's state is PendingDeletion"),
        ({"live_key_state": None}, "key's state is unknown"),
        ({"recorded_key": KeyStatus(KEY, KeyState.DISABLED, None)}, "the key is disabled (recorded)"),
        ({"recorded_key": KeyStatus(KEY, KeyState.PENDING_DELETION, None)}, "pending-deletion (recorded)"),
        ({"role": role_status(deleted=True)}, "the execution role was deleted"),
        ({"state": HealState(attempts=2, status=HealStatus.FAILED)}, "2 of 2 attempts used"),
        ({"state": HealState(attempts=1, status=HealStatus.HEALED)}, "already healed once"),
    ],
)
def test_every_safety_rule_refuses_on_its_own(changes: dict[str, object], reason: str) -> None:
    decision = decide(inputs(**changes), HealPolicy())
    assert not decision.heal
    assert reason in decision.reason


def test_the_tag_name_and_the_attempt_limit_are_the_operators() -> None:
    tagged = inputs(function=live(tags={"platform/heal": "TRUE"}), state=HealState(attempts=2))
    assert decide(tagged, HealPolicy(tag="platform/heal", max_attempts=3)).heal
    assert not decide(tagged, HealPolicy(tag="platform/heal", max_attempts=2)).heal
    assert not decide(tagged, HealPolicy()).heal


def test_a_recreated_role_and_a_recorded_enabled_key_do_not_stop_a_heal() -> None:
    healable = inputs(
        incident=incident(Cause.ROLE_RECREATED),
        role=role_status(deleted=True, recreated=True),
        recorded_key=KeyStatus(KEY, KeyState.ENABLED, None),
        state=HealState(attempts=1, status=HealStatus.FAILED),
    )
    assert decide(healable, HealPolicy()).heal


def listed(
    grant_id: str, grantee: str, *, function: str = FUNCTION, ops: tuple[str, ...] = ("Decrypt",)
) -> ListedGrant:
    return ListedGrant.from_api(
        KEY,
        {
            "GrantId": grant_id,
            "GranteePrincipal": grantee,
            "Operations": list(ops),
            "Constraints": {"EncryptionContextEquals": {"aws:lambda:FunctionArn": function}},
        },
    )


def test_the_new_grant_is_one_not_listed_before_for_the_roles_session_and_this_function() -> None:
    session = expected_grantee(live())
    assert session == f"arn:aws:sts::{ACCOUNT}:assumed-role/billing-role/billing"
    other = FUNCTION.replace("billing", "payroll")
    listed_now = [
        listed("old", session),  # listed before the heal: not proof of anything
        listed("dead", "AROAEXAMPLE0OLDROLE01:billing"),
        listed("elsewhere", session, function=other),
        listed("no-decrypt", session, ops=("RetireGrant",)),
    ]
    assert new_grant(live(), listed_now, frozenset({"old"})) is None
    found = new_grant(live(), [*listed_now, listed("new", session)], frozenset({"old"}))
    assert found is not None and found.grant_id == "new"


def test_heal_notices_say_what_happened_and_are_filterable() -> None:
    healed = heal_notice(incident(), HealOutcome(True, T0, 1, 2, grant_id="g2"))
    assert healed.attributes["alertType"] == "heal-succeeded"
    assert healed.attributes["severity"] == "info"
    assert "Lambda created grant g2" in healed.message
    details = json.loads(healed.message.split("Details (JSON)\n", 1)[1])
    assert (details["newGrantId"], details["healedAlertType"], details["attempt"]) == (
        "g2",
        "grant-retired",
        1,
    )

    failed = heal_notice(incident(), HealOutcome(False, T0, 2, 2, error="AccessDeniedException: no"))
    assert (failed.attributes["alertType"], failed.attributes["severity"]) == ("heal-failed", "critical")
    assert "attempt 2 of 2" in failed.message and "No further attempt will be made." in failed.message
    assert failed.subject == "[grantwatch] billing: heal failed"
    first = heal_notice(incident(), HealOutcome(False, T0, 1, 2, error="x"))
    assert "Another attempt may follow." in first.message


def test_a_long_name_keeps_the_subject_within_snss_limit() -> None:
    long = dataclasses.replace(incident(), function_arn=FUNCTION.replace("billing", "b" * 64))
    notice = heal_notice(long, HealOutcome(False, T0, 1, 2, error="x"))
    assert len(notice.subject) <= 99 and notice.subject.endswith(": heal failed")
