"""The list commands through the CLI against DynamoDB Local: one aligned row per item, --sort, --long."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import app
from grantwatch.pipeline import LocalPipeline
from grantwatch.settings import Settings
from tests.support.scenarios import create_grant, delete_function, retire_grant, update_function

runner = CliRunner()


@pytest.fixture
def where(table_settings: Settings) -> list[str]:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    pipeline = LocalPipeline(grants, functions, DynamoHazardStore(table_settings))
    for event in [
        create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
        retire_grant("b1", "2026-11-03T10:00:00Z"),
        create_grant("billing", "b2", "2026-11-05T10:00:00Z"),
        update_function("payroll", "2026-11-02T09:00:00Z"),
        create_grant("payroll", "p1", "2026-11-02T09:00:01Z"),
        create_grant("reports", "r1", "2026-11-04T08:00:00Z"),
        retire_grant("r1", "2026-11-06T08:00:00Z"),
        create_grant("legacy", "l1", "2026-10-01T08:00:00Z"),
        delete_function("legacy", "2026-11-07T08:00:00Z"),
        retire_grant("l1", "2026-11-07T08:00:05Z", by_lambda=True),
    ]:
        pipeline.feed(event)
    pipeline.drain()
    return ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]


def cli(where: list[str], *args: str) -> Any:
    return runner.invoke(app, [*args, *where])


def test_explore(where: list[str]) -> None:
    for args in (
        ["functions"],
        ["functions", "--long"],
        ["grants"],
        ["grants", "--long"],
        ["incidents"],
        ["incidents", "--long"],
    ):
        result = cli(where, *args)
        print("$", *args, result.exit_code)
        print(result.output)
