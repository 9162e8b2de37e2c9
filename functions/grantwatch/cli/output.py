"""What the CLI prints: people's lines on stdout, errors and progress on stderr, or JSON documents."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from grantwatch.domain.notices import Notice
from grantwatch.recorder import EventOutcome, Outcome

# Markup off: grant ids, principals and errors come from events, and must print as they are.
out = Console(soft_wrap=True, markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, sort_keys=False) + "\n")


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
