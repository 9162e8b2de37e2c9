"""The evaluation of a key's resources of other services (DynamoDB tables, EBS volumes, RDS databases, ...),
asked for by the key's state changes and by a RevokeGrant of a service's grant: read what is known (the
key's state, its open resource incidents, its grants and what read APIs found), decide (pure:
grantwatch.domain.resource_alerts), and open, supersede or close one incident per key and service,
publishing each notice once to every channel through the incident's outbox (as a function's incident).

What it costs: the key's service items (Query, then one BatchGetItem of the incidents they name, when any)
and its state item (GetItem; a service's CreateGrant stops after the Query unless a revoked grant's
incident is open on the key); then, only when the key is lost or an incident is open, the key's grants:
the by-key index a page at a time (one Query a page) and the grants themselves in batches of
GRANT_BATCH (one BatchGetItem each, pynamodb's batches). So a key enabled with nothing open costs two
requests, and a key disabled with N resources of one grant each about 3 + N/100 reads, and one write
transaction and one UpdateItem per service whose incident opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from grantwatch.domain.delivery import NOTICE_LEASE, ChannelState, Settled
from grantwatch.domain.facts import FactKind
from grantwatch.domain.hazards import KeyState
from grantwatch.domain.lineage import GrantState
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.domain.records import EvaluationRequest
from grantwatch.domain.resource_alerts import (
    CREATE_EVENT,
    REVOKE_EVENT,
    Decision,
    ResourceCause,
    ResourceIncident,
    ResourceStep,
    RevokedGrant,
    decide,
    revoked_by_service,
)
from grantwatch.domain.resource_notices import resource_alert_notice, resource_resolved_notice
from grantwatch.domain.resources import resources_on_key
from grantwatch.domain.risk import Evidence
from grantwatch.domain.services import entry_for
from grantwatch.outbox import send
from grantwatch.ports import (
    DeliveryMonitor,
    DiscoveredResources,
    GrantStore,
    HazardReader,
    Notifier,
    ResourceIncidentRecord,
    ResourceIncidentStore,
)

GRANT_BATCH = 100  # grants a BatchGetItem reads (DynamoDB's limit): the key's grants are read in these


@dataclass(frozen=True)
class ResourceEvaluation:
    grants: GrantStore
    hazards: HazardReader
    incidents: ResourceIncidentStore
    notifier: Notifier
    discovered: DiscoveredResources
    monitor: DeliveryMonitor | None = None

    def run(self, request: EvaluationRequest, now: datetime) -> list[Notice]:
        key_arn = request.key_arn or ""
        revoked: RevokedGrant | None = None
        if request.event_name == REVOKE_EVENT:
            found = self._revoked(request)
            if found is None:
                return []  # not a covered service's grant for one of its resources
            key_arn, revoked = found
        known = self.incidents.on_key(key_arn)
        if (
            request.event_name == CREATE_EVENT
            and not known.unsent
            and not any(r.incident.cause is ResourceCause.GRANT_REVOKED for r in known.open.values())
        ):
            return []  # a service's grant created, and no revoked grant's incident it could end: one Query
        key = self.hazards.key(key_arn)
        lost = key is not None and key.state is not KeyState.ENABLED
        published: list[Notice] = []
        for record in known.unsent:
            self._resolved(record, now, published)
        if revoked is None and not lost and not known.open:
            return published  # nothing at risk and nothing open: the key's grants are not read
        mine: list[GrantState] = []
        grants = self.grants.grants(key=key_arn)
        if revoked is not None:
            grants = _set_aside(grants, revoked, mine)
        resources = resources_on_key(key_arn, grants, self.discovered.on_key(key_arn))
        if revoked is not None:
            revoked = replace(revoked, let_go=_let_go(mine, revoked))
        current = {service: record.incident for service, record in known.open.items()}
        for decision in decide(key_arn, key, resources, current, now, revoked):
            self._apply(decision, known.open.get(decision.service), now, published)
        return published

    def _revoked(self, request: EvaluationRequest) -> tuple[str, RevokedGrant] | None:
        """The revoked grant's key and resource, if it is a covered service's grant for a resource."""
        grant = self.grants.get(request.grant_id or "")
        terms = grant.terms if grant is not None else None
        if grant is None or terms is None or terms.function_arn or not terms.resource:
            return None
        entry = entry_for(terms.service)
        if entry is None:
            return None
        ended = [f for f in grant.lineage if f.kind is FactKind.REVOKED and f.event_id == request.event_id]
        fact = ended[0] if ended else grant.ended
        if fact is None:
            return None
        service = str(entry.service)
        evidence = Evidence("revoked", fact.event_name, fact.event_id, fact.event_time, fact.actor)
        by_service = revoked_by_service(fact.actor, service)
        return grant.key_arn, RevokedGrant(grant.grant_id, service, terms.resource, evidence, by_service)

    def _apply(
        self,
        decision: Decision,
        record: ResourceIncidentRecord | None,
        now: datetime,
        published: list[Notice],
    ) -> None:
        store, claim = self.incidents, now + NOTICE_LEASE
        match decision.step:
            case ResourceStep.OPEN if decision.incident is not None:
                if store.open(decision.incident, claimed_until=claim):
                    self._alert(decision.incident, now, published, claimed={})
            case ResourceStep.SUPERSEDE if decision.incident is not None and decision.current is not None:
                if store.supersede(decision.current, decision.incident, claimed_until=claim):
                    self._alert(decision.incident, now, published, claimed={})
            case ResourceStep.KEEP if record is not None and not record.notified:
                self._alert(record.incident, now, published)  # a failed evaluation left it unsent
            case ResourceStep.RESOLVE if decision.current is not None:
                reason = decision.reason or "resolved"
                if store.resolve(decision.current, now, reason) and record is not None and record.notified:
                    closed = ResourceIncidentRecord(
                        decision.current, "resolved", record.notified_at, now, reason
                    )
                    self._resolved(closed, now, published)
            case _:
                pass

    def _alert(
        self,
        incident: ResourceIncident,
        now: datetime,
        published: list[Notice],
        *,
        claimed: dict[str, ChannelState] | None = None,
    ) -> None:
        self._publish(incident, resource_alert_notice(incident), now, published, claimed=claimed)

    def _resolved(self, record: ResourceIncidentRecord, now: datetime, published: list[Notice]) -> None:
        notice = resource_resolved_notice(
            record.incident, record.resolved_reason or "resolved", record.resolved_at or now
        )
        self._publish(record.incident, notice, now, published)

    def _publish(
        self,
        incident: ResourceIncident,
        notice: Notice,
        now: datetime,
        published: list[Notice],
        *,
        claimed: dict[str, ChannelState] | None = None,
    ) -> None:
        """Send the notice unless it is sent or being sent (the claim on the incident item), to the
        channels still owed it, and store where it stands."""
        resolved = notice.kind is NoticeKind.RESOLVED
        store = self.incidents
        states = claimed if claimed is not None else store.claim_notice(incident, resolved=resolved, now=now)
        if states is None:
            return
        settled = states

        def record(outcome: Settled) -> None:
            sent_at = now if outcome.complete else None
            store.record_deliveries(incident, resolved=resolved, states=outcome.states, sent_at=sent_at)

        before: Callable[[], dict[str, ChannelState]] = lambda: settled  # noqa: E731
        send(
            self.notifier,
            notice,
            now,
            before=before,
            record=record,
            release=lambda: store.release_notice(incident, resolved=resolved),
            monitor=self.monitor,
        )
        published.append(notice)


def _set_aside(
    grants: Iterator[GrantState], revoked: RevokedGrant, mine: list[GrantState]
) -> Iterator[GrantState]:
    """The key's grants as they stream by, the revoked grant's resource's own kept aside."""
    for grant in grants:
        terms = grant.terms
        if terms is not None and terms.resource == revoked.resource and terms.service == revoked.service:
            mine.append(grant)
        yield grant


def _let_go(grants: list[GrantState], revoked: RevokedGrant) -> bool:
    """The service retired one of the resource's grants since the revoked one was created: it let go of
    the resource (deleted it, detached it), which is not at risk."""
    created = next((g.created_at for g in grants if g.grant_id == revoked.grant_id), None)
    return any(
        g.ended is not None
        and g.ended.kind is FactKind.RETIRED
        and revoked_by_service(g.ended.actor, revoked.service)
        and (created is None or g.ended.event_time >= created)
        for g in grants
    )
