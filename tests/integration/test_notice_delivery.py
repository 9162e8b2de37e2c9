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

from grantwatch.adapters.channels import ChatTopic, EventBus, SecurityHub
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.domain.channels import (
    DETAIL_TYPES,
    NoticeType,
    event_detail,
    is_incident,
    notice_type,
    product_arn,
)
from grantwatch.domain.coverage import Coverage, Target
from grantwatch.domain.notices import Notice, NoticeKind, trial_notice
from grantwatch.fanout import OrganizationFanOut
from tests.support.channels import LATE, NOTICES, late_coverage, schema
from tests.support.moto_server import moto_server

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
        topics = {name: sns.create_topic(Name=f"grantwatch-{name}")["TopicArn"] for name in ("text", "chat")}
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
    texts = {m["Body"]: m.get("MessageAttributes", {}) for m in stand.drained("text")}
    for kind, notice in notices.items():
        attributes = {n: v["StringValue"] for n, v in texts[notice.message].items()}
        # what machines filter and act on: the type, and the notice's id to deduplicate or thread on
        assert attributes["incidentId"] == notice.incident_id != "", kind
        assert attributes["alertType"] and attributes["severity"], kind
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
    assert f"{LATE.account} {LATE.region}: last reconciled never" in arrived["Body"]


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
