"""Backfill from CloudTrail's archives: the log files a trail writes to S3 (or a copy of them on disk), or
CloudTrail's LookupEvents. Only the relevant events go through the pipeline, the same one `replay` runs.

Real archives are almost all other events, so a file is first searched as bytes for the event names that
matter and parsed only when one appears. Files are read in key order (CloudTrail's keys sort by region and
day) and a checkpoint after each file lets an interrupted backfill resume where it stopped; the file that
was being read when it stopped is read again, which the pipeline's idempotency makes harmless.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from grantwatch.domain.facts import GRANT_EVENT_NAMES, KMS_EVENT_SOURCE
from grantwatch.domain.functions import LAMBDA_EVENT_SOURCE, is_function_event_name

# Byte strings at least one of which every relevant record holds: the grant calls, and Lambda's function calls
# with or without their API version. Cheap to search for; a false hit is only parsed and dropped.
_MARKERS = (b'Grant"', b"Function20", b'Function"', b"Configuration20", b'Configuration"')
_FUNCTION_MARKERS = _MARKERS[1:]  # each holds b"Function" (UpdateFunctionConfiguration does too)
_RECORD_START = b'{"eventVersion"'
_ARCHIVE_DAY = re.compile(r"CloudTrail/(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/")
LOOKUP_EVENT_NAMES = (
    "CreateGrant",
    "RetireGrant",
    "RevokeGrant",
    "CreateFunction20150331",
    "UpdateFunctionConfiguration20150331v2",
    "DeleteFunction20150331",
)


class BackfillError(RuntimeError):
    """A backfill that cannot start or go on: the message says why."""


class Archive(Protocol):
    description: str

    def file_keys(self) -> Iterator[str]: ...

    def read(self, key: str) -> bytes: ...


class LocalArchive:
    """CloudTrail log files under a folder, as CloudTrail lays them out (or any .json / .json.gz below)."""

    def __init__(self, root: Path) -> None:
        if not root.exists():
            raise BackfillError(f"no such folder: {root}")
        self.root = root
        self.description = str(root.resolve())

    def file_keys(self) -> Iterator[str]:
        if self.root.is_file():
            yield self.root.name
            return
        keys = []
        for folder, _, names in os.walk(self.root):  # os.walk: pathlib costs more than reading small files
            relative = os.path.relpath(folder, self.root)
            for name in names:
                if name.endswith((".json.gz", ".json")):
                    keys.append(name if relative == "." else f"{relative}/{name}".replace(os.sep, "/"))
        yield from sorted(keys)

    def read(self, key: str) -> bytes:
        path = self.root if self.root.is_file() else os.path.join(self.root, key)
        with open(path, "rb") as stream:
            return stream.read()


class S3Archive:
    """CloudTrail log files in S3 under s3://BUCKET/PREFIX."""

    def __init__(self, url: str, client: Any = None) -> None:
        match = re.fullmatch(r"s3://(?P<bucket>[^/]+)/?(?P<prefix>.*)", url)
        if match is None:
            raise BackfillError(f"not an S3 URL: {url}")
        self.bucket, self.prefix = match["bucket"], match["prefix"]
        self.description = url
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    def file_keys(self) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:  # S3 lists keys in order
            for entry in page.get("Contents", []):
                if entry["Key"].endswith((".json.gz", ".json")):
                    yield entry["Key"]

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


@dataclass
class Progress:
    files: int = 0
    files_skipped: int = 0
    events_read: int = 0
    events_matched: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.events_read / max(time.monotonic() - self.started, 1e-9)


@dataclass
class Checkpoint:
    """Where a backfill got to: the last file it finished, in key order. `source` names the source and the
    selection (region, window): a checkpoint is only resumed by the same backfill."""

    path: Path
    source: str
    last_key: str | None = None

    @classmethod
    def load(cls, path: Path, source: str) -> Checkpoint:
        if not path.exists():
            return cls(path, source)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BackfillError(f"cannot read the checkpoint {path}: {error}") from None
        if stored.get("source") != source:
            raise BackfillError(
                f"the checkpoint {path} is for {stored.get('source')!r}, not {source!r}: "
                "use another --checkpoint"
            )
        return cls(path, source, stored.get("lastKey"))

    def done(self, key: str) -> bool:
        return self.last_key is not None and key <= self.last_key

    def advance(self, key: str) -> None:
        self.last_key = key
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps({"source": self.source, "lastKey": key}), encoding="utf-8")
        os.replace(temporary, self.path)


def backfill_scope(source: str, region: str | None, since: datetime | None, until: datetime | None) -> str:
    parts = [source]
    parts += [
        f"{name}={value}" for name, value in (("region", region), ("since", since), ("until", until)) if value
    ]
    return " ".join(str(part) for part in parts)


def in_window(key: str, since: date | None, until: date | None, region: str | None) -> bool:
    """From the key alone: is the file of the region and days asked for? Other layouts pass."""
    match = _ARCHIVE_DAY.search(key)
    if match is None:
        return True
    if region and match["region"] != region:
        return False
    day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    # A file sits under the day it was delivered, minutes after its events: the day after `until` may hold
    # events of `until`; the records' eventTime trims the rest.
    return (since is None or day >= since) and (until is None or day <= until + timedelta(days=1))


def is_relevant(record: object) -> bool:
    if not isinstance(record, dict):
        return False
    name, source = record.get("eventName"), record.get("eventSource")
    if source == KMS_EVENT_SOURCE:
        return name in GRANT_EVENT_NAMES
    return source == LAMBDA_EVENT_SOURCE and isinstance(name, str) and is_function_event_name(name)


def relevant_records(
    raw: bytes, since: datetime | None = None, until: datetime | None = None
) -> tuple[int, list[Any]]:
    """(events in the file, the relevant records). A file without a marker is counted, never parsed; in one
    with markers, only the records around them are parsed."""
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    events = data.count(b'"eventID"')
    if not _has_marker(data):
        return events, []
    candidates = _records_around_markers(data)
    if candidates is None:
        document = json.loads(data)
        candidates = document.get("Records", []) if isinstance(document, dict) else []
    low = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None
    high = until.strftime("%Y-%m-%dT%H:%M:%SZ") if until else None
    kept = []
    for record in candidates:
        if not is_relevant(record):
            continue
        moment = record.get("eventTime")
        if isinstance(moment, str) and ((low and moment < low) or (high and moment > high)):
            continue
        kept.append(record)
    return events, kept


def _has_marker(data: bytes) -> bool:
    """Two passes over most files: one for the grant calls, one for b"Function" (absent from most events)."""
    if b'Grant"' in data:
        return True
    return b"Function" in data and any(marker in data for marker in _FUNCTION_MARKERS)


def _records_around_markers(data: bytes) -> list[Any] | None:
    """The records that contain a marker, parsed alone. CloudTrail writes every record starting with
    eventVersion; where that does not hold (or the file is not ASCII), None: parse the whole file."""
    if not data.isascii():
        return None
    starts: set[int] = set()
    positions: list[int] = []
    for marker in _MARKERS:
        position = data.find(marker)
        while position >= 0:
            start = data.rfind(_RECORD_START, 0, position)
            if start < 0:
                return None
            starts.add(start)
            positions.append(position)
            position = data.find(marker, position + 1)
    text = data.decode("ascii")
    decoder = json.JSONDecoder()
    records, ends = [], []
    for start in sorted(starts):
        try:
            record, end = decoder.raw_decode(text, start)
        except ValueError:
            return None
        records.append(record)
        ends.append((start, end))
    if not all(any(start < p < end for start, end in ends) for p in positions):
        return None  # a marker outside every record found: the layout is not the one assumed
    return records


def backfill_archive(
    archive: Archive,
    feed: Callable[[object], object],
    *,
    checkpoint: Checkpoint | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    region: str | None = None,
    on_file: Callable[[Progress], None] = lambda _: None,
) -> Progress:
    """Feed the relevant records of every file in the window, checkpointing after each file."""
    progress = Progress()
    for key in archive.file_keys():
        if not in_window(key, since.date() if since else None, until.date() if until else None, region):
            continue
        if checkpoint is not None and checkpoint.done(key):
            progress.files_skipped += 1
            continue
        try:
            events, records = relevant_records(archive.read(key), since, until)
        except (OSError, EOFError, gzip.BadGzipFile, ValueError) as error:
            raise BackfillError(f"cannot read {key}: {error}") from error
        for record in records:
            feed(record)
        progress.files += 1
        progress.events_read += events
        progress.events_matched += len(records)
        if checkpoint is not None:
            checkpoint.advance(key)
        on_file(progress)
    return progress


def lookup_events(
    client: Any,
    *,
    since: datetime | None,
    until: datetime | None,
    sleep: Callable[[float], None] = time.sleep,
    requests_per_second: float = 2.0,
) -> Iterator[dict[str, Any]]:
    """The relevant records of the last 90 days from CloudTrail LookupEvents, at most 2 requests a second."""
    interval = 1.0 / requests_per_second
    window: dict[str, Any] = {}
    if since:
        window["StartTime"] = since
    if until:
        window["EndTime"] = until
    first = True
    for name in LOOKUP_EVENT_NAMES:
        token: str | None = None
        while True:
            if not first:
                sleep(interval)
            first = False
            request: dict[str, Any] = {
                "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
                "MaxResults": 50,
                **window,
            }
            if token:
                request["NextToken"] = token
            page = client.lookup_events(**request)
            for entry in page.get("Events", []):
                record = json.loads(entry["CloudTrailEvent"])
                if is_relevant(record):
                    yield record
            token = page.get("NextToken")
            if not token:
                break


def parse_moment(text: str | None, *, end_of_day: bool = False) -> datetime | None:
    """A --since/--until value: a day (2026-11-01: its start, or with `end_of_day` its last second) or an
    ISO 8601 time; UTC unless it says otherwise."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BackfillError(f"not a day or an ISO 8601 time: {text!r}") from None
    if end_of_day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        moment = moment.replace(hour=23, minute=59, second=59)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def progress_json(progress: Progress) -> dict[str, Any]:
    body = asdict(progress)
    body.pop("started")
    return body | {"eventsPerSecond": round(progress.rate, 1)}
