"""The alert channels delivering to stand-ins: moto's EventBridge (a rule on the alert bus, an SQS target),
Security Hub and SNS (its server, on loopback), with the evaluator on DynamoDB Local. Every call the
evaluator makes is checked against its policy in template.yaml (tests/iam_contract.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from grantwatch.adapters.channels import ChannelError, ChatTopic, EventBus, FanOut, SecurityHub
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.cli import app
from grantwatch.domain.channels import (
    DETAIL_TYPES,
    chat_notification,
    event_detail,
    pagerduty_event,
    product_arn,
)
from grantwatch.domain.notices import Notice, trial_notice
from grantwatch.pipeline import LocalPipeline
from grantwatch.ports import NotDelivered
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.channels import NOTICES, render_input, schema
from tests.support.cloudformation import Stack
from tests.support.iam_contract import SESSION, stands_for
from tests.support.moto_server import moto_server
from tests.support.samples import TEMPLATE
from tests.support.scenarios import create_grant, function_arn, replay, retire_grant, update_function

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's account
BUS = "grantwatch-alerts"
LATER = datetime(2026, 11, 1, 11, tzinfo=UTC)
scope = contextmanager(SESSION.scope)  # the calls made while a test runs, checked against template.yaml
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


@dataclass
class Stand:
    endpoint: str
    sqs: Any
    events: Any
    securityhub: Any
    sns: Any
    events_queue: str
    chat_queue: str
    chat_topic: str
    text_topic: str

    def client(self, service: str) -> Any:
        return _client(self.endpoint, service)

    def channels(self) -> FanOut:
        return FanOut(
            [
                ("sns", SnsNotifier(self.text_topic, self.client("sns"))),
                ("chat", ChatTopic(self.chat_topic, self.client("sns"))),
                ("events", EventBus(BUS, self.client("events"))),
                ("securityhub", SecurityHub(product_arn(REGION, ACCOUNT), self.client("securityhub"))),
            ]
        )

    def drained(self, queue: str) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def findings(self) -> list[dict[str, Any]]:
        return list(self.securityhub.get_findings()["Findings"])


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, **CREDENTIALS)  # type: ignore[call-overload]


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@pytest.fixture
def stand() -> Iterator[Stand]:
    with moto_server() as endpoint:
        sqs, events, sns, securityhub = (
            _client(endpoint, s) for s in ("sqs", "events", "sns", "securityhub")
        )
        events_queue, events_arn = _queue(sqs, "alert-events")
        chat_queue, chat_arn = _queue(sqs, "chat")
        events.create_event_bus(Name=BUS)
        events.put_rule(
            Name="all-notices", EventBusName=BUS, EventPattern=json.dumps({"source": ["grantwatch"]})
        )
        events.put_targets(Rule="all-notices", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": events_arn}])
        chat_topic = stands_for("AlertChatTopic", sns.create_topic(Name="grantwatch-chat")["TopicArn"])
        sns.subscribe(
            TopicArn=chat_topic, Protocol="sqs", Endpoint=chat_arn, Attributes={"RawMessageDelivery": "true"}
        )
        text_topic = stands_for("AlertTopic", sns.create_topic(Name="grantwatch-alerts")["TopicArn"])
        yield Stand(endpoint, sqs, events, securityhub, sns, events_queue, chat_queue, chat_topic, text_topic)


def test_every_notice_arrives_on_the_bus_in_the_documented_shape(stand: Stand) -> None:
    detail_schema = schema("event-detail")
    channel = EventBus(BUS, stand.client("events"))
    for notice in NOTICES.values():
        channel.publish(notice)
    arrived = stand.drained(stand.events_queue)
    assert len(arrived) == len(NOTICES)
    assert sorted(json.dumps(e["detail"], sort_keys=True) for e in arrived) == sorted(
        json.dumps(event_detail(n), sort_keys=True) for n in NOTICES.values()
    )
    for event in arrived:
        assert (event["source"], event["region"]) == ("grantwatch", REGION)  # moto leaves out "account"
        assert event["detail-type"] == DETAIL_TYPES[event["detail"]["type"]]
        details = event["detail"]["details"]
        assert event["resources"] == [r for r in (details.get("functionArn"), details.get("keyArn")) if r]
        assert not list(detail_schema.iter_errors(event["detail"]))


def test_every_alert_and_resolved_notice_on_the_bus_makes_a_pagerduty_body(stand: Stand) -> None:
    """The events as the bus delivers them, through the template's PagerDuty rules' input transformers:
    function and resource notices alike give the body PagerDuty takes."""
    channel = EventBus(BUS, stand.client("events"))
    for notice in NOTICES.values():
        channel.publish(notice)
    arrived = stand.drained(stand.events_queue)
    template = Stack.load(
        TEMPLATE, parameters={"AlertEventBusName": BUS, "PagerDutyRoutingKeySecret": "pd"}, account=ACCOUNT
    )
    targets = {}
    for rule in ("PagerDutyTriggerRule", "PagerDutyResolveRule"):
        properties = template.resolve(template.resources[rule]["Properties"])
        for detail_type in properties["EventPattern"]["detail-type"]:
            (targets[detail_type],) = properties["Targets"]
    bodies = [
        render_input(targets[event["detail-type"]]["InputTransformer"], event)
        for event in arrived
        if event["detail-type"] in targets
    ]
    pages = [page for notice in NOTICES.values() if (page := pagerduty_event(notice)) is not None]
    assert sorted(json.dumps(b, sort_keys=True) for b in bodies) == sorted(
        json.dumps(p, sort_keys=True) for p in pages
    )
    assert all(not list(schema("pagerduty-event").iter_errors(body)) for body in bodies)
    sources = {b["payload"]["source"].split(":")[2] for b in bodies if b["event_action"] == "trigger"}
    assert sources == {"lambda", "kms"}  # function alerts and resource alerts


def test_one_finding_per_incident_updated_by_its_heal_and_archived_when_resolved(stand: Stand) -> None:
    channel = SecurityHub(product_arn(REGION, ACCOUNT), stand.client("securityhub"))
    channel.publish(NOTICES["alert grant-retired"])
    (opened,) = stand.findings()
    assert (opened["RecordState"], opened["Severity"]["Label"]) == ("ACTIVE", "CRITICAL")
    assert opened["ProductArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
    for name in ("alert grant-retired", "heal failed", "resolved"):
        channel.publish(NOTICES[name])
    (closed,) = stand.findings()
    assert closed["Id"] == opened["Id"] and closed["RecordState"] == "ARCHIVED"
    assert "Workflow" not in closed  # moto has no BatchUpdateFindings: what people set is never sent
    channel.publish(NOTICES["key policy changed"])  # about no incident: no finding
    assert len(stand.findings()) == 1


def test_the_chat_topic_carries_the_custom_notification(stand: Stand) -> None:
    notice = NOTICES["alert key-disabled"]
    ChatTopic(stand.chat_topic, stand.client("sns")).publish(notice)
    (card,) = stand.drained(stand.chat_queue)
    assert card == chat_notification(notice)
    assert not list(schema("chat-notification").iter_errors(card))


@pytest.fixture
def pipeline(table_settings: Settings, stand: Stand) -> LocalPipeline:
    pipeline = local_pipeline(table_settings)
    pipeline.evaluator.notifier = stand.channels()
    return pipeline


def _alert_story() -> list[dict[str, Any]]:
    return [
        update_function("billing", "2026-11-01T09:00:00Z"),
        create_grant("billing", "g1", "2026-11-01T09:00:01Z"),
        retire_grant("g1", "2026-11-01T10:00:00Z"),
    ]


def test_a_duplicate_evaluation_creates_no_second_finding_event_or_page(
    pipeline: LocalPipeline, stand: Stand
) -> None:
    with scope() as calls:
        (alert,) = replay(pipeline, _alert_story())
        assert pipeline.evaluator.evaluate(function_arn("billing"), LATER) == []  # evaluated again
    assert len(stand.findings()) == 1
    events = stand.drained(stand.events_queue)
    assert [e["detail"]["incidentId"] for e in events] == [alert.incident_id]
    assert not calls.violations, sorted(calls.violations)
    made = {call for _, call in calls.calls}
    assert {"events:PutEvents", "securityhub:BatchImportFindings", "sns:Publish"} <= made


def test_a_failing_channel_does_not_stop_the_others_and_the_retry_sends_only_to_it(
    pipeline: LocalPipeline, stand: Stand
) -> None:
    sent: list[Notice] = []

    class Down:
        def publish(self, notice: Notice) -> None:
            sent.append(notice)
            if len(sent) == 1:
                raise ConnectionError("chat endpoint unreachable")

    channels = stand.channels()
    pipeline.evaluator.notifier = FanOut([("flaky", Down()), *channels.channels])
    with pytest.raises(NotDelivered, match=r"not delivered to flaky: ConnectionError") as raised:
        replay(pipeline, _alert_story())
    assert "billing" not in str(raised.value)  # names the channel and the error, not the notice
    # the others were tried: one finding and one event already
    assert len(stand.findings()) == 1 and len(stand.drained(stand.events_queue)) == 1
    (alert,) = pipeline.evaluator.evaluate(function_arn("billing"), LATER)  # the queue's retry
    assert len(sent) == 2 and sent[1] == alert
    assert len(stand.findings()) == 1  # not re-imported
    assert stand.drained(stand.events_queue) == []  # not re-sent: the event already carried it
    page = pagerduty_event(alert)
    assert page is not None and page["dedup_key"] == alert.incident_id


def test_a_channel_that_answers_with_a_refusal_raises_a_clear_error() -> None:
    """PutEvents and BatchImportFindings answer 200 with the refused entries counted, as AWS sends them."""
    events = boto3.client("events", **CREDENTIALS)  # type: ignore[call-overload]
    with Stubber(events) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
            },
        )
        with pytest.raises(
            ChannelError, match=r"EventBridge refused the 'GrantWatch Alert' event: InternalFailure"
        ):
            EventBus(BUS, events).publish(NOTICES["alert grant-retired"])
    hub = boto3.client("securityhub", **CREDENTIALS)  # type: ignore[call-overload]
    with Stubber(hub) as stub:
        stub.add_response(
            "batch_import_findings",
            {
                "FailedCount": 1,
                "SuccessCount": 0,
                "FailedFindings": [{"Id": "x", "ErrorCode": "InvalidInput", "ErrorMessage": "bad"}],
            },
        )
        with pytest.raises(ChannelError, match=r"Security Hub refused the finding: InvalidInput"):
            SecurityHub(product_arn(REGION, ACCOUNT), hub).publish(NOTICES["alert grant-retired"])


def test_the_test_notice_reaches_every_channel_marked_as_a_test(stand: Stand) -> None:
    notice = trial_notice(datetime(2026, 11, 30, 12, tzinfo=UTC), account=ACCOUNT, region=REGION)
    stand.channels().publish(notice)
    (card,) = stand.drained(stand.chat_queue)
    (event,) = stand.drained(stand.events_queue)
    (found,) = stand.findings()
    assert "TEST" in card["content"]["title"] and event["detail-type"] == "GrantWatch Test Notice"
    assert (found["RecordState"], found["Severity"]["Label"]) == ("ARCHIVED", "INFORMATIONAL")


@pytest.fixture
def configured(stand: Stand, monkeypatch: pytest.MonkeyPatch) -> Stand:
    """The environment a deployed function (or an operator's shell) has: every channel on."""
    for service in ("SNS", "EVENTBRIDGE", "SECURITYHUB", "STS"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", stand.endpoint)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "GRANTWATCH_ALERT_TOPIC_ARN": stand.text_topic,
        "GRANTWATCH_ALERT_CHAT_TOPIC_ARN": stand.chat_topic,
        "GRANTWATCH_ALERT_EVENT_BUS": BUS,
        "GRANTWATCH_SECURITY_HUB_PRODUCT_ARN": product_arn(REGION, ACCOUNT),
    }.items():
        monkeypatch.setenv(name, value)
    return stand


def test_notify_test_sends_a_marked_notice_through_every_configured_channel(configured: Stand) -> None:
    result = CliRunner().invoke(app, ["notify-test"])
    assert result.exit_code == 0, result.output
    assert "sent to sns, chat, events, securityhub" in result.output
    (card,) = configured.drained(configured.chat_queue)
    (event,) = configured.drained(configured.events_queue)
    (found,) = configured.findings()
    assert card["content"]["title"] == "[grantwatch] TEST notice: the alert channels work"
    assert event["detail"]["details"]["test"] is True and found["RecordState"] == "ARCHIVED"


def test_notify_test_sends_only_to_the_channels_asked_for(configured: Stand) -> None:
    result = CliRunner().invoke(app, ["notify-test", "--channel", "events"])
    assert result.exit_code == 0, result.output
    assert len(configured.drained(configured.events_queue)) == 1
    assert configured.drained(configured.chat_queue) == [] and configured.findings() == []


def test_notify_test_names_a_missing_or_failing_channel_and_tries_the_others(
    configured: Stand, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRANTWATCH_SECURITY_HUB_PRODUCT_ARN")
    missing = CliRunner().invoke(app, ["notify-test", "--channel", "securityhub"])
    assert missing.exit_code == 2 and "not configured: securityhub" in missing.output
    monkeypatch.setenv("GRANTWATCH_ALERT_CHAT_TOPIC_ARN", f"arn:aws:sns:{REGION}:{ACCOUNT}:gone")
    failed = CliRunner().invoke(app, ["notify-test", "--account", ACCOUNT])
    assert failed.exit_code == 3, failed.output
    assert "not delivered to chat: NotFound" in failed.output and "Traceback" not in failed.output
    assert len(configured.drained(configured.events_queue)) == 1  # the others were tried


def test_notify_test_dry_run_prints_every_channels_payload_and_sends_nothing(configured: Stand) -> None:
    result = CliRunner().invoke(app, ["notify-test", "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = {line["channel"]: line["payload"] for line in map(json.loads, result.output.splitlines())}
    assert set(printed) == {"sns", "chat", "events", "securityhub"}
    assert not list(schema("chat-notification").iter_errors(printed["chat"]))
    assert not list(schema("asff-finding").iter_errors(printed["securityhub"]))
    assert printed["securityhub"]["AwsAccountId"] == ACCOUNT  # Security Hub's account, from its setting
    assert configured.drained(configured.events_queue) == [] and configured.findings() == []
