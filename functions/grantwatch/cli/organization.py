"""`grantwatch accounts`, and how `reconcile --all-accounts` reports each account-region it covered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from grantwatch.adapters.accounts import DynamoCoverageStore
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.heartbeats import DynamoHeartbeatStore
from grantwatch.cli.errors import ExitCode
from grantwatch.cli.options import AccountFilter, JsonOption, sort_option, table_options
from grantwatch.cli.output import err, out, print_json
from grantwatch.cli.table import Column, one_line, sort_rows, table_lines
from grantwatch.domain.coverage import Coverage
from grantwatch.domain.notices import Notice
from grantwatch.queries import coverage_rows
from grantwatch.settings import Settings

# The table's columns, in order: a new column is one more entry (its --sort name, header, and cell).
ACCOUNT_COLUMNS = (
    Column("account", "ACCOUNT", lambda r: r["account"]),
    Column("region", "REGION", lambda r: r["region"]),
    Column(
        "reconciled",
        "LAST RECONCILED",
        lambda r: r["lastReconciledAt"] or "never",
        order=lambda r: r["lastReconciledAt"] or "",  # never first: the stalest lead
    ),
    Column(
        "heartbeat",
        "LAST HEARTBEAT",
        lambda r: r["lastHeartbeatAt"] or "never",
        order=lambda r: r["lastHeartbeatAt"] or "",  # never heard first
    ),
    Column("grants", "GRANTS", lambda r: r["grants"], numeric=True),
    Column("functions", "FUNCTIONS", lambda r: r["functions"], numeric=True),
    Column("incidents", "OPEN INCIDENTS", lambda r: r["openIncidents"], numeric=True),
    Column("errors", "ERRORS", lambda r: r["errorCount"], numeric=True),
)


@table_options()
def accounts(
    account: AccountFilter = None,
    sort: Annotated[str | None, sort_option(ACCOUNT_COLUMNS, "account, then region")] = None,
    long: Annotated[
        bool, typer.Option("--long", help="Also each account-region's errors, under its row.")
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Each account-region organization reconciliation covers: when it last reconciled (successfully),
    when its canary was last heard, its grants and functions, its open incidents, and how many errors its
    last run had.

    One row per account-region, --long adds the errors themselves. Three Queries; exits 4 if none.
    """
    coverage = DynamoCoverageStore(settings).all(account)
    incidents = DynamoFunctionStore(settings).all_incidents()
    heartbeats = DynamoHeartbeatStore(settings).latest()
    opened = (r.incident.function_arn for r in incidents if r.status == "open")
    rows = sort_rows(coverage_rows(coverage, opened, heartbeats), ACCOUNT_COLUMNS, sort)
    if as_json:
        print_json(rows)
    else:
        out.print(f"{len(rows)} account-region(s)")
        header, *lines = table_lines(rows, ACCOUNT_COLUMNS)
        if rows:
            out.print(header, style="bold")
        for row, line in zip(rows, lines, strict=True):
            out.print(line)
            for error in row["errors"] if long else ():
                out.print(f"  {one_line(error)}")
    if not rows:
        raise typer.Exit(ExitCode.NOT_FOUND)


def report_organization(covered: Sequence[Coverage], notices: Sequence[Notice], as_json: bool) -> None:
    """One line per account-region reconciled (or JSON); exit 3 if any could not be reconciled."""
    if as_json:
        print_json({"accounts": [c.as_json() for c in covered], "notices": len(notices)})
    else:
        for c in covered:
            repairs = ", ".join(f"{n} {what}" for what, n in sorted(c.repairs.items())) or "none"
            out.print(
                f"{c.account} {c.region}: {c.grants} grant(s), {c.functions} function(s); repairs: {repairs}"
            )
            for error in c.errors:
                err.print(f"error: {c.account} {c.region} not reconciled: {error}")
    if any(c.errors for c in covered):
        raise typer.Exit(ExitCode.UNAVAILABLE)
