"""SQS as it judges a message: its size limit and the characters it accepts."""

from __future__ import annotations

import json
import re
from typing import Any

SQS_MESSAGE_LIMIT = 256 * 1024
# The characters SQS accepts in a message body and in message attribute values.
_SQS_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class SqsRules:
    """Stands in for the SQS client: keeps each message, refusing what SQS and botocore would refuse."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        MessageAttributes: dict[str, Any] | None = None,
    ) -> None:
        size = len(MessageBody.encode("utf-8"))  # botocore encodes as UTF-8: a lone surrogate fails here
        for name, attribute in (MessageAttributes or {}).items():
            value = attribute["StringValue"]
            size += len(name.encode()) + len(value.encode("utf-8")) + len(attribute["DataType"])
            if not value or _SQS_INVALID.search(value):
                raise ValueError(f"InvalidParameterValue: message attribute {name}")
        if _SQS_INVALID.search(MessageBody):
            raise ValueError("InvalidMessageContents")
        if size > SQS_MESSAGE_LIMIT:
            raise ValueError(f"InvalidParameterValue: message of {size} bytes")
        self.messages.append(json.loads(MessageBody))
