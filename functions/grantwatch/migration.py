"""`grantwatch migrate`: bring a table written by an earlier version to the current layout, in place.

Key and role state items that still hold their lineage (``events``, ``eventIds``, a key's ``noticesSent``)
have it moved to one item per event (`DynamoHazardStore.migrate_item`). With a retention period, ended
grants, closed incidents and key and role event items recorded before it was set are also given their
``expiresAt``. Every step is
idempotent and each item is finished on its own, so a migration that stopped is completed by running it
again, and running it twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from grantwatch.adapters.functions import INCIDENT_ENTITY, DynamoFunctionStore
from grantwatch.adapters.hazards import FACT_PREFIX, KEY_SK, DynamoHazardStore
from grantwatch.adapters.store import GRANT_SK, DynamoGrantStore, state_of
from grantwatch.adapters.tables import error_code
from grantwatch.domain.facts import parse_utc_iso
from grantwatch.domain.lineage import GrantStatus
from grantwatch.settings import Settings


@dataclass
class MigrationSummary:
    dry_run: bool
    keys: int = 0  # state items whose lineage was (or would be) moved
    roles: int = 0
    facts: int = 0  # lineage entries found on them
    written: int = 0  # fact items written (the others existed already)
    claims: int = 0  # key notice claims moved to their fact items
    retention_days: int = 0
    grants_stamped: int = 0  # ended grants given an expiresAt
    incidents_stamped: int = 0  # closed incidents given an expiresAt
    events_stamped: int = 0  # key and role event items given an expiresAt

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "keys": self.keys,
            "roles": self.roles,
            "facts": self.facts,
            "written": self.written,
            "claims": self.claims,
            "retentionDays": self.retention_days,
            "grantsStamped": self.grants_stamped,
            "incidentsStamped": self.incidents_stamped,
            "eventsStamped": self.events_stamped,
        }

    def lines(self) -> list[str]:
        verb = "would move" if self.dry_run else "moved"
        found = (
            f"{self.keys} key(s) and {self.roles} role(s) in the old layout: {verb} {self.facts} event(s) "
            "to their own items"
        )
        if not self.dry_run:
            found += f" ({self.written} written, {self.facts - self.written} there already)"
        lines = [f"{found}, {self.claims} notice claim(s)"]
        if self.retention_days:
            stamp = "would stamp" if self.dry_run else "stamped"
            lines.append(
                f"retention {self.retention_days} days: {stamp} {self.grants_stamped} ended grant(s), "
                f"{self.incidents_stamped} closed incident(s) and {self.events_stamped} key or role "
                "event(s) with expiresAt"
            )
        return lines


def migrate(settings: Settings, *, dry_run: bool) -> MigrationSummary:
    summary = MigrationSummary(dry_run=dry_run, retention_days=settings.retention_days)
    hazards = DynamoHazardStore(settings)
    move_lineage(hazards, summary)
    if settings.retention_days:
        stamp_grants(DynamoGrantStore(settings), summary)
        stamp_incidents(DynamoFunctionStore(settings), summary)
        stamp_events(hazards, summary)
    return summary


def move_lineage(hazards: DynamoHazardStore, summary: MigrationSummary) -> None:
    for pk, sk in list(hazards.unmigrated()):
        moved = hazards.migrate_item(pk, sk, dry_run=summary.dry_run)
        if moved is None:
            continue
        if sk == KEY_SK:
            summary.keys += 1
        else:
            summary.roles += 1
        summary.facts += moved.facts
        summary.written += moved.written
        summary.claims += moved.claims


def stamp_grants(grants: DynamoGrantStore, summary: MigrationSummary) -> None:
    """Ended grants recorded before the retention period was set (a scan: a one-off)."""
    m = grants.model
    unstamped = (m.sk == GRANT_SK) & (m.state == GrantStatus.ENDED.value) & m.expiresAt.does_not_exist()
    for item in m.scan(filter_condition=unstamped):
        ended = state_of(item).ended
        expires = grants.settings.expires_at(ended.event_time) if ended else None
        if expires is not None and _stamp(item, m.expiresAt, expires, dry_run=summary.dry_run):
            summary.grants_stamped += 1


def stamp_incidents(functions: DynamoFunctionStore, summary: MigrationSummary) -> None:
    """Resolved and superseded incidents closed before the retention period was set."""
    i = functions.incidents
    unstamped = (i.status != "open") & i.resolvedAt.exists() & i.expiresAt.does_not_exist()
    for item in i.by_entity.query(INCIDENT_ENTITY, filter_condition=unstamped):
        expires = functions.settings.expires_at(parse_utc_iso(item.resolvedAt or ""))
        if expires is not None and _stamp(item, i.expiresAt, expires, dry_run=summary.dry_run):
            summary.incidents_stamped += 1


def stamp_events(hazards: DynamoHazardStore, summary: MigrationSummary) -> None:
    """Key and role event items recorded before the retention period was set (a scan: a one-off). Those
    the lineage move writes are stamped as they are written."""
    f = hazards.facts
    unstamped = f.sk.startswith(FACT_PREFIX) & f.expiresAt.does_not_exist()
    for item in f.scan(filter_condition=unstamped):
        expires = hazards.settings.expires_at(parse_utc_iso(item.eventTime))
        if expires is not None and _stamp(item, f.expiresAt, expires, dry_run=summary.dry_run):
            summary.events_stamped += 1


def _stamp(item: Model, attribute: Any, expires: int, *, dry_run: bool) -> bool:
    if dry_run:
        return True
    try:
        item.update(actions=[attribute.set(expires)], condition=attribute.does_not_exist())
    except UpdateError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False  # stamped meanwhile
        raise
    return True
