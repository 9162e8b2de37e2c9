"""Commands that read what grantwatch recorded: `functions`, `incidents`, `lineage`, `grants`, `history`.
What they answer comes from grantwatch.queries; here it is only printed."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore, UnindexedGrantee
from grantwatch.backfill import BackfillError, parse_moment
from grantwatch.cli.errors import ExitCode, NotFound, UsageError
from grantwatch.cli.options import (
    AccountFilter,
    InRegionFilter,
    JsonOption,
    LongOption,
    sort_option,
    table_options,
)
from grantwatch.cli.output import err, out, print_json, print_table
from grantwatch.cli.table import Column, Row, short_arn
from grantwatch.domain.lineage import GrantStatus
from grantwatch.incidents import find_incident
from grantwatch.queries import function_rows, grant_history, grant_rows, incident_rows, lineage_rows
from grantwatch.settings import Settings
from grantwatch.timeline import render_timeline
from grantwatch.wiring import incident_kinds


class StateFilter(StrEnum):
    ACTIVE = "active"
    DEAD = "dead"
    ENDED = "ended"
    ALL = "all"


def _grant_counts(row: Row) -> str:
    return ", ".join(f"{n} {status}" for status, n in row["grants"].items() if n) or "none"


FUNCTION_COLUMNS = (
    Column("name", "FUNCTION", lambda r: r["functionName"]),
    Column("verdict", "VERDICT", lambda r: r["verdict"]),
    Column("reason", "REASON", lambda r: r["reason"]),
    Column("key", "KEY", lambda r: short_arn(r["keyArn"])),
    Column("role", "ROLE", lambda r: short_arn(r["executionRole"])),
    Column("grants", "GRANTS", _grant_counts, order=lambda r: tuple(r["grants"].values())),
    Column("incident", "OPEN INCIDENT", lambda r: r["openIncidentId"]),
)
INCIDENT_COLUMNS = (
    Column("id", "INCIDENT", lambda r: r["incidentId"]),
    Column("status", "STATUS", lambda r: r["status"]),
    Column("type", "TYPE", lambda r: r["alertType"]),
    Column("function", "FUNCTION", lambda r: short_arn(r["functionArn"])),
    Column("key", "KEY", lambda r: short_arn(r["keyArn"])),
    Column("detected", "DETECTED", lambda r: r["detectedAt"]),
    Column("alerted", "ALERTED", lambda r: r["alertSentAt"] or "not sent", order=lambda r: r["alertSentAt"]),
    Column("resolved", "RESOLVED", lambda r: r["resolvedAt"]),
)


def _dependent(row: Row) -> str | None:
    """What the grant is for: the service and the function's name, or the resource."""
    target = short_arn(row["functionArn"]) or short_arn(row["resource"])
    return " ".join(filter(None, (row["service"], target))) or None


GRANT_COLUMNS = (
    Column("created", "CREATED", lambda r: r["createdAt"]),
    Column("status", "STATUS", lambda r: r["state"] + (f" ({r['endedHow']})" if r["endedHow"] else "")),
    Column("key", "KEY", lambda r: short_arn(r["keyArn"])),
    Column("grantee", "GRANTEE", lambda r: short_arn(r["granteePrincipal"])),
    Column("for", "FOR", _dependent),
    Column("ended", "ENDED", lambda r: r["endedAt"]),
    Column("id", "GRANT ID", lambda r: r["grantId"]),
)
FUNCTIONS_DEFAULT = "function ARN: region, account, name"
NEWEST_FIRST = "newest first"


@table_options()
def functions(
    at_risk: Annotated[
        bool, typer.Option("--at-risk", help="Only functions at risk or with an open incident.")
    ] = False,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Only the functions on this key (its ARN): every one an alert about the key counts.",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[str | None, sort_option(FUNCTION_COLUMNS, FUNCTIONS_DEFAULT)] = None,
    long: LongOption = False,
    as_json: JsonOption = False,
    account: AccountFilter = None,
    in_region: InRegionFilter = None,
    *,
    settings: Settings,
) -> None:
    """Every known Lambda function: its key and role, its grants, whether it can decrypt, its open incident.

    One row per function; --long shows each as a block with its ARNs in full. A function is known from
    Lambda's own events or from its grants. Served by index queries, not a scan; --account and --in-region
    select by the function's ARN. --key lists the functions on a key, all of them (an alert about a key
    names the first 25 and counts the rest).
    """
    rows = function_rows(
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
        at_risk=at_risk,
        account=account,
        in_region=in_region,
        key=key,
    )
    print_table(rows, FUNCTION_COLUMNS, sort, "function(s)", _print_function if long else None, as_json)


def _print_function(row: Row) -> None:
    incident = f", open incident {row['openIncidentId']}" if row["openIncidentId"] else ""
    out.print(f"\n{row['functionName']}  {row['verdict'].upper()} ({row['reason']}){incident}", style="bold")
    out.print(f"  function  {row['functionArn']}")
    out.print(f"  key       {row['keyArn'] or '-'}")
    out.print(f"  role      {row['executionRole'] or '-'}")
    out.print(f"  grants    {', '.join(f'{n} {status}' for status, n in row['grants'].items())}")


@table_options()
def incidents(
    incident_id: Annotated[
        str | None,
        typer.Argument(
            metavar="INCIDENT_ID",
            help="Show everything about this incident (the id every alert e-mail ends with).",
            show_default=False,
        ),
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents not yet resolved.")] = False,
    sort: Annotated[str | None, sort_option(INCIDENT_COLUMNS, NEWEST_FIRST)] = None,
    long: LongOption = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Incidents, newest first: a function that lost its last usable grant, and how it ended.

    One row per incident; --long shows each as a block: its cause, its alert, its confirmation by failed
    Decrypt calls, its heal and how it was resolved. With INCIDENT_ID, everything about that incident: its
    alert in full (cause, evidence, fixes), where the alert and the resolved notice stand in each channel,
    and the --long block; --json gives it as one object. Exits 4 if unknown.
    """
    if incident_id is not None:
        if open_only or sort:
            raise UsageError("--open and --sort select and order the list: give INCIDENT_ID without them")
        _show_incident(incident_id, as_json, settings)
        return
    rows = incident_rows(DynamoFunctionStore(settings), open_only=open_only)
    print_table(rows, INCIDENT_COLUMNS, sort, "incident(s)", _print_incident if long else None, as_json)


def _show_incident(incident_id: str, as_json: bool, settings: Settings) -> None:
    found = find_incident(incident_kinds(settings), incident_id)
    if found is None:
        raise NotFound(f"no incident {incident_id} in table {settings.table_name!r}")
    if as_json:
        print_json(found.as_json())
        return
    out.print(found.alert.message)
    _print_incident(found.row)
    for notice, channels in found.row["deliveries"].items():
        for channel, state in channels.items():
            out.print(f"  {notice + ' via':<9} {channel}: {_delivery(state)}")


def _delivery(state: Row) -> str:
    """Where a notice stands in one channel (a ChannelState's map)."""
    failed = (
        f"{state['failures']} failure(s), last {state.get('error') or 'unknown'}"
        if state.get("failures")
        else ""
    )
    if state.get("deliveredAt"):
        return f"delivered {state['deliveredAt']}" + (f" after {failed}" if failed else "")
    if state.get("gaveUpAt"):
        return f"given up {state['gaveUpAt']} after {failed or 'failures'}"
    return f"not delivered yet ({failed})" if failed else "not delivered yet"


def _print_incident(row: Row) -> None:
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


@table_options()
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
    *,
    settings: Settings,
) -> None:
    """The timeline of one function or one key: grant creations and ends, alerts and resolved notices.

    With --html, also a page (no network needed to view it) with a bar per grant from its creation to its
    end, coloured by how it ended, alerts and resolved notices as markers, details on hover."""
    if bool(function) == bool(key):
        raise UsageError("give exactly one of --function and --key")
    try:
        low, high = parse_moment(since), parse_moment(until, end_of_day=True)
    except BackfillError as error:
        raise UsageError(str(error)) from None
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
        print_json(rows)
        return
    out.print(f"{len(rows)} event(s) for {function or key}")
    for row in rows:
        subject = f"grant {row['grantId']}" + (
            f" ({row['functionArn']})" if key and row.get("functionArn") else ""
        )
        who = f" by {row['by']}" if row.get("by") else ""
        out.print(f"  {row['time']}  {row['what']:<9} {subject}{who}")


@table_options()
def grants(
    key: Annotated[str | None, typer.Option("--key", help="Key ARN (or the alias as recorded).")] = None,
    function: Annotated[str | None, typer.Option("--function", help="Lambda function ARN.")] = None,
    grantee: Annotated[
        str | None,
        typer.Option("--grantee", help="Grantee: an IAM role or user ARN, or a service principal."),
    ] = None,
    state: Annotated[StateFilter, typer.Option("--state", help="Which grants.")] = StateFilter.ALL,
    sort: Annotated[str | None, sort_option(GRANT_COLUMNS, NEWEST_FIRST)] = None,
    long: LongOption = False,
    as_json: JsonOption = False,
    account: AccountFilter = None,
    in_region: InRegionFilter = None,
    *,
    settings: Settings,
) -> None:
    """List grants, newest first.

    One row per grant, with its full id; --long shows each as a block with its ARNs in full. With --key,
    --function or --grantee the answer comes from an index query; with --account or --in-region, from the
    keys-only by-key index (a key ARN carries its account and region); with none of them the whole table
    is scanned.
    """
    status = None if state is StateFilter.ALL else GrantStatus(state.value)
    try:
        rows = grant_rows(
            DynamoGrantStore(settings),
            key=key,
            function=function,
            grantee=grantee,
            status=status,
            account=account,
            in_region=in_region,
        )
    except UnindexedGrantee as unindexed:
        raise typer.BadParameter(str(unindexed), param_hint="'--grantee'") from None
    print_table(rows, GRANT_COLUMNS, sort, "grant(s)", _print_grant if long else None, as_json)


@table_options()
def history(
    grant_id: Annotated[str, typer.Argument(help="The grant id.")],
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Every event that touched a grant, in eventTime order, with the state changes of its key (disabled,
    enabled, scheduled for deletion, policy changed) and reconciliation's repairs. Exits 4 if unknown."""
    found = grant_history(DynamoGrantStore(settings), DynamoHazardStore(settings), grant_id)
    if found is None:
        err.print(f"no grant {grant_id} in table {settings.table_name!r}")
        raise typer.Exit(ExitCode.NOT_FOUND)
    if as_json:
        print_json(found)
        return
    _print_grant(found["grant"])
    out.print("  lineage")
    for event in found["lineage"]:
        line = _when(event["eventTime"], event["by"], event["via"], f"{event['eventName']} ({event['what']})")
        out.print(f"    {line}  [event {event['eventID']}]")


def _print_grant(row: Row) -> None:
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
