"""`grantwatch`: replay events through the recorder, query grant lineage, and run DynamoDB Local.

Exit codes: 0 success; 1 some events were rejected (everything else was still processed); 2 usage error;
3 the table or endpoint cannot be used (missing, unreachable, not configured, stopped answering for longer
than the client's timeout and retries), or `local` was given another port than the one running;
4 nothing found; 5 (impact) the change would make a Lambda function lose decrypt; 6 (heal) a safety rule
refused the heal; 7 (heal) the heal was attempted and failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from pynamodb.exceptions import PynamoDBException
from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TextColumn

from grantwatch import local as local_dynamo
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.readers import KmsGrantReader, LambdaFunctionReader
from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.adapters.store import DynamoGrantStore, UnindexedGrantee
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
from grantwatch.domain.alerts import Notice, NoticeKind
from grantwatch.domain.catalogue import GLOBAL_EVENTS_REGION
from grantwatch.domain.healing import DEFAULT_MAX_ATTEMPTS, DEFAULT_TAG, HealPolicy
from grantwatch.domain.impact import ImpactInputError
from grantwatch.domain.lineage import GrantStatus
from grantwatch.domain.plans import PlanError
from grantwatch.healer import configured_healer
from grantwatch.impact import UnknownGrant, assess_impact, impact_json, impact_lines, scenario_of
from grantwatch.migration import migrate as run_migration
from grantwatch.parallel import Recorded, Step, parallel_pipeline
from grantwatch.pipeline import DEFAULT_SETTLE, LocalPipeline
from grantwatch.queries import function_rows, incident_rows, lineage_rows
from grantwatch.reconciler import Reconciler
from grantwatch.recorder import EventOutcome, Outcome
from grantwatch.settings import Settings
from grantwatch.sources import read_events
from grantwatch.template import find_template
from grantwatch.timeline import render_timeline
from grantwatch.views import grant_json, key_event_json, lineage_event_json

EXIT_REJECTED = 1
EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4
EXIT_WOULD_BREAK = 5
EXIT_HEAL_REFUSED = 6
EXIT_HEAL_FAILED = 7

app = typer.Typer(
    help="Record and query the lineage of AWS KMS grants. "
    "Table and endpoint: --table/--endpoint-url, else GRANTWATCH_TABLE and AWS_ENDPOINT_URL_DYNAMODB, "
    "else table 'grantwatch' in your default AWS region.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
local_app = typer.Typer(
    help="Run DynamoDB Local for this checkout (needs Java 17 and `make setup`).", no_args_is_help=True
)
app.add_typer(local_app, name="local")

# Markup off: grant ids, principals and errors come from events, and must print as they are.
out = Console(soft_wrap=True, markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)

TableOption = Annotated[str | None, typer.Option("--table", help="DynamoDB table name.", show_default=False)]
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="DynamoDB endpoint, e.g. DynamoDB Local.", show_default=False),
]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Events recorded and functions evaluated side by side (default: twice the CPUs, at most 8).",
        show_default=False,
    ),
]


class StateFilter(StrEnum):
    ACTIVE = "active"
    DEAD = "dead"
    ENDED = "ended"
    ALL = "all"


def _settings(table: str | None, endpoint_url: str | None, region: str | None) -> Settings:
    """Flags, then the environment, then the AWS configuration's default region."""
    settings = Settings.from_environ(table_name=table, endpoint_url=endpoint_url, region=region)
    if region or _region_in_environment():
        return settings
    configured = boto3.session.Session().region_name
    return settings.model_copy(update={"region": configured}) if configured else settings


def _region_in_environment() -> bool:
    return bool(os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


@contextmanager
def _table_errors(settings: Settings) -> Iterator[None]:
    """Turn AWS and connection failures into one clear line and exit code 3."""
    where = settings.endpoint_url or f"DynamoDB in {settings.region}"
    try:
        yield
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        cause = getattr(error, "cause", None) or error
        text = str(cause)
        if "ResourceNotFoundException" in text or "non-existent table" in text:
            text = (
                f"table {settings.table_name!r} does not exist at {where}: start it with "
                "`grantwatch local start`, or set --table / GRANTWATCH_TABLE"
            )
        err.print(
            f"error: cannot use table {settings.table_name!r} at {where}: {text}",
        )
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, sort_keys=False) + "\n")


@app.command()
def replay(
    paths: Annotated[list[Path], typer.Argument(help="Event files or folders (JSON, JSON Lines, .gz).")],
    as_json: JsonOption = False,
    settle_seconds: Annotated[
        int, typer.Option("--settle-seconds", min=0, help="Settle window before a function is evaluated.")
    ] = int(DEFAULT_SETTLE.total_seconds()),
    alerts_out: Annotated[
        Path | None,
        typer.Option("--alerts-out", help="Also write alerts and resolved notices here (JSON Lines)."),
    ] = None,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
    workers: WorkersOption = None,
) -> None:
    """Feed events through the whole service, as in AWS, on a virtual clock driven by eventTime.

    A path holds one CloudTrail record, one EventBridge event, a CloudTrail log file {"Records": [...]}
    (plain or .gz), or JSON Lines of these; a folder is read in file-name order. Each event is recorded,
    a duplicate, ignored (not a grant change: with a reason) or rejected (malformed: with an error).
    A function touched by an event is evaluated once the settle window after it has passed on the clock;
    alerts and resolved notices print as a subscriber receives them ({"alert": ...} lines with --json).
    Exits 1 if anything was rejected, after processing everything else.
    """
    settings = _settings(table, endpoint_url, region)
    counts: Counter[str] = Counter()
    notices: list[Notice] = []

    def show(steps: list[Step[str]]) -> None:
        for step in steps:
            if isinstance(step, Recorded):
                counts[step.outcome.outcome] += 1
                _report(step.outcome, step.tag, as_json)
            else:
                notices.append(step)
                _report_notice(step, as_json)

    with (
        _table_errors(settings),
        parallel_pipeline(settings, timedelta(seconds=settle_seconds), workers) as pipeline,
    ):
        try:
            for item in read_events(paths):
                if item.error is not None:
                    rejected = EventOutcome(Outcome.REJECTED, None, None, error=item.error)
                    show(pipeline.decided(rejected, item.origin))
                else:
                    show(pipeline.feed(item.event, item.origin))
            show(pipeline.drain())
        except FileNotFoundError as missing:
            err.print(f"error: {missing}")
            raise typer.Exit(EXIT_NOT_FOUND) from None
    if alerts_out is not None:
        alerts_out.write_text("".join(json.dumps(n.as_json()) + "\n" for n in notices), encoding="utf-8")
    summary = {"events": sum(counts.values())} | {o.value: counts[o] for o in Outcome}
    summary |= {
        "alerts": sum(n.kind is NoticeKind.ALERT for n in notices),
        "resolved": sum(n.kind is NoticeKind.RESOLVED for n in notices),
        "info": sum(n.kind is NoticeKind.INFO for n in notices),
    }
    if as_json:
        _print_json({"summary": summary})
    else:
        out.print(", ".join(f"{v} {k}" for k, v in summary.items()))
    if counts[Outcome.REJECTED]:
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def functions(
    at_risk: Annotated[
        bool, typer.Option("--at-risk", help="Only functions at risk or with an open incident.")
    ] = False,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """Every known Lambda function: its key and role, its grants, whether it can decrypt, its open incident.

    A function is known from Lambda's own events or from its grants. Served by index queries, not a scan.
    """
    settings = _settings(table, endpoint_url, region)
    with _table_errors(settings):
        rows = function_rows(
            DynamoGrantStore(settings),
            DynamoFunctionStore(settings),
            DynamoHazardStore(settings),
            at_risk=at_risk,
        )
    if as_json:
        _print_json(rows)
        return
    out.print(f"{len(rows)} function(s)")
    for row in rows:
        incident = f", open incident {row['openIncidentId']}" if row["openIncidentId"] else ""
        out.print(
            f"\n{row['functionName']}  {row['verdict'].upper()} ({row['reason']}){incident}", style="bold"
        )
        out.print(f"  function  {row['functionArn']}")
        out.print(f"  key       {row['keyArn'] or '-'}")
        out.print(f"  role      {row['executionRole'] or '-'}")
        out.print(f"  grants    {', '.join(f'{n} {status}' for status, n in row['grants'].items())}")


@app.command()
def incidents(
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents not yet resolved.")] = False,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """Incidents, newest first: a function that lost its last usable grant, and how it ended."""
    settings = _settings(table, endpoint_url, region)
    with _table_errors(settings):
        rows = incident_rows(DynamoFunctionStore(settings), open_only=open_only)
    if as_json:
        _print_json(rows)
        return
    out.print(f"{len(rows)} incident(s)")
    for row in rows:
        out.print(f"\n{row['incidentId']}  {row['status'].upper()}  {row['alertType']}", style="bold")
        out.print(f"  function  {row['functionArn']}")
        evidence = row["evidence"]
        out.print(f"  cause     {evidence['what']} at {evidence['at']} by {evidence['by']}")
        if row["grantId"]:
            out.print(f"  grant     {row['grantId']}")
        if row["deletionDate"]:
            out.print(f"  deletion  {row['deletionDate']}")
        out.print(f"  alerted   {row['alertSentAt'] or 'not sent'} (detected {row['detectedAt']})")
        if row["confirmed"]:
            lead = row["leadTimeSeconds"]
            out.print(
                f"  confirmed first failed Decrypt {row['firstFailureAt']} ({row['failures']} failure(s),"
                f" lead time {lead} s)"
            )
        if row["heal"]:
            heal = row["heal"]
            outcome = f"healed {heal['healedAt']}" if heal["healedAt"] else f"{heal['status']}"
            error = f": {heal['error']}" if heal["error"] else ""
            out.print(f"  heal      {heal['attempts']} attempt(s), {outcome}{error}")
        if row["resolvedAt"]:
            out.print(f"  resolved  {row['resolvedAt']}: {row['resolvedReason']}")


@app.command()
def lineage(
    function: Annotated[str | None, typer.Option("--function", help="Lambda function ARN.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Key ARN.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this day or ISO time (UTC).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to this day (inclusive) or ISO time.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Also write the timeline as a self-contained HTML page.")
    ] = None,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """The timeline of one function or one key: grant creations and ends, alerts and resolved notices.

    With --html, also a page (no network needed to view it) with a bar per grant from its creation to its
    end, coloured by how it ended, alerts and resolved notices as markers, details on hover."""
    if bool(function) == bool(key):
        err.print("error: give exactly one of --function and --key")
        raise typer.Exit(2)
    settings = _settings(table, endpoint_url, region)
    try:
        low, high = parse_moment(since), parse_moment(until, end_of_day=True)
    except BackfillError as error:
        err.print(f"error: {error}")
        raise typer.Exit(2) from None
    with _table_errors(settings):
        rows = lineage_rows(
            DynamoGrantStore(settings),
            DynamoFunctionStore(settings),
            DynamoHazardStore(settings),
            function=function,
            key=key,
            since=low,
            until=high,
        )
    if html_out is not None:
        page = render_timeline(f"grantwatch lineage of {function or key}", rows, now=datetime.now(UTC))
        html_out.write_text(page, encoding="utf-8")
        err.print(f"timeline written to {html_out}")
    if as_json:
        _print_json(rows)
        return
    out.print(f"{len(rows)} event(s) for {function or key}")
    for row in rows:
        subject = f"grant {row['grantId']}" + (
            f" ({row['functionArn']})" if key and row.get("functionArn") else ""
        )
        who = f" by {row['by']}" if row.get("by") else ""
        out.print(f"  {row['time']}  {row['what']:<9} {subject}{who}")


RepeatedOption = list[str] | None


@app.command()
def impact(
    delete_role: Annotated[RepeatedOption, typer.Option("--delete-role", help="Role name or ARN.")] = None,
    replace_role: Annotated[
        RepeatedOption, typer.Option("--replace-role", help="Role deleted and re-created under its name.")
    ] = None,
    disable_key: Annotated[RepeatedOption, typer.Option("--disable-key", help="Key ARN or id.")] = None,
    schedule_key_deletion: Annotated[
        RepeatedOption, typer.Option("--schedule-key-deletion", help="Key ARN or id.")
    ] = None,
    retire_grant: Annotated[RepeatedOption, typer.Option("--retire-grant", help="Grant id.")] = None,
    revoke_grant: Annotated[RepeatedOption, typer.Option("--revoke-grant", help="Grant id.")] = None,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="`terraform show -json` output or a describe-change-set output."),
    ] = None,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """What breaks if …: the Lambda functions that would lose decrypt, why, and what to do instead.

    Changes nothing. Options repeat and combine with --plan. Exits 5 if a function would lose decrypt,
    0 if none would, 2 for a malformed question or plan, 4 for a grant grantwatch has not recorded.
    """
    try:
        scenario = scenario_of(
            delete_roles=delete_role or [],
            replace_roles=replace_role or [],
            disable_keys=disable_key or [],
            delete_keys=schedule_key_deletion or [],
            retire_grants=retire_grant or [],
            revoke_grants=revoke_grant or [],
            plan=plan,
        )
    except (ImpactInputError, PlanError) as error:
        err.print(f"error: {error}")
        raise typer.Exit(2) from None
    settings = _settings(table, endpoint_url, region)
    with _table_errors(settings):
        try:
            found = assess_impact(
                scenario,
                DynamoGrantStore(settings),
                DynamoFunctionStore(settings),
                DynamoHazardStore(settings),
                now=datetime.now(UTC),
                temporary_role=settings.heal_temporary_role_arn,
            )
        except UnknownGrant as error:
            err.print(f"error: {error}")
            raise typer.Exit(EXIT_NOT_FOUND) from None
    report = impact_json(found)
    if as_json:
        _print_json(report)
    else:
        for line, heading in impact_lines(report):
            out.print(line, style="bold" if heading else None)
    if found.breaks:
        raise typer.Exit(EXIT_WOULD_BREAK)


@app.command()
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
    settle_seconds: Annotated[int, typer.Option("--settle-seconds", min=0)] = int(
        DEFAULT_SETTLE.total_seconds()
    ),
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Write notices here (JSON Lines).")
    ] = None,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    workers: WorkersOption = None,
) -> None:
    """Record history from CloudTrail's archives, through the same pipeline as the Lambda functions.

    Reads the .json.gz log files a trail writes (AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/), from a
    folder or from S3, keeping only the events grantwatch acts on (grant, key-state, IAM role and Lambda
    function calls; failed Decrypt calls with --decrypt-failures); a file without one is never parsed.
    A checkpoint after each file lets an interrupted backfill resume without reading finished files again.
    Exits 1 if any event was rejected, 3 if the source cannot be read, 4 if it does not exist.
    """
    settings = _settings(table, endpoint_url, None)
    pipeline = parallel_pipeline(settings, timedelta(seconds=settle_seconds), workers)
    counts: Counter[str] = Counter()
    notices: list[Notice] = []

    def done(steps: list[Step[str]]) -> None:
        for step in steps:
            if not isinstance(step, Recorded):
                notices.append(step)
                continue
            counts[step.outcome.outcome] += 1
            if step.outcome.outcome is Outcome.REJECTED:
                _report(step.outcome, step.tag, as_json)

    def feed(record: object) -> None:
        done(pipeline.feed(record, "backfill"))

    try:
        low, high = parse_moment(since), parse_moment(until, end_of_day=True)
        with _table_errors(settings), pipeline, _progress(not as_json) as show:
            if use_lookup_events:
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
                source_name = "CloudTrail LookupEvents"
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
    except BackfillError as error:
        err.print(f"error: {error}")
        raise typer.Exit(EXIT_NOT_FOUND if "no such folder" in str(error) else EXIT_UNAVAILABLE) from None
    for notice in notices:
        _report_notice(notice, as_json)
    if alerts_out is not None:
        alerts_out.write_text("".join(json.dumps(n.as_json()) + "\n" for n in notices), encoding="utf-8")
    summary = {"source": source_name} | progress_json(progress) | {o.value: counts[o] for o in Outcome}
    summary |= {"alerts": sum(n.kind is NoticeKind.ALERT for n in notices)}
    if as_json:
        _print_json({"summary": summary})
    else:
        out.print(", ".join(f"{k} {v}" for k, v in summary.items()))
    if counts[Outcome.REJECTED]:
        raise typer.Exit(EXIT_REJECTED)


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


def _report_notice(notice: Notice, as_json: bool) -> None:
    if as_json:
        _print_json({"alert": notice.as_json()})
        return
    rule = "-" * 78
    attributes = ", ".join(f"{k}={v}" for k, v in notice.attributes.items())
    out.print(f"{rule}\nSNS notice ({notice.kind})\nSubject: {notice.subject}\nAttributes: {attributes}\n")
    out.print(notice.message)
    out.print(rule)


def _report(result: EventOutcome, origin: str, as_json: bool) -> None:
    if as_json:
        _print_json(result.as_json())
    elif result.outcome is Outcome.REJECTED:
        err.print(f"rejected {origin} ({result.event_id or 'no eventID'}): {result.error}")
    elif result.outcome is Outcome.IGNORED:
        out.print(f"ignored   {result.event_name} {result.event_id}: {result.reason}")
    else:
        subject = f"grant {result.grant_id}" if result.grant_id else f"function {result.function_arn}"
        out.print(f"{result.outcome:<10}{result.event_name} {result.event_id} {subject}")


@app.command()
def reconcile(
    account: Annotated[
        str | None, typer.Option("--account", help="Account to reconcile (default: the caller's, from STS).")
    ] = None,
    queue_url: Annotated[
        str | None,
        typer.Option(
            "--queue-url",
            help="Send the evaluations to this queue (the stack's EvaluationQueue) instead of running them.",
        ),
    ] = None,
    settle_seconds: Annotated[int, typer.Option("--settle-seconds", min=0)] = int(
        DEFAULT_SETTLE.total_seconds()
    ),
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """Compare KMS ListGrants and Lambda ListFunctions with the table, record every difference in the
    lineage (source: reconciliation), and evaluate the functions concerned.

    The same code as the scheduled function. KMS, Lambda and STS are reached through your AWS
    configuration (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_LAMBDA and AWS_ENDPOINT_URL_STS point them
    elsewhere). Without --queue-url the evaluations run here and their notices are printed, and recorded
    as sent: against a deployed table, pass its evaluation queue so that the alerts go to SNS. Exits 3 if
    the table cannot be used or a key could not be listed.
    """
    settings = _settings(table, endpoint_url, region)
    grant_store, functions, hazards = (
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
    )
    pipeline = LocalPipeline(grant_store, functions, hazards, timedelta(seconds=settle_seconds))
    now = datetime.now(UTC)
    with _table_errors(settings):
        caller = account or _caller_account(settings.region)
        reconciler = Reconciler(
            grants=grant_store,
            functions=functions,
            hazards=hazards,
            kms=KmsGrantReader(region=settings.region),
            lambda_=LambdaFunctionReader(region=settings.region),
            scheduler=SqsEvaluationScheduler(queue_url) if queue_url else pipeline.scheduler,
            account=caller,
            region=settings.region,
        )
        report = reconciler.run(now)
        pipeline.clock = now
        notices = pipeline.drain()  # none were scheduled here when they went to the queue
    for notice in notices:
        _report_notice(notice, as_json)
    summary = report.as_json() | {"account": caller, "region": settings.region, "notices": len(notices)}
    if as_json:
        _print_json({"summary": summary})
    else:
        repairs = ", ".join(f"{n} {what}" for what, n in summary["repairs"].items()) or "none"
        out.print(
            f"{report.keys} key(s), {report.grants_listed} grant(s) and {report.functions_listed} "
            f"function(s) listed in {caller} {settings.region}; repairs: {repairs}; "
            f"{len(notices)} notice(s)"
        )
        for error in report.errors:
            err.print(f"error: not reconciled: {error}")
    if report.errors:
        raise typer.Exit(EXIT_UNAVAILABLE)


@app.command()
def heal(
    function_arn: Annotated[str, typer.Argument(help="The Lambda function's ARN.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print; change nothing.")] = False,
    tag: Annotated[str, typer.Option("--tag", help="Tag key that opts a function in.")] = DEFAULT_TAG,
    max_attempts: Annotated[int, typer.Option("--max-attempts", min=1, max=5)] = DEFAULT_MAX_ATTEMPTS,
    verify_seconds: Annotated[int, typer.Option("--verify-seconds", min=0, max=600)] = 60,
    temporary_role: Annotated[
        str | None,
        typer.Option(
            "--temporary-role",
            help="Role ARN for the role switch (default: GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN).",
        ),
    ] = None,
    topic_arn: Annotated[
        str | None,
        typer.Option(
            "--topic-arn", help="Also publish the outcome here (default: GRANTWATCH_ALERT_TOPIC_ARN)."
        ),
    ] = None,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """Reset the lost grant of a function's open incident, under the same safety rules as the
    remediation function: tagged TAG=true, a healable alert type, key enabled, role present, attempts left.
    It performs the documented reset (the key switch, or the role switch with a temporary role: two
    UpdateFunctionConfiguration calls, away and back) and waits for the new grant in ListGrants. Exits 4 if
    the function has no open incident, 6 if a rule refused (or Lambda denied access to the function: it
    is not opted in), 7 if the heal failed.
    """
    settings = _settings(table, endpoint_url, region)
    healer = configured_healer(
        settings,
        HealPolicy(
            tag=tag,
            max_attempts=max_attempts,
            temporary_role=temporary_role or settings.heal_temporary_role_arn,
        ),
        timedelta(seconds=verify_seconds),
        topic_arn or settings.alert_topic_arn,
    )
    with _table_errors(settings):
        report = healer.heal(function_arn, dry_run=dry_run)
    if report.notice is not None:
        _report_notice(report.notice, as_json)
    if as_json:
        _print_json({"heal": report.as_json()})
    else:
        verb = "would heal" if dry_run and report.decision.heal else report.decision.as_json()["decision"]
        out.print(f"{function_arn}: {verb} ({report.decision.reason})")
        for name, value in report.facts.items():
            out.print(f"  {name}: {value}")
        if report.outcome is not None:
            outcome = report.outcome
            result = (
                f"healed: new grant {outcome.grant_id}" if outcome.healed else f"heal failed: {outcome.error}"
            )
            out.print(f"attempt {outcome.attempt} of {outcome.max_attempts}: {result}")
    if not report.found:
        raise typer.Exit(EXIT_NOT_FOUND)
    if not report.decision.heal:
        raise typer.Exit(EXIT_HEAL_REFUSED)
    if report.outcome is not None and not report.outcome.healed:
        raise typer.Exit(EXIT_HEAL_FAILED)


def _caller_account(region: str) -> str:
    account: str = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    return account


@app.command()
def grants(
    key: Annotated[str | None, typer.Option("--key", help="Key ARN (or the alias as recorded).")] = None,
    function: Annotated[str | None, typer.Option("--function", help="Lambda function ARN.")] = None,
    grantee: Annotated[
        str | None,
        typer.Option("--grantee", help="Grantee: an IAM role or user ARN, or a service principal."),
    ] = None,
    state: Annotated[StateFilter, typer.Option("--state", help="Which grants.")] = StateFilter.ALL,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """List grants, newest first. With --key, --function or --grantee the answer comes from an index
    query; with none of them the whole table is scanned."""
    settings = _settings(table, endpoint_url, region)
    status = None if state is StateFilter.ALL else GrantStatus(state.value)
    with _table_errors(settings):
        try:
            found = list(
                DynamoGrantStore(settings).grants(key=key, function=function, grantee=grantee, status=status)
            )
        except UnindexedGrantee as unindexed:
            raise typer.BadParameter(str(unindexed), param_hint="'--grantee'") from None
    rows = sorted(
        (grant_json(s) for s in found), key=lambda g: (g["createdAt"] or "", g["grantId"]), reverse=True
    )
    if as_json:
        _print_json(rows)
        return
    out.print(f"{len(rows)} grant(s)")
    for row in rows:
        _print_grant(row)


def _print_grant(row: dict[str, Any]) -> None:
    ended = f" ({row['endedHow']})" if row["endedHow"] else ""
    dependent = " ".join(filter(None, (row["service"], row["functionArn"] or row["resource"]))) or "unknown"
    out.print(f"\ngrant {row['grantId']}  {row['state'].upper()}{ended}", style="bold")
    fields = [
        ("key", row["keyArn"]),
        ("for", dependent),
        ("grantee", row["granteePrincipal"] or "unknown (creation not recorded)"),
        ("retiring", row["retiringPrincipal"]),
        ("operations", ", ".join(row["operations"])),
        ("created", _when(row["createdAt"], row["createdBy"], row["createdVia"])),
        ("ended", _when(row["endedAt"], row["endedBy"], row["endedVia"], row["endedHow"])),
    ]
    for label, value in fields:
        if value:
            out.print(f"  {label:<11}{value}")


def _when(at: str | None, by: str | None, via: str | None, how: str | None = None) -> str | None:
    if at is None:
        return None
    return " ".join(filter(None, (at, how, f"by {by}" if by else None, f"via {via}" if via else None)))


@app.command()
def history(
    grant_id: Annotated[str, typer.Argument(help="The grant id.")],
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """Every event that touched a grant, in eventTime order, with the state changes of its key (disabled,
    enabled, scheduled for deletion, policy changed) and reconciliation's repairs. Exits 4 if unknown."""
    settings = _settings(table, endpoint_url, region)
    with _table_errors(settings):
        state = DynamoGrantStore(settings).get(grant_id)
        key_events = DynamoHazardStore(settings).key_lineage(state.key_arn) if state else []
    if state is None:
        err.print(f"no grant {grant_id} in table {settings.table_name!r}")
        raise typer.Exit(EXIT_NOT_FOUND)
    events = sorted(
        [lineage_event_json(f) for f in state.lineage] + [key_event_json(f) for f in key_events],
        key=lambda e: (e["eventTime"], e["eventID"]),
    )
    if as_json:
        _print_json({"grant": grant_json(state), "lineage": events})
        return
    _print_grant(grant_json(state))
    out.print("  lineage")
    for event in events:
        line = _when(event["eventTime"], event["by"], event["via"], f"{event['eventName']} ({event['what']})")
        out.print(f"    {line}  [event {event['eventID']}]")


@app.command()
def migrate(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; change nothing.")
    ] = False,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            help="The stack's RetentionDays (else GRANTWATCH_RETENTION_DAYS): also give ended grants, "
            "closed incidents and key and role events recorded before it their expiresAt.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    table: TableOption = None,
    endpoint_url: EndpointOption = None,
    region: RegionOption = None,
) -> None:
    """Bring a table written by an earlier version to this version's layout, in place: key and role
    lineage moves from their state items to one item per event. Run it once the new version is deployed.
    Safe to run again, and to interrupt: a second run finishes what the first left."""
    settings = _settings(table, endpoint_url, region)
    if retention_days is not None:
        try:
            settings = Settings.model_validate(settings.model_dump() | {"retention_days": retention_days})
        except ValidationError as error:
            err.print(f"error: --retention-days: {error.errors()[0]['msg']}")
            raise typer.Exit(2) from None
    with _table_errors(settings):
        try:
            summary = run_migration(settings, dry_run=dry_run)
        except RuntimeError as error:
            err.print(f"error: {error}")
            raise typer.Exit(EXIT_UNAVAILABLE) from None
    if as_json:
        _print_json(summary.as_json())
        return
    for line in summary.lines():
        out.print(line)


def _checkout(template: Path | None) -> tuple[Path, Path]:
    path = template or find_template()
    return path, path.resolve().parent


def _state_dir(root: Path) -> Path:
    return root / ".grantwatch" / "local"


PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        help=f"Port on 127.0.0.1 (start: {local_dynamo.DEFAULT_PORT} unless it runs already). "
        "Exits 3 if this checkout's DynamoDB Local runs on another.",
        show_default=False,
    ),
]


@contextmanager
def _local_errors() -> Iterator[None]:
    try:
        yield
    except local_dynamo.LocalDynamoError as error:
        err.print(f"error: {error}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None


@local_app.command("start")
def local_start(
    port: PortOption = None,
    in_memory: Annotated[bool, typer.Option("--in-memory", help="Keep no data on disk.")] = False,
    table: TableOption = None,
    template: Annotated[Path | None, typer.Option("--template", help="Path to template.yaml.")] = None,
) -> None:
    """Start DynamoDB Local, wait until it answers, create the table from template.yaml, and print the
    endpoint variable to export."""
    template_path, root = _checkout(template)
    with _local_errors():
        running = local_dynamo.start(root, _state_dir(root), port=port, in_memory=in_memory)
        settings = Settings.from_environ(table_name=table, endpoint_url=running.endpoint_url)
        created = local_dynamo.ensure_table(running.endpoint_url, settings.table_name, template_path)
    err.print(
        f"DynamoDB Local pid {running.pid}; table {settings.table_name!r} "
        f"{'created' if created else 'present'}",
    )
    sys.stdout.write(f"AWS_ENDPOINT_URL_DYNAMODB={running.endpoint_url}\n")


@local_app.command("stop")
def local_stop(
    port: PortOption = None,
    template: Annotated[Path | None, typer.Option("--template", help="Path to template.yaml.")] = None,
) -> None:
    """Stop the DynamoDB Local this checkout started (with --port, only if it runs on that port)."""
    _, root = _checkout(template)
    with _local_errors():
        stopped = local_dynamo.stop(_state_dir(root), port=port)
    err.print(f"stopped pid {stopped.pid}" if stopped else "not running")


@local_app.command("status")
def local_status(
    port: PortOption = None,
    template: Annotated[Path | None, typer.Option("--template", help="Path to template.yaml.")] = None,
) -> None:
    """Say whether this checkout's DynamoDB Local runs (with --port, on that port); exit 3 if it does not."""
    _, root = _checkout(template)
    with _local_errors():
        running = local_dynamo.status(_state_dir(root), port=port)
    if running is None:
        err.print("not running")
        raise typer.Exit(EXIT_UNAVAILABLE)
    sys.stdout.write(f"AWS_ENDPOINT_URL_DYNAMODB={running.endpoint_url}\n")
    err.print(f"running: pid {running.pid}, {'in memory' if running.in_memory else 'data on disk'}")


def main() -> None:
    app()
