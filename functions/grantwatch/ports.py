"""The ports: what the corridors (recorder, evaluator, reconciler, healer, impact, backfill, the local
pipeline) ask of the world, as small protocols, with the values they exchange and the few errors an
adapter may raise. Corridors import this module, never an adapter; adapters implement it, and turn their
own service's errors (botocore's, pynamodb's) into the errors declared here. `grantwatch.wiring` joins the
two.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing the ports costs a handler nothing at cold start
    from grantwatch.domain.alerts import Incident
    from grantwatch.domain.canary import Heartbeat
    from grantwatch.domain.coverage import Coverage, Target
    from grantwatch.domain.delivery import ChannelState, Delivery
    from grantwatch.domain.discovery import ServiceRead
    from grantwatch.domain.facts import GrantFact
    from grantwatch.domain.functions import FunctionFact, FunctionState
    from grantwatch.domain.hazards import DecryptFailure, KeyFact, KeyStatus, RoleFact, RoleStatus
    from grantwatch.domain.healing import FunctionDenied, HealOutcome, HealState, LiveFunction, LiveKey
    from grantwatch.domain.lineage import GrantState, GrantStatus
    from grantwatch.domain.notices import Notice
    from grantwatch.domain.reconcile import ListedFunction, ListedGrant
    from grantwatch.domain.records import EvaluationRequest
    from grantwatch.domain.resource_alerts import ResourceIncident
    from grantwatch.domain.resources import DiscoveredResource

# --- errors an adapter raises instead of its service's own ---------------------------------------------


class ServiceError(RuntimeError):
    """A service refused a call or gave no answer. `str()` is one line (`Code: message`, or the error's
    type), never a traceback; `uncertain` says whether the call may have been applied all the same (no
    answer, a server error, or a refusal of a retry whose first attempt may have been applied)."""

    def __init__(self, description: str, *, uncertain: bool = False) -> None:
        super().__init__(description)
        self.uncertain = uncertain


class KeyNotFound(ServiceError):
    """KMS does not know the key: it is gone, and every grant on it with it."""


class NotDelivered(RuntimeError):
    """A notice is not sent yet: a channel failed and may be tried again. The message names the channels
    and their error codes, never the notice's content."""


class AccountSourceError(ServiceError):
    """The accounts to cover could not be read, or the source answered and none of them can be covered
    (every listed account not ACTIVE, a parameter that holds no account ids). `reason` is a short code for
    logs and metrics; `details` are counts and names, never a credential."""

    def __init__(self, reason: str, description: str, **details: object) -> None:
        super().__init__(description)
        self.reason = reason
        self.details = details


# --- values the ports exchange -------------------------------------------------------------------------


class RecordResult(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class RecordedGrant:
    """What recording a fact did, and the Lambda function the grant is for, where known; for an end, the
    service its creation named, where the store tells it without another read."""

    result: RecordResult
    function_arn: str | None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class FailureRecorded:
    newest: bool  # the newest failure seen of the function (not a duplicate or an older one)
    attached: bool  # recorded on the function's open incident


@dataclass(frozen=True)
class IncidentRecord:
    """An incident as stored: the incident, and where its notices stand."""

    incident: Incident
    status: str
    notified_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_reason: str | None = None
    resolved_grant_id: str | None = None
    resolved_notified: bool = False
    superseded_by: str | None = None
    failure_count: int = 0
    first_failure_at: datetime | None = None
    first_failure_event_id: str | None = None
    heal: dict[str, Any] = field(default_factory=dict)
    # where the alert and the resolved notice stand in each channel (grantwatch.domain.delivery)
    alert_deliveries: dict[str, ChannelState] = field(default_factory=dict)
    resolved_deliveries: dict[str, ChannelState] = field(default_factory=dict)

    @property
    def notified(self) -> bool:
        return self.notified_at is not None

    @property
    def confirmed(self) -> bool:
        return self.first_failure_at is not None

    @property
    def lead_time(self) -> timedelta | None:
        """From the alert (or the detection, if none was sent) to the first failed Decrypt."""
        if self.first_failure_at is None:
            return None
        return self.first_failure_at - (self.notified_at or self.incident.detected_at)


@dataclass(frozen=True)
class ResourceIncidentRecord:
    """A resource incident (a key's resources of one service) as stored, and where its notices stand."""

    incident: ResourceIncident
    status: str
    notified_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_reason: str | None = None
    resolved_notified: bool = False
    alert_deliveries: dict[str, ChannelState] = field(default_factory=dict)
    resolved_deliveries: dict[str, ChannelState] = field(default_factory=dict)

    @property
    def notified(self) -> bool:
        return self.notified_at is not None


@dataclass(frozen=True)
class KeyIncidents:
    """A key's resource incidents that an evaluation needs: the open one of each service, and the closed
    ones whose resolved notice is owed (their alert was sent, their resolved notice not yet)."""

    open: dict[str, ResourceIncidentRecord]
    unsent: list[ResourceIncidentRecord]


@dataclass(frozen=True, slots=True)
class Relink:
    """Move a function's links from the key and role it was found on (`was_*`) to `key` and `role`
    (``account/name``): its item says which, and each key and role lists its dependents."""

    key: str | None
    role: str | None
    was_key: str | None
    was_role: str | None


@dataclass(frozen=True, slots=True)
class GrantLink:
    """A grant of a function, as its link in the function's partition names it."""

    grant_id: str
    key_arn: str | None = None
    role: str | None = None  # ``account/name``


@dataclass(frozen=True)
class FunctionSnapshot:
    """Everything an evaluation reads of one function, read together: the function, its grants, its
    incidents, and the state of each key and role it may depend on that was looked up with them
    (`looked_up_*`: absent from `keys`/`roles` means no state is recorded)."""

    function_arn: str
    function: FunctionState | None
    open_incident_id: str | None
    grants: list[GrantState]
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    keys: dict[str, KeyStatus] = field(default_factory=dict)
    roles: dict[str, RoleStatus] = field(default_factory=dict)
    looked_up_keys: frozenset[str] = frozenset()
    looked_up_roles: frozenset[str] = frozenset()  # ``account/name`` as `role_key` writes it

    @property
    def open_incident(self) -> IncidentRecord | None:
        return self.incidents.get(self.open_incident_id) if self.open_incident_id else None

    def unsent_resolutions(self) -> list[IncidentRecord]:
        """Resolved incidents that alerted but whose resolved notice a failed evaluation did not send."""
        return [
            r
            for r in self.incidents.values()
            if r.status == "resolved" and r.notified and not r.resolved_notified
        ]


class EvaluationReader(Protocol):
    """What an evaluation reads, in as few requests as the store allows."""

    def snapshot(self, function_arn: str) -> FunctionSnapshot: ...


@runtime_checkable
class ReadsTogether(Protocol):
    """A grant store that can read what an evaluation needs together with the other two stores."""

    def evaluation_reader(
        self, functions: FunctionStore, hazards: HazardReader
    ) -> EvaluationReader | None: ...


# --- the table: one port per kind of stored item ---------------------------------------------------------


class GrantStore(Protocol):
    def record(self, fact: GrantFact) -> RecordedGrant: ...

    def get(self, grant_id: str) -> GrantState | None: ...

    def grants(
        self,
        *,
        key: str | None = None,
        function: str | None = None,
        grantee: str | None = None,
        status: GrantStatus | None = None,
    ) -> Iterator[GrantState]: ...


class KnownGrants(GrantStore, Protocol):
    """The grant store as reconciliation reads it: also every key with a tracked grant."""

    def key_arns(self) -> set[str]: ...


class FunctionReader(Protocol):
    def get(self, function_arn: str) -> FunctionState | None: ...

    def all_functions(self) -> Iterator[tuple[FunctionState, str | None]]: ...


class FunctionStore(Protocol):
    """Functions and their incidents (both in the function's partition, written by one adapter)."""

    def record(self, fact: FunctionFact) -> bool: ...

    def get(self, function_arn: str) -> FunctionState | None: ...

    def open_incident_id(self, function_arn: str) -> str | None: ...

    def touch(self, function_arn: str) -> None: ...

    def unsent_resolutions(self, function_arn: str) -> list[IncidentRecord]: ...

    def incident(self, function_arn: str, incident_id: str) -> IncidentRecord | None: ...

    def open(
        self, incident: Incident, *, claimed_until: datetime | None = None, relink: Relink | None = None
    ) -> bool: ...

    def resolve(
        self,
        incident: Incident,
        at: datetime,
        reason: str,
        grant_id: str | None,
        *,
        relink: Relink | None = None,
    ) -> bool:
        """Close the incident; with `relink`, move the function's links in the same write."""
        ...

    def supersede(
        self,
        old: Incident,
        new: Incident,
        *,
        claimed_until: datetime | None = None,
        relink: Relink | None = None,
    ) -> bool: ...

    def record_failure(self, failure: DecryptFailure) -> FailureRecorded: ...

    def attach_failure(self, failure: DecryptFailure, incident_id: str, *, newest: bool = True) -> None: ...

    def claim_notice(
        self, incident: Incident, *, resolved: bool, now: datetime
    ) -> dict[str, ChannelState] | None:
        """Claim the notice's sending: where it stands in each channel, or None if not claimed."""
        ...

    def release_notice(self, incident: Incident, *, resolved: bool) -> None: ...

    def deliveries(self, incident: Incident, *, resolved: bool) -> dict[str, ChannelState]:
        """Where the notice stands in each channel (read by the holder of its claim)."""
        ...

    def record_deliveries(
        self, incident: Incident, *, resolved: bool, states: dict[str, ChannelState], sent_at: datetime | None
    ) -> IncidentRecord | None:
        """Store where the notice stands in each channel, and with `sent_at`, mark it sent. The incident as
        the write left it, where the store tells."""
        ...


class KnownFunctions(FunctionStore, FunctionReader, Protocol):
    """The function store as reconciliation reads it: also the functions known in one account and region
    (one range of one index partition, however many accounts the table holds)."""

    def functions_in(self, account: str, region: str) -> Iterator[FunctionState]: ...


class HazardReader(Protocol):
    def key(self, key_arn: str) -> KeyStatus | None: ...

    def role(self, account: str, name: str) -> RoleStatus | None: ...


# The healer reads the recorded key and role like impact does.
KeysAndRoles = HazardReader


class HeartbeatStore(Protocol):
    """The latest canary heartbeat of each path in each account-region (grantwatch.domain.canary)."""

    def record(self, account: str, region: str, path: str, at: datetime) -> None: ...


class HeartbeatReader(Protocol):
    """Every account-region's latest heartbeat of each path: the fan-out's check of member canaries."""

    def latest(self) -> list[Heartbeat]: ...


class HazardStore(HazardReader, Protocol):
    def record_key(self, fact: KeyFact) -> bool: ...

    def key_lineage(self, key_arn: str) -> list[KeyFact]: ...

    def key_fact(self, key_arn: str, event_id: str, event_time: datetime) -> KeyFact | None: ...

    def record_role(self, fact: RoleFact) -> bool: ...

    def dependents_of_key(
        self, key_arn: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """The functions on the key, in order: with `limit`, a page of them, from after `after`."""
        ...

    def dependents_of_role(
        self, account: str, name: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]: ...

    def link(
        self, function_arn: str, *, key: str | None, role: str | None, was: tuple[str | None, str | None]
    ) -> bool: ...

    def mark_verified(self, key_arn: str, at: datetime) -> None: ...

    def claim_key_notice(self, fact: KeyFact) -> bool: ...

    def release_key_notice(self, fact: KeyFact) -> None: ...

    def key_notice_deliveries(self, fact: KeyFact) -> dict[str, ChannelState]: ...

    def record_key_notice_deliveries(self, fact: KeyFact, states: dict[str, ChannelState]) -> None: ...


class KnownHazards(HazardStore, Protocol):
    """The hazard store as reconciliation reads it: also the keys the table knows in one account and region
    (one range of one index partition, however many accounts the table holds)."""

    def keys_in(self, account: str, region: str) -> Iterator[str]: ...


class ResourceIncidentStore(Protocol):
    """Resource incidents, one open per key and service (grantwatch.adapters.resource_incidents)."""

    def on_key(self, key_arn: str) -> KeyIncidents: ...

    def open(self, incident: ResourceIncident, *, claimed_until: datetime | None = None) -> bool: ...

    def supersede(
        self, old: ResourceIncident, new: ResourceIncident, *, claimed_until: datetime | None = None
    ) -> bool: ...

    def resolve(self, incident: ResourceIncident, at: datetime, reason: str) -> bool: ...

    def claim_notice(
        self, incident: ResourceIncident, *, resolved: bool, now: datetime
    ) -> dict[str, ChannelState] | None: ...

    def release_notice(self, incident: ResourceIncident, *, resolved: bool) -> None: ...

    def record_deliveries(
        self,
        incident: ResourceIncident,
        *,
        resolved: bool,
        states: dict[str, ChannelState],
        sent_at: datetime | None,
    ) -> ResourceIncidentRecord | None: ...


class DiscoveredResources(Protocol):
    """What read APIs found on a key (a table's, a volume's own description), beside what grants tell."""

    def on_key(self, key_arn: str) -> list[DiscoveredResource]: ...


class NoDiscoveredResources:
    """No read API wired: what grants tell is all that is known."""

    def on_key(self, key_arn: str) -> list[DiscoveredResource]:
        return []


class Incidents(Protocol):
    def open_incident_id(self, function_arn: str) -> str | None: ...

    def incident(self, function_arn: str, incident_id: str) -> IncidentRecord | None: ...


class HealRecords(Protocol):
    """Self-healing's record on the incident: attempts claimed, outcomes, skips."""

    def state(self, function_arn: str, incident_id: str) -> HealState: ...

    def claim(self, function_arn: str, incident_id: str, max_attempts: int, now: datetime) -> int | None: ...

    def finish(self, function_arn: str, incident_id: str, outcome: HealOutcome) -> None: ...

    def skipped(self, function_arn: str, incident_id: str, reason: str, now: datetime) -> None: ...


# --- messages out ----------------------------------------------------------------------------------------


class Notifier(Protocol):
    """Publishes a notice to people (the alert topic, or a list in a local run)."""

    def publish(self, notice: Notice) -> None: ...


@runtime_checkable
class ChannelNotifier(Protocol):
    """Several channels behind one notifier, each delivered to on its own: `deliver` sends the notice to
    every channel but those in `skip` and says which took it and why the others failed; it never raises
    for a channel's failure."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def publish(self, notice: Notice) -> None: ...

    def deliver(self, notice: Notice, skip: frozenset[str]) -> Delivery: ...


class DeliveryMonitor(Protocol):
    """Counts what a channel did not take (the handlers' metrics)."""

    def failed(self, channel: str, reason: str) -> None: ...

    def gave_up(self, channel: str, reason: str) -> None: ...


class EvaluationScheduler(Protocol):
    """Asks for a function to be evaluated once the settle window after an event has passed."""

    def schedule(self, request: EvaluationRequest) -> None: ...


@runtime_checkable
class BatchScheduler(Protocol):
    """A scheduler that takes many requests in fewer calls (SQS: ten a request)."""

    def schedule_many(self, requests: Sequence[EvaluationRequest]) -> None: ...


class RejectedEventSink(Protocol):
    def send(self, event: object, *, event_id: str | None, error: str) -> None: ...


# --- what AWS says now -----------------------------------------------------------------------------------


class GrantLister(Protocol):
    def list_grants(self, key_arn: str) -> Iterator[ListedGrant]:
        """Every grant on the key. KeyNotFound: the key is gone; ServiceError: KMS did not answer."""
        ...

    def list_keys(self) -> Iterator[str]:
        """Every key of the account in the region, by ARN. ServiceError: KMS refused or did not answer."""
        ...


class FunctionLister(Protocol):
    def list_functions(self) -> Iterator[ListedFunction]: ...

    def get_function(self, function_arn: str) -> ListedFunction | None: ...


class ResourceReader(Protocol):
    def read(self, keys: Collection[str], now: datetime) -> list[ServiceRead]:
        """Each service's resources on `keys` (key ARNs); a service it could not read is a ServiceRead
        with its error, never an exception."""
        ...


class DiscoveredResourceStore(Protocol):
    """The resources the services' read APIs found, by key (reconciliation writes them, queries read)."""

    def record(self, discovered: Iterable[DiscoveredResource]) -> int: ...

    def on_key(self, key_arn: str, now: datetime | None = None) -> list[DiscoveredResource]: ...


class HealTarget(Protocol):
    """Lambda and KMS as self-healing uses them; every call raises ServiceError, not the SDK's errors."""

    def function(self, function_arn: str) -> LiveFunction | FunctionDenied | None: ...

    def configuration(self, function_arn: str) -> LiveFunction: ...

    def key(self, key_arn: str) -> LiveKey | None: ...

    def grants(self, key_arn: str) -> Iterator[ListedGrant]: ...

    def update(self, function_arn: str, setting: str, value: str, revision_id: str | None) -> None: ...


class Archive(Protocol):
    """CloudTrail's log files, wherever they are kept (a folder, a bucket)."""

    description: str

    def file_keys(self) -> Iterator[str]: ...

    def read(self, key: str) -> bytes: ...


# --- the organization: member accounts reached through their read-only role ------------------------------


class MemberAccess(Protocol):
    def readers(self, target: Target) -> tuple[GrantLister, FunctionLister, ResourceReader]: ...


class CoverageReader(Protocol):
    def all(self, account: str | None = None) -> list[Coverage]: ...


class CoverageStore(CoverageReader, Protocol):
    def get(self, target: Target) -> Coverage | None: ...

    def put(self, coverage: Coverage) -> None: ...


class AccountLister(Protocol):
    def active_accounts(self) -> list[str]: ...


class ReconciliationQueue(Protocol):
    def send(self, queued: Sequence[Target]) -> list[Target]: ...
