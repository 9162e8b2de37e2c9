"""What breaks if …: the pure analysis, one kind of change at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from grantwatch.domain.facts import GrantFact
from grantwatch.domain.fixes import TEMPORARY_ROLE_PLACEHOLDER, Action, Procedure
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.impact import (
    ChangeKind,
    Hypothesis,
    ImpactInputError,
    KnownFunction,
    Outcome,
    PlannedFunction,
    Scenario,
    analyse,
    other_grants_on_keys,
    parse_key,
    parse_role,
)
from grantwatch.domain.lineage import GrantState, fold
from tests.support.facts import fact_of
from tests.support.plans import role_arn
from tests.support.samples import ACCOUNT, KEY_ARN, load_event
from tests.support.scenarios import create_grant, function_arn, retire_grant

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
OTHER_KEY = KEY_ARN.replace("5f1e2d3c", "0a0b0c0d")


def grant(
    function: str,
    label: str,
    created: str,
    *,
    role: str | None = None,
    ended: str | None = None,
    key: str = KEY_ARN,
) -> GrantState:
    event = create_grant(function, label, created, role=role)
    event["detail"]["requestParameters"]["keyId"] = key
    event["detail"]["responseElements"]["keyId"] = key
    facts: list[GrantFact] = [fact_of(event)]
    if ended:
        facts.append(fact_of(retire_grant(label, ended)))
    return fold(facts)


def known(function: str, *grants: GrantState, state: FunctionState | None = None) -> KnownFunction:
    return KnownFunction(function_arn(function), state, grants)


def config(function: str, role: str, *, key: str | None = KEY_ARN) -> FunctionState:
    return FunctionState(
        function_arn=function_arn(function),
        role=role_arn(role),
        kms_key_arn=key,
        has_environment=True,
        configured_at=datetime(2026, 11, 1, tzinfo=UTC),
        deleted_at=None,
    )


BILLING = known("billing", grant("billing", "b1", "2026-11-02T10:00:00Z", role="shared-role"))
PAYROLL = known("payroll", grant("payroll", "p1", "2026-11-02T11:00:00Z", role="shared-role"))
REPORTS = known("reports", grant("reports", "r1", "2026-11-02T12:00:00Z", key=OTHER_KEY))
FLEET = [BILLING, PAYROLL, REPORTS]


def ask(*hypotheses: Hypothesis, functions: tuple[PlannedFunction, ...] = ()) -> Scenario:
    return Scenario(hypotheses, functions)


def outcomes(scenario: Scenario, fleet: list[KnownFunction] = FLEET) -> dict[str, Outcome]:
    return {f.name: f.outcome for f in analyse(scenario, fleet, now=NOW).functions}


def test_replacing_a_shared_role_breaks_both_functions_and_says_to_update_them_after() -> None:
    impact = analyse(ask(Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role")), FLEET, now=NOW)
    assert [(f.name, f.outcome) for f in impact.functions] == [
        ("billing", Outcome.BREAKS),
        ("payroll", Outcome.BREAKS),
    ]
    billing = impact.functions[0]
    assert billing.grants_lost == (BILLING.grants[0].grant_id,)
    assert "unique id" in billing.reasons[0]
    role_switch, key_switch = billing.fix  # the role switch first for a replaced role, as documented
    assert (role_switch.procedure, key_switch.procedure) == (Procedure.ROLE_SWITCH, Procedure.KEY_SWITCH)
    assert {role_switch.when, key_switch.when} == {"right after the apply"}
    assert [s.value for s in key_switch.updates] == ["", KEY_ARN]
    assert [s.value for s in role_switch.updates] == [TEMPORARY_ROLE_PLACEHOLDER, role_arn("shared-role")]
    assert len(impact.breaks) == 2


def test_a_role_no_function_uses_breaks_nothing() -> None:
    assert analyse(ask(Hypothesis(ChangeKind.ROLE_REPLACED, "unused-role")), FLEET, now=NOW).functions == ()


def test_deleting_a_role_says_to_move_the_function_first() -> None:
    impact = analyse(ask(Hypothesis(ChangeKind.ROLE_DELETED, role_arn("shared-role"))), FLEET, now=NOW)
    assert {f.name for f in impact.breaks} == {"billing", "payroll"}
    assert "cannot run" in impact.breaks[0].reasons[0]
    [move] = impact.breaks[0].fix
    assert (move.procedure, move.when) == (Procedure.MOVE_ROLE, "before deleting the role")
    assert move.steps[0].command.endswith("--role NEW_ROLE_ARN")


def test_a_role_arn_of_another_account_is_another_role() -> None:
    other = role_arn("shared-role").replace(ACCOUNT, "111122223333")
    assert outcomes(ask(Hypothesis(ChangeKind.ROLE_DELETED, other))) == {}


def test_disabling_a_key_breaks_the_functions_on_it_only() -> None:
    impact = analyse(ask(Hypothesis(ChangeKind.KEY_DISABLED, KEY_ARN)), FLEET, now=NOW)
    assert {f.name: f.outcome for f in impact.functions} == {
        "billing": Outcome.BREAKS,
        "payroll": Outcome.BREAKS,
    }
    assert "KMSDisabledException" in impact.functions[0].reasons[0]
    [move] = impact.functions[0].fix
    assert move.steps[0].command.endswith("--kms-key-arn NEW_KEY_ARN")
    assert move.steps[1].action is Action.WAIT


def test_scheduling_deletion_by_bare_key_id() -> None:
    key_id = OTHER_KEY.rsplit("/", 1)[1]
    impact = analyse(ask(Hypothesis(ChangeKind.KEY_PENDING_DELETION, key_id)), FLEET, now=NOW)
    assert [(f.name, f.outcome) for f in impact.functions] == [("reports", Outcome.BREAKS)]
    assert "KMSInvalidStateException" in impact.functions[0].reasons[0]


@pytest.mark.parametrize("kind", [ChangeKind.GRANT_REVOKED, ChangeKind.GRANT_RETIRED])
def test_ending_a_functions_only_grant_breaks_it(kind: ChangeKind) -> None:
    only = BILLING.grants[0]
    impact = analyse(ask(Hypothesis(kind, only.grant_id)), FLEET, now=NOW)
    [billing] = impact.functions
    assert (billing.name, billing.outcome, billing.grants_lost) == (
        "billing",
        Outcome.BREAKS,
        (only.grant_id,),
    )
    assert kind.value.removeprefix("grant-") in billing.reasons[0]


def test_ending_a_grant_with_a_newer_sibling_leaves_the_function_able_to_decrypt() -> None:
    older = grant("billing", "b0", "2026-10-02T10:00:00Z", role="shared-role")
    newer = BILLING.grants[0]
    fleet = [known("billing", older, newer)]
    [billing] = analyse(ask(Hypothesis(ChangeKind.GRANT_REVOKED, older.grant_id)), fleet, now=NOW).functions
    assert (billing.outcome, billing.usable_after) == (Outcome.UNHARMED, newer.grant_id)
    [billing] = analyse(ask(Hypothesis(ChangeKind.GRANT_REVOKED, newer.grant_id)), fleet, now=NOW).functions
    assert billing.outcome is Outcome.UNHARMED  # the older grant is still active and usable
    both = ask(
        Hypothesis(ChangeKind.GRANT_REVOKED, older.grant_id),
        Hypothesis(ChangeKind.GRANT_RETIRED, newer.grant_id),
    )
    assert outcomes(both, fleet) == {"billing": Outcome.BREAKS}


def test_a_function_already_without_a_usable_grant_is_not_broken_by_the_change() -> None:
    lost = known(
        "legacy",
        grant("legacy", "l1", "2026-10-01T10:00:00Z", role="shared-role", ended="2026-10-05T10:00:00Z"),
    )
    impact = analyse(ask(Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role")), [lost], now=NOW)
    assert [(f.name, f.outcome) for f in impact.functions] == [("legacy", Outcome.ALREADY_AT_RISK)]
    assert impact.breaks == ()


def test_a_configured_function_whose_grant_was_never_recorded_still_breaks() -> None:
    unrecorded = known("archive", state=config("archive", "shared-role"))
    [archive] = analyse(
        ask(Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role")), [unrecorded], now=NOW
    ).functions
    assert archive.outcome is Outcome.BREAKS
    assert "not recorded by grantwatch" in archive.reasons[0]


def test_a_function_without_a_customer_managed_key_is_left_out() -> None:
    plain = known("plain", state=config("plain", "shared-role", key=None))
    assert outcomes(ask(Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role")), [plain]) == {}


def test_the_same_plan_deleting_or_reconfiguring_a_function_gives_it_a_new_grant() -> None:
    replaced = Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role")
    plan = (
        PlannedFunction("billing", "aws_lambda_function.billing", deleted=True),
        PlannedFunction(function_arn("payroll"), "aws_lambda_function.payroll", regrants=True),
    )
    impact = analyse(ask(replaced, functions=plan), FLEET, now=NOW)
    assert {f.name: f.outcome for f in impact.functions} == {
        "billing": Outcome.REGRANTED,
        "payroll": Outcome.REGRANTED,
    }
    assert impact.breaks == ()
    assert "deletes the function" in impact.functions[0].reasons[-1]
    assert "changes its key or role after the role changes" in impact.functions[1].reasons[-1]


def test_an_uncertain_function_change_still_breaks_and_says_why() -> None:
    doubt = "its role is known only after apply"
    plan = (PlannedFunction("billing", "aws_lambda_function.billing", note=doubt),)
    impact = analyse(ask(Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role"), functions=plan), FLEET, now=NOW)
    billing = next(f for f in impact.functions if f.name == "billing")
    assert billing.outcome is Outcome.BREAKS and doubt in billing.reasons


def test_a_key_change_is_survived_only_by_moving_off_the_key() -> None:
    disabled = Hypothesis(ChangeKind.KEY_DISABLED, KEY_ARN)
    regranted = (PlannedFunction("billing", "x", regrants=True),)
    assert outcomes(ask(disabled, functions=regranted))["billing"] is Outcome.BREAKS
    moved = (PlannedFunction("billing", "x", new_key=OTHER_KEY),)
    assert outcomes(ask(disabled, functions=moved))["billing"] is Outcome.REGRANTED


def test_other_services_grants_on_a_changed_key_are_listed() -> None:
    ebs = fold([fact_of(load_event("kms-create-grant-ebs-volume.json"))])
    lambda_grant = BILLING.grants[0]
    ended = grant("payroll", "p0", "2026-10-01T10:00:00Z", ended="2026-10-02T10:00:00Z")
    found = other_grants_on_keys(
        ask(Hypothesis(ChangeKind.KEY_DISABLED, KEY_ARN)), [ebs, lambda_grant, ended]
    )
    assert found == (ebs,)
    assert other_grants_on_keys(ask(Hypothesis(ChangeKind.ROLE_DELETED, "r")), [ebs]) == ()


@pytest.mark.parametrize(
    "value", ["shared-role", role_arn("shared-role"), "arn:aws:iam::210987654321:role/a/b/c"]
)
def test_roles_are_names_or_arns(value: str) -> None:
    assert parse_role(value) == value


@pytest.mark.parametrize("value", ["", "a role", "arn:aws:iam::210987654321:user/dana", "x" * 65])
def test_other_role_values_are_refused(value: str) -> None:
    with pytest.raises(ImpactInputError):
        parse_role(value)


@pytest.mark.parametrize(
    "value", [KEY_ARN, "5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6", "mrk-1234abcd12ab34cd56ef1234567890ab"]
)
def test_keys_are_arns_or_ids(value: str) -> None:
    assert parse_key(value) == value


@pytest.mark.parametrize(
    "value", ["alias/payments", f"arn:aws:kms:eu-central-1:{ACCOUNT}:alias/payments", "not a key"]
)
def test_aliases_and_other_key_values_are_refused(value: str) -> None:
    with pytest.raises(ImpactInputError):
        parse_key(value)


def test_a_grant_is_blamed_only_if_ending_it_alone_would_break_the_function() -> None:
    older = grant("billing", "b0", "2026-10-02T10:00:00Z", role="shared-role")
    fleet = [known("billing", older, BILLING.grants[0])]
    scenario = ask(
        Hypothesis(ChangeKind.KEY_DISABLED, KEY_ARN), Hypothesis(ChangeKind.GRANT_REVOKED, older.grant_id)
    )
    [billing] = analyse(scenario, fleet, now=NOW).functions
    assert [h.kind for h in billing.causes] == [ChangeKind.KEY_DISABLED]
    assert len(billing.reasons) == len(billing.fix) == 1
