"""What an AWS service answered when it refused a call: its error code and message, read from the answer
itself (never guessed from text), and one line that describes it without a traceback."""

from __future__ import annotations

from botocore.exceptions import ClientError


def code_of(error: ClientError) -> str | None:
    code: str | None = error.response.get("Error", {}).get("Code")
    return code


def message_of(error: ClientError) -> str | None:
    message: str | None = error.response.get("Error", {}).get("Message")
    return message


def describe(error: Exception) -> str:
    """`Code: message` (the message cut to 200 characters) for a service's refusal, else the error's type."""
    if isinstance(error, ClientError):
        return f"{code_of(error) or 'error'}: {str(message_of(error) or '')[:200]}"
    return type(error).__name__
