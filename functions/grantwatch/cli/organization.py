"""`grantwatch accounts`, and how `reconcile --all-accounts` reports each account-region it covered."""

from __future__ import annotations

from collections.abc import Sequence

import typer

from grantwatch.adapters.accounts import DynamoCoverageStore
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.heartbeats import DynamoHeartbeatStore
from grantwatch.cli.errors import ExitCode
from grantwatch.cli.options import AccountFilter, JsonOption, table_options
from grantwatch.cli.output import err, out, print_json
from grantwatch.domain.coverage import Coverage
from grantwatch.domain.notices import Notice
from grantwatch.queries import coverage_rows
from grantwatch.settings import Settings

COLUMNS = (
    "ACCOUNT",
    "REGION",
    "LAST RECONCILED",
    "LAST HEARTBEAT",
    "GRANTS",
    "FUNCTIONS",
    "OPEN INCIDENTS",
    "ERRORS",
)


@table_options()
def accounts(account: AccountFilter = None, as_json: JsonOption = False, *, settings: Settings) -> None:
    """Each account-region organization reconciliation covers: when it last reconciled (successfully),
    when its canary was last heard, its grants and functions, its open incidents, and what failed. Three
    Queries; exits 4 if none."""
    coverage = DynamoCoverageStore(settings).all(account)
    incidents = DynamoFunctionStore(settings).all_incidents()
    heartbeats = DynamoHeartbeatStore(settings).latest()
    opened = (r.incident.function_arn for r in incidents if r.status == "open")
    rows = coverage_rows(coverage, opened, heartbeats)
    if as_json:
        print_json(rows)
    else:
        out.print(f"{len(rows)} account-region(s)")
        out.print("{:<12}  {:<14}  {:<20}  {:<20}  {:>6}  {:>9}  {:>14}  {:>6}".format(*COLUMNS))
        for row in rows:
            last = row["lastReconciledAt"] or "never"
            heard = row["lastHeartbeatAt"] or "never"
            out.print(
                f"{row['account']:<12}  {row['region']:<14}  {last:<20}  {heard:<20}  {row['grants']:>6}  "
                f"{row['functions']:>9}  {row['openIncidents']:>14}  {row['errorCount']:>6}"
            )
            for error in row["errors"]:
                out.print(f"  {error}")
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
