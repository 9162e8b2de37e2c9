"""Notices to people: the SNS topic subscribers read (email, chat, ticketing) and filter by attribute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from grantwatch.domain.notices import Notice

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient


def publish_request(topic_arn: str, notice: Notice) -> dict[str, Any]:
    """The exact SNS Publish parameters for a notice. Its attributes carry what machines act on
    (`alertType`, `incidentId`, `functionArn`: the remediation subscription filters and reads them); the
    subject and message are for people. SNS refuses an attribute whose value is empty
    (InvalidParameterValue): one with nothing to say is left out."""
    return {
        "TopicArn": topic_arn,
        "Subject": notice.subject,
        "Message": notice.message,
        "MessageAttributes": message_attributes({"incidentId": notice.incident_id} | notice.attributes),
    }


def message_attributes(attributes: Mapping[str, str]) -> dict[str, Any]:
    """SNS message attributes: String values, the empty ones left out (SNS would refuse the message)."""
    return {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items() if value}


class SnsNotifier:
    def __init__(self, topic_arn: str, client: SNSClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sns")
        self.client: SNSClient = client
        self.topic_arn = topic_arn

    def publish(self, notice: Notice) -> None:
        self.client.publish(**publish_request(self.topic_arn, notice))
