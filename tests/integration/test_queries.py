"""The CLI's queries answer from keys and indexes only: functions, incidents, lineage."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.backfill import parse_moment
from grantwatch.cli import app
from grantwatch.pipeline import LocalPipeline
from grantwatch.queries import function_rows, incident_rows, lineage_rows
from grantwatch.settings import Settings
from tests.support.samples import KEY_ARN
from tests.support.scenarios import four_functions_story, function_arn

runner = CliRunner()
Stores = tuple[DynamoGrantStore, DynamoFunctionStore, DynamoHazardStore]


@pytest.fixture
def stores(table_settings: Settings) -> Stores:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    pipeline = LocalPipeline(grants, functions, hazards)
    for event in four_functions_story():
        pipeline.feed(event)
    pipeline.drain()
    return grants, functions, hazards


@pytest.fixture
def operations(stores: Stores) -> Counter[str]:
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    grants, functions, hazards = stores
    for bound in (grants.model, functions.functions, functions.incidents, hazards.keys, hazards.roles):
        bound._get_connection().connection.client.meta.events.register(
            "provide-client-params.dynamodb.*", count
        )
    return counted


def test_functions_lists_every_known_function_with_its_state(
    stores: Stores, operations: Counter[str]
) -> None:
    rows = {row["functionName"]: row for row in function_rows(*stores, at_risk=False)}
    assert set(rows) == {"billing", "payroll", "reports", "legacy"}  # known from grants alone, or from Lambda
    assert (rows["billing"]["verdict"], rows["billing"]["openIncidentId"]) == ("safe", None)
    assert rows["reports"]["verdict"] == "at-risk" and rows["reports"]["openIncidentId"]
    assert "/payroll-role" in rows["payroll"]["executionRole"]
    assert rows["payroll"]["grants"] == {"active": 1, "dead": 0, "ended": 0}
    assert rows["legacy"]["deleted"] is True
    assert [r["functionName"] for r in function_rows(*stores, at_risk=True)] == ["reports"]
    assert set(operations) <= {"Query", "GetItem", "BatchGetItem"}


def test_incidents_newest_first_and_open_only(stores: Stores, operations: Counter[str]) -> None:
    rows = incident_rows(stores[1], open_only=False)
    assert [(r["functionArn"].rsplit(":", 1)[-1], r["status"]) for r in rows] == [
        ("reports", "open"),
        ("billing", "resolved"),
    ]
    assert rows[1]["resolvedByGrantId"] and rows[1]["alertSentAt"]
    assert [r["status"] for r in incident_rows(stores[1], open_only=True)] == ["open"]
    assert set(operations) == {"Query"}


def test_lineage_of_a_function_and_of_a_key_within_a_window(stores: Stores, operations: Counter[str]) -> None:
    timeline = lineage_rows(*stores, function=function_arn("billing"))
    assert [row["what"] for row in timeline] == ["created", "retired", "alert", "created", "resolved"]
    window = lineage_rows(
        *stores,
        key=KEY_ARN,
        since=parse_moment("2026-11-04"),
        until=parse_moment("2026-11-05", end_of_day=True),
    )
    assert [(row["what"], row["functionArn"].rsplit(":", 1)[-1]) for row in window] == [
        ("created", "reports"),
        ("created", "billing"),
        ("resolved", "billing"),
    ]
    assert set(operations) <= {"Query", "GetItem", "BatchGetItem"}


def test_the_cli_queries(stores: Stores, table_settings: Settings) -> None:
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    functions = runner.invoke(app, ["functions", "--at-risk", "--json", *where])
    assert functions.exit_code == 0, functions.output
    assert [f["functionName"] for f in json.loads(functions.stdout)] == ["reports"]
    assert len(json.loads(runner.invoke(app, ["incidents", "--open", "--json", *where]).stdout)) == 1
    timeline = runner.invoke(app, ["lineage", "--function", function_arn("billing"), "--json", *where])
    assert len(json.loads(timeline.stdout)) == 5
    people = runner.invoke(app, ["functions", *where])
    assert people.exit_code == 0
    assert [line.split()[:2] for line in people.stdout.splitlines()[2:]] == [
        ["billing", "safe"],
        ["legacy", "not-applicable"],
        ["payroll", "safe"],
        ["reports", "at-risk"],
    ]
    assert "reports  AT-RISK" in runner.invoke(app, ["functions", "--long", *where]).stdout
    assert runner.invoke(app, ["lineage", *where]).exit_code == 2
    assert runner.invoke(app, ["lineage", "--key", KEY_ARN, "--since", "yesterday", *where]).exit_code == 2
