"""`--help` of every command and subcommand: values named, not type-tagged, and every paragraph rewrapped
to the terminal's width (no line that ends early in the middle of a sentence)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from grantwatch.cli import app
from grantwatch.cli.helptext import summary

runner = CliRunner()
# Typer's type tags: <bool>, <str>, <int>, <int range>, <path>, <list[str]>, <active|dead|ended|all>, ...
TYPE_TAG = re.compile(
    r"<(?:list\[)?"
    r"(?:bool|str|int|float|path|Path|file|directory|datetime|uuid|[\w-]+(?:\|[\w-]+)+)"
    r"(?: range)?\]?>"
)
WIDTHS = (60, 100)


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from command_paths(sub, (*path, name))


COMMANDS = list(command_paths(typer.main.get_command(app)))


def help_text(path: tuple[str, ...], width: int) -> str:
    """The help wrapped to `width` columns (the test runner fixes the terminal's width at 80 otherwise;
    a terminal's own width counts up to 80 columns, less a margin of 2)."""
    result = runner.invoke(app, [*path, "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.stdout


def broken_lines(text: str, width: int) -> list[str]:
    """Each line that ends although the first word of the line after it, which continues the same
    paragraph or description, would have fitted on it: a hard line break, not a wrap. (Help breaks lines
    only between words: `--in-region` is never split at its hyphen.)"""
    broken = []
    section = "usage"
    lines = text.splitlines()
    for line, after in itertools.pairwise(lines):
        if re.match(r"^\S.*:$", line):
            section = "items"  # Arguments:, Options:, Commands:
            continue
        if line.startswith("Usage:"):
            continue
        if section == "usage" and not line.strip():
            section = "description"
        if not line.strip() or not after.strip():
            continue
        indent = len(after) - len(after.lstrip())
        if section == "items" and indent <= 2:
            continue  # the next option or command
        if section == "items" and re.fullmatch(r"  \S+(?: \S+)*", line):
            continue  # a long option name on a line of its own: its description starts below
        if len(line.rstrip()) + 1 + len(after.split()[0]) <= width:
            broken.append(f"{line!r} then {after!r}")
    return broken


def test_the_rule_catches_a_hard_line_break_and_accepts_a_wrap() -> None:
    wrapped = "Usage: x\n\n  One two three four\n  five six.\n"
    assert broken_lines(wrapped, 22) == []
    assert broken_lines(wrapped, 30) == ["'  One two three four' then '  five six.'"]
    options = (
        "Options:\n  --key KEY  Only the functions on this key (its\n             ARN).\n  --long     Each.\n"
    )
    assert broken_lines(options, 48) == []
    assert broken_lines(options, 60) != []


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "grantwatch")
def test_help_names_values_and_wraps_every_paragraph(path: tuple[str, ...]) -> None:
    for width in WIDTHS:
        text = help_text(path, width)
        assert not TYPE_TAG.findall(text), text
        assert broken_lines(text, width) == [], text
        assert "{" not in text.splitlines()[0]  # the usage line: GRANT_ID, not {grant_id}
    narrow, wide = help_text(path, 60), help_text(path, 100)
    assert max(map(len, wide.splitlines())) > max(
        len(line) for line in narrow.splitlines() if " " in line.strip()
    )


def test_a_group_lists_each_command_with_its_first_sentence_whole() -> None:
    text = " ".join(help_text((), 100).split())
    assert "grants List grants, newest first. history" in text
    assert "..." not in text.split("Commands:")[1]  # no summary cut short
    local = " ".join(help_text(("local",), 60).split())
    assert (
        "status Say whether this checkout's DynamoDB Local runs (with --port, on that port); exit 3" in local
    )


def test_option_values_are_named_for_what_they_are() -> None:
    grants = help_text(("grants",), 100)
    for named in (
        "--key KEY ",
        "--state [active|dead|ended|all]",
        "--sort [created|status|",
        "--endpoint-url URL",
    ):
        assert named in grants
    assert re.search(r"^  --long +Each item as a block", grants, re.MULTILINE)  # a flag takes no value
    assert "--channel [sns|chat|events|securityhub]" in help_text(("notify-test",), 100)
    assert "--template FILE" in help_text(("local", "start"), 100)
    assert "Usage: root replay [OPTIONS] PATHS..." in help_text(("replay",), 100)


def test_a_summary_is_the_first_sentence_on_one_line() -> None:
    assert (
        summary("List grants, newest first. With --key,\n    the index.\n\nMore.")
        == "List grants, newest first."
    )
    assert (
        summary("Every known Lambda function: its key\n    and role.")
        == "Every known Lambda function: its key and role."
    )
    assert summary(None) == ""
