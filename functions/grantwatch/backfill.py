"""Backfill from CloudTrail's archives: the log files a trail writes to S3 (or a copy of them on disk), or
CloudTrail's LookupEvents. Only the events of grantwatch's catalogue (grantwatch.domain.catalogue) go
through the pipeline, the same one `replay` runs: grant, key-state, IAM role and Lambda function calls,
and, when asked for, the failed Decrypt calls that confirm a loss.

Real archives are almost all other events, so a file is first searched as bytes: each record's event name
is looked at without parsing, and only the records whose name is in the catalogue are parsed. Files are read
in key order (CloudTrail's keys sort by region and day) and a checkpoint after each file lets an interrupted
backfill resume where it stopped; the file that was being read when it stopped is read again, which the
pipeline's idempotency makes harmless.

IAM is global: CloudTrail writes its calls in us-east-1's files, whatever region the functions are in. So
`region` means the region grantwatch watches: its own files, and the IAM calls in us-east-1's files.
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
from enum import StrEnum
from pathlib import Path
from typing import Any

from grantwatch.domain.catalogue import GLOBAL_EVENTS_REGION, selected, selections
from grantwatch.ports import Archive as Archive  # re-exported: the archives below implement it

_EVENT_NAME = b'"eventName"'
_RECORD_START = b'{"eventVersion"'
_ERROR_CODE = b'"errorCode"'
_DECODER = json.JSONDecoder()  # one for every file: each new one is a reference cycle left to the collector
_ARCHIVE_DAY = re.compile(r"CloudTrail/(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/")
# CloudTrail Insights files, beside the calls in a trail's bucket: AWSLogs/ACCOUNT/CloudTrail-Insight/REGION/
# YYYY/MM/DD/ACCOUNT_CloudTrail-Insight_REGION_....json.gz. They hold no API call.
_INSIGHTS_FILE = re.compile(r"(?:^|/)CloudTrail-Insight/|(?:^|/)\d{12}_CloudTrail-Insight_[^/]*$")


class FileScope(StrEnum):
    """Which of a file's records a backfill takes: all it selects, or only those of global services (IAM's,
    in us-east-1's files, when another region is watched)."""

    ALL = "all"
    GLOBAL = "global"


@dataclass(frozen=True)
class EventNames:
    """The catalogue's event names as bytes, for the search of a file: exact names, names that carry an API
    version (matched by their start, as the rules match them), and names whose records count only when they
    failed."""

    exact: frozenset[bytes]
    versioned: tuple[bytes, ...]
    failures_only: frozenset[bytes]

    @classmethod
    def of(cls, *, decrypt_failures: bool, scope: FileScope = FileScope.ALL) -> EventNames:
        kinds = [
            s
            for s in selections(decrypt_failures=decrypt_failures)
            if scope is FileScope.ALL or s.global_service
        ]
        return cls(
            exact=frozenset(n.encode() for s in kinds for n in s.names),
            versioned=tuple(f"{n}20".encode() for s in kinds if s.versioned_names for n in s.names),
            failures_only=frozenset(n.encode() for s in kinds if s.error_codes for n in s.names),
        )

    def takes(self, name: bytes) -> bool:
        return name in self.exact or name.startswith(self.versioned)


class BackfillError(RuntimeError):
    """A backfill that cannot start or go on: the message says why."""


class MissingSource(BackfillError):
    """The folder to read from does not exist."""


class LocalArchive:
    """CloudTrail log files under a folder, as CloudTrail lays them out (or any .json / .json.gz below)."""

    def __init__(self, root: Path) -> None:
        if not root.exists():
            raise MissingSource(f"no such folder: {root}")
        self.root = root
        self.description = str(root.resolve())

    def file_keys(self) -> Iterator[str]:
        """The keys in sorted order, found as they are read: one folder's entries at a time, never the
        whole archive's keys at once (a year of a busy trail is hundreds of thousands of files)."""
        if self.root.is_file():
            yield self.root.name
            return
        yield from _sorted_keys(str(self.root), "")

    def read(self, key: str) -> bytes:
        path = self.root if self.root.is_file() else os.path.join(self.root, key)
        with open(path, "rb") as stream:
            return stream.read()


def _sorted_keys(folder: str, prefix: str) -> Iterator[str]:
    """The .json and .json.gz files below `folder` as `prefix`-relative keys, in the order `sorted` puts the
    keys: a folder's entries sorted with "/" after a folder's name, since its keys go on with it (so "a-b"
    comes before "a/..."). os.scandir: pathlib costs more than reading small files. As os.walk does, a
    link to a folder is not followed and a folder that cannot be listed is passed over."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(
                (entry.name + "/" if entry.is_dir() else entry.name, entry.is_symlink()) for entry in listing
            )
    except OSError:
        return
    for name, link in entries:
        if name.endswith("/"):
            if not link:
                yield from _sorted_keys(os.path.join(folder, name[:-1]), prefix + name)
        elif name.endswith((".json.gz", ".json")):
            yield prefix + name


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
    insights_files: int = 0  # CloudTrail Insights files: ignored unread, they hold no API call
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


def backfill_scope(
    source: str,
    region: str | None,
    since: datetime | None,
    until: datetime | None,
    *,
    decrypt_failures: bool = False,
) -> str:
    """What a backfill reads: its source and selection. A checkpoint resumes only the same backfill."""
    kinds = ",".join(s.kind.value for s in selections(decrypt_failures=decrypt_failures))
    parts = [source]
    parts += [
        f"{name}={value}" for name, value in (("region", region), ("since", since), ("until", until)) if value
    ]
    return " ".join(str(part) for part in [*parts, f"events={kinds}"])


def in_window(key: str, since: date | None, until: date | None, region: str | None) -> FileScope | None:
    """From the key alone: which of the file's records to take, or None if it is outside the region and
    days asked for. us-east-1's files hold IAM's calls for every region. Other layouts pass."""
    match = _ARCHIVE_DAY.search(key)
    if match is None:
        return FileScope.ALL
    scope = FileScope.ALL
    if region and match["region"] != region:
        if match["region"] != GLOBAL_EVENTS_REGION:
            return None
        scope = FileScope.GLOBAL
    day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    # A file sits under the day it was delivered, minutes after its events: the day after `until` may hold
    # events of `until`; the records' eventTime trims the rest.
    if (since is None or day >= since) and (until is None or day <= until + timedelta(days=1)):
        return scope
    return None


def is_insights_file(key: str) -> bool:
    """A CloudTrail Insights file of a trail's bucket (by its key or name): never an API call in it."""
    return _INSIGHTS_FILE.search(key) is not None


def is_relevant(
    record: object,
    *,
    decrypt_failures: bool = False,
    region: str | None = None,
    scope: FileScope = FileScope.ALL,
) -> bool:
    """A record of the catalogue, of the region watched (IAM's, global, of any)."""
    if not isinstance(record, dict):
        return False
    selection = selected(record, decrypt_failures=decrypt_failures)
    if selection is None:
        return False
    if selection.global_service:
        return True
    return scope is FileScope.ALL and (region is None or record.get("awsRegion") == region)


def relevant_records(
    raw: bytes,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    decrypt_failures: bool = False,
    region: str | None = None,
    scope: FileScope = FileScope.ALL,
) -> tuple[int, list[Any]]:
    """(events in the file, the relevant records). A file where no record's name is in the catalogue is
    counted, never parsed; in one with such names, only those records are parsed."""
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    events = data.count(b'"eventID"')
    names = EventNames.of(decrypt_failures=decrypt_failures, scope=scope)
    positions = _named(data, names)
    if not positions:
        return events, []
    candidates = _records_at(data, positions)
    if candidates is None:
        document = json.loads(data)
        candidates = document.get("Records", []) if isinstance(document, dict) else []
    low = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None
    high = until.strftime("%Y-%m-%dT%H:%M:%SZ") if until else None
    kept = []
    for record in candidates:
        if not is_relevant(record, decrypt_failures=decrypt_failures, region=region, scope=scope):
            continue
        moment = record.get("eventTime")
        if isinstance(moment, str) and ((low and moment < low) or (high and moment > high)):
            continue
        kept.append(record)
    return events, kept


def _named(data: bytes, names: EventNames) -> list[int]:
    """Where the records whose event name the catalogue holds name it: one pass over the file's names, read
    without parsing (`"eventName": "X"`, with or without spaces). A record that fails only counts when it
    failed: its record must hold an errorCode."""
    found: list[int] = []
    find = data.find
    position = find(_EVENT_NAME)
    while position >= 0:
        start = find(b'"', find(b":", position + len(_EVENT_NAME)) + 1) + 1
        end = find(b'"', start)
        if start <= 0 or end < 0:
            break
        name = data[start:end]
        if names.takes(name) and (name not in names.failures_only or _failed(data, position)):
            found.append(position)
        position = find(_EVENT_NAME, end)
    return found


def _failed(data: bytes, position: int) -> bool:
    """Whether the record around `position` holds an errorCode (from its start to the next record's)."""
    start = data.rfind(_RECORD_START, 0, position)
    end = data.find(_RECORD_START, position)
    return data.find(_ERROR_CODE, max(start, 0), end if end >= 0 else len(data)) >= 0


def _records_at(data: bytes, positions: list[int]) -> list[Any] | None:
    """The records that contain these positions, parsed alone. CloudTrail writes every record starting with
    eventVersion; where that does not hold (or the file is not ASCII), None: parse the whole file."""
    if not data.isascii():
        return None
    starts: set[int] = set()
    for position in positions:
        start = data.rfind(_RECORD_START, 0, position)
        if start < 0:
            return None
        starts.add(start)
    text = data.decode("ascii")
    records, ends = [], []
    for start in sorted(starts):
        try:
            record, end = _DECODER.raw_decode(text, start)
        except ValueError:
            return None
        records.append(record)
        ends.append((start, end))
    if not all(any(start < p < end for start, end in ends) for p in positions):
        return None  # a name outside every record found: the layout is not the one assumed
    return records


def backfill_archive(
    archive: Archive,
    feed: Callable[[object], object],
    *,
    checkpoint: Checkpoint | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    region: str | None = None,
    decrypt_failures: bool = False,
    on_file: Callable[[Progress], None] = lambda _: None,
    before_checkpoint: Callable[[], object] = lambda: None,
) -> Progress:
    """Feed the relevant records of every file in the window, checkpointing after each file (once
    `before_checkpoint` has returned: a pipeline that holds events back records them there)."""
    progress = Progress()
    for key in archive.file_keys():
        if is_insights_file(key):
            progress.insights_files += 1
            continue
        scope = in_window(key, since.date() if since else None, until.date() if until else None, region)
        if scope is None:
            continue
        if checkpoint is not None and checkpoint.done(key):
            progress.files_skipped += 1
            continue
        try:
            events, records = relevant_records(
                archive.read(key),
                since,
                until,
                decrypt_failures=decrypt_failures,
                region=region,
                scope=scope,
            )
        except (OSError, EOFError, gzip.BadGzipFile, ValueError) as error:
            raise BackfillError(f"cannot read {key}: {error}") from error
        for record in records:
            feed(record)
        progress.files += 1
        progress.events_read += events
        progress.events_matched += len(records)
        before_checkpoint()
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
    global_client: Any = None,
    decrypt_failures: bool = False,
) -> Iterator[dict[str, Any]]:
    """The relevant records of the last 90 days from CloudTrail LookupEvents, at most 2 requests a second.
    LookupEvents answers for one region: `client`'s. IAM's calls are looked up where CloudTrail records
    them, us-east-1 (`global_client`, if `client` is of another region). Failed Decrypt calls, when asked
    for, are found among every Decrypt LookupEvents holds (it filters by one attribute only): slow in a
    busy account."""
    interval = 1.0 / requests_per_second
    window: dict[str, Any] = {}
    if since:
        window["StartTime"] = since
    if until:
        window["EndTime"] = until
    first = True
    for selection in selections(decrypt_failures=decrypt_failures):
        source = global_client if selection.global_service and global_client is not None else client
        for name in selection.lookup_names:
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
                page = source.lookup_events(**request)
                for entry in page.get("Events", []):
                    record = json.loads(entry["CloudTrailEvent"])
                    if is_relevant(record, decrypt_failures=decrypt_failures):
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
