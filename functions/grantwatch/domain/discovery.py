"""What reading the services' own APIs found during a reconciliation: per service, its resources on the
keys the reconciler knows, and whether the read was whole (the role may call the service, and it had no more
resources than a run reads); and each resource's clock once its key is disabled or pending deletion. Pure:
no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grantwatch.domain.hazards import KeyState, KeyStatus
from grantwatch.domain.resources import DiscoveredResource, ResourceOnKey
from grantwatch.domain.services import SERVICES, KeyLossEffect, Service, deadline


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


@dataclass(frozen=True, slots=True)
class ResourceClock:
    """Where one resource on a key stands with its key: what its service does to it now that the key is
    disabled or pending deletion (`effect`), since when, and when that becomes irreversible (`deadline`,
    None where the documentation gives no period). No `effect`: the key is usable, or its state unknown."""

    effect: KeyLossEffect | None = None
    loss_started: datetime | None = None
    deadline: datetime | None = None


def resource_clock(resource: ResourceOnKey, key: KeyStatus | None) -> ResourceClock:
    """The clock of a resource on `key`: counted from when the service itself saw the key inaccessible
    (DynamoDB's InaccessibleEncryptionDateTime) when it says so, else from the key's own change (its
    DisableKey or ScheduleKeyDeletion); a key pending deletion also ends the clock on its deletion date."""
    entry = SERVICES.get(resource.service)
    if entry is None or key is None or key.state is KeyState.ENABLED:
        return ResourceClock()
    effect = entry.on_key_disabled if key.state is KeyState.DISABLED else entry.on_key_pending_deletion
    started = resource.inaccessible_since or (key.changed_by.event_time if key.changed_by else None)
    if started is None:
        return ResourceClock(effect)
    return ResourceClock(effect, started, deadline(effect, started, key.deletion_date))
