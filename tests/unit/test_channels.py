"""Each channel's payload for every kind of notice, checked against its JSON Schema in schemas/."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from grantwatch.adapters.channels import ChannelError, FanOut, alert_notifier
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.domain.channels import (
    chat_notification,
    event_detail,
    event_entry,
    finding,
    pagerduty_event,
    product_arn,
)
from grantwatch.domain.notices import Notice, trial_notice
from grantwatch.settings import Settings
from tests.support.channels import HUB_ACCOUNT, HUB_REGION, NOTICES, schema
from tests.support.incidents import FUNCTION, KEY


def errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("name", NOTICES)
def test_every_payload_of_every_notice_matches_its_schema(name: str) -> None:
    notice = NOTICES[name]
    assert errors(schema("chat-notification"), chat_notification(notice)) == []
    entry = event_entry(notice, "alerts")
    assert errors(schema("event-entry"), entry) == []
    assert errors(schema("event-detail"), json.loads(entry["Detail"])) == []
    found = finding(notice, region=HUB_REGION, account=HUB_ACCOUNT)
    assert (found is None) == (name in ("key policy changed", "reconciliation stale", "member canary silent"))
    if found is not None:
        assert errors(schema("asff-finding"), found) == []
    page = pagerduty_event(notice)
    assert (page is not None) == name.startswith(("alert", "resolved"))
    if page is not None:
        assert errors(schema("pagerduty-event"), page) == []


def test_the_schemas_refuse_what_the_channels_refuse() -> None:
    """Each schema fails a payload that breaks its channel's documented rules."""
    alert = NOTICES["alert grant-retired"]
    card = chat_notification(alert)
    assert errors(schema("chat-notification"), card | {"source": "aws.kms"})
    assert errors(schema("chat-notification"), card | {"content": card["content"] | {"textType": "html"}})
    found = finding(alert, region=HUB_REGION, account=HUB_ACCOUNT)
    assert found is not None
    assert errors(schema("asff-finding"), found | {"Workflow": {"Status": "RESOLVED"}})
    assert errors(schema("asff-finding"), found | {"Types": ["Grants/Lost"]})
    assert errors(
        schema("asff-finding"), found | {"ProductArn": "arn:aws:securityhub:eu-central-1:1:product/2/default"}
    )
    page = pagerduty_event(alert)
    assert page is not None
    assert errors(schema("pagerduty-event"), page | {"routing_key": "R0UTING"})


def test_the_chat_card_carries_the_fix_commands_and_threads_the_resolved_notice_under_its_alert() -> None:
    alert, resolved = NOTICES["alert grant-retired"], NOTICES["resolved"]
    card = chat_notification(alert)
    commands = [s["command"] for s in alert.details["fix"][0]["steps"]]
    assert card["content"]["nextSteps"] == commands and commands
    assert all(c in alert.message for c in commands)  # the same commands as the e-mail text
    assert (
        card["metadata"]["threadId"]
        == chat_notification(resolved)["metadata"]["threadId"]
        == alert.incident_id
    )
    assert FUNCTION in card["metadata"]["relatedResources"]
    assert chat_notification(resolved)["content"]["nextSteps"] == []


def test_untrusted_names_cannot_break_out_of_the_markdown() -> None:
    alert = NOTICES["alert grant-retired"]
    evil = dataclasses.replace(alert, details=alert.details | {"functionName": "x` <!channel> *y*\n# z"})
    description = chat_notification(evil)["content"]["description"]
    assert "<!channel>" not in description and "\n# z" not in description
    assert "`x? ?!channel? *y*?# z`" in description


def test_the_event_detail_is_the_notices_structured_fields_versioned() -> None:
    alert = NOTICES["alert key-disabled"]
    entry = event_entry(alert, "arn:aws:events:eu-central-1:210987654321:event-bus/ops")
    assert (entry["Source"], entry["DetailType"]) == ("grantwatch", "GrantWatch Alert")
    assert entry["Resources"] == [FUNCTION, KEY]
    detail = json.loads(entry["Detail"])
    assert detail == event_detail(alert)
    assert (detail["schemaVersion"], detail["incidentId"], detail["type"]) == (
        "1.0",
        alert.incident_id,
        "alert",
    )
    assert detail["details"] == alert.details
    assert [
        event_entry(NOTICES[n], "b")["DetailType"] for n in ("resolved", "heal succeeded", "heal failed")
    ] == [
        "GrantWatch Incident Resolved",
        "GrantWatch Heal Succeeded",
        "GrantWatch Heal Failed",
    ]


def test_one_finding_per_incident_archived_when_resolved_and_never_setting_workflow() -> None:
    names = ("alert grant-retired", "heal failed", "heal succeeded", "resolved")
    findings = [finding(NOTICES[n], region=HUB_REGION, account=HUB_ACCOUNT) for n in names]
    assert all(f is not None for f in findings)
    ids = {f["Id"] for f in findings if f}
    created = {f["CreatedAt"] for f in findings if f}
    assert len(ids) == 1 and created == {"2026-11-01T10:00:00Z"}
    assert [f["RecordState"] for f in findings if f] == ["ACTIVE", "ACTIVE", "ACTIVE", "ARCHIVED"]
    assert [f["Severity"]["Label"] for f in findings if f] == [
        "CRITICAL",
        "CRITICAL",
        "INFORMATIONAL",
        "INFORMATIONAL",
    ]
    assert all("Workflow" not in f for f in findings if f)
    alert = findings[0]
    assert alert is not None
    assert (
        alert["ProductArn"] == f"arn:aws:securityhub:{HUB_REGION}:{HUB_ACCOUNT}:product/{HUB_ACCOUNT}/default"
    )
    assert [r["Id"] for r in alert["Resources"]] == [FUNCTION, KEY]
    assert "aws lambda update-function-configuration" in alert["Remediation"]["Recommendation"]["Text"]
    assert "`" not in alert["Description"] and "billing" in alert["Description"]  # plain text
    # the same notice sent twice is the same finding: a re-import updates, it never adds one
    assert finding(NOTICES["alert grant-retired"], region=HUB_REGION, account=HUB_ACCOUNT) == alert


def test_pagerduty_triggers_on_the_alert_and_resolves_the_same_incident() -> None:
    trigger = pagerduty_event(NOTICES["alert grant-retired"])
    resolve = pagerduty_event(NOTICES["resolved"])
    assert trigger is not None and resolve is not None
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == "20261101T100000Z-g1"
    assert trigger["payload"]["severity"] == "critical"
    assert "routing_key" not in trigger and "routing_key" not in resolve
    assert pagerduty_event(NOTICES["heal succeeded"]) is None


def test_a_test_notice_is_marked_as_one_in_every_channel() -> None:
    """notify-test's notice says it is a test wherever it lands."""
    notice = trial_notice(datetime(2026, 11, 30, 12, tzinfo=UTC), account=HUB_ACCOUNT, region=HUB_REGION)
    assert "TEST" in chat_notification(notice)["content"]["title"]
    assert json.loads(event_entry(notice, "b")["Detail"])["details"]["test"] is True
    found = finding(notice, region=HUB_REGION, account=HUB_ACCOUNT)
    assert found is not None and found["Severity"]["Label"] == "INFORMATIONAL" and "TEST" in found["Title"]
    assert found["RecordState"] == "ARCHIVED" and pagerduty_event(notice) is None
    assert "TEST" in notice.subject and "TEST" in notice.message
    assert errors(schema("chat-notification"), chat_notification(notice)) == []
    assert errors(schema("event-detail"), event_detail(notice)) == []
    assert errors(schema("asff-finding"), found) == []


def test_the_channels_are_those_the_environment_turns_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", HUB_REGION)
    topic = f"arn:aws:sns:{HUB_REGION}:{HUB_ACCOUNT}:grantwatch-alerts"
    alone = alert_notifier(Settings.from_environ({}), topic)
    assert isinstance(alone, SnsNotifier)  # no channel on: the SNS topic as before
    env = {
        "GRANTWATCH_ALERT_CHAT_TOPIC_ARN": f"arn:aws:sns:{HUB_REGION}:{HUB_ACCOUNT}:chat",
        "GRANTWATCH_ALERT_EVENT_BUS": "ops",
        "GRANTWATCH_SECURITY_HUB_PRODUCT_ARN": product_arn(HUB_REGION, HUB_ACCOUNT),
    }
    every = alert_notifier(Settings.from_environ(env), topic)
    assert isinstance(every, FanOut)
    assert [name for name, _ in every.channels] == ["sns", "chat", "events", "securityhub"]
    with pytest.raises(ValueError, match="security_hub_product_arn"):
        Settings.from_environ({"GRANTWATCH_SECURITY_HUB_PRODUCT_ARN": "arn:aws:securityhub:::hub/default"})


class Recording:
    def __init__(self, fails: bool = False) -> None:
        self.fails, self.sent = fails, 0

    def publish(self, notice: Notice) -> None:
        self.sent += 1
        if self.fails:
            raise ConnectionError("unreachable")


def test_a_failing_channel_is_raised_after_the_others_were_tried() -> None:
    notice = NOTICES["heal failed"]
    sns, chat, events = Recording(), Recording(fails=True), Recording()
    with pytest.raises(ChannelError, match=r"not delivered to chat: ConnectionError"):
        FanOut([("sns", sns), ("chat", chat), ("events", events)]).publish(notice)
    assert (sns.sent, chat.sent, events.sent) == (1, 1, 1)


def test_the_remediation_function_fails_only_when_the_sns_topic_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its invocation's retry would heal again: a chat, event or finding lost is logged instead."""
    from grantwatch import settings as settings_module
    from grantwatch.handlers import remediation

    for name, value in {
        "AWS_REGION": HUB_REGION,
        "GRANTWATCH_ALERT_TOPIC_ARN": f"arn:aws:sns:{HUB_REGION}:{HUB_ACCOUNT}:alerts",
        "GRANTWATCH_ALERT_EVENT_BUS": "ops",
    }.items():
        monkeypatch.setenv(name, value)
    settings_module.settings.cache_clear()
    remediation.healer.cache_clear()
    try:
        notifier = remediation.healer().notifier
        assert isinstance(notifier, FanOut) and notifier.names == ("sns", "events")
    finally:
        settings_module.settings.cache_clear()
        remediation.healer.cache_clear()
