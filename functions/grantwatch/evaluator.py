"""The evaluator's one corridor: once the settle window has passed, re-read what is known of a function
(its grants, configuration, key and role), decide (pure), and open, supersede or close its incident,
publishing one notice for each. A key or role request evaluates every function that depends on it; a
key's state change, and another service's grant revoked or created, also evaluate the key's resources of
other services, one incident per key and service (grantwatch.resource_evaluation).

Notices are published after the incident is written. Each is claimed first (a short lease on the incident
item, so concurrent evaluations send it once), then sent to each channel that has not taken it yet, then
marked sent once every channel has it. Which channels took it is stored with the claim held: a channel that
failed makes the evaluation release the claim and raise, the request is retried, and the retry sends the
notice to the channels still owed it only (one that keeps failing is given up on after a few attempts,
except the SNS topic: grantwatch.domain.delivery).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.alerts import Incident, incident_from, unpredicted_incident
from grantwatch.domain.delivery import NOTICE_LEASE, ChannelState, Settled
from grantwatch.domain.facts import Actor
from grantwatch.domain.fixes import configured_on_aws_managed_key
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.hazards import DecryptFailure, KeyChange, KeyStatus, RoleStatus, role_key
from grantwatch.domain.lineage import GrantState
from grantwatch.domain.notices import Notice, NoticeKind, alert_notice, policy_notice, resolved_notice
from grantwatch.domain.records import EvaluationRequest
from grantwatch.domain.resource_alerts import GRANT_EVENTS, KEY_STATE_EVENTS
from grantwatch.domain.risk import (
    Assessment,
    Cause,
    Dependency,
    Evidence,
    Verdict,
    assess,
    fixed_since,
    locate,
)
from grantwatch.outbox import send
from grantwatch.ports import (
    BatchScheduler,
    DeliveryMonitor,
    DiscoveredResources,
    EvaluationReader,
    EvaluationScheduler,
    FunctionSnapshot,
    FunctionStore,
    GrantStore,
    HazardReader,
    HazardStore,
    IncidentRecord,
    NoDiscoveredResources,
    Notifier,
    ReadsTogether,
    Relink,
    ResourceIncidentStore,
)
from grantwatch.resource_evaluation import ResourceEvaluation

FAN_OUT_PAGE = 100  # functions a key or role request asks evaluations for (ten SendMessageBatch requests)

# One loss however it was learnt: a reconciliation's "vanished" and the late RetireGrant are the same news.
_GRANT_ENDED = {Cause.GRANT_RETIRED, Cause.GRANT_REVOKED, Cause.GRANT_VANISHED}


class Step(StrEnum):
    NOTHING = "nothing"
    OPEN = "open"
    KEEP = "keep"
    SUPERSEDE = "supersede"
    RESOLVE = "resolve"
    OPEN_UNPREDICTED = "open-unpredicted"


def next_step(assessment: Assessment, current: Incident | None, function: FunctionState | None) -> Step:
    """What to do with the function's incident. Pure."""
    if assessment.verdict is Verdict.AT_RISK:
        if current is None:
            return Step.OPEN
        same = current.cause is assessment.cause or {current.cause, assessment.cause} <= _GRANT_ENDED
        return Step.KEEP if same else Step.SUPERSEDE
    if current is not None:
        if current.cause is Cause.DECRYPT_FAILED and not fixed_since(
            assessment, current.detected_at, function
        ):
            return Step.KEEP  # nothing explains the failure, and nothing has repaired it
        return Step.RESOLVE
    if function is None or function.failed_at is None or function.deleted or function.failure_incident_id:
        return Step.NOTHING  # no failure, or one an incident (predicted or not) already accounts for
    return Step.NOTHING if fixed_since(assessment, function.failed_at, function) else Step.OPEN_UNPREDICTED


@dataclass(frozen=True)
class _Change:
    """What `Evaluator._apply` wrote: the incident now open (when it opened one), with the alert's channel
    states if it holds the alert's claim, or the incident it resolved."""

    wrote: bool = False  # an incident's write was made (with the links' move, if any)
    opened: bool = False
    current: IncidentRecord | None = None
    claimed: dict[str, ChannelState] | None = None
    resolved: IncidentRecord | None = None


@dataclass
class Evaluator:
    grants: GrantStore
    functions: FunctionStore
    hazards: HazardStore
    notifier: Notifier
    scheduler: EvaluationScheduler
    temporary_role: str | None = None  # SelfHealingTemporaryRoleArn: the role switch in alerts uses it
    monitor: DeliveryMonitor | None = None  # counts the channels that fail (the handler's metrics)
    # what an evaluation reads: on DynamoDB, one Query and one BatchGetItem (the grant store's
    # `evaluation_reader`); else the stores' own reads, one by one
    reader: EvaluationReader | None = None
    # resources of other services on a key (grantwatch.resource_evaluation): none without a store
    resource_incidents: ResourceIncidentStore | None = None
    discovered: DiscoveredResources = field(default_factory=NoDiscoveredResources)

    def __post_init__(self) -> None:
        if self.reader is None and isinstance(self.grants, ReadsTogether):
            self.reader = self.grants.evaluation_reader(self.functions, self.hazards)

    def run(self, request: EvaluationRequest, now: datetime) -> list[Notice]:
        """Evaluate what the request names; returns the notices published. A key or role request asks
        for an evaluation of each function on it, at once, a page of FAN_OUT_PAGE at a time: the last
        request of a page asks for the next page, so a key with thousands of functions is never one
        invocation's work."""
        if request.function_arn is not None:
            return self.evaluate(request.function_arn, now)
        if request.key_arn is not None:
            if request.event_name == "PutKeyPolicy":  # changes no verdict: a notice, no evaluation
                return self._policy_notice(request, self.hazards.dependents_of_key(request.key_arn), now)
            if request.event_name in GRANT_EVENTS:  # another service's grant: its resource alone
                return self._resources(request, now)
            page = self.hazards.dependents_of_key(request.key_arn, after=request.after, limit=FAN_OUT_PAGE)
        else:
            account, _, name = (request.role or "").partition("/")
            page = self.hazards.dependents_of_role(account, name, after=request.after, limit=FAN_OUT_PAGE)
        asked = [
            EvaluationRequest.about(function_arn, request.event_id, request.event_time, immediate=True)
            for function_arn in page
        ]
        if len(page) == FAN_OUT_PAGE:  # the next page, by a request of its own: each is bounded work
            asked.append(replace(request, after=page[-1], immediate=True))
        if isinstance(self.scheduler, BatchScheduler):
            self.scheduler.schedule_many(asked)
        else:
            for each in asked:
                self.scheduler.schedule(each)
        if request.key_arn is not None and request.after is None and request.event_name in KEY_STATE_EVENTS:
            return self._resources(request, now)  # once per key-state change: its first page
        return []

    def _resources(self, request: EvaluationRequest, now: datetime) -> list[Notice]:
        """The key's resources of other services: one incident per key and service."""
        if self.resource_incidents is None:
            return []
        evaluation = ResourceEvaluation(
            self.grants, self.hazards, self.resource_incidents, self.notifier, self.discovered, self.monitor
        )
        return evaluation.run(request, now)

    def evaluate(self, function_arn: str, now: datetime) -> list[Notice]:
        """Evaluate one function now: one read of all that is known of it (`EvaluationReader`), and writes
        only when something changes."""
        reader = self.reader or StoreReader(self.grants, self.functions, self.hazards)
        snapshot = reader.snapshot(function_arn)
        function = snapshot.function
        assessment, dependency, relink = self._assess(snapshot)
        if function is None and dependency is None:
            self.functions.touch(function_arn)  # known from its grants only: list it with the others
        current = snapshot.open_incident
        step = next_step(assessment, current.incident if current else None, function)
        change = self._apply(step, snapshot, assessment, dependency, now, relink)
        if relink is not None and not change.wrote:
            self._link(function_arn, relink)

        published: list[Notice] = []
        unsent = snapshot.unsent_resolutions()
        if change.resolved is not None and change.resolved.notified:
            unsent.append(change.resolved)
        if change.opened:
            current = change.current
        if (
            step is not Step.RESOLVE
            and current is not None
            and current.status == "open"
            and not current.notified
        ):
            alert = alert_notice(current.incident, self.temporary_role)
            after = self._publish(current.incident, alert, now, published, claimed=change.claimed)
            # resolved by another evaluation while this one sent the alert: the resolved notice is this
            # one's to send (the other saw no alert sent yet)
            if after is not None and after.status == "resolved" and not after.resolved_notified:
                unsent.append(after)
        for record in unsent:
            notice = resolved_notice(
                record.incident,
                record.resolved_reason or "resolved",
                record.resolved_at or now,
                record.resolved_grant_id,
            )
            self._publish(record.incident, notice, now, published)
        return published

    def _apply(
        self,
        step: Step,
        snapshot: FunctionSnapshot,
        assessment: Assessment,
        dependency: Dependency | None,
        now: datetime,
        relink: Relink | None,
    ) -> _Change:
        """Open, supersede or resolve the function's incident, as `step` says, moving the function's
        links in the same write. An incident opened here has its alert claimed in that write too."""
        functions, function, current = self.functions, snapshot.function, snapshot.open_incident
        arn, claim = snapshot.function_arn, now + NOTICE_LEASE
        if step is Step.RESOLVE and current is not None:
            grant_id = assessment.usable.grant_id if assessment.usable else None
            reason = "can decrypt again" if assessment.verdict is Verdict.SAFE else assessment.reason

            def resolve(links: Relink | None) -> bool:
                return functions.resolve(current.incident, now, reason, grant_id, relink=links)

            if not self._write(arn, resolve, relink):
                return _Change(wrote=True)
            closed = replace(
                current,
                status="resolved",
                resolved_at=now,
                resolved_reason=reason,
                resolved_grant_id=grant_id,
            )
            return _Change(wrote=True, resolved=closed)
        if step in (Step.OPEN, Step.SUPERSEDE):
            on_key = (
                self.hazards.dependents_of_key(assessment.key_arn or "") if _about_key(assessment) else []
            )
            opened = incident_from(
                assessment, now, on_key, aws_managed_key=configured_on_aws_managed_key(function)
            )
        elif step is Step.OPEN_UNPREDICTED and function is not None and function.failed_at is not None:
            opened = self._unpredicted(arn, function, dependency, now)
        else:
            return _Change()
        new = opened

        def write(links: Relink | None) -> bool:
            if step is Step.SUPERSEDE and current is not None:
                return functions.supersede(current.incident, new, claimed_until=claim, relink=links)
            return functions.open(new, claimed_until=claim, relink=links)

        written = self._write(arn, write, relink)
        if (
            function is not None
            and function.failed_at is not None
            and function.failed_at >= opened.evidence.at
        ):
            self._confirm(snapshot.function_arn, function, opened)  # it failed before the alert could be sent
        if written:  # this evaluation opened it, with its alert claimed: no channel has it yet
            opened_now = IncidentRecord(incident=opened, status="open")
            return _Change(wrote=True, opened=True, current=opened_now, claimed={})
        # another evaluation changed the incident meanwhile: start from what it left
        open_id = functions.open_incident_id(arn)
        again = functions.incident(arn, open_id) if open_id else None
        return _Change(wrote=True, opened=True, current=again)

    def _unpredicted(
        self, function_arn: str, function: FunctionState, dependency: Dependency | None, now: datetime
    ) -> Incident:
        """The incident of a failure nothing predicted: the function failed to decrypt."""
        assert function.failed_at is not None
        failure = Evidence(
            what=f"failed with {function.failure_error or 'an error'}",
            event_name="Decrypt",
            event_id=function.failure_event_id or "unknown",
            at=function.failed_at,
            actor=Actor(principal=function_arn, identity_type=None, via=None),
        )
        key = (dependency.key_arn if dependency else None) or function.failure_key_arn or function.kms_key_arn
        role = (dependency.role if dependency else None) or function.role
        # No customer managed key known: the one reset that works on any key is the role switch.
        aws_managed = configured_on_aws_managed_key(function) or key is None
        return unpredicted_incident(
            function_arn, key or "unknown", role, failure, now, aws_managed_key=aws_managed
        )

    def _assess(self, snapshot: FunctionSnapshot) -> tuple[Assessment, Dependency | None, Relink | None]:
        """The verdict, the key and role found, and the move of the function's links to them, if they
        moved (written with the incident when one changes, else on its own)."""
        function_arn, function = snapshot.function_arn, snapshot.function
        assessment, dependency = assess_known(
            _SnapshotHazards(snapshot, self.hazards), function_arn, snapshot.grants, function
        )
        ref = dependency.role_ref if dependency else None
        key, role = (dependency.key_arn if dependency else None), (role_key(*ref) if ref else None)
        was = (function.depends_on_key, function.depends_on_role) if function else (None, None)
        return assessment, dependency, (None if (key, role) == was else Relink(key, role, *was))

    def _link(self, function_arn: str, relink: Relink) -> None:
        hazards = self.hazards
        if not hazards.link(
            function_arn, key=relink.key, role=relink.role, was=(relink.was_key, relink.was_role)
        ):
            # another evaluation moved the links meanwhile: start from what it left
            again = self.functions.get(function_arn)
            was = (again.depends_on_key, again.depends_on_role) if again else (None, None)
            hazards.link(function_arn, key=relink.key, role=relink.role, was=was)

    def _write(
        self, function_arn: str, write: Callable[[Relink | None], bool], relink: Relink | None
    ) -> bool:
        """An incident's write, carrying the move of the function's links when there is one. Refused (the
        incident or the links changed meanwhile): the links are moved on their own, and the incident's
        write tried once more without them."""
        if relink is None:
            return write(None)
        if write(relink):
            return True
        self._link(function_arn, relink)
        return write(None)

    def _confirm(self, function_arn: str, function: FunctionState, incident: Incident) -> None:
        if function.failed_at is None or function.failure_event_id is None:
            return
        failure = DecryptFailure(
            function_arn=function_arn,
            key_arn=None,
            event_id=function.failure_event_id,
            event_time=function.failed_at,
            error_code=function.failure_error or "unknown",
            actor=Actor(principal=function_arn, identity_type=None, via=None),
        )
        self.functions.attach_failure(failure, incident.incident_id)

    def _publish(
        self,
        incident: Incident,
        notice: Notice,
        now: datetime,
        published: list[Notice],
        *,
        claimed: dict[str, ChannelState] | None = None,
    ) -> IncidentRecord | None:
        """Send the notice unless it is sent or being sent: `claimed` is where it stands when this
        evaluation holds its claim already (it opened the incident), else the claim is taken here. The
        incident as the last write left it, when the notice was sent."""
        resolved = notice.kind is NoticeKind.RESOLVED
        functions = self.functions
        states = claimed
        if states is None:
            states = functions.claim_notice(incident, resolved=resolved, now=now)
        if states is None:
            return None  # sent already, or being sent by another evaluation
        after: list[IncidentRecord | None] = []

        def record(outcome: Settled) -> None:
            sent_at = now if outcome.complete else None
            after.append(
                functions.record_deliveries(
                    incident, resolved=resolved, states=outcome.states, sent_at=sent_at
                )
            )

        settled = states
        send(
            self.notifier,
            notice,
            now,
            before=lambda: settled,
            record=record,
            release=lambda: functions.release_notice(incident, resolved=resolved),
            monitor=self.monitor,
        )
        published.append(notice)
        return after[-1] if after else None

    def _policy_notice(
        self, request: EvaluationRequest, dependents: list[str], now: datetime
    ) -> list[Notice]:
        """One informational notice per key policy change on a key that functions depend on."""
        key_arn = request.key_arn or ""
        fact = self.hazards.key_fact(key_arn, request.event_id, request.event_time)
        if fact is None or fact.change is not KeyChange.POLICY_CHANGED or not dependents:
            return []
        notice = policy_notice(fact, dependents)
        hazards = self.hazards
        if not hazards.claim_key_notice(fact):
            return []
        send(
            self.notifier,
            notice,
            now,
            before=lambda: hazards.key_notice_deliveries(fact),
            record=lambda outcome: hazards.record_key_notice_deliveries(fact, outcome.states),
            release=lambda: hazards.release_key_notice(fact),
            monitor=self.monitor,
        )
        return [notice]


def assess_known(
    hazards: HazardReader, function_arn: str, grants: list[GrantState], function: FunctionState | None
) -> tuple[Assessment, Dependency | None]:
    """The function's assessment with the state of the key and role it depends on, read from the store."""
    located = locate(function_arn, grants, function)
    if not isinstance(located, Dependency):
        return located, None
    ref = located.role_ref
    key_status = hazards.key(located.key_arn)
    role_status = hazards.role(*ref) if ref else None
    return assess(function_arn, grants, function, key=key_status, role=role_status), located


def _about_key(assessment: Assessment) -> bool:
    return assessment.cause in (Cause.KEY_DISABLED, Cause.KEY_PENDING_DELETION)


@dataclass(frozen=True)
class StoreReader:
    """An evaluation's reads from the stores one by one: for stores that read nothing together (the tests'
    in-memory ones)."""

    grants: GrantStore
    functions: FunctionStore
    hazards: HazardReader

    def snapshot(self, function_arn: str) -> FunctionSnapshot:
        functions = self.functions
        open_id = functions.open_incident_id(function_arn)
        current = functions.incident(function_arn, open_id) if open_id else None
        unsent = functions.unsent_resolutions(function_arn)
        incidents = {r.incident.incident_id: r for r in [*unsent, *([current] if current else [])]}
        return FunctionSnapshot(
            function_arn=function_arn,
            function=functions.get(function_arn),
            open_incident_id=open_id if current else None,
            grants=list(self.grants.grants(function=function_arn)),
            incidents=incidents,
        )


@dataclass(frozen=True)
class _SnapshotHazards:
    """The key and role states read with the snapshot; any other is read from the store."""

    snapshot: FunctionSnapshot
    hazards: HazardReader

    def key(self, key_arn: str) -> KeyStatus | None:
        if key_arn in self.snapshot.looked_up_keys:
            return self.snapshot.keys.get(key_arn)
        return self.hazards.key(key_arn)

    def role(self, account: str, name: str) -> RoleStatus | None:
        ref = role_key(account, name)
        if ref in self.snapshot.looked_up_roles:
            return self.snapshot.roles.get(ref)
        return self.hazards.role(account, name)
