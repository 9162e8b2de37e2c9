"""What reading the services' own APIs found during a reconciliation: per service, its resources on the
keys the reconciler knows, and whether the read was whole (the role may call the service, and it had no more
resources than a run reads). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from grantwatch.domain.resources import DiscoveredResource
from grantwatch.domain.services import Service


@dataclass(frozen=True, slots=True)
class ServiceRead:
    """One service's read: its resources on known keys, how many it looked at, and why it stopped early
    (`error`: a refusal or no answer, `denied` when the refusal is the role's; `capped`: more resources
    than a run reads)."""

    service: Service
    resources: tuple[DiscoveredResource, ...] = ()
    inspected: int = 0
    error: str | None = None
    denied: bool = False
    capped: bool = False

    @property
    def complete(self) -> bool:
        return self.error is None and not self.capped


def discovery_report(reads: Iterable[ServiceRead]) -> dict[str, Any]:
    """The reconcile report's `resources`: found per service, and the services not read, or not whole."""
    found: dict[str, int] = {}
    unread: dict[str, str] = {}
    capped: dict[str, str] = {}
    for read in reads:
        found[str(read.service)] = len(read.resources)
        if read.error:
            why = "not allowed to read" if read.denied else "not read"
            unread[str(read.service)] = f"{why}: {read.error}"
        if read.capped:
            capped[str(read.service)] = f"more resources than a run reads: the first {read.inspected} read"
    return {"found": found, "unread": unread, "capped": capped}
