"""`grantwatch resources --key KEY`: what depends on a key besides Lambda functions (DynamoDB tables, RDS
instances and clusters, EBS volumes, ...), from the grants recorded on it and from what the services' read
APIs showed during reconciliation, each with its clock from the service catalogue once the key is disabled
or pending deletion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from grantwatch.adapters.discovered import DynamoDiscoveredResources
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli.errors import ExitCode
from grantwatch.cli.options import JsonOption, table_options
from grantwatch.cli.output import err, out, print_json
from grantwatch.domain.discovery import resource_clock
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.hazards import KeyStatus
from grantwatch.domain.resources import ResourceOnKey, resources_on_key
from grantwatch.domain.services import SERVICES
from grantwatch.settings import Settings

COLUMNS = (
    ("SERVICE", "service"),
    ("KIND", "resourceKind"),
    ("RESOURCE", "resourceId"),
    ("STATE", "state"),
    ("SEEN BY", "seenBy"),
    ("GRANTS", "usableGrants"),
    ("CLOCK", "clock"),
)


@table_options()
def resources(
    key: Annotated[str, typer.Option("--key", help="Key ARN.")],
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Every resource of another service on the key (DynamoDB tables, RDS instances and clusters, EBS
    volumes, EFS file systems, WorkSpaces), one row each: from the grants recorded on the key and from the
    services' read APIs at the last reconciliation. Once the key is disabled or pending deletion, each row
    says since when and, where the service documents one, when the loss becomes irreversible (a DynamoDB
    table is archived seven days after its key became inaccessible). Exits 4 if nothing is on the key."""
    now = datetime.now(UTC)
    status = DynamoHazardStore(settings).key(key)
    found = resources_on_key(
        key,
        DynamoGrantStore(settings).grants(key=key),
        DynamoDiscoveredResources(settings).on_key(key, now),
    )
    if not found:
        err.print(
            f"no resource of a covered service is recorded on key {key} in table {settings.table_name!r}"
        )
        raise typer.Exit(ExitCode.NOT_FOUND)
    rows = [resource_row(resource, status) for resource in found]
    if as_json:
        print_json(rows)
        return
    out.print(_key_line(key, status))
    _print_table(rows)
    for service in dict.fromkeys(row["service"] for row in rows if row["irreversibleAt"]):
        row = next(r for r in rows if r["service"] == service)
        out.print(f"{service}: after that, {row['irreversible']}")


def resource_row(resource: ResourceOnKey, key: KeyStatus | None) -> dict[str, Any]:
    """One resource on the key, with its key's state and its clock, as stable JSON."""
    entry = SERVICES.get(resource.service)
    clock = resource_clock(resource, key)
    effect = clock.effect
    return {
        "service": str(resource.service),
        "resourceKind": entry.resource_kind if entry else None,
        "resourceId": resource.resource_id,
        "keyArn": resource.key_arn,
        "account": resource.account,
        "region": resource.region,
        "state": resource.state,
        "seenBy": sorted(resource.seen_by),
        "usableGrants": resource.usable_grants,
        "keyState": key.state.value if key else None,
        "inaccessibleSince": utc_iso(resource.inaccessible_since) if resource.inaccessible_since else None,
        "lossStartedAt": utc_iso(clock.loss_started) if clock.loss_started else None,
        "irreversibleAt": utc_iso(clock.deadline) if clock.deadline else None,
        "whatHappens": effect.what_happens if effect else None,
        "irreversible": effect.irreversible if effect else None,
        "recovery": effect.recovery if effect else None,
    }


def _key_line(key: str, status: KeyStatus | None) -> str:
    if status is None:
        return f"key {key}  state not recorded"
    changed = status.changed_by
    since = f" since {utc_iso(changed.event_time)}" if changed else ""
    deletion = f", deletion on {utc_iso(status.deletion_date)}" if status.deletion_date else ""
    return f"key {key}  {status.state.value.upper()}{since}{deletion}"


def _clock(row: dict[str, Any]) -> str:
    if row["keyState"] in (None, "enabled"):
        return "-"
    since = f"since {row['lossStartedAt']}" if row["lossStartedAt"] else "since unknown"
    until = (
        f"; irreversible after {row['irreversibleAt']}"
        if row["irreversibleAt"]
        else "; no documented deadline"
    )
    return since + until


def _cell(row: dict[str, Any], field: str) -> str:
    if field == "clock":
        return _clock(row)
    if field == "seenBy":
        return ",".join(row["seenBy"])
    value = row[field]
    return "-" if value is None else str(value)


def _print_table(rows: list[dict[str, Any]]) -> None:
    """One aligned row per resource under a header."""
    cells = [[_cell(row, field) for _, field in COLUMNS] for row in rows]
    widths = [max(len(title), *(len(line[i]) for line in cells)) for i, (title, _) in enumerate(COLUMNS)]
    for line in [[title for title, _ in COLUMNS], *cells]:
        out.print("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())
