"""Resource incidents, in the key's partition of the grant table: the one owner of their two kinds of item.

- the service item, pk ``KEY#<keyArn>``, sk ``SERVICE#<service>``: the id of the service's open incident
  on the key (``openIncidentId``), if any, and of its last closed one (``lastIncidentId``), whose resolved
  notice a failed evaluation may still owe. One Query of the ``SERVICE#`` range reads a key's few service
  items (one per service the catalogue covers, at most), whatever the history.
- the incident item, same pk, sk ``RESOURCE-INCIDENT#<service>#<incidentId>``: the incident, and where its
  alert and its resolved notice stand (claimed, sent, each channel's state), as a function's incident item
  keeps them (decision 3: the incident item is the outbox for its notices).

Opening, superseding and resolving are transactions over the service item and the incident item,
conditional on the service item's open incident: two evaluations racing open or close it once. With a
retention period, a closed incident gets its ``expiresAt``, so DynamoDB's TTL deletes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from grantwatch.adapters.tables import bind, cancelled_by_a_condition, error_code
from grantwatch.domain.delivery import NOTICE_LEASE, ChannelState, states_from_map, states_to_map
from grantwatch.domain.facts import Actor, parse_utc_iso, utc_iso
from grantwatch.domain.resource_alerts import ResourceCause, ResourceIncident
from grantwatch.domain.risk import Evidence
from grantwatch.ports import KeyIncidents, ResourceIncidentRecord
from grantwatch.settings import Settings

SERVICE_PREFIX = "SERVICE#"
INCIDENT_PREFIX = "RESOURCE-INCIDENT#"


def key_pk(key_arn: str) -> str:
    return f"KEY#{key_arn}"


def service_sk(service: str) -> str:
    return f"{SERVICE_PREFIX}{service}"


def incident_sk(service: str, incident_id: str) -> str:
    return f"{INCIDENT_PREFIX}{service}#{incident_id}"


class ServiceItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    service = UnicodeAttribute(null=True)
    openIncidentId = UnicodeAttribute(null=True)
    lastIncidentId = UnicodeAttribute(null=True)


class ResourceIncidentItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()
    incident = MapAttribute[str, Any]()
    openedAt = UnicodeAttribute()
    notifiedAt = UnicodeAttribute(null=True)
    claimedUntil = UnicodeAttribute(null=True)
    resolvedClaimedUntil = UnicodeAttribute(null=True)
    resolvedAt = UnicodeAttribute(null=True)
    resolvedReason = UnicodeAttribute(null=True)
    resolvedNotifiedAt = UnicodeAttribute(null=True)
    alertDeliveries = MapAttribute[str, Any](null=True)
    resolvedDeliveries = MapAttribute[str, Any](null=True)
    supersededBy = UnicodeAttribute(null=True)
    expiresAt = NumberAttribute(null=True)


class DynamoResourceIncidents:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = bind(ServiceItem, settings)
        self.incidents = bind(ResourceIncidentItem, settings)

    def on_key(self, key_arn: str) -> KeyIncidents:
        """Two requests: a consistent Query of the key's service items, then one BatchGetItem of the
        incidents they name (none when no service has one)."""
        s = self.services
        pk = key_pk(key_arn)
        pointers = list(s.query(pk, s.sk.startswith(SERVICE_PREFIX), consistent_read=True))
        wanted = {
            (pk, incident_sk(p.service or p.sk.removeprefix(SERVICE_PREFIX), incident_id))
            for p in pointers
            for incident_id in (p.openIncidentId, p.lastIncidentId)
            if incident_id
        }
        found = {
            item.sk: _record_of(item)
            for item in self.incidents.batch_get(sorted(wanted), consistent_read=True)
        }
        opened: dict[str, ResourceIncidentRecord] = {}
        unsent: list[ResourceIncidentRecord] = []
        for p in pointers:
            service = p.service or p.sk.removeprefix(SERVICE_PREFIX)
            current = found.get(incident_sk(service, p.openIncidentId)) if p.openIncidentId else None
            if current is not None and current.status == "open":
                opened[service] = current
            last = found.get(incident_sk(service, p.lastIncidentId)) if p.lastIncidentId else None
            if (
                last is not None
                and last.status == "resolved"
                and last.notified
                and not last.resolved_notified
            ):
                unsent.append(last)
        return KeyIncidents(opened, unsent)

    def incident(self, key_arn: str, service: str, incident_id: str) -> ResourceIncidentRecord | None:
        try:
            item = self.incidents.get(
                key_pk(key_arn), incident_sk(service, incident_id), consistent_read=True
            )
        except self.incidents.DoesNotExist:
            return None
        return _record_of(item)

    def open(self, incident: ResourceIncident, *, claimed_until: datetime | None = None) -> bool:
        """Open the incident unless its service has one open on the key (then False); with
        `claimed_until`, its alert is claimed in the same write."""
        s, i = self.services, self.incidents
        pointer = s(key_pk(incident.key_arn), service_sk(incident.service))
        record = self._new(incident, claimed_until)
        return self._transact(
            lambda tx: (
                tx.update(
                    pointer,
                    actions=[s.service.set(incident.service), s.openIncidentId.set(incident.incident_id)],
                    condition=s.openIncidentId.does_not_exist(),
                ),
                tx.save(record, condition=i.pk.does_not_exist()),
            )
        )

    def supersede(
        self, old: ResourceIncident, new: ResourceIncident, *, claimed_until: datetime | None = None
    ) -> bool:
        """Close `old` without a resolved notice (the resources are still at risk, for another cause) and
        open `new` in its place, in one transaction."""
        s, i = self.services, self.incidents
        pointer = s(key_pk(old.key_arn), service_sk(old.service))
        closed = i(key_pk(old.key_arn), incident_sk(old.service, old.incident_id))
        opened = self._new(new, claimed_until)
        return self._transact(
            lambda tx: (
                tx.update(
                    pointer,
                    actions=[s.openIncidentId.set(new.incident_id)],
                    condition=s.openIncidentId == old.incident_id,
                ),
                tx.update(
                    closed,
                    actions=[
                        i.status.set("superseded"),
                        i.supersededBy.set(new.incident_id),
                        i.resolvedAt.set(utc_iso(new.detected_at)),
                        i.resolvedReason.set(f"superseded by {new.alert_type}"),
                        *self._expiry(new.detected_at),
                    ],
                    condition=i.status == "open",
                ),
                tx.save(opened, condition=i.pk.does_not_exist()),
            )
        )

    def resolve(self, incident: ResourceIncident, at: datetime, reason: str) -> bool:
        s, i = self.services, self.incidents
        pointer = s(key_pk(incident.key_arn), service_sk(incident.service))
        record = i(key_pk(incident.key_arn), incident_sk(incident.service, incident.incident_id))
        return self._transact(
            lambda tx: (
                tx.update(
                    pointer,
                    actions=[s.openIncidentId.remove(), s.lastIncidentId.set(incident.incident_id)],
                    condition=s.openIncidentId == incident.incident_id,
                ),
                tx.update(
                    record,
                    actions=[
                        i.status.set("resolved"),
                        i.resolvedAt.set(utc_iso(at)),
                        i.resolvedReason.set(reason),
                        *self._expiry(at),
                    ],
                    condition=i.status == "open",
                ),
            )
        )

    def claim_notice(
        self, incident: ResourceIncident, *, resolved: bool, now: datetime
    ) -> dict[str, ChannelState] | None:
        """Claim the sending of a notice not sent yet, for NOTICE_LEASE (as a function's incident does);
        where it stands in each channel comes back with the claim. None: not claimed."""
        i = self.incidents
        sent, claim = (
            (i.resolvedNotifiedAt, i.resolvedClaimedUntil) if resolved else (i.notifiedAt, i.claimedUntil)
        )
        record = self._item(incident)
        condition = sent.does_not_exist() & (claim.does_not_exist() | (claim < utc_iso(now)))
        if not resolved:
            condition &= i.status == "open"
        try:
            record.update(actions=[claim.set(utc_iso(now + NOTICE_LEASE))], condition=condition)
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        stored = record.resolvedDeliveries if resolved else record.alertDeliveries
        return states_from_map(stored.as_dict() if stored is not None else None)

    def release_notice(self, incident: ResourceIncident, *, resolved: bool) -> None:
        i = self.incidents
        self._item(incident).update(
            actions=[(i.resolvedClaimedUntil if resolved else i.claimedUntil).remove()]
        )

    def record_deliveries(
        self,
        incident: ResourceIncident,
        *,
        resolved: bool,
        states: dict[str, ChannelState],
        sent_at: datetime | None,
    ) -> ResourceIncidentRecord:
        """Written by the holder of the notice's claim only; the incident as the write left it."""
        i = self.incidents
        record = self._item(incident)
        kept, sent = (
            (i.resolvedDeliveries, i.resolvedNotifiedAt) if resolved else (i.alertDeliveries, i.notifiedAt)
        )
        actions: list[Action] = [kept.set(states_to_map(states))]
        if sent_at is not None:
            actions.append(sent.set(utc_iso(sent_at)))
        record.update(actions=actions, condition=i.pk.exists())
        return _record_of(record)

    def _item(self, incident: ResourceIncident) -> ResourceIncidentItem:
        return self.incidents(key_pk(incident.key_arn), incident_sk(incident.service, incident.incident_id))

    def _new(self, incident: ResourceIncident, claimed_until: datetime | None) -> ResourceIncidentItem:
        return self.incidents(
            key_pk(incident.key_arn),
            incident_sk(incident.service, incident.incident_id),
            status="open",
            incident=resource_incident_to_map(incident),
            openedAt=utc_iso(incident.detected_at),
            claimedUntil=utc_iso(claimed_until) if claimed_until else None,
        )

    def _expiry(self, closed_at: datetime) -> list[Action]:
        expires = self.settings.expires_at(closed_at)
        return [] if expires is None else [self.incidents.expiresAt.set(expires)]

    def _transact(self, body: Any) -> bool:
        connection = self.services._get_connection().connection
        try:
            with TransactWrite(connection=connection) as transaction:
                body(transaction)
        except TransactWriteError as error:
            if cancelled_by_a_condition(error):
                return False
            raise
        return True


def _record_of(item: ResourceIncidentItem) -> ResourceIncidentRecord:
    def states(stored: MapAttribute[str, Any] | None) -> dict[str, ChannelState]:
        return states_from_map(stored.as_dict() if stored is not None else None)

    return ResourceIncidentRecord(
        incident=resource_incident_from_map(item.incident.as_dict()),
        status=item.status,
        notified_at=parse_utc_iso(item.notifiedAt) if item.notifiedAt else None,
        resolved_at=parse_utc_iso(item.resolvedAt) if item.resolvedAt else None,
        resolved_reason=item.resolvedReason,
        resolved_notified=item.resolvedNotifiedAt is not None,
        alert_deliveries=states(item.alertDeliveries),
        resolved_deliveries=states(item.resolvedDeliveries),
    )


def resource_incident_to_map(incident: ResourceIncident) -> dict[str, Any]:
    """The incident's stored shape: its own, apart from any notice's wording."""
    e = incident.evidence
    stored: dict[str, Any] = {
        "incidentId": incident.incident_id,
        "keyArn": incident.key_arn,
        "service": incident.service,
        "resourceKind": incident.resource_kind,
        "alertType": incident.alert_type,
        "evidence": {
            k: v
            for k, v in {
                "what": e.what,
                "eventName": e.event_name,
                "eventId": e.event_id,
                "at": utc_iso(e.at),
                "by": e.actor.principal,
                "via": e.actor.via,
                "from": e.actor.source_ip,
                "identityType": e.actor.identity_type,
            }.items()
            if v is not None
        },
        "detectedAt": utc_iso(incident.detected_at),
        "lossStartedAt": utc_iso(incident.loss_started),
        "resources": list(incident.resources),
        "resourceCount": incident.resource_count,
        "whatHappens": incident.what_happens,
        "takesEffect": incident.takes_effect,
        "resourceState": incident.resource_state,
        "irreversible": incident.irreversible,
        "recovery": incident.recovery,
        "sources": [{"title": title, "url": url} for title, url in incident.sources],
        "deadline": utc_iso(incident.deadline) if incident.deadline else None,
        "deletionDate": utc_iso(incident.deletion_date) if incident.deletion_date else None,
        "grantId": incident.grant_id,
    }
    return {k: v for k, v in stored.items() if v is not None and v != []}


def resource_incident_from_map(stored: dict[str, Any]) -> ResourceIncident:
    e = stored["evidence"]

    def moment(name: str) -> datetime | None:
        return parse_utc_iso(stored[name]) if stored.get(name) else None

    return ResourceIncident(
        incident_id=stored["incidentId"],
        key_arn=stored["keyArn"],
        service=stored["service"],
        resource_kind=stored["resourceKind"],
        cause=ResourceCause(stored["alertType"]),
        evidence=Evidence(
            what=e["what"],
            event_name=e["eventName"],
            event_id=e["eventId"],
            at=parse_utc_iso(e["at"]),
            actor=Actor(
                principal=e.get("by") or "unknown",
                identity_type=e.get("identityType"),
                via=e.get("via"),
                source_ip=e.get("from"),
            ),
        ),
        detected_at=parse_utc_iso(stored["detectedAt"]),
        loss_started=parse_utc_iso(stored["lossStartedAt"]),
        resources=tuple(stored.get("resources") or ()),
        resource_count=int(stored.get("resourceCount") or 0),
        what_happens=stored["whatHappens"],
        takes_effect=stored["takesEffect"],
        resource_state=stored.get("resourceState"),
        irreversible=stored.get("irreversible"),
        recovery=stored["recovery"],
        sources=tuple((s["title"], s["url"]) for s in stored.get("sources") or ()),
        deadline=moment("deadline"),
        deletion_date=moment("deletionDate"),
        grant_id=stored.get("grantId"),
    )
