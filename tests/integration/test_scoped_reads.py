"""Reconciling one account and region reads only that account's and region's functions and keys from the
table: in an organization, hundreds of member account-regions share one table, and each worker must not
read the whole estate."""

from __future__ import annotations

from datetime import UTC, datetime

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


def test_one_account_regions_functions_and_keys_are_one_range_of_the_index(table_settings: Settings) -> None:
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

    found = sorted(state.function_arn for state in functions.functions_in("111122223333", "eu-west-1"))
    assert found == [_function("111122223333", "eu-west-1", n) for n in ("billing", "reports")]
    assert list(hazards.keys_in("111122223333", "eu-west-1")) == [_key("111122223333", "eu-west-1", 0)]
    assert list(hazards.keys_in("444455556666", "us-east-1")) == []
    # the prefix is exact: one account's id is never read as the start of another's
    assert list(functions.functions_in("11112222333", "eu-west-1")) == []
