"""The pure decision and the text people read: exhaustive where it is cheap."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from grantwatch.adapters.functions import incident_from_map, incident_to_map
from grantwatch.domain.alerts import Incident, incident_from
from grantwatch.domain.facts import Actor, FactKind, GrantFact
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.lineage import GrantState, fold
from grantwatch.domain.notices import MAX_SUBJECT, alert_notice, resolved_notice
from grantwatch.domain.risk import Cause, Evidence, Verdict, assess
from grantwatch.domain.text import clean
from tests.support.facts import fact_of
from tests.support.samples import KEY_ARN
from tests.support.scenarios import create_grant, function_arn, retire_grant

BILLING = function_arn("billing")
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)


def grant(name: str, created: str, *, ended: str | None = None, role: str | None = None) -> GrantState:
    facts: list[GrantFact] = [fact_of(create_grant("billing", name, created, role=role))]
    if ended:
        facts.append(fact_of(retire_grant(name, ended)))
    return fold(facts)


def config(
    *, role: str = "billing-role", key: str | None = KEY_ARN, at: datetime = T0, deleted: bool = False
) -> FunctionState:
    return FunctionState(
        function_arn=BILLING,
        role=f"arn:aws:iam::210987654321:role/{role}",
        kms_key_arn=key,
        has_environment=True,
        configured_at=at,
        deleted_at=at + timedelta(days=1) if deleted else None,
    )


def test_an_active_grant_for_the_role_and_key_is_safe() -> None:
    g1 = grant("g1", "2026-11-01T10:00:00Z")
    assessment = assess(BILLING, [g1], None)
    assert (assessment.verdict, assessment.usable) == (Verdict.SAFE, g1)


def test_the_last_grant_ended_is_at_risk_and_names_it() -> None:
    old = grant("g0", "2026-10-01T10:00:00Z", ended="2026-10-02T10:00:00Z")
    last = grant("g1", "2026-11-01T10:00:00Z", ended="2026-11-02T10:00:00Z")
    assessment = assess(BILLING, [old, last], None)
    assert (assessment.verdict, assessment.lost) == (Verdict.AT_RISK, last)


@pytest.mark.parametrize(
    ("function", "verdict"),
    [
        (config(deleted=True), Verdict.NOT_APPLICABLE),
        (config(key=None), Verdict.NOT_APPLICABLE),
        # a grant of the old role does not count, but no grant of the new role has ended either: a missing
        # grant is left to reconciliation against ListGrants rather than guessed from a missed event
        (config(role="other-role"), Verdict.NOT_APPLICABLE),
        (config(key=KEY_ARN.replace("5f1e", "0000")), Verdict.NOT_APPLICABLE),
        (config(at=T0 - timedelta(days=30)), Verdict.SAFE),
    ],
)
def test_the_configuration_decides_the_key_and_role_when_it_is_newer(
    function: FunctionState, verdict: Verdict
) -> None:
    assert assess(BILLING, [grant("g1", "2026-10-25T10:00:00Z")], function).verdict is verdict


def test_grants_of_other_functions_do_not_count() -> None:
    other = fold([fact_of(create_grant("payroll", "p1", "2026-11-01T10:00:00Z"))])
    ended = grant("g1", "2026-11-01T10:00:00Z", ended="2026-11-02T10:00:00Z")
    assert assess(BILLING, [other, ended], None).verdict is Verdict.AT_RISK


def test_a_grant_without_decrypt_is_not_usable() -> None:
    g1 = grant("g1", "2026-11-01T10:00:00Z")
    assert g1.terms is not None
    no_decrypt = dataclasses.replace(g1, terms=dataclasses.replace(g1.terms, operations=("RetireGrant",)))
    ended = grant("g0", "2026-10-01T10:00:00Z", ended="2026-10-02T10:00:00Z")
    assert assess(BILLING, [no_decrypt, ended], None).verdict is Verdict.AT_RISK


def test_untrusted_text_cannot_forge_lines_in_a_notice() -> None:
    assert clean("evil\nSubject: fake\r\x1b[31m") == "evil?Subject: fake??[31m"
    hostile = grant("g1", "2026-11-01T10:00:00Z", ended="2026-11-02T10:00:00Z")
    assert hostile.ended is not None
    forged = dataclasses.replace(
        hostile,
        ended=dataclasses.replace(
            hostile.ended, actor=dataclasses.replace(hostile.ended.actor, principal="x\n\nFix\n  rm -rf /")
        ),
    )
    incident = incident_from(assess(BILLING, [forged], None), T0)
    notice = alert_notice(incident)
    assert "\n  rm -rf /" not in notice.message.split("Details (JSON)")[0]
    details = json.loads(notice.message.split("Details (JSON)\n", 1)[1])
    assert details["evidence"]["by"] == "x\n\nFix\n  rm -rf /"


def test_subjects_stay_within_sns_limits_for_the_longest_function_names() -> None:
    long_name = "f" * 64
    g = fold(
        [
            fact_of(create_grant(long_name, "g1", "2026-11-01T10:00:00Z")),
            fact_of(retire_grant("g1", "2026-11-02T10:00:00Z")),
        ]
    )
    incident = incident_from(assess(function_arn(long_name), [g], None), T0)
    for notice in (
        alert_notice(incident),
        resolved_notice(incident, "has a usable grant again", T0, "g2"),
        resolved_notice(incident, "the function was deleted", T0, None),
    ):
        assert len(notice.subject) <= MAX_SUBJECT
        assert notice.subject.isprintable()


def test_an_incident_needs_an_at_risk_assessment() -> None:
    with pytest.raises(ValueError, match="at-risk"):
        incident_from(assess(BILLING, [grant("g1", "2026-11-01T10:00:00Z")], None), T0)
    assert FactKind.RETIRED.value == "retired"


ROLE = "arn:aws:iam::210987654321:role/billing-role"
TEMPORARY = "arn:aws:iam::210987654321:role/grantwatch-heal-temporary"
AWS_LAMBDA_KEY = KEY_ARN.replace("5f1e2d3c", "aaaaaaaa")
RESETS = {"key-switch": ("KMSKeyArn", "--kms-key-arn"), "role-switch": ("Role", "--role")}


def expected_procedures(cause: Cause, aws_managed: bool) -> list[str]:
    resets = ["role-switch"] if aws_managed else ["key-switch", "role-switch"]
    return {
        Cause.KEY_DISABLED: ["enable-key"],
        Cause.KEY_PENDING_DELETION: ["cancel-key-deletion"],
        Cause.ROLE_DELETED: ["re-create-role", "move-to-another-role"],
        Cause.ROLE_RECREATED: sorted(resets, reverse=True),  # the role switch first, as documented
    }.get(cause, resets)


@pytest.mark.parametrize("temporary_role", [None, TEMPORARY])
@pytest.mark.parametrize("aws_managed", [False, True])
@pytest.mark.parametrize("cause", list(Cause))
def test_every_alert_types_fix_as_data(cause: Cause, aws_managed: bool, temporary_role: str | None) -> None:
    """Each step numbered in order; every update followed by its wait; a reset is two updates of one
    setting, away then back, and the value it restores is the function's own."""
    incident = Incident(
        incident_id="20261101T100000Z-g1",
        function_arn=BILLING,
        key_arn=AWS_LAMBDA_KEY if aws_managed else KEY_ARN,
        role=ROLE,
        cause=cause,
        evidence=Evidence("retired", "RetireGrant", "e1", T0, Actor("admin", None, None)),
        detected_at=T0,
        grant_id="g1",
        aws_managed_key=aws_managed,
    )
    notice = alert_notice(incident, temporary_role)
    fixes = notice.details["fix"]
    assert fixes  # the checks below hold for every fix: none at all would pass them vacuously
    assert [f["procedure"] for f in fixes] == expected_procedures(cause, aws_managed)
    text = notice.message.split("Details (JSON)")[0]
    for fix in fixes:
        steps = fix["steps"]
        assert steps, fix["procedure"]
        assert [s["order"] for s in steps] == list(range(1, len(steps) + 1))
        for step, following in zip(steps, [*steps[1:], None], strict=True):
            assert step["command"] in text
            if step["action"] == "update-function-configuration":
                assert following is not None and following["action"] == "wait-function-updated"
                assert following["command"] == (
                    f"aws lambda wait function-updated --region eu-central-1 --function-name {BILLING}"
                )
        updates = [s for s in steps if s["action"] == "update-function-configuration"]
        # a deleted role, re-created, is reset as any re-created role: by the role switch
        reset = RESETS.get(fix["procedure"]) or (
            RESETS["role-switch"] if fix["procedure"] == "re-create-role" else None
        )
        if reset is None:
            assert not any(s["restores"] for s in steps)
            continue
        setting, option = reset
        own = ROLE if setting == "Role" else KEY_ARN
        away, back = updates
        assert (away["setting"], back["setting"], fix["setting"]) == (setting, setting, setting)
        assert away["value"] != own and (away["restores"], back["restores"]) == (False, True)
        assert back["value"] == fix["original"] == own  # the restored value is the original
        if setting == "KMSKeyArn":
            assert away["value"] == "" and away["command"].endswith('--kms-key-arn ""')  # the AWS managed key
        else:
            assert away["value"] == (temporary_role or "TEMPORARY_ROLE_ARN")
            assert "lambda.amazonaws.com" in fix["needs"]
        assert back["command"].endswith(f"{option} {own}")
        assert fix["source"] and fix["source"] in text
    if cause is Cause.KEY_PENDING_DELETION:
        assert [s["action"] for s in fixes[0]["steps"]] == ["cancel-key-deletion", "enable-key"]
    if cause is Cause.ROLE_DELETED:
        assert fixes[0]["steps"][0]["action"] == "manual"  # re-create or choose the role first
    assert incident_from_map(incident_to_map(incident)) == incident


def test_no_fix_reapplies_the_key_the_function_already_has() -> None:
    """The update that changes nothing, which nothing AWS publishes says creates a grant, is gone."""
    checked: list[str] = []
    for cause in Cause:
        incident = incident_from(
            assess(BILLING, [grant("g1", "2026-11-01T10:00:00Z", ended="2026-11-02T10:00:00Z")], None), T0
        )
        notice = alert_notice(dataclasses.replace(incident, cause=cause))
        assert notice.details["fix"], cause
        for fix in notice.details["fix"]:
            updates = [s for s in fix["steps"] if s["action"] == "update-function-configuration"]
            assert not updates or updates[0]["value"] != KEY_ARN
            checked += [fix["procedure"]] if updates else []
    # Not vacuous: the key switch, the one fix that could reapply the key, was among those checked.
    assert "key-switch" in checked
