"""The list commands' tables: one aligned line per row whatever its values, sorting, and short ARNs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from grantwatch.cli.listing import FUNCTION_COLUMNS, GRANT_COLUMNS, INCIDENT_COLUMNS
from grantwatch.cli.organization import ACCOUNT_COLUMNS
from grantwatch.cli.table import Column, one_line, short_arn, sort_rows, table_lines
from tests.support.cli_tables import cells, column_starts

COLUMNS = (
    Column("name", "NAME", lambda r: r["name"]),
    Column("count", "COUNT", lambda r: r["count"], numeric=True),
    Column("when", "WHEN", lambda r: r["when"]),
)


def test_every_column_starts_at_the_same_offset_in_every_row() -> None:
    rows = [
        {"name": "a", "count": 7, "when": "2026-11-01T10:00:00Z"},
        {"name": "a much longer name", "count": 12345, "when": None},
        {"name": "名前", "count": 0, "when": "2026-11-02T10:00:00Z"},  # each character two cells wide
    ]
    header, *lines = table_lines(rows, COLUMNS)
    assert header == "NAME                COUNT  WHEN"
    starts = column_starts(header)
    for line, row in zip(lines, rows, strict=True):
        assert line == line.rstrip()
        assert cells(line, starts) == [row["name"], str(row["count"]), row["when"] or "-"]
    assert lines == [
        "a                       7  2026-11-01T10:00:00Z",
        "a much longer name  12345  -",
        "名前                    0  2026-11-02T10:00:00Z",  # numbers aligned on their right edge
    ]


def test_a_value_that_would_break_a_row_stays_on_it() -> None:
    rows = [{"name": "evil\nname\twith\u202ebidi\u200b", "count": 1, "when": "x\r\ny"}]
    header, line = table_lines(rows, COLUMNS)
    assert "\n" not in line and "\t" not in line and "\u202e" not in line
    assert cells(line, column_starts(header)) == ["evil?name?with?bidi?", "1", "x??y"]
    assert one_line("plain text: ünïcode, 名前") == "plain text: ünïcode, 名前"


def test_hundreds_of_rows_are_hundreds_of_lines() -> None:
    rows = [{"name": f"function-{n:04d}" * (1 + n % 7), "count": n, "when": None} for n in range(600)]
    lines = table_lines(rows, COLUMNS)
    assert len(lines) == 601
    assert {len(line) for line in lines[1:]} == {len(lines[-2])}  # names of 13 to 91 characters, one width
    starts = column_starts(lines[0])
    assert [cells(line, starts)[0] for line in lines[1:]] == [row["name"] for row in rows]


def test_sorting_is_ascending_by_the_columns_order_with_missing_values_last() -> None:
    rows = [
        {"name": "b", "count": 10, "when": None},
        {"name": "a", "count": 9, "when": "2026-11-02"},
        {"name": "c", "count": 10, "when": "2026-11-01"},
        {"name": "a", "count": 100, "when": None},
    ]
    assert [r["count"] for r in sort_rows(rows, COLUMNS, "count")] == [9, 10, 10, 100]  # numbers, not text
    assert [r["name"] for r in sort_rows(rows, COLUMNS, "count")] == ["a", "b", "c", "a"]  # ties keep order
    assert [r["when"] for r in sort_rows(rows, COLUMNS, "when")] == ["2026-11-01", "2026-11-02", None, None]
    assert [r["count"] for r in sort_rows(rows, COLUMNS, "name")] == [9, 100, 10, 10]
    assert sort_rows(rows, COLUMNS, None) == rows


@pytest.mark.parametrize(
    ("arn", "short"),
    [
        ("arn:aws:lambda:eu-central-1:210987654321:function:billing", "billing"),
        ("arn:aws:lambda:eu-central-1:210987654321:function:billing:live", "billing"),
        (
            "arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
            "5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
        ),
        ("arn:aws:kms:eu-central-1:210987654321:alias/payments", "alias/payments"),
        ("arn:aws:iam::210987654321:role/service/team/payroll-role", "payroll-role"),
        ("arn:aws-us-gov:iam::210987654321:role/payroll-role", "payroll-role"),
        ("arn:aws:sts::210987654321:assumed-role/payroll-role/payroll", "payroll-role"),
        ("arn:aws:iam::210987654321:user/ops/dana", "user/dana"),
        ("arn:aws:dynamodb:eu-central-1:210987654321:table/orders", "table/orders"),
        ("dynamodb.eu-central-1.amazonaws.com", "dynamodb.eu-central-1.amazonaws.com"),
        ("arn:broken", "arn:broken"),
        (None, None),
    ],
)
def test_an_arn_is_shortened_to_what_identifies_it(arn: str | None, short: str | None) -> None:
    assert short_arn(arn) == short


FUNCTION_ROW: dict[str, Any] = {
    "functionArn": "arn:aws:lambda:eu-central-1:210987654321:function:reports",
    "functionName": "reports",
    "keyArn": "arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
    "executionRole": "arn:aws:iam::210987654321:role/reports-role",
    "deleted": False,
    "grants": {"active": 0, "dead": 2, "ended": 1},
    "usableGrantId": None,
    "verdict": "at-risk",
    "reason": "no usable grant is left on its key",
    "cause": "grant-retired",
    "openIncidentId": "20261106T080200Z-82f3e9c695dc6b8d",
}


def test_a_function_row_names_what_a_platform_engineer_scans() -> None:
    header, line = table_lines([FUNCTION_ROW], FUNCTION_COLUMNS)
    assert cells(line, column_starts(header)) == [
        "reports",
        "at-risk",
        "no usable grant is left on its key",
        "5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
        "reports-role",
        "2 dead, 1 ended",
        "20261106T080200Z-82f3e9c695dc6b8d",
    ]
    assert "arn:" not in line


def test_each_list_sorts_by_each_of_its_columns() -> None:
    """Every column of every list has a name --sort takes, once, and sorts rows that lack values."""
    for columns in (FUNCTION_COLUMNS, GRANT_COLUMNS, INCIDENT_COLUMNS, ACCOUNT_COLUMNS):
        names = [c.name for c in columns]
        assert len(set(names)) == len(names) and all(re.fullmatch(r"[a-z]+", n) for n in names)
        assert len({c.header for c in columns}) == len(columns)
    empty_grant = dict.fromkeys(
        [
            "grantId",
            "keyArn",
            "granteePrincipal",
            "functionArn",
            "service",
            "resource",
            "createdAt",
            "endedAt",
        ]
    ) | {"state": "active", "endedHow": None}
    for column in GRANT_COLUMNS:
        assert sort_rows([empty_grant, empty_grant], GRANT_COLUMNS, column.name) == [empty_grant] * 2
        assert column.text(empty_grant) in {"-", "active"}
