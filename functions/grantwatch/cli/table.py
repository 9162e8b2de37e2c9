"""The list commands' tables: one row per item under a header, every column aligned, sortable by any column.
Columns are data: a command's table is a tuple of `Column`s, and a new column is one more entry."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len

Row = Mapping[str, Any]
GAP = "  "
MISSING = "-"
# What a cell may not carry: a line break or control character would split the row, a format character
# (bidi override, zero-width) would shift the columns after it.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class Column:
    """One column: `name` is what `--sort` takes, `header` what the table shows, `cell` the row's text in
    it, `order` what it sorts by (default: the row's text; None sorts last), `numeric` aligns it right."""

    name: str
    header: str
    cell: Callable[[Row], str | int | None]
    order: Callable[[Row], Any] | None = None
    numeric: bool = False

    def text(self, row: Row) -> str:
        value = self.cell(row)
        return one_line(MISSING if value is None or value == "" else str(value))

    def sort_key(self, row: Row) -> tuple[bool, Any]:
        value = self.order(row) if self.order else self.cell(row)
        return (value is None, "" if value is None else value)


def one_line(text: str) -> str:
    """The text with every character that would break a row or its alignment shown as `?`."""
    return "".join("?" if unicodedata.category(c) in _UNPRINTABLE else c for c in text)


def sort_rows(rows: Sequence[Row], columns: Sequence[Column], by: str | None) -> list[Any]:
    """The rows in ascending order of column `by` (ties keep their order), or as they are if `by` is None."""
    if by is None:
        return list(rows)
    column = next(c for c in columns if c.name == by)
    return sorted(rows, key=column.sort_key)


def table_lines(rows: Iterable[Row], columns: Sequence[Column]) -> list[str]:
    """A header and one line per row, each column as wide as its widest cell (in terminal cells), separated
    by two spaces; numbers aligned right. No line ever wraps: nothing here depends on the terminal."""
    cells = [[c.header for c in columns]] + [[c.text(row) for c in columns] for row in rows]
    widths = [max(cell_len(line[i]) for line in cells) for i in range(len(columns))]
    return [
        GAP.join(
            _pad(text, width, column.numeric)
            for text, width, column in zip(line, widths, columns, strict=True)
        ).rstrip()
        for line in cells
    ]


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - cell_len(text))
    return fill + text if right else text + fill


def short_arn(arn: str | None) -> str | None:
    """What identifies an ARN's resource in a row: a function's or role's name, a key's id, an alias as
    `alias/NAME`, a user as `user/NAME`; else the ARN's resource part. Not an ARN: as it is."""
    if not arn or not arn.startswith("arn:"):
        return arn
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return arn
    service, resource = parts[2], parts[5]
    kind, _, rest = resource.partition("/")
    if service == "lambda" and resource.startswith("function:"):
        return resource.split(":")[1]
    if service == "kms" and kind == "key":
        return rest
    if service == "iam" and kind == "role":
        return rest.rsplit("/", 1)[-1]
    if service == "sts" and kind == "assumed-role":
        return rest.split("/", 1)[0]
    if service == "iam" and kind == "user":
        return f"user/{rest.rsplit('/', 1)[-1]}"
    return resource
