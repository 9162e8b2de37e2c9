"""Each notice published with `MessageStructure: json` to moto's SNS server (on loopback), and read back as an
SQS subscriber receives it, with raw message delivery and without (SNS's JSON envelope); a structured
message SNS refuses, answered in AWS's error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from grantwatch.adapters.channels import FanOut
from grantwatch.adapters.notifier import SnsNotifier, machine_message, publish_request
from grantwatch.domain.notices import Notice, trial_notice
from tests.support.channels import NOTICES
from tests.support.iam_contract import stands_for
from tests.support.moto_server import moto_server

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
KINDS: dict[str, Notice] = dict(NOTICES) | {
    "test": trial_notice(datetime(2026, 11, 30, 12, tzinfo=UTC), account="123456789012", region=REGION)
}


@dataclass
class Subscribed:
    sns: Any
    sqs: Any
    topic: str
    queues: dict[str, str]  # "raw" and "enveloped"

    def received(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.queues[name], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages"):
            found += messages
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queues[name], ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def subscribed() -> Iterator[Subscribed]:
    with moto_server() as endpoint:
        sns = boto3.client("sns", endpoint_url=endpoint, **CREDENTIALS)  # type: ignore[call-overload]
        sqs = boto3.client("sqs", endpoint_url=endpoint, **CREDENTIALS)  # type: ignore[call-overload]
        topic = stands_for("AlertTopic", sns.create_topic(Name="grantwatch-alerts")["TopicArn"])
        queues = {}
        for name, raw in (("raw", "true"), ("enveloped", "false")):
            queues[name] = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queues[name], AttributeNames=["QueueArn"])
            sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arn["Attributes"]["QueueArn"],
                Attributes={"RawMessageDelivery": raw},
            )
        yield Subscribed(sns, sqs, topic, queues)


def test_an_sqs_subscriber_receives_each_notice_as_its_details_json_raw_or_enveloped(
    subscribed: Subscribed,
) -> None:
    accepted: list[str] = []
    subscribed.sns.meta.events.register(
        "after-call.sns.Publish", lambda parsed, **_: accepted.append(parsed["MessageId"])
    )
    notifier = SnsNotifier(subscribed.topic, subscribed.sns)
    for notice in KINDS.values():
        notifier.publish(notice)
    assert len(accepted) == len(KINDS) and all(accepted)  # moto took every structured publish

    raw = {m["Body"]: m for m in subscribed.received("raw")}
    enveloped = [json.loads(m["Body"]) for m in subscribed.received("enveloped")]
    assert len(raw) == len(enveloped) == len(KINDS)
    by_message = {e["Message"]: e for e in enveloped}
    for kind, notice in KINDS.items():
        body = machine_message(notice)
        assert json.loads(body) == json.loads(json.dumps(notice.details)), kind
        # raw delivery: the `sqs` message is the body, the attributes are the SQS message's
        attributes = {n: a["StringValue"] for n, a in raw[body]["MessageAttributes"].items()}
        assert attributes["incidentId"] == notice.incident_id and attributes["alertType"], kind
        # without it: SNS's envelope, with the subject, around the same message
        envelope = by_message[body]
        assert (envelope["Type"], envelope["Subject"]) == ("Notification", notice.subject), kind
        assert envelope["MessageAttributes"]["incidentId"] == {"Type": "String", "Value": notice.incident_id}
        assert "What happened" not in envelope["Message"]  # the e-mail's text goes to e-mail only


@pytest.mark.exceeds_aws_limits("sends a structured message without `default`, which SNS refuses")
def test_a_structured_message_without_default_is_refused_as_invalid_parameter(subscribed: Subscribed) -> None:
    with pytest.raises(ClientError) as refused:
        subscribed.sns.publish(
            TopicArn=subscribed.topic, Message=json.dumps({"email": "text"}), MessageStructure="json"
        )
    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidParameter", 400)
    assert subscribed.received("raw") == [] and subscribed.received("enveloped") == []


@pytest.mark.exceeds_aws_limits("a structured message SNS refuses, answered by the stub")
def test_snss_refusal_in_its_own_shape_fails_the_sns_channel_by_its_code() -> None:
    """SNS answers a structured message without `default` with 400 InvalidParameter and says why; the
    channel reports the code, never the notice's content."""
    client = boto3.client("sns", **CREDENTIALS)  # type: ignore[call-overload]
    topic = "arn:aws:sns:us-east-1:123456789012:grantwatch-alerts"
    notice = NOTICES["resolved"]
    with Stubber(client) as stub:
        stub.add_client_error(
            "publish",
            service_error_code="InvalidParameter",
            service_message="Invalid parameter: Message Structure - No default entry in JSON message body",
            http_status_code=400,
            expected_params=publish_request(topic, notice) | {"Message": json.dumps({"email": "text"})},
        )
        stub.add_client_error(
            "publish",
            service_error_code="InvalidParameter",
            service_message="Invalid parameter: Message Structure - JSON message body failed to parse",
            http_status_code=400,
        )
        with pytest.raises(ClientError) as refused:
            client.publish(**publish_request(topic, notice) | {"Message": json.dumps({"email": "text"})})
        assert refused.value.response["Error"]["Code"] == "InvalidParameter"
        assert "No default entry" in refused.value.response["Error"]["Message"]
        delivery = FanOut([("sns", SnsNotifier(topic, client))]).deliver(notice)
        stub.assert_no_pending_responses()
    assert delivery.delivered == frozenset() and delivery.failed == {"sns": "InvalidParameter"}
