"""Notices to people: the SNS topic subscribers read (email, chat, ticketing) and filter by attribute.

Each protocol gets what it reads (`MessageStructure: json`, one publish): e-mail the short text, the
protocols that programs read the notice's details as JSON, SMS one line. `default` is what a protocol
without its own key receives (a mobile push, `application`): the short text, as people read it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from grantwatch.adapters.clients import Clients, create_client
from grantwatch.domain.notices import Notice, json_block

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient

# SNS's largest message: the Message (with MessageStructure json, the whole JSON document, as sent) plus
# the message attributes' names, types and values, in UTF-8 bytes.
SNS_MESSAGE_BYTES = 262_144
# The protocols that programs read: each gets the notice's details as JSON (the same JSON as the "Details
# (JSON)" block of the full text). email-json delivers it inside SNS's JSON envelope, like sqs without raw
# delivery, lambda, http and https.
MACHINE_PROTOCOLS = ("email-json", "sqs", "lambda", "http", "https", "firehose")
# SNS splits an SMS and sends at most 1,600 bytes of it: SMS gets the subject and the command alone.
SMS_BYTES = 1_600


def machine_message(notice: Notice) -> str:
    """The notice's details as JSON for programs; ASCII, with no character a renderer reads as markup."""
    return json_block(notice.details, indent=None)


def sms_message(notice: Notice) -> str:
    text = f"{notice.subject}. {notice.command}" if notice.command else notice.subject
    return text.encode()[:SMS_BYTES].decode(errors="ignore")


def structured_message(notice: Notice, attributes_bytes: int = 0) -> str:
    """The Message of a `MessageStructure: json` publish. Should the JSON, in six copies, ever not fit in
    SNS's message size with the attributes, every program reads it from `default`, and people the short
    text from `email` (and SMS its line): one copy of each, never larger than the single text SNS received
    before."""
    text = notice.email or notice.message
    machine = machine_message(notice)
    per_protocol = {"default": text, "email": text, "sms": sms_message(notice)}
    document = json.dumps(per_protocol | dict.fromkeys(MACHINE_PROTOCOLS, machine))
    if len(document.encode()) + attributes_bytes <= SNS_MESSAGE_BYTES:
        return document
    return json.dumps({"default": machine, "email": text, "sms": per_protocol["sms"]})


def publish_request(topic_arn: str, notice: Notice) -> dict[str, Any]:
    """The exact SNS Publish parameters for a notice. Its attributes carry what machines act on
    (`alertType`, `incidentId`, `functionArn`: the remediation subscription filters and reads them); the
    subject and the e-mail are for people, the details for programs. SNS refuses an attribute whose value
    is empty (InvalidParameterValue): one with nothing to say is left out."""
    attributes = message_attributes({"incidentId": notice.incident_id} | notice.attributes)
    return {
        "TopicArn": topic_arn,
        "Subject": notice.subject,
        "Message": structured_message(notice, attributes_size(attributes)),
        "MessageStructure": "json",
        "MessageAttributes": attributes,
    }


def message_attributes(attributes: Mapping[str, str]) -> dict[str, Any]:
    """SNS message attributes: String values, the empty ones left out (SNS would refuse the message)."""
    return {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items() if value}


def attributes_size(attributes: Mapping[str, Any]) -> int:
    """What message attributes add to the message size: each name, data type and value, in UTF-8 bytes."""
    return sum(
        len(name.encode()) + len(a["DataType"].encode()) + len(a["StringValue"].encode())
        for name, a in attributes.items()
    )


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
