"""Self-healing's pure decision, rule by rule, and the grant that proves a heal worked."""

from __future__ import annotations

import dataclasses
import json

import pytest

from grantwatch.domain.fixes import AWS_MANAGED_KEY, FixTarget, Procedure, key_switch
from grantwatch.domain.hazards import KeyState, KeyStatus, RoleChange, RoleFact, RoleStatus
from grantwatch.domain.healing import (
    HEALABLE,
    FunctionDenied,
    HealInputs,
    HealOutcome,
    HealPolicy,
    HealState,
    HealStatus,
    LiveFunction,
    LiveKey,
    decide,
    expected_grantee,
    new_grant,
)
from grantwatch.domain.notices import heal_notice
from grantwatch.domain.reconcile import ListedGrant
from grantwatch.domain.risk import Cause
from grantwatch.settings import Settings, SettingsError
from tests.support.incidents import (
    ACCOUNT,
    ADMIN,
    AWS_LAMBDA_KEY,
    FUNCTION,
    KEY,
    ROLE,
    T0,
    TEMPORARY,
    incident,
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
        live_key=LiveKey(KEY, "Enabled", aws_managed=False),
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


def key_state(state: str | None) -> LiveKey:
    return LiveKey(KEY, state, aws_managed=False)


def test_a_tagged_function_with_an_enabled_key_and_attempts_left_is_healed_by_the_key_switch() -> None:
    decision = decide(inputs(), HealPolicy())
    assert decision.heal, decision.reason
    assert decision.fix is not None and decision.fix.procedure is Procedure.KEY_SWITCH
    assert decision.fix == key_switch(FixTarget(FUNCTION, KEY, ROLE))  # the alert's fix, performed
    away, back = decision.fix.updates
    assert (away.setting, away.value, back.value) == ("KMSKeyArn", AWS_MANAGED_KEY, KEY)


@pytest.mark.parametrize("cause", sorted(HEALABLE - {Cause.ROLE_RECREATED}))
def test_each_lost_grant_on_a_customer_managed_key_is_healed_by_the_key_switch(cause: Cause) -> None:
    decision = decide(inputs(incident=incident(cause)), HealPolicy())
    assert decision.heal and decision.fix is not None
    assert decision.fix.procedure is Procedure.KEY_SWITCH


def test_a_recreated_role_is_healed_only_by_the_role_switch_with_a_temporary_role() -> None:
    recreated = inputs(incident=incident(Cause.ROLE_RECREATED))
    skipped = decide(recreated, HealPolicy())
    assert (skipped.heal, skipped.fix) == (False, None)
    assert skipped.reason == (
        "its role was re-created: only the role switch resets its grant, and no temporary role is "
        "configured (SelfHealingTemporaryRoleArn)"
    )
    decision = decide(recreated, HealPolicy(temporary_role=TEMPORARY))
    assert decision.heal and decision.fix is not None
    assert decision.fix.procedure is Procedure.ROLE_SWITCH
    away, back = decision.fix.updates
    assert (away.setting, away.value, back.value, back.restores) == ("Role", TEMPORARY, ROLE, True)


def test_a_function_on_the_aws_managed_key_is_healed_only_with_a_temporary_role() -> None:
    on_default = inputs(
        incident=dataclasses.replace(incident(), key_arn=AWS_LAMBDA_KEY, aws_managed_key=True),
        function=live(kms_key_arn=None),
        live_key=LiveKey(AWS_LAMBDA_KEY, "Enabled", aws_managed=True),
    )
    skipped = decide(on_default, HealPolicy())
    assert not skipped.heal
    assert skipped.reason.startswith("it is on the AWS managed key: only the role switch resets its grant")
    decision = decide(on_default, HealPolicy(temporary_role=TEMPORARY))
    assert decision.heal and decision.fix is not None
    assert decision.fix.procedure is Procedure.ROLE_SWITCH
    same = decide(on_default, HealPolicy(temporary_role=ROLE))
    assert (same.heal, same.reason) == (False, "the temporary role is the function's own role")
    # moved off the incident's customer managed key to the AWS managed key: not the incident's key
    moved = dataclasses.replace(on_default, incident=incident(), live_key=key_state("Enabled"))
    assert (
        decide(moved, HealPolicy(temporary_role=TEMPORARY)).reason == "the function is on the AWS managed key"
    )


def test_a_function_lambda_refuses_to_show_is_not_opted_in() -> None:
    denied = decide(inputs(function=FunctionDenied("lambda:GetFunctionConfiguration")), HealPolicy())
    assert (denied.heal, denied.reason) == (
        False,
        "Lambda denied lambda:GetFunctionConfiguration: the function is not tagged grantwatch:self-heal=true "
        "(or it was deleted, or it is in another account)",
    )


def test_a_function_an_earlier_heal_left_on_the_other_key_says_so() -> None:
    left = inputs(
        function=live(kms_key_arn=None),
        live_key=key_state("Enabled"),
        state=HealState(attempts=1, status=HealStatus.FAILED, left_on="the AWS managed key (aws/lambda)"),
    )
    assert decide(left, HealPolicy()).reason == (
        "an earlier heal left the function on the AWS managed key (aws/lambda): restore it by hand (the "
        "heal-failed notice has the commands)"
    )


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
        ({"function": live(kms_key_arn=None)}, "the function is on the AWS managed key"),
        ({"function": live(kms_key_arn=KEY.replace("5f1e", "0000"))}, "on another key"),
        ({"function": live(last_update_status="InProgress")}, "update of the function is in progress"),
        ({"function": live(role=None)}, "execution role is unknown"),
        ({"live_key": key_state("Disabled")}, "key's state is Disabled"),
        ({"live_key": key_state("PendingDeletion")}, "key's state is PendingDeletion"),
        ({"live_key": None}, "key's state is unknown"),
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
    assert decide(healable, HealPolicy(temporary_role=TEMPORARY)).heal


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
    fix = decide(inputs(), HealPolicy()).fix
    healed = heal_notice(incident(), HealOutcome(True, T0, 1, 2, grant_id="g2", fix=fix))
    assert healed.attributes["alertType"] == "heal-succeeded"
    assert healed.attributes["severity"] == "info"
    assert "Lambda created grant g2" in healed.message
    assert "switch the function to the AWS managed key and back to its own key" in healed.message
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
    assert "THE FUNCTION IS LEFT ON" not in first.message


def test_a_heal_that_left_the_function_on_the_other_key_says_so_loudly_with_the_restore() -> None:
    fix = decide(inputs(), HealPolicy()).fix
    assert fix is not None
    where = "the AWS managed key (aws/lambda)"
    notice = heal_notice(incident(), HealOutcome(False, T0, 1, 2, error="x", fix=fix, left_on=where))
    text = notice.message.split("Details (JSON)")[0]
    assert f"THE FUNCTION IS LEFT ON {where}, NOT ITS OWN KMSKeyArn" in text
    restore, wait = fix.steps[2:]
    assert text.index(restore.command) < text.index(wait.command)
    assert notice.details["leftOn"] == where and notice.details["procedure"] == "key-switch"


def test_a_long_name_keeps_the_subject_within_snss_limit() -> None:
    long = dataclasses.replace(incident(), function_arn=FUNCTION.replace("billing", "b" * 64))
    notice = heal_notice(long, HealOutcome(False, T0, 1, 2, error="x"))
    assert len(notice.subject) <= 99 and notice.subject.endswith(": heal failed")


def test_the_temporary_role_is_a_setting_read_from_the_environment_and_checked() -> None:
    assert Settings.from_environ({}).heal_temporary_role_arn is None
    assert Settings.from_environ({"GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN": ""}).heal_temporary_role_arn is None
    given = Settings.from_environ({"GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN": TEMPORARY})
    assert given.heal_temporary_role_arn == TEMPORARY
    with pytest.raises(SettingsError, match="heal_temporary_role_arn"):
        Settings.from_environ({"GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN": "arn:aws:iam::210987654321:user/dana"})
