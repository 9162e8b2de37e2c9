"""Resources of other services (DynamoDB tables, EBS volumes, RDS databases, ...) that lose their KMS key:
one incident per key and service, from the key's loss until it is back. Pure: no I/O.

A resource is at risk when its key is disabled or scheduled for deletion and it is still in use: it has a
usable grant on the key, or a read API found it live. A resource whose grants its service retired (a table
deleted, a volume detached, a backup or snapshot taken) or that no longer exists is not: that is the
service's own churn. A grant revoked by someone other than its service puts its resource at risk only where
the catalogue documents an effect for a revoked grant (`ServiceEntry.on_grant_revoked`), and only while the
resource has no other usable grant.

What happens and when comes from the catalogue (grantwatch.domain.services): the deadline is the moment
the key was lost plus the documented period (`deadline`), and for a key scheduled for deletion the
deletion date is a hard deadline as well. The clock starts at the first loss: a key disabled and then
scheduled for deletion keeps the disable's deadline. How an incident is stored is its adapter's business
(grantwatch.adapters.resource_incidents); how it is told is grantwatch.domain.resource_notices.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.alerts import ARN_PARTS
from grantwatch.domain.facts import Actor
from grantwatch.domain.hazards import KeyFact, KeyState, KeyStatus
from grantwatch.domain.resources import SEEN_BY_READ_API, ResourceOnKey
from grantwatch.domain.risk import Evidence
from grantwatch.domain.services import KeyLossEffect, ServiceEntry, deadline, entry_for

# An incident names at most this many of its service's resources on the key, in name order, and counts
# all: a key that thousands of tables share makes one notice, never one per table, and never one that
# outgrows SNS's 256 KB, an EventBridge entry or DynamoDB's 400 KB item.
MAX_NAMED_RESOURCES = 25
# The key-state changes that start, move or end a key's resource incidents; a RevokeGrant request asks for
# the revoked grant's resource alone, and a service's CreateGrant may end a revoked grant's incident.
KEY_STATE_EVENTS = frozenset({"DisableKey", "ScheduleKeyDeletion", "EnableKey", "CancelKeyDeletion"})
REVOKE_EVENT = "RevokeGrant"
CREATE_EVENT = "CreateGrant"
GRANT_EVENTS = frozenset({REVOKE_EVENT, CREATE_EVENT})
# What `ResourceOnKey.state` says of a resource that no longer exists.
GONE_STATES = frozenset({"deleted", "deleting", "gone", "not-found", "archived"})
# How a resolved reason says the key came back too late (the resolved notice then warns).
AFTER_DEADLINE = "after the deadline"


class ResourceCause(StrEnum):
    """The alert type of a resource incident: apart from the Lambda causes, so that nothing that acts on
    a function's alert (self-healing's subscription filter) acts on these."""

    KEY_DISABLED = "resource-key-disabled"
    KEY_PENDING_DELETION = "resource-key-pending-deletion"
    GRANT_REVOKED = "resource-grant-revoked"

    @property
    def about_key(self) -> bool:
        return self is not ResourceCause.GRANT_REVOKED


class ResourceStep(StrEnum):
    OPEN = "open"
    KEEP = "keep"
    SUPERSEDE = "supersede"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class ResourceIncident:
    """The resources of one service on one key that lost the key, from the loss until the key is back."""

    incident_id: str
    key_arn: str
    service: str
    resource_kind: str
    cause: ResourceCause
    evidence: Evidence
    detected_at: datetime
    loss_started: datetime  # when the resources became inaccessible: the clock's start
    resources: tuple[str, ...]  # the first MAX_NAMED_RESOURCES, in name order
    resource_count: int  # all of them, named or not
    what_happens: str
    takes_effect: str
    resource_state: str | None  # the state the resource shows, where the docs name one
    irreversible: str | None  # what can no longer be undone after the deadline, where the docs say
    recovery: str
    sources: tuple[tuple[str, str], ...] = ()  # (title, url) of each page that documents the effect
    deadline: datetime | None = None  # loss_started + the documented period, where the docs give one
    deletion_date: datetime | None = None  # a key scheduled for deletion: KMS deletes it then
    grant_id: str | None = None  # the revoked grant

    @property
    def alert_type(self) -> str:
        return self.cause.value

    @property
    def account(self) -> str:
        match = ARN_PARTS.match(self.key_arn)
        return match["account"] if match else "unknown"

    @property
    def region(self) -> str:
        match = ARN_PARTS.match(self.key_arn)
        return match["region"] if match else "unknown"

    @property
    def hard_deadline(self) -> datetime | None:
        """The earlier of the documented deadline and the key's deletion date."""
        found = [d for d in (self.deadline, self.deletion_date) if d is not None]
        return min(found) if found else None


@dataclass(frozen=True, slots=True)
class RevokedGrant:
    """A service's grant revoked, as its RevokeGrant and its recorded creation tell."""

    grant_id: str
    service: str
    resource: str
    evidence: Evidence
    by_service: bool  # the service revoked its own grant: churn
    # the service retired one of the resource's grants since the revoked one was created: it let go of the
    # resource (a table deleted, a volume detached), which is no longer at risk
    let_go: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one service's incident on the key."""

    service: str
    step: ResourceStep
    incident: ResourceIncident | None = None  # the one opened (OPEN, SUPERSEDE)
    current: ResourceIncident | None = None  # the one open (KEEP, SUPERSEDE, RESOLVE)
    reason: str | None = None  # RESOLVE: why, for the resolved notice


@dataclass
class _Tally:
    """A service's resources at risk: how many, and the first few names (bounded however many)."""

    names: list[str] = field(default_factory=list)
    count: int = 0
    inaccessible_since: datetime | None = None

    def add(self, resource: ResourceOnKey) -> None:
        self.count += 1
        self.names.append(resource.resource_id)
        if len(self.names) > 4 * MAX_NAMED_RESOURCES:
            self.names = sorted(set(self.names))[:MAX_NAMED_RESOURCES]
        since = resource.inaccessible_since
        if since is not None and (self.inaccessible_since is None or since < self.inaccessible_since):
            self.inaccessible_since = since

    @property
    def named(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.names))[:MAX_NAMED_RESOURCES])


def is_gone(resource: ResourceOnKey) -> bool:
    state = (resource.state or "").lower()
    return state in GONE_STATES


def in_use(resource: ResourceOnKey) -> bool:
    """Still uses the key: a usable grant, or found live by a read API. Not a resource its service let
    go of (its grants retired) or one that no longer exists."""
    if is_gone(resource):
        return False
    return resource.usable_grants > 0 or SEEN_BY_READ_API in resource.seen_by


def at_risk_by_service(resources: Iterable[ResourceOnKey]) -> dict[str, _Tally]:
    """The resources a key's loss puts at risk, per service the catalogue covers."""
    found: dict[str, _Tally] = {}
    for resource in resources:
        service = str(resource.service)
        if entry_for(service) is None or not in_use(resource):
            continue
        found.setdefault(service, _Tally()).add(resource)
    return found


def decide(
    key_arn: str,
    key: KeyStatus | None,
    resources: Sequence[ResourceOnKey],
    current: Mapping[str, ResourceIncident],
    now: datetime,
    revoked: RevokedGrant | None = None,
) -> list[Decision]:
    """Per service, whether its incident on the key opens, stays, is superseded or resolves."""
    if revoked is not None:
        decision = _on_revoke(key_arn, resources, current, now, revoked)
        return [decision] if decision is not None else []
    lost = key is not None and key.state is not KeyState.ENABLED
    tallies = at_risk_by_service(resources) if lost else {}
    decisions: list[Decision] = []
    for service in sorted(set(tallies) | set(current)):
        open_now = current.get(service)
        tally = tallies.get(service)
        if lost and tally is not None and key is not None:
            decisions += _on_key_loss(key_arn, key, service, tally, open_now, now)
        elif open_now is not None:
            decisions += _on_key_back(key, service, resources, open_now, now, lost=lost)
    return decisions


def _on_key_loss(
    key_arn: str,
    key: KeyStatus,
    service: str,
    tally: _Tally,
    open_now: ResourceIncident | None,
    now: datetime,
) -> list[Decision]:
    entry = entry_for(service)
    assert entry is not None
    pending = key.state is KeyState.PENDING_DELETION
    cause = ResourceCause.KEY_PENDING_DELETION if pending else ResourceCause.KEY_DISABLED
    if open_now is not None and open_now.cause is cause:
        return [Decision(service, ResourceStep.KEEP, current=open_now)]
    evidence = key_evidence(key.changed_by, key_arn, now)
    started = [evidence.at]
    if open_now is not None and open_now.cause.about_key:
        started.append(open_now.loss_started)  # the clock runs from the first loss
    if tally.inaccessible_since is not None:
        started.append(tally.inaccessible_since)  # what the service itself reports
    effect = entry.on_key_pending_deletion if pending else entry.on_key_disabled
    opened = _incident(
        key_arn,
        entry,
        effect,
        cause,
        evidence,
        now,
        min(started),
        tally.named,
        tally.count,
        deletion_date=key.deletion_date if pending else None,
    )
    step = ResourceStep.OPEN if open_now is None else ResourceStep.SUPERSEDE
    return [Decision(service, step, incident=opened, current=open_now)]


def _on_key_back(
    key: KeyStatus | None,
    service: str,
    resources: Sequence[ResourceOnKey],
    open_now: ResourceIncident,
    now: datetime,
    *,
    lost: bool,
) -> list[Decision]:
    if open_now.cause.about_key:
        if lost:  # still lost, and none of the service's resources uses the key any more
            reason = f"no {open_now.resource_kind} on the key is in use any more"
            return [Decision(service, ResourceStep.RESOLVE, current=open_now, reason=reason)]
        back_at = key.changed_by.event_time if key is not None and key.changed_by else now
        return [
            Decision(service, ResourceStep.RESOLVE, current=open_now, reason=back_reason(open_now, back_at))
        ]
    still = _still_revoked(open_now, resources)
    if still:
        return [Decision(service, ResourceStep.KEEP, current=open_now)]
    reason = f"every {open_now.resource_kind} named has a usable grant again, or no longer exists"
    return [Decision(service, ResourceStep.RESOLVE, current=open_now, reason=reason)]


def back_reason(incident: ResourceIncident, back_at: datetime) -> str:
    """Why the incident closes, said honestly: a key back after the deadline may have come too late."""
    from grantwatch.domain.facts import utc_iso

    late = incident.hard_deadline is not None and back_at > incident.hard_deadline
    if late:
        return (
            f"the key is enabled again at {utc_iso(back_at)}, {AFTER_DEADLINE} "
            f"{utc_iso(incident.hard_deadline or back_at)}: "
            f"{incident.irreversible or 'the loss may be final'} may already have happened; "
            f"check each {incident.resource_kind} ({incident.recovery})"
        )
    if incident.hard_deadline is None:
        return f"the key is enabled again at {utc_iso(back_at)}"
    return f"the key is enabled again at {utc_iso(back_at)}, before the deadline"


def _still_revoked(incident: ResourceIncident, resources: Sequence[ResourceOnKey]) -> list[str]:
    """The named resources with no usable grant again, that no read API reports gone."""
    settled = {
        r.resource_id
        for r in resources
        if str(r.service) == incident.service and (r.usable_grants > 0 or is_gone(r))
    }
    return [name for name in incident.resources if name not in settled]


def _on_revoke(
    key_arn: str,
    resources: Sequence[ResourceOnKey],
    current: Mapping[str, ResourceIncident],
    now: datetime,
    revoked: RevokedGrant,
) -> Decision | None:
    entry = entry_for(revoked.service)
    if revoked.by_service or entry is None or entry.on_grant_revoked is None:
        return None  # the service's own churn, or no documented effect
    service = str(entry.service)
    resource = next(
        (r for r in resources if str(r.service) == service and r.resource_id == revoked.resource), None
    )
    if resource is not None and (is_gone(resource) or resource.usable_grants > 0):
        return None  # gone, or still with a usable grant: not at risk
    if resource is None and revoked.let_go:
        return None  # the service retired the resource's grants itself: it let go of it
    open_now = current.get(service)
    if open_now is not None:
        return Decision(service, ResourceStep.KEEP, current=open_now)
    opened = _incident(
        key_arn,
        entry,
        entry.on_grant_revoked,
        ResourceCause.GRANT_REVOKED,
        revoked.evidence,
        now,
        revoked.evidence.at,
        (revoked.resource,),
        1,
        grant_id=revoked.grant_id,
    )
    return Decision(service, ResourceStep.OPEN, incident=opened)


def _incident(
    key_arn: str,
    entry: ServiceEntry,
    effect: KeyLossEffect,
    cause: ResourceCause,
    evidence: Evidence,
    now: datetime,
    loss_started: datetime,
    named: tuple[str, ...],
    count: int,
    *,
    deletion_date: datetime | None = None,
    grant_id: str | None = None,
) -> ResourceIncident:
    service = str(entry.service)
    return ResourceIncident(
        incident_id=resource_incident_id(now, service, evidence.event_id),
        key_arn=key_arn,
        service=service,
        resource_kind=entry.resource_kind,
        cause=cause,
        evidence=evidence,
        detected_at=now,
        loss_started=loss_started,
        resources=named,
        resource_count=max(count, len(named)),
        what_happens=effect.what_happens,
        takes_effect=effect.takes_effect,
        resource_state=effect.resource_state,
        irreversible=effect.irreversible,
        recovery=effect.recovery,
        sources=tuple((source.title, source.url) for source in effect.sources),
        deadline=deadline(effect, loss_started),
        deletion_date=deletion_date,
        grant_id=grant_id,
    )


def resource_incident_id(detected_at: datetime, service: str, event_id: str) -> str:
    event = re.sub(r"[^A-Za-z0-9]", "", event_id)[:16]
    return f"{detected_at.strftime('%Y%m%dT%H%M%SZ')}-{service[:24]}-{event}"


def key_evidence(fact: KeyFact | None, key_arn: str, now: datetime) -> Evidence:
    """The key-state change that lost the key, as evidence; one found without its event is dated now."""
    if fact is None:
        unknown = Actor(principal="unknown", identity_type=None, via=None)
        return Evidence("found disabled", "DescribeKey", f"state:{key_arn[-36:]}", now, unknown)
    what = {
        "DisableKey": "disabled",
        "ScheduleKeyDeletion": "scheduled for deletion",
        "CancelKeyDeletion": "left disabled when its deletion was cancelled",
    }.get(fact.event_name, fact.change.value)
    return Evidence(what, fact.event_name, fact.event_id, fact.event_time, fact.actor)


# The service whose principal acts for another's resources: EC2 creates and retires EBS volumes' grants.
_ACTING_SERVICE = {"ebs": "ec2"}


def revoked_by_service(actor: Actor, service: str) -> bool:
    """The call was made by the service itself: its service principal (`SERVICE.amazonaws.com`, with or
    without a Region), as the caller or as the service the call came through."""
    name = re.escape(_ACTING_SERVICE.get(service, service))
    principal = re.compile(rf"{name}(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")
    return any(value is not None and principal.fullmatch(value) for value in (actor.via, actor.principal))
