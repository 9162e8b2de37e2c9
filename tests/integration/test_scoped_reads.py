"""Reconciling one account and region reads only that account's and region's functions and keys from the
table: in an organization, hundreds of member account-regions share one table, and each worker must not
read the whole estate."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.domain.facts import Actor
from grantwatch.domain.functions import FunctionChange, FunctionFact
from grantwatch.domain.hazards import KeyChange, KeyFact
from grantwatch.settings import Settings

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)
PLACES = [("111122223333", "eu-west-1"), ("111122223333", "us-east-1"), ("444455556666", "eu-west-1")]
ADMIN = Actor(principal="arn:aws:sts::111122223333:assumed-role/admin/dana", identity_type=None, via=None)


def _function(account: str, region: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def _key(account: str, region: str, number: int) -> str:
    return f"arn:aws:kms:{region}:{account}:key/0000000{number}-aaaa-4bbb-8ccc-000000000000"


@dataclass
class Reads:
    """The reads the stores' clients sent: each request's operation and parameters, and how many items
    DynamoDB read (ScannedCount) to answer them."""

    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    scanned: int = 0

    def sent(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.requests.append((model.name, dict(params)))

    def answered(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.scanned += int(parsed.get("ScannedCount", parsed.get("Count", 0)))

    def prefixes(self) -> list[str]:
        """The sort-key prefix of each request's key condition (begins_with on the index's range key)."""
        found = []
        for operation, params in self.requests:
            assert operation == "Query", f"{operation}: a read of more than one range"
            expression = params["KeyConditionExpression"]
            prefix = re.search(r"begins_with\s*\(\s*#\w+\s*,\s*(:\w+)\s*\)", expression)
            assert prefix, f"{expression}: no range of the index's sort key"
            value = params["ExpressionAttributeValues"][prefix.group(1)]
            found.append(value["S"])
        return found


def _watch(reads: Reads, *stores: Any) -> None:
    """Watch the clients the models send through: one, when they are bound to the same settings."""
    clients = {id(client): client for client in (m._get_connection().connection.client for m in stores)}
    for client in clients.values():
        client.meta.events.register("provide-client-params.dynamodb.*", reads.sent)
        client.meta.events.register("after-call.dynamodb.*", reads.answered)


def test_one_account_regions_functions_and_keys_are_one_range_of_the_index(table_settings: Settings) -> None:
    reads = Reads()
    functions = DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    for number, (account, region) in enumerate(PLACES):
        for name in ("billing", "reports"):
            functions.record(
                FunctionFact(
                    FunctionChange.CONFIGURED,
                    _function(account, region, name),
                    f"e-{number}-{name}",
                    AT,
                    "UpdateFunctionConfiguration20150331v2",
                    ADMIN.principal,
                )
            )
        hazards.record_key(
            KeyFact(KeyChange.DISABLED, _key(account, region, number), f"k-{number}", AT, "DisableKey", ADMIN)
        )

    _watch(reads, functions.functions, hazards.keys)
    found = sorted(state.function_arn for state in functions.functions_in("111122223333", "eu-west-1"))
    assert found == [_function("111122223333", "eu-west-1", n) for n in ("billing", "reports")]
    assert list(hazards.keys_in("111122223333", "eu-west-1")) == [_key("111122223333", "eu-west-1", 0)]
    # Read as two ranges of by-entity, each of that account-region only: DynamoDB read just the three items
    # answered, not the other account-regions' four functions and two keys.
    assert all(params.get("IndexName") == "by-entity" for _, params in reads.requests), reads.requests
    assert reads.prefixes() == [
        "FUNCTION#arn:aws:lambda:eu-west-1:111122223333:function:",
        "KEY#arn:aws:kms:eu-west-1:111122223333:key/",
    ]
    assert reads.scanned == 3
    assert list(hazards.keys_in("444455556666", "us-east-1")) == []
    # the prefix is exact: one account's id is never read as the start of another's
    assert list(functions.functions_in("11112222333", "eu-west-1")) == []
