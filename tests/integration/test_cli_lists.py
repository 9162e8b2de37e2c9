"""The list commands through the CLI against DynamoDB Local: one aligned row per item, --sort, --long."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.color import ColorSystem
from typer.testing import CliRunner

from grantwatch.adapters.accounts import DynamoCoverageStore
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import app, output
from grantwatch.cli.listing import FUNCTION_COLUMNS, GRANT_COLUMNS, INCIDENT_COLUMNS
from grantwatch.cli.organization import ACCOUNT_COLUMNS
from grantwatch.cli.table import Column
from grantwatch.domain.coverage import Coverage
from grantwatch.pipeline import LocalPipeline
from grantwatch.settings import Settings
from tests.support.cli_tables import cells, column_starts
from tests.support.samples import ROOT
from tests.support.scenarios import four_functions_story, update_function

runner = CliRunner()


@pytest.fixture
def where(table_settings: Settings) -> list[str]:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    pipeline = LocalPipeline(grants, functions, DynamoHazardStore(table_settings))
    for event in four_functions_story():
        pipeline.feed(event)
    pipeline.drain()
    return ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]


def cli(where: list[str], *args: str) -> Any:
    return runner.invoke(app, [*args, *where])


def table_of(stdout: str, noun: str, columns: tuple[Column, ...]) -> list[list[str]]:
    """The cells of each row, read at the offsets of the header's columns, after checking the count line
    and the header; every row must be one line."""
    count, header, *lines = stdout.splitlines()
    assert count == f"{len(lines)} {noun}"
    assert re.split(r"  +", header) == [c.header for c in columns]
    starts = column_starts(header)
    for line in lines:
        assert all(line[start - 2 : start] == "  " for start in starts[1:]), line  # a gap before each column
    return [cells(line, starts) for line in lines]


LISTS = [
    ("functions", "function(s)", FUNCTION_COLUMNS),
    ("grants", "grant(s)", GRANT_COLUMNS),
    ("incidents", "incident(s)", INCIDENT_COLUMNS),
]


@pytest.mark.parametrize(("command", "noun", "columns"), LISTS, ids=[c for c, _, _ in LISTS])
def test_a_list_is_one_aligned_row_per_item_with_short_arns(
    where: list[str], command: str, noun: str, columns: tuple[Column, ...]
) -> None:
    shown = cli(where, command)
    assert shown.exit_code == 0, shown.output
    rows = json.loads(cli(where, command, "--json").stdout)
    assert rows
    assert table_of(shown.stdout, noun, columns) == [[c.text(row) for c in columns] for row in rows]
    assert "arn:" not in shown.stdout


def test_the_rows_show_names_ids_and_counts_not_arns(where: list[str]) -> None:
    functions = table_of(cli(where, "functions").stdout, "function(s)", FUNCTION_COLUMNS)
    incident = json.loads(cli(where, "incidents", "--open", "--json").stdout)[0]["incidentId"]
    assert functions[-1] == [
        "reports",
        "at-risk",
        "no usable grant is left on its key",
        "5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
        "reports-role",
        "1 ended",
        incident,
    ]
    assert functions[1][:6] == ["legacy", "not-applicable", "the function was deleted", "-", "-", "1 ended"]
    grants = table_of(cli(where, "grants").stdout, "grant(s)", GRANT_COLUMNS)
    grant_ids = [g["grantId"] for g in json.loads(cli(where, "grants", "--json").stdout)]
    assert [row[-1] for row in grants] == grant_ids  # the full id, for `grantwatch history`
    assert grants[1][:6] == [
        "2026-11-04T08:00:00Z",
        "ended (retired)",
        "5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
        "reports-role",
        "lambda reports",
        "2026-11-06T08:00:00Z",
    ]


@pytest.mark.parametrize(
    ("command", "sort", "order"),
    [
        ("functions", None, ["billing", "legacy", "payroll", "reports"]),  # function ARN order
        ("functions", "name", ["billing", "legacy", "payroll", "reports"]),
        ("functions", "verdict", ["reports", "legacy", "billing", "payroll"]),  # at-risk first
        ("functions", "grants", ["legacy", "reports", "payroll", "billing"]),  # fewest active grants first
        ("functions", "incident", ["reports", "billing", "legacy", "payroll"]),  # no incident last
        ("grants", None, ["billing", "reports", "payroll", "billing", "legacy"]),  # newest first
        ("grants", "created", ["legacy", "billing", "payroll", "reports", "billing"]),
        ("grants", "ended", ["billing", "reports", "legacy", "billing", "payroll"]),  # active ones last
        ("grants", "status", ["billing", "payroll", "reports", "billing", "legacy"]),
        ("incidents", None, ["reports", "billing"]),  # newest first
        ("incidents", "function", ["billing", "reports"]),
        ("incidents", "resolved", ["billing", "reports"]),  # still open last
    ],
)
def test_sort_orders_the_table_the_blocks_and_the_json_alike(
    where: list[str], command: str, sort: str | None, order: list[str]
) -> None:
    options = ["--sort", sort] if sort else []
    as_json = json.loads(cli(where, command, *options, "--json").stdout)
    assert [row["functionArn"].rsplit(":", 1)[-1] for row in as_json] == order
    table = cli(where, command, *options).stdout.splitlines()[2:]
    name_column = {"functions": 0, "grants": 4, "incidents": 3}[command]
    named = [re.split(r"  +", line)[name_column].removeprefix("lambda ") for line in table]
    assert named == order
    blocks = cli(where, command, *options, "--long").stdout
    assert [arn.rsplit(":", 1)[-1] for arn in re.findall(r"arn:aws:lambda:\S+", blocks)] == order


def test_an_unknown_sort_column_is_a_usage_error_naming_the_columns(where: list[str]) -> None:
    result = cli(where, "functions", "--sort", "size")
    assert result.exit_code == 2
    assert (
        "'size' is not a column: choose from name, verdict, reason, key, role, grants, incident"
        in " ".join(result.stderr.split())
    )
    assert result.stdout == ""
    assert cli(where, "grants", "--sort", "name").exit_code == 2  # a column of functions, not of grants


def test_long_prints_each_item_as_its_block(where: list[str]) -> None:
    """--long is the block output the list commands printed before the table."""
    shown = cli(where, "functions", "--long")
    assert shown.stdout == (
        "4 function(s)\n"
        "\n"
        "billing  SAFE (a usable grant exists)\n"
        "  function  arn:aws:lambda:eu-central-1:210987654321:function:billing\n"
        "  key       arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6\n"
        "  role      arn:aws:iam::210987654321:role/billing-role\n"
        "  grants    1 active, 0 dead, 1 ended\n"
        "\n"
        "legacy  NOT-APPLICABLE (the function was deleted)\n"
        "  function  arn:aws:lambda:eu-central-1:210987654321:function:legacy\n"
        "  key       -\n"
        "  role      -\n"
        "  grants    0 active, 0 dead, 1 ended\n"
        "\n"
        "payroll  SAFE (a usable grant exists)\n"
        "  function  arn:aws:lambda:eu-central-1:210987654321:function:payroll\n"
        "  key       arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6\n"
        "  role      arn:aws:iam::210987654321:role/payroll-role\n"
        "  grants    1 active, 0 dead, 0 ended\n"
        "\n"
        f"reports  AT-RISK (no usable grant is left on its key), open incident {_open_incident(where)}\n"
        "  function  arn:aws:lambda:eu-central-1:210987654321:function:reports\n"
        "  key       arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6\n"
        "  role      arn:aws:iam::210987654321:role/reports-role\n"
        "  grants    0 active, 0 dead, 1 ended\n"
    )
    grants = cli(where, "grants", "--long").stdout
    assert grants.startswith("5 grant(s)\n\ngrant ") and grants.count("\ngrant ") == 5
    assert (
        "  ended      2026-11-07T08:00:05Z retired by lambda.amazonaws.com via lambda.amazonaws.com\n"
        in grants
    )
    incidents = cli(where, "incidents", "--long").stdout
    assert incidents.count("\n  function  arn:aws:lambda:") == 2
    assert "  resolved  2026-11-05T10:02:00Z: can decrypt again\n" in incidents


def test_the_example_in_the_docs_is_what_the_cli_prints(where: list[str]) -> None:
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    example = re.search(r"\$ grantwatch functions --sort verdict\n(.*?)```", doc, re.DOTALL)
    assert example is not None
    assert cli(where, "functions", "--sort", "verdict").stdout == example.group(1)


def _open_incident(where: list[str]) -> str:
    incident: str = json.loads(cli(where, "incidents", "--open", "--json").stdout)[0]["incidentId"]
    return incident


@pytest.mark.parametrize("width", [20, 60, 400])
def test_a_row_never_wraps_in_a_terminal_of_any_width(
    where: list[str], width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    piped = cli(where, "grants").stdout
    assert max(len(line) for line in piped.splitlines()) > 150
    monkeypatch.setattr(output.out, "_width", width)
    monkeypatch.setattr(output.out, "_force_terminal", True)
    monkeypatch.setattr(output.out, "_color_system", ColorSystem.STANDARD)
    shown = cli(where, "grants").stdout
    assert "\x1b[1m" in shown  # a terminal: the header is bold
    assert re.sub(r"\x1b\[[0-9;]*m", "", shown) == piped


def test_hundreds_of_functions_and_account_regions_are_one_row_each(table_settings: Settings) -> None:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    pipeline = LocalPipeline(grants, functions, DynamoHazardStore(table_settings))
    names = [f"svc-{'x' * (n % 40)}-{n:03d}" for n in range(200)]
    for n, name in enumerate(names):
        pipeline.feed(update_function(name, f"2026-11-01T{n // 60:02d}:{n % 60:02d}:00Z"))
    pipeline.drain()
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    rows = table_of(cli(where, "functions").stdout, "function(s)", FUNCTION_COLUMNS)
    assert [row[0] for row in rows] == sorted(names)
    assert {row[4] for row in rows} == {f"{name}-role" for name in names}
    by_role = table_of(cli(where, "functions", "--sort", "role").stdout, "function(s)", FUNCTION_COLUMNS)
    assert [row[4] for row in by_role] == sorted(f"{name}-role" for name in names)

    coverage = DynamoCoverageStore(table_settings)
    start = datetime(2026, 11, 30, 12, tzinfo=UTC)
    for n in range(300):
        when = start - timedelta(minutes=n)
        errors = ("AccessDenied: not authorized to perform: sts:AssumeRole",) if n % 100 == 7 else ()
        coverage.put(
            Coverage(
                account=f"{100000000000 + n * 7919 % 300:012d}",
                region="eu-west-1" if n % 2 else "ap-southeast-2",
                last_run_at=when,
                last_reconciled_at=None if errors else when,
                grants=n,
                functions=n % 13,
                errors=errors,
                error_count=len(errors),
            )
        )
    accounts = table_of(cli(where, "accounts").stdout, "account-region(s)", ACCOUNT_COLUMNS)
    assert len(accounts) == 300
    assert [row[:2] for row in accounts] == sorted(row[:2] for row in accounts)
    stale = table_of(
        cli(where, "accounts", "--sort", "reconciled").stdout, "account-region(s)", ACCOUNT_COLUMNS
    )
    assert [row[2] for row in stale[:3]] == ["never"] * 3
    assert [row[2] for row in stale[3:]] == sorted(row[2] for row in stale[3:])
    most = table_of(cli(where, "accounts", "--sort", "grants").stdout, "account-region(s)", ACCOUNT_COLUMNS)
    grants_at = [c.name for c in ACCOUNT_COLUMNS].index("grants")
    assert [int(row[grants_at]) for row in most] == list(range(300))  # as numbers: 100 after 99
    long = cli(where, "accounts", "--long").stdout.splitlines()
    assert len(long) == 2 + 300 + 3
    assert long.count("  AccessDenied: not authorized to perform: sts:AssumeRole") == 3
