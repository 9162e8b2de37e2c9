"""The evaluation's one BatchGetItem as DynamoDB answers it under load: keys it leaves unprocessed are asked
again after a backoff, and an evaluation that still cannot read them fails (to be retried) rather than
deciding on half of what it needs."""

from __future__ import annotations

from typing import Any

import pytest
from pynamodb.connection.table import TableConnection

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.snapshot import UNPROCESSED_ROUNDS, DynamoSnapshotReader
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.ports import ServiceError
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.scenarios import create_grant, function_arn, replay

BILLING = function_arn("billing")


@pytest.fixture
def reader(table_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> DynamoSnapshotReader:
    replay(
        local_pipeline(table_settings),
        [create_grant("billing", f"b{n}", f"2026-11-01T10:0{n}:00Z") for n in range(3)],
    )
    monkeypatch.setattr("grantwatch.adapters.snapshot.time.sleep", lambda seconds: None)
    grants = DynamoGrantStore(table_settings)
    return DynamoSnapshotReader(
        grants, DynamoFunctionStore(table_settings), DynamoHazardStore(table_settings)
    )


def leaving_unprocessed(monkeypatch: pytest.MonkeyPatch, rounds: int) -> list[int]:
    """BatchGetItem answers as DynamoDB does when throttled: the first `rounds` answers hold back all but
    one key, in UnprocessedKeys. The number of keys asked each time."""
    real = TableConnection.batch_get_item
    asked: list[int] = []

    def answer(self: TableConnection, keys: Any, **options: Any) -> Any:
        asked.append(len(keys))
        if len(asked) > rounds or len(keys) == 1:
            return real(self, keys, **options)
        found = real(self, keys[:1], **options)
        found["UnprocessedKeys"] = {self.table_name: {"Keys": list(keys[1:]), "ConsistentRead": True}}
        return found

    monkeypatch.setattr(TableConnection, "batch_get_item", answer)
    return asked


def test_unprocessed_keys_are_asked_again_until_every_grant_is_read(
    reader: DynamoSnapshotReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = leaving_unprocessed(monkeypatch, rounds=2)
    read = reader.snapshot(BILLING)
    assert len(read.grants) == 3 and asked[0] > asked[1] > asked[2]


def test_keys_still_unprocessed_after_the_last_round_fail_the_evaluation(
    reader: DynamoSnapshotReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(self: TableConnection, keys: Any, **options: Any) -> Any:
        unprocessed = {"Keys": list(keys), "ConsistentRead": True}
        return {"Responses": {self.table_name: []}, "UnprocessedKeys": {self.table_name: unprocessed}}

    monkeypatch.setattr(TableConnection, "batch_get_item", never)
    with pytest.raises(ServiceError, match=f"after {UNPROCESSED_ROUNDS} rounds"):
        reader.snapshot(BILLING)
