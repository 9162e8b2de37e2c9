"""Reading the list commands' tables back: where each column starts, and a row's cells."""

from __future__ import annotations

import re

from rich.cells import cell_len


def column_starts(header: str) -> list[int]:
    """Where each column starts: a header is words, its columns two or more spaces apart."""
    return [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]


def cells(line: str, starts: list[int]) -> list[str]:
    """The line's cells at those offsets, counted in terminal cells (a wide character takes two)."""
    by_cell = "".join(c + "\0" * (cell_len(c) - 1) for c in line)
    ends = [*starts[1:], len(by_cell) + 2]
    return [
        by_cell[start : end - 2].replace("\0", "").strip() for start, end in zip(starts, ends, strict=True)
    ]
