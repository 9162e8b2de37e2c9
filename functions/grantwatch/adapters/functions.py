"""Functions and their incidents, in the grant table: the one owner of both kinds of item (their keys, their
models, the incident's stored shape). Other adapters that must change one, such as the hazard store
linking a function to its key and role, call this module's methods.

Function item: pk ``FUNCTION#<functionArn>``, sk ``FUNCTION``: the latest configuration and the latest
deletion seen (each kept only if newer than what is there, so arrival order does not matter), and the id
of the open incident, if any. Incident item: same pk, sk ``INCIDENT#<incidentId>``. Opening and resolving
an incident are transactions over both items, conditional on the function's open incident: two evaluators
racing open or close it once. Self-healing's record (``heal*`` attributes) is written on the incident item
by `DynamoHealRecords`, here too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition, size
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from grantwatch.adapters.tables import (
    Stamped,
    bind,
    cancelled_by_a_condition,
    error_code,
    newer_than_stored,
    settle_expiry,
)
from grantwatch.domain.delivery import NOTICE_LEASE, ChannelState, states_from_map, states_to_map
from grantwatch.domain.facts import Actor, parse_utc_iso, utc_iso
from grantwatch.domain.functions import FunctionChange, FunctionFact, FunctionState, function_arn_prefix
from grantwatch.domain.hazards import DecryptFailure
from grantwatch.ports import FailureRecorded, IncidentRecord, Relink
from grantwatch.settings import Settings

# Incidents and heals are the evaluator's and the healer's: the recorder, which writes function items from
# this module too, does not import them (a cold start pays for every module it imports).
if TYPE_CHECKING:
    from grantwatch.domain.alerts import Incident
    from grantwatch.domain.healing import HealOutcome, HealState

FUNCTION_SK = "FUNCTION"
MAX_TRACKED_FAILURES = 100  # keeps an incident item far below DynamoDB's 400 KB however long it fails
# Longer than a heal attempt can take (the update, then the bounded wait for the grant): a process that died
# holding the claim delays the next attempt by this much, and its attempt still counts.
HEAL_LEASE = timedelta(minutes=5)


def function_pk(function_arn: str) -> str:
    return f"FUNCTION#{function_arn}"


def incident_sk(incident_id: str) -> str:
    return f"INCIDENT#{incident_id}"


FUNCTION_ENTITY = "FUNCTION"
INCIDENT_ENTITY = "INCIDENT"


class ByEntityIndex(GlobalSecondaryIndex[Any]):
    """Every function, or every incident: what `grantwatch functions` and `incidents` list, without a scan."""

    class Meta:
        index_name = "by-entity"
        projection = AllProjection()

    entity = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class FunctionItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entity = UnicodeAttribute(null=True)
    arn = UnicodeAttribute()
    role = UnicodeAttribute(null=True)
    kmsKeyArn = UnicodeAttribute(null=True)
    hasEnvironment = BooleanAttribute(null=True)
    configuredAt = UnicodeAttribute(null=True)
    configuredEventId = UnicodeAttribute(null=True)
    deletedAt = UnicodeAttribute(null=True)
    deletedEventId = UnicodeAttribute(null=True)
    openIncidentId = UnicodeAttribute(null=True)
    dependsOnKey = UnicodeAttribute(null=True)
    dependsOnRole = UnicodeAttribute(null=True)
    failedAt = UnicodeAttribute(null=True)
    failureEventId = UnicodeAttribute(null=True)
    failureError = UnicodeAttribute(null=True)
    failureKeyArn = UnicodeAttribute(null=True)
    failureIncidentId = UnicodeAttribute(null=True)

    by_entity = ByEntityIndex()


class IncidentItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entity = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    incident = MapAttribute[str, Any]()
    openedAt = UnicodeAttribute()
    notifiedAt = UnicodeAttribute(null=True)
    claimedUntil = UnicodeAttribute(null=True)
    resolvedClaimedUntil = UnicodeAttribute(null=True)
    resolvedAt = UnicodeAttribute(null=True)
    resolvedReason = UnicodeAttribute(null=True)
    resolvedGrantId = UnicodeAttribute(null=True)
    resolvedNotifiedAt = UnicodeAttribute(null=True)
    # where each notice stands in each alert channel ({"sns": {"deliveredAt": ...}, "securityhub":
    # {"failures": 3, "error": ..., "gaveUpAt": ...}}): grantwatch.domain.delivery; absent on items written
    # before it was kept, and for a notice not tried yet
    alertDeliveries = MapAttribute[str, Any](null=True)
    resolvedDeliveries = MapAttribute[str, Any](null=True)
    supersededBy = UnicodeAttribute(null=True)
    failureCount = NumberAttribute(null=True)
    failureEventIds = UnicodeSetAttribute(null=True)
    firstFailureAt = UnicodeAttribute(null=True)
    firstFailureEventId = UnicodeAttribute(null=True)
    # self-healing's record (DynamoHealRecords), written by UpdateItem only
    healAttempts = NumberAttribute(null=True)
    healStatus = UnicodeAttribute(null=True)
    healClaimedUntil = UnicodeAttribute(null=True)
    healStartedAt = UnicodeAttribute(null=True)
    healedAt = UnicodeAttribute(null=True)
    healGrantId = UnicodeAttribute(null=True)
    healError = UnicodeAttribute(null=True)
    healSkippedAt = UnicodeAttribute(null=True)
    healSkippedReason = UnicodeAttribute(null=True)
    healLeftOn = UnicodeAttribute(null=True)
    expiresAt = NumberAttribute(null=True)  # closed, with a retention period: when TTL may delete it

    by_entity = ByEntityIndex()


def _record_of(item: IncidentItem) -> IncidentRecord:
    """An incident as stored: the incident, and where its notices (and its heal) stand."""
    return IncidentRecord(
        incident=incident_from_map(item.incident.as_dict()),
        status=item.status,
        notified_at=parse_utc_iso(item.notifiedAt) if item.notifiedAt else None,
        resolved_at=parse_utc_iso(item.resolvedAt) if item.resolvedAt else None,
        resolved_reason=item.resolvedReason,
        resolved_grant_id=item.resolvedGrantId,
        resolved_notified=item.resolvedNotifiedAt is not None,
        superseded_by=item.supersededBy,
        failure_count=int(item.failureCount or 0),
        first_failure_at=parse_utc_iso(item.firstFailureAt) if item.firstFailureAt else None,
        first_failure_event_id=item.firstFailureEventId,
        heal={
            "attempts": int(item.healAttempts or 0),
            "status": item.healStatus,
            "healedAt": item.healedAt,
            "error": item.healError,
        },
        alert_deliveries=_deliveries(item.alertDeliveries),
        resolved_deliveries=_deliveries(item.resolvedDeliveries),
    )


def _deliveries(stored: MapAttribute[str, Any] | None) -> dict[str, ChannelState]:
    return states_from_map(stored.as_dict() if stored is not None else None)


class DynamoFunctionStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.functions = bind(FunctionItem, settings)
        self.incidents = bind(IncidentItem, settings)

    def record(self, fact: FunctionFact) -> bool:
        """Apply a configuration or deletion if it is newer than the one recorded. False: already applied."""
        f = self.functions
        item = f(function_pk(fact.function_arn), FUNCTION_SK)
        at = utc_iso(fact.event_time)
        actions: list[Action] = [f.arn.set(fact.function_arn), f.entity.set(FUNCTION_ENTITY)]
        if fact.change is FunctionChange.DELETED:
            newer = newer_than_stored(f.deletedAt, f.deletedEventId, at, fact.event_id)
            actions += [f.deletedAt.set(at), f.deletedEventId.set(fact.event_id)]
        else:
            newer = newer_than_stored(f.configuredAt, f.configuredEventId, at, fact.event_id)
            actions += [
                f.configuredAt.set(at),
                f.configuredEventId.set(fact.event_id),
                f.hasEnvironment.set(fact.has_environment),
                f.role.set(fact.role) if fact.role else f.role.remove(),
                f.kmsKeyArn.set(fact.kms_key_arn) if fact.kms_key_arn else f.kmsKeyArn.remove(),
            ]
        try:
            item.update(actions=actions, condition=newer)
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, function_arn: str) -> FunctionState | None:
        try:
            item = self.functions.get(function_pk(function_arn), FUNCTION_SK, consistent_read=True)
        except self.functions.DoesNotExist:
            return None
        return _state_of(item)

    def open_incident_id(self, function_arn: str) -> str | None:
        try:
            item = self.functions.get(
                function_pk(function_arn),
                FUNCTION_SK,
                consistent_read=True,
                attributes_to_get=["openIncidentId"],
            )
        except self.functions.DoesNotExist:
            return None
        return item.openIncidentId

    def touch(self, function_arn: str) -> None:
        """Make a function known only from its grants a listed function (an item with no configuration)."""
        f = self.functions
        f(function_pk(function_arn), FUNCTION_SK).update(
            actions=[f.arn.set(f.arn | function_arn), f.entity.set(FUNCTION_ENTITY)]
        )

    def all_functions(self) -> Iterator[tuple[FunctionState, str | None]]:
        """Every known function, with its open incident's id: one index query, paged."""
        for item in self.functions.by_entity.query(FUNCTION_ENTITY):
            yield _state_of(item), item.openIncidentId

    def functions_in(self, account: str, region: str) -> Iterator[FunctionState]:
        """The known functions of one account and region: the range of by-entity their ARNs share."""
        prefix = function_pk(function_arn_prefix(account, region))
        for item in self.functions.by_entity.query(FUNCTION_ENTITY, FunctionItem.pk.startswith(prefix)):
            yield _state_of(item)

    def all_incidents(self) -> Iterator[IncidentRecord]:
        for item in self.incidents.by_entity.query(INCIDENT_ENTITY):
            yield _record_of(item)

    def find_incident(self, incident_id: str, page_size: int | None = None) -> IncidentRecord | None:
        """The incident of this id, whichever function it is about. Its id does not name its partition, so
        this queries by-entity's incident partition (a key condition, not a scan) for its sort key, page by
        page, stopping at the page that holds it: at most one request per 1 MB of incident items (or per
        `page_size` items), which retention bounds (closed incidents expire). Then one strongly consistent
        GetItem for where it stands now (the index lags)."""
        i = self.incidents
        wanted = incident_sk(incident_id)
        pages = i.by_entity.query(INCIDENT_ENTITY, filter_condition=i.sk == wanted, page_size=page_size)
        for hit in pages:
            return self.incident(hit.pk.removeprefix(function_pk("")), incident_id)
        return None

    def incidents_of(self, function_arn: str) -> list[IncidentRecord]:
        found = self.incidents.query(function_pk(function_arn), self.incidents.sk.startswith("INCIDENT#"))
        return [_record_of(item) for item in found]

    def unsent_resolutions(self, function_arn: str) -> list[IncidentRecord]:
        """Resolved incidents that alerted but whose resolved notice a failed evaluation did not send."""
        i = self.incidents
        unsent = (i.status == "resolved") & i.notifiedAt.exists() & i.resolvedNotifiedAt.does_not_exist()
        found = i.query(
            function_pk(function_arn),
            i.sk.startswith("INCIDENT#"),
            filter_condition=unsent,
            consistent_read=True,
        )
        return [_record_of(item) for item in found]

    def incident(self, function_arn: str, incident_id: str) -> IncidentRecord | None:
        try:
            item = self.incidents.get(
                function_pk(function_arn), incident_sk(incident_id), consistent_read=True
            )
        except self.incidents.DoesNotExist:
            return None
        return _record_of(item)

    def open(
        self, incident: Incident, *, claimed_until: datetime | None = None, relink: Relink | None = None
    ) -> bool:
        """Open the incident unless the function has one open already (then False). With `claimed_until`,
        its alert is claimed for sending in the same write (`claim_notice`); with `relink`, the function's
        links are moved in it too (then False also when they moved meanwhile)."""
        f, i = self.functions, self.incidents
        record = self._new_incident(incident, claimed_until)
        return self._transact(
            lambda tx: (
                self._update_function(
                    tx,
                    incident.function_arn,
                    [f.openIncidentId.set(incident.incident_id)],
                    f.openIncidentId.does_not_exist(),
                    relink,
                ),
                tx.save(record, condition=i.pk.does_not_exist()),
            )
        )

    def _update_function(
        self,
        transaction: TransactWrite,
        function_arn: str,
        actions: list[Action],
        condition: Condition | None,
        relink: Relink | None,
    ) -> TransactWrite:
        """The function item's part of a transaction, with the move of its links when there is one."""
        f = self.functions
        actions = [f.arn.set(f.arn | function_arn), f.entity.set(FUNCTION_ENTITY), *actions]
        if relink is not None:
            actions += self._link_actions(relink)
            unchanged = self._links_unchanged(relink)
            condition = unchanged if condition is None else condition & unchanged
            self._relink_dependencies(transaction, function_arn, relink)
        transaction.update(f(function_pk(function_arn), FUNCTION_SK), actions=actions, condition=condition)
        return transaction

    def _link_actions(self, relink: Relink) -> list[Action]:
        f = self.functions
        return [
            f.dependsOnKey.set(relink.key) if relink.key else f.dependsOnKey.remove(),
            f.dependsOnRole.set(relink.role) if relink.role else f.dependsOnRole.remove(),
        ]

    def _links_unchanged(self, relink: Relink) -> Condition:
        f = self.functions
        key, role = relink.was_key, relink.was_role
        unchanged: Condition = (f.dependsOnKey == key if key else f.dependsOnKey.does_not_exist()) & (
            f.dependsOnRole == role if role else f.dependsOnRole.does_not_exist()
        )
        return unchanged

    def _relink_dependencies(self, transaction: TransactWrite, function_arn: str, relink: Relink) -> None:
        """The dependency items of the function's old and new key and role (the hazard store's kind of
        item, written here so that the function item and they change together)."""
        from grantwatch.adapters.hazards import relink_dependencies

        relink_dependencies(transaction, self.settings, function_arn, relink)

    def _new_incident(self, incident: Incident, claimed_until: datetime | None = None) -> IncidentItem:
        return self.incidents(
            function_pk(incident.function_arn),
            incident_sk(incident.incident_id),
            entity=INCIDENT_ENTITY,
            status="open",
            incident=incident_to_map(incident),
            openedAt=utc_iso(incident.detected_at),
            claimedUntil=utc_iso(claimed_until) if claimed_until else None,
        )

    def resolve(
        self,
        incident: Incident,
        at: datetime,
        reason: str,
        grant_id: str | None,
        *,
        relink: Relink | None = None,
    ) -> bool:
        f, i = self.functions, self.incidents
        record = i(function_pk(incident.function_arn), incident_sk(incident.incident_id))
        resolution: list[Action] = [
            i.status.set("resolved"),
            i.resolvedAt.set(utc_iso(at)),
            i.resolvedReason.set(reason),
        ]
        if grant_id:
            resolution.append(i.resolvedGrantId.set(grant_id))
        resolution += self._expiry(at)
        return self._transact(
            lambda tx: (
                self._update_function(
                    tx,
                    incident.function_arn,
                    [f.openIncidentId.remove()],
                    f.openIncidentId == incident.incident_id,
                    relink,
                ),
                tx.update(record, actions=resolution, condition=i.status == "open"),
            )
        )

    def supersede(
        self,
        old: Incident,
        new: Incident,
        *,
        claimed_until: datetime | None = None,
        relink: Relink | None = None,
    ) -> bool:
        """Close `old` without a resolved notice, because the function still cannot decrypt, for another
        reason: `new` is opened in its place (its alert claimed and links moved, as `open`), in the same
        transaction."""
        f, i = self.functions, self.incidents
        closed = i(function_pk(old.function_arn), incident_sk(old.incident_id))
        opened = self._new_incident(new, claimed_until)
        return self._transact(
            lambda tx: (
                self._update_function(
                    tx,
                    old.function_arn,
                    [f.openIncidentId.set(new.incident_id)],
                    f.openIncidentId == old.incident_id,
                    relink,
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

    def _expiry(self, closed_at: datetime) -> list[Action]:
        """With a retention period, when DynamoDB's TTL may delete an incident closed at `closed_at`."""
        expires = self.settings.expires_at(closed_at)
        return [] if expires is None else [self.incidents.expiresAt.set(expires)]

    def record_failure(self, failure: DecryptFailure) -> FailureRecorded:
        """Note a failed Decrypt on the function (the newest one is kept) and on its open incident, if any:
        the confirmation that the alert was right (first failure, count). The function then says which
        incident accounts for its newest failure, so it never opens an unpredicted one of its own."""
        f = self.functions
        at = utc_iso(failure.event_time)
        function = f(function_pk(failure.function_arn), FUNCTION_SK)
        try:
            function.update(
                actions=[
                    f.arn.set(f.arn | failure.function_arn),
                    f.entity.set(FUNCTION_ENTITY),
                    f.failedAt.set(at),
                    f.failureEventId.set(failure.event_id),
                    f.failureError.set(failure.error_code),
                    f.failureKeyArn.set(failure.key_arn) if failure.key_arn else f.failureKeyArn.remove(),
                    f.failureIncidentId.remove(),
                ],
                condition=newer_than_stored(f.failedAt, f.failureEventId, at, failure.event_id),
            )
            newest = True
        except UpdateError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            newest = False  # a duplicate, or older than the failure recorded: counted already, or not at all
        open_id = self.open_incident_id(failure.function_arn)
        if open_id is None:
            return FailureRecorded(newest, attached=False)
        self.attach_failure(failure, open_id, newest=newest)
        return FailureRecorded(newest, attached=True)

    def attach_failure(self, failure: DecryptFailure, incident_id: str, *, newest: bool = True) -> None:
        """Record the failure on the incident (its first failure, and one more in the count) and mark the
        function's newest failure as accounted for by it. Failures are counted exactly, by event id, up to
        MAX_TRACKED_FAILURES; beyond that only those newer than any seen before are counted."""
        f, i = self.functions, self.incidents
        at = utc_iso(failure.event_time)
        record = i(function_pk(failure.function_arn), incident_sk(incident_id))
        ids = i.failureEventIds
        unseen = ids.does_not_exist() | (~ids.contains(failure.event_id) & (size(ids) < MAX_TRACKED_FAILURES))
        try:
            record.update(
                actions=[ids.add({failure.event_id}), i.failureCount.add(1)], condition=i.pk.exists() & unseen
            )
        except UpdateError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            if newest:  # not a duplicate (that would not be the newest): the tracked ids are full
                record.update(actions=[i.failureCount.add(1)], condition=i.pk.exists())
        function = f(function_pk(failure.function_arn), FUNCTION_SK)
        accounted = f.failureEventId == failure.event_id  # unless a newer failure came meanwhile
        _update_unless_changed(function, [f.failureIncidentId.set(incident_id)], accounted)
        earliest = i.firstFailureAt.does_not_exist() | (i.firstFailureAt > at)
        _update_unless_changed(
            record,
            [i.firstFailureAt.set(at), i.firstFailureEventId.set(failure.event_id)],
            i.pk.exists() & earliest,
        )

    def claim_notice(
        self, incident: Incident, *, resolved: bool, now: datetime
    ) -> dict[str, ChannelState] | None:
        """Claim the sending of a notice not sent yet, for NOTICE_LEASE: two evaluators never both send it,
        and one that died holding the claim only delays it. Where the notice stands in each channel comes
        back with the claim (the item as the update left it), so no read follows; None: not claimed."""
        i = self.incidents
        sent, claim = (
            (i.resolvedNotifiedAt, i.resolvedClaimedUntil) if resolved else (i.notifiedAt, i.claimedUntil)
        )
        record = i(function_pk(incident.function_arn), incident_sk(incident.incident_id))
        condition = sent.does_not_exist() & (claim.does_not_exist() | (claim < utc_iso(now)))
        if not resolved:
            condition &= i.status == "open"  # an alert for an incident resolved meanwhile is not news
        try:
            record.update(actions=[claim.set(utc_iso(now + NOTICE_LEASE))], condition=condition)
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return _deliveries(record.resolvedDeliveries if resolved else record.alertDeliveries)

    def release_notice(self, incident: Incident, *, resolved: bool) -> None:
        i = self.incidents
        record = i(function_pk(incident.function_arn), incident_sk(incident.incident_id))
        record.update(actions=[(i.resolvedClaimedUntil if resolved else i.claimedUntil).remove()])

    def deliveries(self, incident: Incident, *, resolved: bool) -> dict[str, ChannelState]:
        """Where the alert (or the resolved notice) stands in each channel."""
        i = self.incidents
        attribute = "resolvedDeliveries" if resolved else "alertDeliveries"
        try:
            item = i.get(
                function_pk(incident.function_arn),
                incident_sk(incident.incident_id),
                consistent_read=True,
                attributes_to_get=[attribute],
            )
        except i.DoesNotExist:
            return {}
        stored = getattr(item, attribute)
        return states_from_map(stored.as_dict() if stored is not None else None)

    def record_deliveries(
        self, incident: Incident, *, resolved: bool, states: dict[str, ChannelState], sent_at: datetime | None
    ) -> IncidentRecord:
        """Written by the holder of the notice's claim only: the whole map, no read-modify-write race. The
        incident as this write left it (the update returns it: no read)."""
        i = self.incidents
        record = i(function_pk(incident.function_arn), incident_sk(incident.incident_id))
        kept, sent = (
            (i.resolvedDeliveries, i.resolvedNotifiedAt) if resolved else (i.alertDeliveries, i.notifiedAt)
        )
        actions: list[Action] = [kept.set(states_to_map(states))]
        if sent_at is not None:
            actions.append(sent.set(utc_iso(sent_at)))
        record.update(actions=actions, condition=i.pk.exists())
        return _record_of(record)

    def stamp_closed_incidents(self, *, dry_run: bool) -> tuple[int, int]:
        """Resolved and superseded incidents given the expiresAt of the current retention period: those
        closed before it was set, and those stamped under another period (for `grantwatch migrate`). How
        many of each."""
        i = self.incidents
        closed = (i.status != "open") & i.resolvedAt.exists()
        done: Counter[Stamped] = Counter()
        for item in i.by_entity.query(INCIDENT_ENTITY, filter_condition=closed):
            at = parse_utc_iso(item.resolvedAt or "")
            if did := settle_expiry(item, i.expiresAt, at, self.settings, dry_run=dry_run):
                done[did] += 1
        return done[Stamped.STAMPED], done[Stamped.RESTAMPED]

    def relink(self, function_arn: str, relink: Relink) -> bool:
        """Move the function's links alone, on condition that they are still the ones it had (the
        dependency items then always match what the function item says). False: they moved meanwhile;
        nothing was written."""
        return self._transact(lambda tx: self._update_function(tx, function_arn, [], None, relink))

    def _transact(self, body: Any) -> bool:
        connection = self.functions._get_connection().connection
        try:
            with TransactWrite(connection=connection) as transaction:
                body(transaction)
        except TransactWriteError as error:
            if cancelled_by_a_condition(error):
                return False
            raise  # a conflict or throttling: the evaluation fails and is retried
        return True


def _update_unless_changed(item: Model, actions: list[Action], condition: Condition) -> None:
    """An update that is moot when its condition no longer holds."""
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise


def _state_of(item: FunctionItem) -> FunctionState:
    return FunctionState(
        function_arn=item.arn,
        role=item.role,
        kms_key_arn=item.kmsKeyArn,
        has_environment=bool(item.hasEnvironment),
        configured_at=parse_utc_iso(item.configuredAt) if item.configuredAt else None,
        deleted_at=parse_utc_iso(item.deletedAt) if item.deletedAt else None,
        depends_on_key=item.dependsOnKey,
        depends_on_role=item.dependsOnRole,
        failed_at=parse_utc_iso(item.failedAt) if item.failedAt else None,
        failure_event_id=item.failureEventId,
        failure_incident_id=item.failureIncidentId,
        failure_error=item.failureError,
        failure_key_arn=item.failureKeyArn,
    )


class DynamoHealRecords:
    """Self-healing's record on the incident item: only the heal attributes, by UpdateItem, so the
    incident's own attributes stay as the evaluator wrote them. An attempt is claimed by one conditional
    UpdateItem (the incident is open, not healed, under the attempt limit and not being healed by someone
    else) which adds one to ``healAttempts``: however many deliveries of an alert, retries and CLI runs
    race, an incident gets at most the limit's attempts, one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.items = bind(IncidentItem, settings)

    def _item(self, function_arn: str, incident_id: str) -> IncidentItem:
        return self.items(function_pk(function_arn), incident_sk(incident_id))

    def state(self, function_arn: str, incident_id: str) -> HealState:
        from grantwatch.domain.healing import HealState, HealStatus

        try:
            item = self.items.get(
                function_pk(function_arn),
                incident_sk(incident_id),
                consistent_read=True,
            )
        except self.items.DoesNotExist:
            return HealState()
        return HealState(
            attempts=int(item.healAttempts or 0),
            status=HealStatus(item.healStatus) if item.healStatus else None,
            left_on=item.healLeftOn,
        )

    def claim(self, function_arn: str, incident_id: str, max_attempts: int, now: datetime) -> int | None:
        from grantwatch.domain.healing import HealStatus

        """Take the next attempt: its number, or None if the incident is closed, healed, out of attempts
        or being healed."""
        i = self.items
        item = self._item(function_arn, incident_id)
        condition = (
            (i.status == "open")
            & (i.healAttempts.does_not_exist() | (i.healAttempts < max_attempts))
            & (i.healStatus.does_not_exist() | (i.healStatus != HealStatus.HEALED.value))
            & (i.healClaimedUntil.does_not_exist() | (i.healClaimedUntil < utc_iso(now)))
        )
        try:
            item.update(
                actions=[
                    i.healAttempts.add(1),
                    i.healStatus.set(HealStatus.IN_PROGRESS.value),
                    i.healClaimedUntil.set(utc_iso(now + HEAL_LEASE)),
                    i.healStartedAt.set(utc_iso(now)),
                ],
                condition=condition,
            )
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return int(item.healAttempts or 0)

    def finish(self, function_arn: str, incident_id: str, outcome: HealOutcome) -> None:
        from grantwatch.domain.healing import HealStatus

        i = self.items
        status = HealStatus.HEALED if outcome.healed else HealStatus.FAILED
        actions: list[Action] = [
            i.healStatus.set(status.value),
            i.healClaimedUntil.remove(),
            i.healedAt.set(utc_iso(outcome.at)) if outcome.healed else i.healedAt.remove(),
            i.healGrantId.set(outcome.grant_id) if outcome.grant_id else i.healGrantId.remove(),
            i.healError.set(outcome.error) if outcome.error else i.healError.remove(),
            i.healLeftOn.set(outcome.left_on) if outcome.left_on else i.healLeftOn.remove(),
        ]
        self._item(function_arn, incident_id).update(actions=actions, condition=i.pk.exists())

    def skipped(self, function_arn: str, incident_id: str, reason: str, now: datetime) -> None:
        """Why the last request to heal did nothing, for whoever looks at the incident."""
        i = self.items
        self._item(function_arn, incident_id).update(
            actions=[i.healSkippedAt.set(utc_iso(now)), i.healSkippedReason.set(reason[:512])],
            condition=i.pk.exists(),
        )


# The incident's storage shape: the ``incident`` map of its item. Its layout is stored and must stay as it
# is (notices have their own shape, in grantwatch.domain.notices, free to change).


def incident_to_map(incident: Incident) -> dict[str, Any]:
    evidence = incident.evidence
    actor = evidence.actor
    stored = {
        "incidentId": incident.incident_id,
        "alertType": incident.alert_type,
        "predicted": incident.predicted,
        "functionArn": incident.function_arn,
        "keyArn": incident.key_arn,
        "executionRole": incident.role,
        "grantId": incident.grant_id,
        "evidence": {
            "what": evidence.what,
            "eventName": evidence.event_name,
            "eventId": evidence.event_id,
            "at": utc_iso(evidence.at),
            "by": actor.principal,
            "via": actor.via,
            "from": actor.source_ip,
            "identityType": actor.identity_type,
        },
        "detectedAt": utc_iso(incident.detected_at),
        "deletionDate": utc_iso(incident.deletion_date) if incident.deletion_date else None,
        "functionsOnKey": list(incident.functions_on_key),
        "functionsOnKeyCount": incident.functions_on_key_count or None,
        "awsManagedKey": incident.aws_managed_key,
    }
    return _without_nulls(stored)


def incident_from_map(stored: dict[str, Any]) -> Incident:
    from grantwatch.domain.alerts import Incident, bounded_functions
    from grantwatch.domain.risk import Cause, Evidence

    evidence: dict[str, Any] = stored["evidence"]
    # An incident stored before the list was bounded holds every function on its key: capped on read.
    on_key, count = bounded_functions(
        stored.get("functionsOnKey") or (), int(stored.get("functionsOnKeyCount") or 0)
    )
    return Incident(
        incident_id=stored["incidentId"],
        function_arn=stored["functionArn"],
        key_arn=stored["keyArn"],
        role=stored.get("executionRole"),
        cause=Cause(stored["alertType"]),
        evidence=Evidence(
            what=evidence["what"],
            event_name=evidence["eventName"],
            event_id=evidence["eventId"],
            at=parse_utc_iso(evidence["at"]),
            actor=Actor(
                principal=evidence.get("by") or "unknown",
                identity_type=evidence.get("identityType"),
                via=evidence.get("via"),
                source_ip=evidence.get("from"),
            ),
        ),
        detected_at=parse_utc_iso(stored["detectedAt"]),
        grant_id=stored.get("grantId"),
        deletion_date=parse_utc_iso(stored["deletionDate"]) if stored.get("deletionDate") else None,
        functions_on_key=on_key,
        aws_managed_key=bool(stored.get("awsManagedKey")),
        functions_on_key_count=count,
    )


def _without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _without_nulls(v) if isinstance(v, dict) else v
        for k, v in value.items()
        if v is not None and v != []
    }
