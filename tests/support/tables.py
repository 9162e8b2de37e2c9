"""Fresh tables on DynamoDB Local, each as template.yaml defines the table. The template is read once per
process, not once per table: reading it cost more than creating the table."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from grantwatch import local as local_dynamo
from grantwatch.adapters.store import new_table_layout
from grantwatch.settings import Settings
from grantwatch.template import create_table_request, table_properties
from tests.support.iam_contract import stands_for
from tests.support.samples import TEMPLATE
from tests.support.templates import load_template


@cache
def _request() -> dict[str, Any]:
    return create_table_request(table_properties(load_template(TEMPLATE)), "")


@cache
def _client(endpoint_url: str) -> Any:
    return local_dynamo.dynamodb_client(endpoint_url)


def new_table(endpoint_url: str, prefix: str, *, migrated: bool = True) -> Settings:
    """A new table; `migrated=False`: one as an earlier version left it, before `grantwatch migrate`."""
    settings = Settings(
        table_name=f"{prefix}-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint_url, region="us-east-1"
    )
    stands_for("GrantsTable", settings.table_name)  # the IAM contract checks calls to it as to the stack's
    client = _client(endpoint_url)
    created = client.create_table(**(_request() | {"TableName": settings.table_name}))
    if created["TableDescription"]["TableStatus"] != "ACTIVE":
        client.get_waiter("table_exists").wait(TableName=settings.table_name, WaiterConfig={"Delay": 0.2})
    if migrated:
        client.put_item(TableName=settings.table_name, Item=new_table_layout())
    return settings
