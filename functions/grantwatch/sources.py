"""Read events from files: one record, one EventBridge event, a CloudTrail log file, or JSON Lines of them.

A file or line that is not JSON becomes an item with an error, so the caller can report it and go on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

EVENT_FILE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz")


@dataclass(frozen=True, slots=True)
class SourceItem:
    origin: str
    event: object = None
    error: str | None = None


def event_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each path itself if a file; the event files below it, in name order, if a folder."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.endswith(EVENT_FILE_SUFFIXES)
            )
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


def read_events(paths: Iterable[Path]) -> Iterator[SourceItem]:
    for path in event_files(paths):
        yield from _events_in_file(path)


def _events_in_file(path: Path) -> Iterator[SourceItem]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as error:
        yield SourceItem(str(path), error=f"cannot read {path}: {error}")
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        yield from _json_lines(path, text)
        return
    yield from _unwrap(str(path), document)


def _json_lines(path: Path, text: str) -> Iterator[SourceItem]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        origin = f"{path}:{number}"
        try:
            document = json.loads(line)
        except json.JSONDecodeError as error:
            yield SourceItem(origin, error=f"not JSON at {origin}: {error.msg}")
            continue
        yield from _unwrap(origin, document)


def _unwrap(origin: str, document: object) -> Iterator[SourceItem]:
    """A CloudTrail log file's Records, a list's elements, or the document itself."""
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        for index, record in enumerate(document["Records"]):
            yield SourceItem(f"{origin}#Records[{index}]", record)
    elif isinstance(document, list):
        for index, element in enumerate(document):
            yield SourceItem(f"{origin}[{index}]", element)
    else:
        yield SourceItem(origin, document)
