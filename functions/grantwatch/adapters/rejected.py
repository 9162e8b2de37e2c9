"""Where rejected events go: the recorder's dead-letter queue, beside the events Lambda gave up on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

# SQS takes 256 KiB a message; keep room for the envelope around the event. The JSON is ASCII, so
# characters are bytes.
_MAX_EVENT_BYTES = 200_000
REDACTED = "[redacted]"


# Keys whose values could be secrets: grant and session tokens, credentials, and a Lambda function's
# environment variables (CloudTrail hides their values, but a malformed event may be anything).
_SECRET_SUFFIXES = ("token", "tokens", "accesskeyid", "secretaccesskey", "password", "secret", "credentials")
_SECRET_KEYS = frozenset({"variables"})


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and (key.lower().endswith(_SECRET_SUFFIXES) or key.lower() in _SECRET_KEYS)


def redact(value: object) -> object:
    """The event without anything that could be a secret: tokens, credentials, environment variables."""
    if isinstance(value, dict):
        return {key: REDACTED if _is_secret(key) else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def rejection_message(event: object, *, event_id: str | None, error: str) -> str:
    """The message an operator reads: what was wrong, which event, and the event (truncated if huge)."""
    safe_event = redact(event)
    body = json.dumps(safe_event, default=str)
    payload: dict[str, Any] = {"grantwatch": "rejected-event", "eventID": event_id, "error": error}
    if len(body) > _MAX_EVENT_BYTES:
        payload |= {"eventTruncated": True, "eventPrefix": body[:_MAX_EVENT_BYTES]}
    else:
        payload["event"] = safe_event
    return json.dumps(payload, default=str)


class SqsRejectedEventSink:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        if client is None:
            import boto3  # only once an event is rejected: boto3 is not needed on the recorder's normal path

            client = boto3.client("sqs")
        self.client: SQSClient = client

    def send(self, event: object, *, event_id: str | None, error: str) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=rejection_message(event, event_id=event_id, error=error),
            MessageAttributes={
                "grantwatch-error": {"DataType": "String", "StringValue": error[:1000] or "rejected"}
            },
        )
