"""`grantwatch migrate`: bring a table written by an earlier version to the current layout, in place.

Grants made for a function are given their link in the function's partition (`DynamoGrantStore.link_all`),
which lets an evaluation read a function's grants with the Query of its partition it makes anyway; the
table's layout item then says links are complete, and evaluations stop looking grants up through the
by-function index as well. Until then they do both, so nothing is missed during an upgrade.

Key and role state items that still hold their lineage (``events``, ``eventIds``, a key's ``noticesSent``)
have it moved to one item per event (`DynamoHazardStore.migrate_item`). With a retention period, ended
grants, closed incidents and key and role event items recorded before it was set are also given their
``expiresAt``, and those stamped under another period (RetentionDays changed) a new one, each by the
adapter that owns the item. Every step is idempotent and each item is finished
on its own, so a migration that stopped is completed by running it again, and running it twice changes
nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import KEY_SK, DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.settings import Settings


@dataclass
class MigrationSummary:
    dry_run: bool
    keys: int = 0  # state items whose lineage was (or would be) moved
    roles: int = 0
    facts: int = 0  # lineage entries found on them
    written: int = 0  # fact items written (the others existed already)
    claims: int = 0  # key notice claims moved to their fact items
    links: int = 0  # grants of a function given (or, in a dry run, to be given) their link
    links_complete: bool = False  # every grant of a function has its link
    retention_days: int = 0
    grants_stamped: int = 0  # ended grants given an expiresAt
    incidents_stamped: int = 0  # closed incidents given an expiresAt
    events_stamped: int = 0  # key and role event items given an expiresAt
    grants_restamped: int = 0  # ended grants whose expiresAt was of another retention period
    incidents_restamped: int = 0
    events_restamped: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "keys": self.keys,
            "roles": self.roles,
            "facts": self.facts,
            "written": self.written,
            "claims": self.claims,
            "links": self.links,
            "linksComplete": self.links_complete,
            "retentionDays": self.retention_days,
            "grantsStamped": self.grants_stamped,
            "incidentsStamped": self.incidents_stamped,
            "eventsStamped": self.events_stamped,
            "grantsRestamped": self.grants_restamped,
            "incidentsRestamped": self.incidents_restamped,
            "eventsRestamped": self.events_restamped,
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
        if self.dry_run:
            lines.append(f"grants of a function without a link in its partition: would link {self.links}")
        else:
            done = "every grant of a function is linked" if self.links_complete else "links incomplete"
            lines.append(f"grants of a function linked in its partition: {self.links} ({done})")
        if self.retention_days:
            stamp = "would stamp" if self.dry_run else "stamped"
            lines.append(
                f"retention {self.retention_days} days: {stamp} {self.grants_stamped} ended grant(s), "
                f"{self.incidents_stamped} closed incident(s) and {self.events_stamped} key or role "
                "event(s) with expiresAt"
            )
            restamp = "would move" if self.dry_run else "moved"
            lines.append(
                f"expiresAt of another retention period: {restamp} {self.grants_restamped} ended grant(s), "
                f"{self.incidents_restamped} closed incident(s) and {self.events_restamped} key or role "
                f"event(s) to {self.retention_days} days"
            )
        return lines


def migrate(settings: Settings, *, dry_run: bool) -> MigrationSummary:
    summary = MigrationSummary(dry_run=dry_run, retention_days=settings.retention_days)
    hazards = DynamoHazardStore(settings)
    move_lineage(hazards, summary)
    linked = DynamoGrantStore(settings).link_all(dry_run=dry_run)
    summary.links, summary.links_complete = linked.links, linked.complete
    if settings.retention_days:
        grants = DynamoGrantStore(settings).stamp_ended(dry_run=dry_run)
        incidents = DynamoFunctionStore(settings).stamp_closed_incidents(dry_run=dry_run)
        events = hazards.stamp_events(dry_run=dry_run)
        summary.grants_stamped, summary.grants_restamped = grants
        summary.incidents_stamped, summary.incidents_restamped = incidents
        summary.events_stamped, summary.events_restamped = events
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
