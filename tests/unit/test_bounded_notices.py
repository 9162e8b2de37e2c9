"""What a notice and an incident hold of the functions on a shared key: the first MAX_NAMED_FUNCTIONS in ARN
order and the count of all, however many there are; an incident stored with every one of them still reads,
capped."""

from __future__ import annotations

import json
from datetime import timedelta

from grantwatch.adapters.functions import incident_from_map, incident_to_map
from grantwatch.adapters.notifier import publish_request
from grantwatch.domain.alerts import MAX_NAMED_FUNCTIONS, incident_from
from grantwatch.domain.channels import chat_notification, event_entry
from grantwatch.domain.coverage import Target, unreachable
from grantwatch.domain.hazards import KeyChange, KeyFact
from grantwatch.domain.notices import (
    MAX_LISTED_TARGETS,
    alert_notice,
    policy_notice,
    resolved_notice,
    stale_notice,
)
from grantwatch.domain.risk import Assessment, Cause, Evidence, Verdict
from tests.support.incidents import ACCOUNT, ADMIN, FUNCTION, KEY, ROLE, T0
from tests.support.limits_contract import check

SNS_MESSAGE_BYTES = 262_144
# 3,000 functions of ordinary name length made an alert's SNS message 267 KB.
SHARED = [
    f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:orders-api-prod-handler-{n:05d}" for n in range(3000)
]


def key_disabled(functions: list[str]) -> tuple[Assessment, list[str]]:
    evidence = Evidence("disabled", "DisableKey", "e-disable", T0, ADMIN)
    assessment = Assessment(
        function_arn=FUNCTION,
        verdict=Verdict.AT_RISK,
        reason="key disabled",
        cause=Cause.KEY_DISABLED,
        evidence=evidence,
        key_arn=KEY,
        role=ROLE,
    )
    return assessment, functions


def test_an_alert_about_a_key_three_thousand_functions_share_fits_an_sns_message() -> None:
    assessment, functions = key_disabled(SHARED)
    opened = incident_from(assessment, T0, functions)
    every = sorted({FUNCTION, *SHARED})
    assert opened.functions_on_key == tuple(every[:MAX_NAMED_FUNCTIONS])
    assert opened.functions_on_key_count == len(every)
    for notice in (
        alert_notice(opened),
        resolved_notice(opened, "can decrypt again", T0 + timedelta(hours=1), None),
    ):
        # the details in six copies (one a protocol that programs read) and the e-mail in two
        assert len(publish_request("arn:aws:sns:eu-central-1:1:t", notice)["Message"].encode()) < 40_000
        assert notice.details["functionsOnKeyCount"] == len(every)
        assert len(event_entry(notice, "ops")["Detail"]) < 20_000
    assert f"… and {len(every) - MAX_NAMED_FUNCTIONS} more: grantwatch functions --key {KEY}" in (
        alert_notice(opened).message
    )


def test_a_key_policy_notice_names_the_first_functions_and_counts_all() -> None:
    fact = KeyFact(KeyChange.POLICY_CHANGED, KEY, "e9", T0, "PutKeyPolicy", ADMIN)
    notice = policy_notice(fact, list(reversed(SHARED)))
    assert notice.details["functions"] == sorted(SHARED)[:MAX_NAMED_FUNCTIONS]
    assert notice.details["functionCount"] == len(SHARED)
    assert len(notice.message.encode()) < 20_000 <= SNS_MESSAGE_BYTES
    assert notice.subject.endswith("(3000 functions)")


def test_an_incident_stored_with_every_function_on_its_key_reads_capped_and_counted() -> None:
    assessment, functions = key_disabled([])
    stored = incident_to_map(incident_from(assessment, T0, functions))
    stored["functionsOnKey"] = list(reversed(SHARED))  # as the layout before the bound wrote it
    stored.pop("functionsOnKeyCount", None)
    old = incident_from_map(json.loads(json.dumps(stored)))
    assert old.functions_on_key == tuple(sorted(SHARED)[:MAX_NAMED_FUNCTIONS])
    assert old.functions_on_key_count == len(SHARED)
    again = incident_to_map(old)
    assert len(again["functionsOnKey"]) == MAX_NAMED_FUNCTIONS
    assert again["functionsOnKeyCount"] == len(SHARED)
    assert incident_from_map(again) == old


def test_the_stale_notice_about_an_organization_of_1000_accounts_fits_every_channel() -> None:
    regions = [f"xx-region-{n:02d}" for n in range(17)]
    late = [Target(f"{100000000000 + a}", region) for a in range(1000) for region in regions]
    refused = "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/worker/x is not authorized " * 20
    coverage = [unreachable(target, refused, T0, None) for target in late]

    notice = stale_notice(list(reversed(late)), coverage, timedelta(hours=1))

    assert notice.details["targetCount"] == len(late) == 17_000
    assert notice.details["targets"] == [t.as_json() for t in late[:MAX_LISTED_TARGETS]]
    assert notice.message.endswith(f"... and {len(late) - MAX_LISTED_TARGETS} more: grantwatch accounts")
    requests = [
        ("sns", "Publish", publish_request("arn:aws:sns:us-east-1:123456789012:alerts", notice)),
        ("events", "PutEvents", {"Entries": [event_entry(notice, "grantwatch-alerts")]}),
    ]
    for service, operation, params in requests:
        assert check(service, operation, params) == [], operation
    assert "17000 account-region(s)" in json.dumps(chat_notification(notice))
