"""What the CLI prints: people's lines on stdout, errors and progress on stderr, or JSON documents."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from grantwatch.cli.table import Column, Row, sort_rows, table_lines
from grantwatch.domain.notices import Notice
from grantwatch.recorder import EventOutcome, Outcome

# Markup and emoji codes off: grant ids, principals and errors come from events, and must print as they are.
# Soft wrap: a line is never broken at the terminal's width (a table row stays one line in a pipe).
out = Console(soft_wrap=True, markup=False, highlight=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False, emoji=False)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, sort_keys=False) + "\n")


def print_table(
    rows: Sequence[Row],
    columns: Sequence[Column],
    sort: str | None,
    noun: str,
    block: Callable[[Row], None] | None,
    as_json: bool,
) -> None:
    """A list command's answer, sorted by `sort` (a column's name) if given: every row as JSON, or a count
    line and then each row as a `block` (--long) or one table row under a header."""
    ordered = sort_rows(rows, columns, sort)
    if as_json:
        print_json(ordered)
        return
    out.print(f"{len(ordered)} {noun}")
    if block is not None:
        for row in ordered:
            block(row)
    elif ordered:
        header, *lines = table_lines(ordered, columns)
        out.print(header, style="bold")
        for line in lines:
            out.print(line)


def report_notice(notice: Notice, as_json: bool) -> None:
    if as_json:
        print_json({"alert": notice.as_json()})
        return
    rule = "-" * 78
    attributes = ", ".join(f"{k}={v}" for k, v in notice.attributes.items())
    out.print(f"{rule}\nSNS notice ({notice.kind})\nSubject: {notice.subject}\nAttributes: {attributes}\n")
    out.print(notice.message)
    out.print(rule)


def report_event(result: EventOutcome, origin: str, as_json: bool) -> None:
    if as_json:
        print_json(result.as_json())
    elif result.outcome is Outcome.REJECTED:
        err.print(f"rejected {origin} ({result.event_id or 'no eventID'}): {result.error}")
    elif result.outcome is Outcome.IGNORED:
        out.print(f"ignored   {result.event_name} {result.event_id}: {result.reason}")
    else:
        subject = f"grant {result.grant_id}" if result.grant_id else f"function {result.function_arn}"
        if result.canary_path:
            subject = f"canary {result.canary_path}"
        out.print(f"{result.outcome:<10}{result.event_name} {result.event_id} {subject}")


def write_notices(path: Path, notices: list[Notice]) -> None:
    """The notices as JSON Lines, as a subscriber receives them."""
    path.write_text("".join(json.dumps(n.as_json()) + "\n" for n in notices), encoding="utf-8")


def print_summary(summary: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        print_json({"summary": summary})
    else:
        out.print(line)
