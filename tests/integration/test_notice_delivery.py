"""Every kind of notice, sent the way the functions send it, to moto's SNS, EventBridge and Security Hub
servers (on loopback). moto accepts some requests AWS refuses (an empty message attribute value, among
others), so each SNS Publish the real client builds is also checked against SNS's documented rules before
it is sent: a notice AWS would refuse fails here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics
from botocore.awsrequest import AWSResponse, HTTPHeaders

from grantwatch.adapters.channels import ChatTopic, EventBus, FanOut, SecurityHub
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.notifier import SnsNotifier, machine_message
from grantwatch.domain.channels import (
    DETAIL_TYPES,
    NoticeType,
    event_detail,
    is_incident,
    notice_type,
    product_arn,
)
from grantwatch.domain.coverage import Coverage, Target
from grantwatch.domain.delivery import MAX_CHANNEL_ATTEMPTS
from grantwatch.domain.notices import Notice, NoticeKind, trial_notice
from grantwatch.domain.records import EvaluationRequest
from grantwatch.fanout import OrganizationFanOut
from grantwatch.handlers.delivery_metrics import ChannelMetrics
from grantwatch.pipeline import LocalPipeline
from grantwatch.ports import NotDelivered
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.channels import LATE, NOTICES, late_coverage, schema
from tests.support.iam_contract import stands_for
from tests.support.moto_server import moto_server
from tests.support.samples import KEY_ARN
from tests.support.scenarios import (
    create_grant,
    function_arn,
    put_key_policy,
    replay,
    retire_grant,
    update_function,
)

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's account
BUS = "grantwatch-alerts"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ATTRIBUTES = 10


def sns_violations(params: dict[str, Any]) -> list[str]:
    """What SNS refuses in a Publish request (its API reference: Publish, MessageAttributeValue)."""
    found = []
    attributes = params.get("MessageAttributes") or {}
    if len(attributes) > MAX_ATTRIBUTES:
        found.append(f"{len(attributes)} message attributes (at most {MAX_ATTRIBUTES})")
    for name, value in attributes.items():
        if not name or name.startswith(("AWS.", "Amazon.")) or len(name) > 256:
            found.append(f"attribute name {name!r}")
        if value.get("DataType") == "String" and not value.get("StringValue"):
            found.append(f"message attribute {name!r} must contain non-empty message attribute value")
    subject = params.get("Subject")
    if subject is not None and (not subject or len(subject) >= 100 or not subject.isascii()):
        found.append(f"subject {subject!r}")
    size = len(params.get("Message", "").encode()) + sum(
        len(n.encode()) + len(v.get("StringValue", "").encode()) + len(v["DataType"].encode())
        for n, v in attributes.items()
    )
    if not params.get("Message") or size > MAX_MESSAGE_BYTES:
        found.append(f"message of {size} bytes")
    return found


@dataclass
class CheckedSns:
    """An SNS client whose every Publish is recorded and checked as AWS would check it."""

    client: Any
    published: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client.meta.events.register("before-parameter-build.sns.Publish", self._check)

    def _check(self, params: dict[str, Any], **_: Any) -> None:
        self.published.append(params)
        self.refused += sns_violations(params)


@dataclass
class Stand:
    endpoint: str
    sns: CheckedSns
    sqs: Any
    events: Any
    securityhub: Any
    text_topic: str
    chat_topic: str
    queues: dict[str, str]

    def drained(self, name: str) -> list[dict[str, Any]]:
        queue, bodies = self.queues[name], []
        while messages := self.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages"):
            for message in messages:
                bodies.append(message)
                self.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return bodies


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, **CREDENTIALS)  # type: ignore[call-overload]


@pytest.fixture
def stand() -> Iterator[Stand]:
    with moto_server() as endpoint:
        sqs, sns, events = (_client(endpoint, s) for s in ("sqs", "sns", "events"))
        queues: dict[str, str] = {}
        arns: dict[str, str] = {}
        for name in ("text", "chat", "events"):
            queues[name] = sqs.create_queue(QueueName=name)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=queues[name], AttributeNames=["QueueArn"])
            arns[name] = attributes["Attributes"]["QueueArn"]
        topics = {
            name: stands_for(logical_id, sns.create_topic(Name=f"grantwatch-{name}")["TopicArn"])
            for name, logical_id in (("text", "AlertTopic"), ("chat", "AlertChatTopic"))
        }
        for name, topic in topics.items():
            sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arns[name],
                Attributes={"RawMessageDelivery": "true"},
            )
        events.create_event_bus(Name=BUS)
        events.put_rule(Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": ["grantwatch"]}))
        events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arns["events"]}])
        yield Stand(
            endpoint,
            CheckedSns(sns),
            sqs,
            events,
            _client(endpoint, "securityhub"),
            topics["text"],
            topics["chat"],
            queues,
        )


def one_of_each() -> dict[NoticeType, Notice]:
    """One notice of every type the channels know (NoticeType): a type added without a sample fails."""
    samples = {notice_type(n): n for n in NOTICES.values()}
    samples[NoticeType.TRIAL] = trial_notice(
        datetime(2026, 11, 30, 12, tzinfo=UTC), account=ACCOUNT, region=REGION
    )
    return {kind: samples[kind] for kind in NoticeType}


def test_every_kind_of_notice_is_accepted_by_every_channel_as_aws_documents_it(stand: Stand) -> None:
    notices = one_of_each()
    assert {n.kind for n in notices.values()} == set(NoticeKind)
    text = SnsNotifier(stand.text_topic, stand.sns.client)
    chat = ChatTopic(stand.chat_topic, stand.sns.client)
    bus = EventBus(BUS, stand.events)
    hub = SecurityHub(product_arn(REGION, ACCOUNT), stand.securityhub)
    for notice in notices.values():
        for channel in (text, chat, bus, hub):
            channel.publish(notice)

    assert stand.sns.refused == []
    assert len(stand.sns.published) == 2 * len(notices)
    # the queue (raw delivery) receives the `sqs` message: the notice's details as JSON
    texts = {m["Body"]: m.get("MessageAttributes", {}) for m in stand.drained("text")}
    for kind, notice in notices.items():
        body = machine_message(notice)
        assert json.loads(body) == json.loads(json.dumps(notice.details)), kind
        attributes = {n: v["StringValue"] for n, v in texts[body].items()}
        # what machines filter and act on: the type, and the notice's id to deduplicate or thread on
        assert attributes["incidentId"] == notice.incident_id != "", kind
        assert attributes["alertType"] and attributes["severity"], kind
    # the chat topic's one reader, Amazon Q Developer, reads the card as the message: no per-protocol JSON
    to_chat = [p for p in stand.sns.published if p["TopicArn"] == stand.chat_topic]
    assert len(to_chat) == len(notices) and not [p for p in to_chat if "MessageStructure" in p]
    cards = [json.loads(m["Body"]) for m in stand.drained("chat")]
    assert sorted(c["metadata"]["threadId"] for c in cards) == sorted(n.incident_id for n in notices.values())
    assert not [e for c in cards for e in schema("chat-notification").iter_errors(c)]
    events = [json.loads(m["Body"]) for m in stand.drained("events")]
    assert sorted(e["detail-type"] for e in events) == sorted(DETAIL_TYPES[k] for k in notices)
    assert sorted(json.dumps(e["detail"], sort_keys=True) for e in events) == sorted(
        json.dumps(event_detail(n), sort_keys=True) for n in notices.values()
    )
    assert not [e for v in events for e in schema("event-detail").iter_errors(v["detail"])]
    findings = stand.securityhub.get_findings()["Findings"]
    incidents = {n.incident_id for n in notices.values() if is_incident(n)}
    assert {f["ProductFields"]["grantwatch/incidentId"] for f in findings} == incidents


@dataclass
class Listed:
    accounts: list[str]

    def active_accounts(self) -> list[str]:
        return self.accounts


@dataclass
class Queued:
    sent: list[Target] = field(default_factory=list)

    def send(self, queued: Sequence[Target]) -> list[Target]:
        self.sent += queued
        return []


@dataclass
class Known:
    coverage: list[Coverage]

    def all(self, account: str | None = None) -> list[Coverage]:
        return self.coverage


def test_the_organization_fan_out_delivers_its_notice_about_account_regions_not_reconciled(
    stand: Stand,
) -> None:
    """The fan-out's one notice, about accounts it cannot reach, published as the fan-out function does."""
    fan_out = OrganizationFanOut(
        accounts=Listed([LATE.account]),
        regions=[LATE.region],
        queue=Queued(),
        coverage=Known([late_coverage()]),
        notifier=SnsNotifier(stand.text_topic, stand.sns.client),
        interval=timedelta(hours=1),
    )
    result = fan_out.run(datetime(2026, 11, 1, 13, tzinfo=UTC))
    assert result["stale"] == [LATE.as_json()]
    assert stand.sns.refused == []
    (arrived,) = stand.drained("text")
    attributes = {n: v["StringValue"] for n, v in arrived["MessageAttributes"].items()}
    assert attributes["alertType"] == "reconciliation-stale" and attributes["severity"] == "warning"
    assert json.loads(arrived["Body"])["targets"] == [LATE.as_json()]
    email = json.loads(stand.sns.published[-1]["Message"])["email"]
    assert f"{LATE.account} {LATE.region}: last reconciled never" in email


def test_the_rules_refuse_what_sns_refuses() -> None:
    """The check fails a request SNS answers with InvalidParameterValue."""
    good = {
        "TopicArn": "t",
        "Message": "m",
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "x"}},
    }
    assert sns_violations(good) == []
    empty = good | {"MessageAttributes": {"incidentId": {"DataType": "String", "StringValue": ""}}}
    assert sns_violations(empty) == [
        "message attribute 'incidentId' must contain non-empty message attribute value"
    ]
    many = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(11)}
    assert sns_violations(good | {"MessageAttributes": many}) == ["11 message attributes (at most 10)"]
    assert sns_violations(good | {"Subject": "x" * 100}) == [f"subject {'x' * 100!r}"]


# --- one channel failing: the others are sent once, the failing one is retried, then given up on ---------


class RawBody:
    """An HTTP body as urllib3 hands it to botocore."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def aws_answers(
    client: Any, operation: str, status: int, body: dict[str, Any], times: int | None
) -> list[int]:
    """`client`'s `operation` answered by AWS's own bytes (`times` times, or always), parsed and raised by
    botocore as it would parse AWS's answer. Returns the list of calls made, answered or not."""
    calls: list[int] = []
    error_type = body.get("__type", "")

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        calls.append(len(calls) + 1)
        if times is not None and len(calls) > times:
            return None
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/json"
        if error_type:
            headers["x-amzn-ErrorType"] = error_type
        return AWSResponse(request.url, status, headers, RawBody(json.dumps(body).encode()))

    client.meta.events.register(
        f"before-send.{client.meta.service_model.endpoint_prefix}.{operation}", answer
    )
    return calls


@dataclass
class Counted:
    """The DeliveryMonitor as the handlers' metrics see it."""

    failed_: list[tuple[str, str]] = field(default_factory=list)
    gave_up_: list[tuple[str, str]] = field(default_factory=list)

    def failed(self, channel: str, reason: str) -> None:
        self.failed_.append((channel, reason))

    def gave_up(self, channel: str, reason: str) -> None:
        self.gave_up_.append((channel, reason))


def _channels(stand: Stand, hub: Any) -> FanOut:
    return FanOut(
        [
            ("sns", SnsNotifier(stand.text_topic, stand.sns.client)),
            ("chat", ChatTopic(stand.chat_topic, stand.sns.client)),
            ("events", EventBus(BUS, stand.events)),
            ("securityhub", SecurityHub(product_arn(REGION, ACCOUNT), hub)),
        ]
    )


def _published(stand: Stand, topic: str) -> int:
    return sum(p["TopicArn"] == topic for p in stand.sns.published)


STORY = [
    update_function("billing", "2026-11-01T09:00:00Z"),
    create_grant("billing", "g1", "2026-11-01T09:00:01Z"),
    retire_grant("g1", "2026-11-01T10:00:00Z"),
]
LATER = datetime(2026, 11, 1, 11, tzinfo=UTC)

# Security Hub's answer in a region where it is not enabled (HTTP 401, its REST-JSON error shape).
NOT_SUBSCRIBED = {
    "__type": "InvalidAccessException",
    "Code": "InvalidAccessException",
    "Message": f"Account {ACCOUNT} is not subscribed to AWS Security Hub",
}


def _retried(pipeline: LocalPipeline, function: str, until: int) -> tuple[int, list[Notice]]:
    """The queue's retries of a failed evaluation: (failed receives, notices of the one that succeeded)."""
    for received in range(1, until + 1):
        try:
            return received - 1, pipeline.evaluator.evaluate(function, LATER + timedelta(minutes=received))
        except NotDelivered:
            continue
    raise AssertionError(f"still not delivered after {until} retries")


def test_security_hub_not_enabled_costs_one_alert_per_channel_and_is_given_up_on_after_three_attempts(
    table_settings: Settings, stand: Stand, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = stand.securityhub
    refused = aws_answers(hub, "BatchImportFindings", 401, NOT_SUBSCRIBED, times=None)
    pipeline = local_pipeline(table_settings)
    monitor = ChannelMetrics(Metrics(service="grantwatch-evaluator"))
    counted = Counted()

    class Both:
        def failed(self, channel: str, reason: str) -> None:
            monitor.failed(channel, reason)
            counted.failed(channel, reason)

        def gave_up(self, channel: str, reason: str) -> None:
            monitor.gave_up(channel, reason)
            counted.gave_up(channel, reason)

    pipeline.evaluator.notifier = _channels(stand, hub)
    pipeline.evaluator.monitor = Both()
    with pytest.raises(NotDelivered, match=r"not delivered to securityhub: InvalidAccessException$"):
        replay(pipeline, STORY)
    failed_receives, (alert,) = _retried(pipeline, function_arn("billing"), until=4)
    assert failed_receives == MAX_CHANNEL_ATTEMPTS - 2  # the first receive was the replay's
    assert pipeline.evaluator.evaluate(function_arn("billing"), LATER + timedelta(hours=1)) == []  # sent

    assert len(refused) == MAX_CHANNEL_ATTEMPTS
    assert _published(stand, stand.text_topic) == 1 and _published(stand, stand.chat_topic) == 1
    assert len(stand.drained("text")) == len(stand.drained("chat")) == len(stand.drained("events")) == 1
    assert counted.failed_ == [("securityhub", "InvalidAccessException")] * MAX_CHANNEL_ATTEMPTS
    assert counted.gave_up_ == [("securityhub", "InvalidAccessException")]
    record = DynamoFunctionStore(table_settings).incident(function_arn("billing"), alert.incident_id)
    assert record is not None and record.notified
    states = DynamoFunctionStore(table_settings).deliveries(record.incident, resolved=False)
    assert {c for c, s in states.items() if s.delivered_at} == {"sns", "chat", "events"}
    hub_state = states["securityhub"]
    assert (hub_state.failures, hub_state.error, hub_state.delivered_at) == (
        3,
        "InvalidAccessException",
        None,
    )
    assert hub_state.gave_up_at is not None

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_channel = [m for m in emitted if m.get("Channel") == "securityhub" and "ChannelDeliveryFailed" in m]
    assert len(by_channel) == MAX_CHANNEL_ATTEMPTS
    (directive,) = by_channel[0]["_aws"]["CloudWatchMetrics"]
    assert sorted(directive["Dimensions"][0]) == ["Channel", "service"]


def test_events_refusing_one_entry_once_resends_only_the_event(
    table_settings: Settings, stand: Stand
) -> None:
    """PutEvents answers 200 with the entry it refused counted (FailedEntryCount, ErrorCode)."""
    refused = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
    }
    put = aws_answers(stand.events, "PutEvents", 200, refused, times=1)
    pipeline = local_pipeline(table_settings)
    pipeline.evaluator.notifier = _channels(stand, stand.securityhub)
    with pytest.raises(
        NotDelivered, match=r"not delivered to events: EventBridge refused .*ThrottlingException"
    ):
        replay(pipeline, STORY)
    assert stand.drained("events") == []
    (alert,) = pipeline.evaluator.evaluate(function_arn("billing"), LATER)  # the queue's retry
    assert len(put) == 2
    (event,) = (json.loads(m["Body"]) for m in stand.drained("events"))
    assert event["detail"]["incidentId"] == alert.incident_id
    assert _published(stand, stand.text_topic) == 1 and _published(stand, stand.chat_topic) == 1
    assert len(stand.securityhub.get_findings()["Findings"]) == 1


def test_a_key_policy_notice_retried_goes_only_to_the_channel_that_missed_it(
    table_settings: Settings, stand: Stand
) -> None:
    gone = {"__type": "ResourceNotFoundException", "message": f"Event bus {BUS} does not exist."}
    missed = aws_answers(stand.events, "PutEvents", 400, gone, times=1)  # the bus deleted, then re-created
    pipeline = local_pipeline(table_settings)
    pipeline.evaluator.notifier = _channels(stand, stand.securityhub)
    change = put_key_policy("2026-11-26T11:00:05Z")
    with pytest.raises(NotDelivered, match=r"not delivered to events: ResourceNotFoundException"):
        replay(pipeline, [create_grant("billing", "b1", "2026-11-01T10:00:00Z"), change])
    request = EvaluationRequest.about_key(
        KEY_ARN, change["detail"]["eventID"], "PutKeyPolicy", datetime(2026, 11, 26, 11, 0, 5, tzinfo=UTC)
    )
    (notice,) = pipeline.evaluator.run(request, LATER)  # the queue's retry
    assert pipeline.evaluator.run(request, LATER) == []  # and another: sent already
    assert notice.attributes["alertType"] == "key-policy-changed"
    assert len(missed) == 2 and len(stand.drained("events")) == 1
    assert _published(stand, stand.text_topic) == 1 and _published(stand, stand.chat_topic) == 1
