"""Binding the table's pynamodb models to the configured table and endpoint, at run time."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from grantwatch.adapters.aws_errors import code_of, message_of
from grantwatch.settings import Settings


def bind[M: Model](model: type[M], settings: Settings) -> type[M]:
    """A subclass of `model` pointed at the configured table, region and endpoint."""

    class Meta:
        table_name = settings.table_name
        region = settings.region
        host = settings.endpoint_url
        max_retry_attempts = settings.dynamodb_retries
        connect_timeout_seconds = 3
        read_timeout_seconds = settings.dynamodb_read_timeout_seconds
        if settings.endpoint_is_local:
            aws_access_key_id = "local"
            aws_secret_access_key = "local"  # noqa: S105 - DynamoDB Local accepts any credentials

    return type(f"Bound{model.__name__}", (model,), {"Meta": Meta})


def error_code(error: PynamoDBException) -> str | None:
    """The error code DynamoDB answered with, or None when it did not answer (a timeout, a dropped
    connection). pynamodb's own `cause_response_code` raises AttributeError on a timeout, so that a stalled
    table crashed the caller instead of failing cleanly; no decision is ever taken on a missing answer."""
    cause = error.cause
    return code_of(cause) if isinstance(cause, ClientError) else None


def error_message(error: PynamoDBException) -> str | None:
    """The message DynamoDB answered with, or None when it did not answer."""
    cause = error.cause
    return message_of(cause) if isinstance(cause, ClientError) else None


def cancelled_by_a_condition(error: TransactWriteError) -> bool:
    """A transaction cancelled because a condition failed (not a conflict or throttling, which retry)."""
    reasons = error.cancellation_reasons if error_code(error) == "TransactionCanceledException" else []
    return any(reason is not None and reason.code == "ConditionalCheckFailed" for reason in reasons)


def newer_than_stored(at_attribute: Any, id_attribute: Any, at: str, event_id: str) -> Condition:
    """The stored change is missing, older, or as old with a smaller event id (a total order)."""
    condition: Condition = (
        at_attribute.does_not_exist()
        | (at_attribute < at)
        | ((at_attribute == at) & (id_attribute < event_id))
    )
    return condition


class Stamped(StrEnum):
    """What `settle_expiry` did to an item's expiresAt."""

    STAMPED = "stamped"  # it had none
    RESTAMPED = "restamped"  # it had one from another retention period


def settle_expiry(
    item: Model, attribute: Any, ended_at: datetime, settings: Settings, *, dry_run: bool
) -> Stamped | None:
    """Give an ended item the expiresAt of the current retention period (for `grantwatch migrate`): one
    if it has none, a new one if its own was stamped under another period (`Settings.expiry_is_current`).
    Each write is conditioned on the value read, so an item stamped meanwhile is left as it is. None:
    nothing to do. With `dry_run`, nothing is written."""
    now = datetime.now(UTC)
    expires = settings.expires_at(ended_at, now)
    if expires is None:
        return None
    stored = getattr(item, attribute.attr_name)
    if stored is not None and settings.expiry_is_current(ended_at, int(stored), now):
        return None
    if dry_run:
        return Stamped.STAMPED if stored is None else Stamped.RESTAMPED
    unchanged = attribute.does_not_exist() if stored is None else attribute == stored
    try:
        item.update(actions=[attribute.set(expires)], condition=unchanged)
    except UpdateError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return None
        raise
    return Stamped.STAMPED if stored is None else Stamped.RESTAMPED
