"""What each SNS protocol receives (`MessageStructure: json`): e-mail a short text for people, the protocols
that programs read the notice's details as JSON, SMS one line; checked against the rules SNS documents for
a structured message, at the sizes where SNS's 256 KB bites."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from grantwatch.adapters.notifier import (
    MACHINE_PROTOCOLS,
    SMS_BYTES,
    SNS_MESSAGE_BYTES,
    machine_message,
    publish_request,
    sms_message,
)
from grantwatch.domain.alerts import MAX_NAMED_FUNCTIONS, incident_fixes
from grantwatch.domain.coverage import Target, unreachable
from grantwatch.domain.facts import Actor
from grantwatch.domain.fixes import FixTarget, key_switch
from grantwatch.domain.hazards import KeyChange, KeyFact
from grantwatch.domain.healing import HealOutcome
from grantwatch.domain.notices import (
    MAX_EMAIL_LINES,
    Notice,
    alert_notice,
    heal_notice,
    policy_notice,
    resolved_notice,
    stale_notice,
    trial_notice,
)
from grantwatch.domain.risk import Cause
from tests.support.channels import NOTICES
from tests.support.incidents import ACCOUNT, ADMIN, FUNCTION, KEY, T0, incident
from tests.support.limits_contract import SNS_MESSAGE_KEYS, check

TOPIC = "arn:aws:sns:eu-central-1:210987654321:grantwatch-alerts"
FIX = key_switch(FixTarget(FUNCTION, KEY, None))


def every_kind() -> dict[str, Notice]:
    """Every notice people receive: an alert of every cause, resolved (with and without a usable grant),
    heal succeeded, heal failed (another attempt to come, none, the function left elsewhere), a key policy
    change, account-regions not reconciled, the test notice."""
    opened = incident(Cause.GRANT_RETIRED)
    later = T0 + timedelta(minutes=5)
    failed = HealOutcome(False, later, 1, 2, error="AccessDenied", fix=FIX)
    return dict(NOTICES) | {
        "resolved, no grant": resolved_notice(opened, "was deleted", later, None),
        "heal failed, attempts left": heal_notice(opened, failed),
        "heal failed, last attempt": heal_notice(opened, replace(failed, attempt=2)),
        "heal failed, left elsewhere": heal_notice(
            opened, replace(failed, left_on="the AWS managed key (aws/lambda)")
        ),
        "test": trial_notice(T0, account=ACCOUNT, region="eu-central-1"),
    }


KINDS = every_kind()


def structured(notice: Notice) -> dict[str, str]:
    request = publish_request(TOPIC, notice)
    assert request["MessageStructure"] == "json"
    document: dict[str, str] = json.loads(request["Message"])
    return document


@pytest.mark.parametrize("kind", KINDS)
def test_each_protocol_gets_what_it_reads_within_snss_rules(kind: str) -> None:
    notice = KINDS[kind]
    request = publish_request(TOPIC, notice)
    assert check("sns", "Publish", request) == []
    document = structured(notice)
    assert set(document) == {"default", "email", "sms", *MACHINE_PROTOCOLS} <= SNS_MESSAGE_KEYS
    assert all(isinstance(value, str) for value in document.values())
    assert document["email"] == document["default"] == notice.email != ""
    for protocol in MACHINE_PROTOCOLS:  # the details: the same JSON the full text ends with
        assert json.loads(document[protocol]) == json.loads(json.dumps(notice.details))
        assert document[protocol] == machine_message(notice)
    assert len(document["sms"].encode()) <= SMS_BYTES and notice.subject in document["sms"]
    assert request["Subject"] == notice.subject and request["MessageAttributes"]["incidentId"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_email_is_short_plain_text_ending_with_the_command_that_shows_everything(kind: str) -> None:
    notice = KINDS[kind]
    lines = notice.email.splitlines()
    assert len(lines) <= MAX_EMAIL_LINES, notice.email
    assert "Details (JSON)" not in notice.email and '{"' not in notice.email
    if notice.command:
        assert lines[-1] == f"  {notice.command}"
    assert all(line.isprintable() for line in lines)


@pytest.mark.parametrize("cause", list(Cause))
def test_an_alert_email_says_what_happened_what_will_happen_and_the_fix(cause: Cause) -> None:
    opened = incident(cause)
    email = alert_notice(opened).email
    preferred, *alternatives = incident_fixes(opened, None)
    assert "\nWhat happened\n" in email and "\nWhat will happen\n" in email
    assert f"Fix: {preferred.summary}" in email
    commands = [line.strip() for line in email.splitlines() if line.startswith("    ")]
    assert commands == [step.command for step in preferred.steps]  # every command, nothing else
    alternative_lines = [line for line in email.splitlines() if line.startswith("Or: ")]
    assert len(alternative_lines) == (1 if alternatives else 0)
    for fix in alternatives:
        assert fix.summary.split(" (")[0] in alternative_lines[0]
        assert not any(step.command in email for step in fix.updates)
    assert email.endswith(f"Everything about this incident:\n  grantwatch incidents {opened.incident_id}")


def test_an_alert_about_a_key_10000_functions_share_names_five_and_counts_all() -> None:
    functions = tuple(f"{FUNCTION}-{n:05d}" for n in range(MAX_NAMED_FUNCTIONS))
    opened = replace(incident(Cause.KEY_DISABLED), functions_on_key=functions, functions_on_key_count=10_000)
    email = alert_notice(opened).email
    named = "billing-00000, billing-00001, billing-00002, billing-00003, billing-00004 and 9995 more."
    assert f"Functions on this key (10000): {named}" in email and "billing-00005" not in email
    assert len(email.splitlines()) <= MAX_EMAIL_LINES


def test_the_resolved_and_heal_emails_say_what_happened_and_what_follows() -> None:
    resolved = KINDS["resolved"].email
    assert resolved.startswith("Resolved: Lambda function billing can decrypt again.")
    assert "Usable grant: g2 on key" in resolved and "Nothing to do" in resolved
    assert "grantwatch incidents 20261101T100000Z-g1" in resolved
    healed = KINDS["heal succeeded"].email
    assert "Lambda created grant g2" in healed and "closes with a resolved notice" in healed
    attempts_left = KINDS["heal failed, attempts left"].email
    assert "attempt 1 of 2" in attempts_left and "Another attempt may follow." in attempts_left
    assert "Fix it by hand:" in attempts_left
    assert [line.strip() for line in attempts_left.splitlines() if line.startswith("    aws ")] == [
        step.command for step in FIX.steps
    ]
    assert "No further attempt will be made." in KINDS["heal failed, last attempt"].email
    elsewhere = KINDS["heal failed, left elsewhere"].email
    assert "THE FUNCTION IS LEFT ON the AWS managed key (aws/lambda), NOT ITS OWN KMSKeyArn" in elsewhere
    assert f"    {FIX.steps[2].command}" in elsewhere and f"    {FIX.steps[0].command}" not in elsewhere


def test_the_policy_stale_and_test_emails_point_at_their_own_command() -> None:
    policy = KINDS["key policy changed"]
    assert policy.command == f"grantwatch functions --key {KEY}"
    assert "was changed at 2026-11-01T10:00:00Z by arn:aws:sts::210987654321:assumed-role/admin/dana" in (
        policy.email
    )
    assert "explicit Deny" in policy.email and "1 Lambda function(s) on this key: billing." in policy.email
    stale = KINDS["reconciliation stale"]
    assert stale.command == "grantwatch accounts" and "210987654321 eu-west-1: last reconciled" in stale.email
    assert KINDS["test"].email.startswith("TEST:") and KINDS["test"].command == ""


def test_a_stale_email_about_17000_account_regions_names_five() -> None:
    late = [Target(f"{100000000000 + a}", f"xx-region-{r:02d}") for a in range(1000) for r in range(17)]
    coverage = [unreachable(t, "AccessDenied " * 50, T0, None) for t in late]
    notice = stale_notice(late, coverage, timedelta(hours=1))
    assert len(notice.email.splitlines()) <= MAX_EMAIL_LINES
    assert "... and 16995 more" in notice.email
    assert check("sns", "Publish", publish_request(TOPIC, notice)) == []


def test_a_policy_email_about_3000_functions_names_five() -> None:
    fact = KeyFact(KeyChange.POLICY_CHANGED, KEY, "e9", T0, "PutKeyPolicy", ADMIN)
    functions = [f"{FUNCTION}-{n:05d}" for n in range(3000)]
    notice = policy_notice(fact, functions)
    assert "3000 Lambda function(s) on this key: billing-00000" in notice.email
    assert "and 2995 more." in notice.email and len(notice.email.splitlines()) <= MAX_EMAIL_LINES


def largest_alert() -> Notice:
    """An alert as large as the bounds allow: 25 functions named of 10,000 on the key, every name and ARN
    at its longest (a 64-character function name, a long partition and region), a principal at clean()'s
    512 characters, characters JSON escapes (each `"` in a command becomes `\\"` in every copy)."""
    region = "ap-southeast-7"
    prefix = f"arn:aws-iso-b:lambda:{region}:{ACCOUNT}:function:"
    functions = tuple(f"{prefix}{'f' * 58}{n:06d}" for n in range(MAX_NAMED_FUNCTIONS))
    principal = f"arn:aws-iso-b:sts::{ACCOUNT}:assumed-role/{'r' * 64}/" + "s" * 600
    key = f"arn:aws-iso-b:kms:{region}:{ACCOUNT}:key/{'k' * 36}"
    role = f"arn:aws-iso-b:iam::{ACCOUNT}:role/{'p' * 400}/{'n' * 64}"
    opened = replace(
        incident(Cause.KEY_PENDING_DELETION),
        function_arn=functions[0],
        key_arn=key,
        role=role,
        evidence=replace(
            incident().evidence, actor=Actor(principal, "AssumedRole", "kms.amazonaws.com", "203.0.113.24")
        ),
        deletion_date=T0 + timedelta(days=7),
        functions_on_key=functions,
        functions_on_key_count=10_000,
    )
    return alert_notice(opened, temporary_role=f"arn:aws-iso-b:iam::{ACCOUNT}:role/{'t' * 64}")


def test_the_largest_alert_fits_with_its_details_in_every_protocol() -> None:
    notice = largest_alert()
    request = publish_request(TOPIC, notice)
    document = json.loads(request["Message"])
    size = len(request["Message"].encode())
    assert set(MACHINE_PROTOCOLS) <= set(document)  # six copies of the details, none left out
    assert len(machine_message(notice)) > 5_000  # the details are large...
    assert size < SNS_MESSAGE_BYTES // 5  # ...and six copies still fit with room: about 40 KB,
    assert size < 64 * 1024  # below the 64 KB chunk SNS bills as one request
    assert check("sns", "Publish", request) == []


def test_details_too_large_for_six_copies_go_once_in_default() -> None:
    """Should the details ever not fit six times, programs read them once from `default` and people the
    e-mail: the message is then no larger than the single text SNS received before."""
    notice = replace(largest_alert(), details=largest_alert().details | {"note": "x" * 60_000})
    request = publish_request(TOPIC, notice)
    document = json.loads(request["Message"])
    assert document == {"default": machine_message(notice), "email": notice.email, "sms": sms_message(notice)}
    assert check("sns", "Publish", request) == []
    larger = replace(notice, details=notice.details | {"note": "x" * 300_000})
    assert [b.limit for b in check("sns", "Publish", publish_request(TOPIC, larger))] == ["sns.message-size"]
