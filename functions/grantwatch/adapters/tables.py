"""Binding the table's pynamodb models to the configured table and endpoint, at run time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from weakref import WeakKeyDictionary

from botocore.exceptions import ClientError
from pynamodb.connection.table import TableConnection
from pynamodb.exceptions import PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from grantwatch.adapters.aws_errors import code_of, message_of
from grantwatch.adapters.clients import clients_for
from grantwatch.settings import Settings

CONNECT_TIMEOUT_SECONDS = 3
# The one client's connection pool. pynamodb's default is 10 a client, and each model had a client: the
# shared one keeps room for a replay's workers (8 by default, more with --workers) on every model at once.
POOL_CONNECTIONS = 32


def bind[M: Model](model: type[M], settings: Settings) -> type[M]:
    """A subclass of `model` pointed at the configured table, region and endpoint. Every model bound to
    the same settings sends its requests through one DynamoDB client (`dynamodb_client`), created when
    the first of them sends one; pynamodb alone would give each model a session and client of its own."""

    class Meta:
        table_name = settings.table_name
        region = settings.region
        host = settings.endpoint_url
        max_retry_attempts = settings.dynamodb_retries
        connect_timeout_seconds = CONNECT_TIMEOUT_SECONDS
        read_timeout_seconds = settings.dynamodb_read_timeout_seconds
        if settings.endpoint_is_local:
            aws_access_key_id = "local"
            aws_secret_access_key = "local"  # noqa: S105 - DynamoDB Local accepts any credentials

    shared = _shared_client(settings)

    def _get_connection(cls: type[M]) -> TableConnection:
        table: TableConnection = super(bound, cls)._get_connection()
        connection: Any = table.connection
        if connection._client is None:  # pynamodb creates its own on first use, else
            connection._client = shared.client()
        return table

    bound: Any = type(
        f"Bound{model.__name__}", (model,), {"Meta": Meta, "_get_connection": classmethod(_get_connection)}
    )
    return bound  # type: ignore[no-any-return]


class _SharedClient:
    """The DynamoDB client of the models bound to one Settings, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.options = _client_options(settings)
        self.clients = clients_for(settings)
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None or _lost_credentials(self._client):
                self._client = self.clients.client("dynamodb", **self.options)
            return self._client


_SHARED: WeakKeyDictionary[Settings, _SharedClient] = WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _shared_client(settings: Settings) -> _SharedClient:
    with _SHARED_LOCK:
        found = _SHARED.get(settings)
        if found is None:
            found = _SHARED[settings] = _SharedClient(settings)
        return found


def dynamodb_client(settings: Settings) -> Any:
    """The one DynamoDB client of the models bound to `settings` (created if none sent a request yet)."""
    return _shared_client(settings).client()


def _client_options(settings: Settings) -> dict[str, Any]:
    """The client pynamodb would create for a bound model's Meta (pynamodb.connection.base.Connection):
    the same region, endpoint, timeouts and standard retries, and DynamoDB Local's credentials; a pool
    for every model's requests."""
    from botocore.config import Config
    from pynamodb.settings import get_settings_value

    options: dict[str, Any] = {
        "region_name": settings.region,
        "endpoint_url": settings.endpoint_url,
        "config": Config(
            parameter_validation=False,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.dynamodb_read_timeout_seconds,
            max_pool_connections=max(POOL_CONNECTIONS, get_settings_value("max_pool_connections")),
            retries={"total_max_attempts": 1 + settings.dynamodb_retries, "mode": "standard"},
        ),
    }
    if settings.endpoint_is_local:
        options |= {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return options


def _lost_credentials(client: Any) -> bool:
    """A client created while no credentials could be found keeps none (botocore caches the miss):
    pynamodb replaces such a client, and so is this one replaced."""
    signer = client._request_signer
    return bool(signer and not signer._credentials)


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
