"""The organization's scheduled fan-out: list the accounts to cover, queue one reconciliation per account
and region, and raise a notice for every account-region whose last successful reconciliation is older than
two schedule intervals (the fan-out reads every coverage item anyway, and runs even when workers do not).
The central account is always covered, listed or not: its workers reconcile it with their own role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from grantwatch.domain.coverage import stale, targets
from grantwatch.domain.notices import stale_notice
from grantwatch.ports import AccountLister, CoverageReader, Notifier, ReconciliationQueue


@dataclass
class OrganizationFanOut:
    accounts: AccountLister
    regions: Sequence[str]
    queue: ReconciliationQueue
    coverage: CoverageReader
    notifier: Notifier
    interval: timedelta
    central: str | None = None

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
        return {
            "queued": len(expected) - len(not_queued),
            "notQueued": [t.as_json() for t in not_queued],
            "stale": [t.as_json() for t in late],
        }
