"""Binding the table's pynamodb models to the configured table and endpoint, at run time."""

from __future__ import annotations

from pynamodb.models import Model

from grantwatch.settings import Settings


def bind[M: Model](model: type[M], settings: Settings) -> type[M]:
    """A subclass of `model` pointed at the configured table, region and endpoint."""

    class Meta:
        table_name = settings.table_name
        region = settings.region
        host = settings.endpoint_url
        max_retry_attempts = 5
        connect_timeout_seconds = 3
        read_timeout_seconds = 10
        if settings.endpoint_is_local:
            aws_access_key_id = "local"
            aws_secret_access_key = "local"  # noqa: S105 - DynamoDB Local accepts any credentials

    return type(f"Bound{model.__name__}", (model,), {"Meta": Meta})
