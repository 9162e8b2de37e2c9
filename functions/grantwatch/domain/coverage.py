"""Coverage of an organization: which account-regions reconciliation reaches, when each was last
reconciled, and which have not been for too long. Pure decisions; the store and the queue are adapters."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from grantwatch.domain.facts import utc_iso

if TYPE_CHECKING:  # the canary's module reads CloudTrail records: the workers that import this one need not
    from grantwatch.domain.canary import Heartbeat

ACCOUNT_PATTERN = re.compile(r"^[0-9]{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
MAX_ERRORS_KEPT = 20  # a coverage item stays far below DynamoDB's 400 KB, however many keys failed
STALE_AFTER_INTERVALS = 2
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")


class TargetError(ValueError):
    """A reconciliation request that names no valid account or region; says which field, never its value."""

    def __init__(self, field_name: str) -> None:
        super().__init__(f"{field_name}: not a valid {field_name}")
        self.field_name = field_name


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One account in one region: the unit the fan-out queues and a worker reconciles."""

    account: str
    region: str

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Target:
        account, region = body.get("account"), body.get("region")
        if not isinstance(account, str) or not ACCOUNT_PATTERN.match(account):
            raise TargetError("account")
        if not isinstance(region, str) or not REGION_PATTERN.match(region):
            raise TargetError("region")
        return cls(account, region)

    def as_json(self) -> dict[str, str]:
        return {"account": self.account, "region": self.region}


def targets(accounts: Iterable[str], regions: Iterable[str]) -> list[Target]:
    """Every account in every region, each once, in order."""
    return sorted({Target(a, r) for a in accounts for r in regions})


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the last run in one account-region did. `last_reconciled_at` is the last run that succeeded."""

    account: str
    region: str
    last_run_at: datetime
    last_reconciled_at: datetime | None
    keys: int = 0
    grants: int = 0
    functions: int = 0
    evaluations: int = 0
    repairs: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    error_count: int = 0
    # The first successful reconciliation of the account-region (kept run after run): how long it has been
    # covered. None for an item written before it was kept: the next successful run starts it.
    covered_since: datetime | None = None

    @property
    def target(self) -> Target:
        return Target(self.account, self.region)

    @property
    def reachable(self) -> bool:
        return self.last_reconciled_at == self.last_run_at

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "region": self.region,
            "lastRunAt": utc_iso(self.last_run_at),
            "lastReconciledAt": utc_iso(self.last_reconciled_at) if self.last_reconciled_at else None,
            "keys": self.keys,
            "grants": self.grants,
            "functions": self.functions,
            "evaluationsScheduled": self.evaluations,
            "repairs": dict(sorted(self.repairs.items())),
            "errors": list(self.errors),
            "errorCount": self.error_count,
        }


def reconciled(
    target: Target, report: Mapping[str, Any], now: datetime, previous: Coverage | None
) -> Coverage:
    """A run that listed the account-region's functions (some keys may still have failed: `errors`).
    `report` is `ReconcileReport.as_json()`."""
    errors = [str(e) for e in report["errors"]]
    return Coverage(
        target.account,
        target.region,
        last_run_at=now,
        last_reconciled_at=now if not errors else _last_success(previous),
        keys=int(report["keys"]),
        grants=int(report["grantsListed"]),
        functions=int(report["functionsListed"]),
        evaluations=int(report["evaluationsScheduled"]),
        repairs={str(k): int(v) for k, v in report["repairs"].items()},
        errors=tuple(errors[:MAX_ERRORS_KEPT]),
        error_count=len(errors),
        covered_since=(previous.covered_since if previous else None) or (None if errors else now),
    )


def unreachable(target: Target, error: str, now: datetime, previous: Coverage | None) -> Coverage:
    """A run that could not reach the account-region (role missing, SCP denial, region not enabled): the
    counts of the last run that did are kept."""
    kept = previous or Coverage(target.account, target.region, now, None)
    return Coverage(
        target.account,
        target.region,
        last_run_at=now,
        last_reconciled_at=_last_success(previous),
        keys=kept.keys,
        grants=kept.grants,
        functions=kept.functions,
        errors=(error,),
        error_count=1,
        covered_since=previous.covered_since if previous else None,
    )


def _last_success(previous: Coverage | None) -> datetime | None:
    return previous.last_reconciled_at if previous else None


def interval_of(schedule: str) -> timedelta:
    """The schedule's period: exact for rate(...); a cron(...) expression is taken as hourly."""
    match = _RATE.match(schedule.strip())
    if match is None:
        return timedelta(hours=1)
    count, unit = int(match[1]), match[2].rstrip("s")
    return {"minute": timedelta(minutes=count), "hour": timedelta(hours=count), "day": timedelta(days=count)}[
        unit
    ]


def stale(
    expected: Sequence[Target], coverage: Iterable[Coverage], now: datetime, interval: timedelta
) -> list[Target]:
    """Expected account-regions whose last successful reconciliation is older than two intervals, or that
    were tried and never reconciled."""
    known = {c.target: c for c in coverage}
    limit = now - STALE_AFTER_INTERVALS * interval
    found = []
    for target in expected:
        entry = known.get(target)
        if entry is None:
            continue  # never tried: this run queues it
        if entry.last_reconciled_at is None or entry.last_reconciled_at < limit:
            found.append(target)
    return found


# The canary path every member canary has (CanaryPath.CREATE_GRANT): Decrypt is heard only where the
# member's DecryptFailuresRule is on, RetireGrant follows CreateGrant in the same run.
MEMBER_CANARY_PATH = "CreateGrant"


@dataclass(frozen=True, slots=True)
class Unheard:
    """A member account-region whose canary has not been heard for too long; `last_heard_at` None: never."""

    target: Target
    last_heard_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        heard = utc_iso(self.last_heard_at) if self.last_heard_at else None
        return {**self.target.as_json(), "lastHeardAt": heard}


def unheard(
    expected: Sequence[Target],
    coverage: Iterable[Coverage],
    heartbeats: Iterable[Heartbeat],
    now: datetime,
    interval: timedelta,
    central: Target | None = None,
) -> list[Unheard]:
    """Expected account-regions (the central stack's own one aside: its alarms watch it) whose latest
    CreateGrant heartbeat is older than two canary intervals, or, never heard, that reconciliation has
    covered for longer than two intervals (a new member's canary gets its first run). An interval of 0:
    nothing is checked."""
    if interval <= timedelta(0):
        return []
    heard = {Target(h.account, h.region): h.at for h in heartbeats if h.path == MEMBER_CANARY_PATH}
    since = {c.target: c.covered_since for c in coverage}
    limit = now - STALE_AFTER_INTERVALS * interval
    found = []
    for target in expected:
        if target == central:
            continue
        at = heard.get(target)
        if at is not None:
            if at < limit:
                found.append(Unheard(target, at))
            continue
        covered = since.get(target)
        if covered is not None and covered < limit:
            found.append(Unheard(target, None))
    return found
