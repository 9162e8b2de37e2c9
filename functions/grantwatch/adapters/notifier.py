"""Notices to people: the SNS topic subscribers read (email, chat, ticketing) and filter by attribute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from grantwatch.adapters.clients import Clients, create_client
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
    """Without `client`, one from `clients` (boto3's without), created when the first notice is sent."""

    def __init__(
        self, topic_arn: str, client: SNSClient | None = None, *, clients: Clients | None = None
    ) -> None:
        self._client = client
        self._clients = clients
        self.topic_arn = topic_arn

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = create_client("sns", self._clients)
        return self._client

    def publish(self, notice: Notice) -> None:
        self.client.publish(**publish_request(self.topic_arn, notice))
