"""What an AWS service answered when it refused a call: its error code and message, read from the answer
itself (never guessed from text), one line that describes it without a traceback, and the port's
`ServiceError` the adapters raise in its place."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.ports import ServiceError


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


def service_error(error: ClientError | BotoCoreError) -> ServiceError:
    """The port's error for a botocore one: its one-line description, and whether the call may have been
    applied all the same (no answer, a server error, or an answer to a retry (botocore's RetryAttempts),
    whose earlier attempt may have been applied)."""
    return ServiceError(describe(error), uncertain=_uncertain(error))


def _uncertain(error: ClientError | BotoCoreError) -> bool:
    if not isinstance(error, ClientError):
        return True
    metadata = error.response.get("ResponseMetadata", {})
    return int(metadata.get("RetryAttempts") or 0) > 0 or int(metadata.get("HTTPStatusCode") or 0) >= 500
