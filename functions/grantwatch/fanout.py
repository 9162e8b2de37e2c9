"""The organization's scheduled fan-out: list the accounts to cover, queue one reconciliation per account
and region, and raise a notice for every account-region whose last successful reconciliation is older than
two schedule intervals (the fan-out reads every coverage item anyway, and runs even when workers do not).
The central account is always covered, listed or not: its workers reconcile it with their own role.
With a member canary interval, it also reads the canaries' heartbeats and raises a notice for every member
account-region not heard for two canary intervals (its forwarder deleted or broken: no alarm sees it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from grantwatch.domain.coverage import Coverage, Target, Unheard, stale, targets, unheard
from grantwatch.domain.notices import member_canary_notice, stale_notice
from grantwatch.ports import AccountLister, CoverageReader, HeartbeatReader, Notifier, ReconciliationQueue


@dataclass
class OrganizationFanOut:
    accounts: AccountLister
    regions: Sequence[str]
    queue: ReconciliationQueue
    coverage: CoverageReader
    notifier: Notifier
    interval: timedelta
    central: str | None = None
    # The member canaries' expected interval (0: not checked) and the central stack's own region, whose
    # canary the stack's alarms watch.
    heartbeats: HeartbeatReader | None = None
    canary_interval: timedelta = timedelta(0)
    home_region: str | None = None

    def run(self, now: datetime) -> dict[str, Any]:
        """Raises AccountSourceError when the accounts cannot be read or none of them can be covered:
        nothing is queued."""
        accounts = self.accounts.active_accounts()
        expected = targets([*accounts, self.central] if self.central else accounts, self.regions)
        not_queued = self.queue.send(expected)
        known = self.coverage.all()
        late = stale(expected, known, now, self.interval)
        if late:
            self.notifier.publish(stale_notice(late, known, self.interval))
        silent = self.unheard_members(expected, known, now)
        if silent:
            self.notifier.publish(member_canary_notice(silent, self.canary_interval))
        return {
            "queued": len(expected) - len(not_queued),
            "notQueued": [t.as_json() for t in not_queued],
            "stale": [t.as_json() for t in late],
            "silent": [u.as_json() for u in silent],
        }

    def unheard_members(
        self, expected: Sequence[Target], known: Sequence[Coverage], now: datetime
    ) -> list[Unheard]:
        """One Query of the heartbeats, when the check is on."""
        if self.heartbeats is None or self.canary_interval <= timedelta(0):
            return []
        home = Target(self.central, self.home_region) if self.central and self.home_region else None
        return unheard(expected, known, self.heartbeats.latest(), now, self.canary_interval, home)
