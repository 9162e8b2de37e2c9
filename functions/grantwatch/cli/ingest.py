"""Commands that feed events through the whole service: `replay` (event files) and `backfill`
(CloudTrail's archives or LookupEvents)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TextColumn

from grantwatch.backfill import (
    Archive,
    BackfillError,
    Checkpoint,
    LocalArchive,
    Progress,
    S3Archive,
    backfill_archive,
    backfill_scope,
    lookup_events,
    parse_moment,
    progress_json,
)
from grantwatch.cli.errors import ExitCode
from grantwatch.cli.options import DEFAULT_SETTLE_SECONDS, JsonOption, SettleOption, table_options
from grantwatch.cli.output import err, print_summary, report_event, report_notice, write_notices
from grantwatch.domain.catalogue import GLOBAL_EVENTS_REGION
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.parallel import Recorded, Step
from grantwatch.recorder import EventOutcome, Outcome
from grantwatch.settings import Settings
from grantwatch.sources import read_events
from grantwatch.wiring import parallel_pipeline

WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Events recorded and functions evaluated side by side (default: twice the CPUs, at most 8).",
        show_default=False,
    ),
]


@table_options()
def replay(
    paths: Annotated[list[Path], typer.Argument(help="Event files or folders (JSON, JSON Lines, .gz).")],
    as_json: JsonOption = False,
    settle_seconds: Annotated[
        int, typer.Option("--settle-seconds", min=0, help="Settle window before a function is evaluated.")
    ] = DEFAULT_SETTLE_SECONDS,
    alerts_out: Annotated[
        Path | None,
        typer.Option("--alerts-out", help="Also write alerts and resolved notices here (JSON Lines)."),
    ] = None,
    workers: WorkersOption = None,
    *,
    settings: Settings,
) -> None:
    """Feed events through the whole service, as in AWS, on a virtual clock driven by eventTime.

    A path holds one CloudTrail record, one EventBridge event, a CloudTrail log file {"Records": [...]}
    (plain or .gz), or JSON Lines of these; a folder is read in file-name order. Each event is recorded,
    a duplicate, ignored (not a grant change: with a reason) or rejected (malformed: with an error).
    A function touched by an event is evaluated once the settle window after it has passed on the clock;
    alerts and resolved notices print as a subscriber receives them ({"alert": ...} lines with --json).
    Exits 1 if anything was rejected, after processing everything else.
    """
    counts: Counter[str] = Counter()
    notices: list[Notice] = []

    def show(steps: list[Step[str]]) -> None:
        for step in steps:
            if isinstance(step, Recorded):
                counts[step.outcome.outcome] += 1
                report_event(step.outcome, step.tag, as_json)
            else:
                notices.append(step)
                report_notice(step, as_json)

    with parallel_pipeline(settings, timedelta(seconds=settle_seconds), workers) as pipeline:
        for item in read_events(paths):
            if item.error is not None:
                rejected = EventOutcome(Outcome.REJECTED, None, None, error=item.error)
                show(pipeline.decided(rejected, item.origin))
            else:
                show(pipeline.feed(item.event, item.origin))
        show(pipeline.drain())
    if alerts_out is not None:
        write_notices(alerts_out, notices)
    summary = {"events": sum(counts.values())} | outcome_counts(counts)
    summary |= {
        "alerts": sum(n.kind is NoticeKind.ALERT for n in notices),
        "resolved": sum(n.kind is NoticeKind.RESOLVED for n in notices),
        "info": sum(n.kind is NoticeKind.INFO for n in notices),
    }
    print_summary(summary, as_json, ", ".join(f"{v} {k}" for k, v in summary.items()))
    if counts[Outcome.REJECTED]:
        raise typer.Exit(ExitCode.REJECTED)


@table_options(region=False)
def backfill(
    source: Annotated[
        str | None,
        typer.Argument(help="A folder of CloudTrail log files, or s3://BUCKET/PREFIX.", show_default=False),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this day or ISO time (UTC).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to this day (inclusive) or ISO time.")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="The region watched: its log files (or its LookupEvents), and IAM's calls, which CloudTrail "
            "records in us-east-1.",
        ),
    ] = None,
    use_lookup_events: Annotated[
        bool, typer.Option("--lookup-events", help="Read CloudTrail LookupEvents (90 days) instead of files.")
    ] = False,
    decrypt_failures: Annotated[
        bool,
        typer.Option(
            "--decrypt-failures",
            help="Also the failed Decrypt calls that confirm a loss (what the opt-in rule takes).",
        ),
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Resume file (default: .grantwatch/backfill-<source>.json)."),
    ] = None,
    settle_seconds: SettleOption = DEFAULT_SETTLE_SECONDS,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Write notices here (JSON Lines).")
    ] = None,
    as_json: JsonOption = False,
    workers: WorkersOption = None,
    *,
    settings: Settings,
) -> None:
    """Record history from CloudTrail's archives, through the same pipeline as the Lambda functions.

    Reads the .json.gz log files a trail writes (AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/), from a
    folder or from S3, keeping only the events grantwatch acts on (grant, key-state, IAM role and Lambda
    function calls; failed Decrypt calls with --decrypt-failures); a file without one is never parsed.
    A checkpoint after each file lets an interrupted backfill resume without reading finished files again.
    Exits 1 if any event was rejected, 3 if the source cannot be read, 4 if it does not exist.
    """
    pipeline = parallel_pipeline(settings, timedelta(seconds=settle_seconds), workers)
    counts: Counter[str] = Counter()
    notices = _NoticeSpool()

    def done(steps: list[Step[str]]) -> None:
        for step in steps:
            if not isinstance(step, Recorded):
                notices.add(step)
                continue
            counts[step.outcome.outcome] += 1
            if step.outcome.outcome is Outcome.REJECTED:
                report_event(step.outcome, step.tag, as_json)

    def feed(record: object) -> None:
        done(pipeline.feed(record, "backfill"))

    low, high = parse_moment(since), parse_moment(until, end_of_day=True)
    with notices:
        with pipeline, _progress(not as_json) as show:
            if use_lookup_events:
                source_name, progress = _from_lookup_events(feed, show, region, low, high, decrypt_failures)
            else:
                if not source:
                    raise BackfillError("give a folder or s3://BUCKET/PREFIX, or --lookup-events")
                archive: Archive = (
                    S3Archive(source) if source.startswith("s3://") else LocalArchive(Path(source))
                )
                source_name = archive.description
                scope = backfill_scope(source_name, region, low, high, decrypt_failures=decrypt_failures)
                resume = Checkpoint.load(checkpoint or _default_checkpoint(scope), scope)
                progress = backfill_archive(
                    archive,
                    feed,
                    checkpoint=resume,
                    since=low,
                    until=high,
                    region=region,
                    decrypt_failures=decrypt_failures,
                    on_file=show,
                    before_checkpoint=lambda: done(pipeline.flush()),
                )
            done(pipeline.drain())
        for notice in notices:
            report_notice(notice, as_json)
        if alerts_out is not None:
            notices.write(alerts_out)
    summary = {"source": source_name} | progress_json(progress) | outcome_counts(counts)
    summary |= {"alerts": notices.alerts}
    print_summary(summary, as_json, ", ".join(f"{k} {v}" for k, v in summary.items()))
    if counts[Outcome.REJECTED]:
        raise typer.Exit(ExitCode.REJECTED)


class _NoticeSpool:
    """A backfill's notices, printed once its progress line is gone: kept in a temporary file meanwhile, as
    the JSON Lines --alerts-out holds, never all in memory (years of history may raise thousands)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed by __exit__
        self.alerts = 0

    def __enter__(self) -> _NoticeSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self._file.close()

    def add(self, notice: Notice) -> None:
        self.alerts += notice.kind is NoticeKind.ALERT
        self._file.write(json.dumps(notice.as_json()) + "\n")

    def __iter__(self) -> Iterator[Notice]:
        for line in self._lines():
            kept = json.loads(line)
            yield Notice(
                NoticeKind(kept["kind"]),
                kept["incidentId"],
                kept["subject"],
                kept["message"],
                kept["attributes"],
                kept["details"],
                kept["email"],
                kept["command"],
            )

    def write(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as stream:
            stream.writelines(self._lines())

    def _lines(self) -> Iterator[str]:
        self._file.flush()
        self._file.seek(0)
        yield from self._file


def _from_lookup_events(
    feed: Callable[[object], None],
    show: Callable[[Progress], None],
    region: str | None,
    low: datetime | None,
    high: datetime | None,
    decrypt_failures: bool,
) -> tuple[str, Progress]:
    import boto3

    progress = Progress()
    records = lookup_events(
        boto3.client("cloudtrail", region_name=region),
        global_client=boto3.client("cloudtrail", region_name=GLOBAL_EVENTS_REGION),
        since=low,
        until=high,
        decrypt_failures=decrypt_failures,
    )
    for record in records:
        feed(record)
        progress.events_read += 1
        progress.events_matched += 1
        show(progress)
    return "CloudTrail LookupEvents", progress


def _default_checkpoint(source: str) -> Path:
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return Path(".grantwatch") / f"backfill-{digest}.json"


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[Progress], None]]:
    """A progress line on stderr (files, events read and matched, rate), or nothing."""
    if not enabled:
        yield lambda _: None
        return
    with RichProgress(SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True) as bar:
        task = bar.add_task("starting")

        def show(progress: Progress) -> None:
            bar.update(
                task,
                description=(
                    f"{progress.files} files ({progress.files_skipped} done before), "
                    f"{progress.events_read} events read, {progress.events_matched} matched, "
                    f"{progress.rate:,.0f} events/s"
                ),
            )

        yield show


def outcome_counts(counts: Counter[str]) -> dict[str, int]:
    """Each outcome's count; canary heartbeats only when there were some (a trail without a canary)."""
    return {o.value: counts[o] for o in Outcome if o is not Outcome.HEARTBEAT or counts[o]}
