"""Keys, roles and which functions depend on them, in the grant table.

A key's partition ``KEY#<keyArn>`` and a role's ``ROLE#<account>/<name>`` hold three kinds of item, told
apart by the sort key, and every Query selects one kind by its sort key's prefix:

- the state item, sk ``KEY`` / ``ROLE``: what a live decision needs and nothing that grows with history. A
  key's state as its newest state change left it, with that change (``stateFact``); a role's newest
  creation and newest deletion.
- one fact item per event, sk ``EVENT#<eventTime>#<eventId>``: the lineage. Written once, on condition
  that it does not exist, which is also what makes a redelivered event a duplicate. With a retention
  period, DynamoDB's TTL deletes it (``expiresAt``) that long after its event, or after it is written if
  later (`Settings.expires_at`).
- one dependency item per function whose last evaluation found it on that key or role, sk
  ``FUNCTION#<functionArn>``, so that a key or role event reaches its functions with one Query.

An event is two requests, each idempotent: the fact item, then the state moved if the fact is newer (always
tried, so a crash between the two is repaired by the redelivery). A key policy change moves no state: its
fact item and the key's state item are written in one transaction.

Tables written before this layout keep a key's or role's lineage in its state item (``events``,
``eventIds``, and a key's ``noticesSent``). They are read as lineage too, and moved out by `migrate_item`:
by ``grantwatch migrate``, or here when the state item can no longer grow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition, size
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from grantwatch.adapters.functions import ByEntityIndex, DynamoFunctionStore
from grantwatch.adapters.tables import (
    Stamped,
    bind,
    cancelled_by_a_condition,
    error_code,
    error_message,
    newer_than_stored,
    settle_expiry,
)
from grantwatch.domain.delivery import ChannelState, states_from_map, states_to_map
from grantwatch.domain.facts import Actor, key_arn_prefix, parse_utc_iso, utc_iso
from grantwatch.domain.hazards import (
    KeyChange,
    KeyFact,
    KeyState,
    KeyStatus,
    RoleChange,
    RoleFact,
    RoleStatus,
    role_key,
)
from grantwatch.ports import Relink
from grantwatch.settings import Settings

KEY_SK = "KEY"
ROLE_SK = "ROLE"
KEY_ENTITY = "KEY"
FACT_PREFIX = "EVENT#"
DEPENDENT_PREFIX = "FUNCTION#"
_CHECK_FAILED = "ConditionalCheckFailedException"


def key_pk(key_arn: str) -> str:
    return f"KEY#{key_arn}"


def role_pk(key: str) -> str:
    return f"ROLE#{key}"


def dependent_sk(function_arn: str) -> str:
    return f"{DEPENDENT_PREFIX}{function_arn}"


def fact_sk(event_time: str, event_id: str) -> str:
    """A fact's sort key: its partition's facts sort by time, and one event is one item."""
    return f"{FACT_PREFIX}{event_time}#{event_id}"


class KeyItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entity = UnicodeAttribute(null=True)
    arn = UnicodeAttribute()
    keyState = UnicodeAttribute(null=True)
    stateAt = UnicodeAttribute(null=True)
    stateEventId = UnicodeAttribute(null=True)
    stateFact = MapAttribute[str, Any](null=True)
    deletionDate = UnicodeAttribute(null=True)
    verifiedAt = UnicodeAttribute(null=True)
    # the lineage as written before fact items, until it is migrated
    events = ListAttribute(of=MapAttribute, null=True)
    eventIds = UnicodeSetAttribute(null=True)
    noticesSent = UnicodeSetAttribute(null=True)

    by_entity = ByEntityIndex()


class RoleItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    createdAt = UnicodeAttribute(null=True)
    createdEventId = UnicodeAttribute(null=True)
    created = MapAttribute[str, Any](null=True)
    deletedAt = UnicodeAttribute(null=True)
    deletedEventId = UnicodeAttribute(null=True)
    deleted = MapAttribute[str, Any](null=True)
    # the lineage as written before fact items, until it is migrated
    events = ListAttribute(of=MapAttribute, null=True)
    eventIds = UnicodeSetAttribute(null=True)


class FactItem(Model):
    """One event in a key's or a role's lineage: the attributes of `key_fact_to_map` / `role_fact_to_map`."""

    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    change = UnicodeAttribute()
    eventId = UnicodeAttribute()
    eventTime = UnicodeAttribute()
    eventName = UnicodeAttribute(null=True)
    deletionDate = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    actorType = UnicodeAttribute(null=True)
    via = UnicodeAttribute(null=True)
    sourceIp = UnicodeAttribute(null=True)
    roleId = UnicodeAttribute(null=True)
    roleArn = UnicodeAttribute(null=True)
    noticeClaimed = BooleanAttribute(null=True)  # a key policy change's informational notice
    noticeDeliveries = MapAttribute[str, Any](null=True)  # where that notice stands in each channel
    expiresAt = NumberAttribute(null=True)

    def stored(self) -> dict[str, Any]:
        """The fact as `key_fact_to_map` / `role_fact_to_map` wrote it."""
        return {
            name: value
            for name, value in self.attribute_values.items()
            if name not in ("pk", "sk", "noticeClaimed", "noticeDeliveries", "expiresAt")
        }


class DependencyItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    dependent = UnicodeAttribute()


@dataclass(frozen=True, slots=True)
class Migrated:
    """What moving one state item's old-layout lineage did."""

    facts: int  # lineage entries found on the item
    written: int  # fact items written for them (the others existed already)
    claims: int  # notice claims moved to their fact items


class DynamoHazardStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = bind(KeyItem, settings)
        self.roles = bind(RoleItem, settings)
        self.facts = bind(FactItem, settings)
        self.dependencies = bind(DependencyItem, settings)
        self.functions = DynamoFunctionStore(settings)  # owns the function items

    def record_key(self, fact: KeyFact) -> bool:
        """Add the fact to the key's lineage, and move its state if the fact is the newest. False: seen."""
        k = self.keys
        pk = key_pk(fact.key_arn)
        stored = key_fact_to_map(fact)
        known = [k.arn.set(fact.key_arn), k.entity.set(KEY_ENTITY)]
        state = fact.change.state_after
        if state is None:
            return self._add_fact_and_touch(pk, stored, k(pk, KEY_SK), known)
        added = self._add_fact(pk, stored)
        at = utc_iso(fact.event_time)
        actions: list[Action] = [
            *known,
            k.keyState.set(state.value),
            k.stateAt.set(at),
            k.stateEventId.set(fact.event_id),
            k.stateFact.set(stored),
            k.deletionDate.set(utc_iso(fact.deletion_date))
            if fact.deletion_date
            else k.deletionDate.remove(),
        ]
        self._move_state(
            k(pk, KEY_SK), actions, newer_than_stored(k.stateAt, k.stateEventId, at, fact.event_id)
        )
        return added

    def key(self, key_arn: str) -> KeyStatus | None:
        try:
            item = self.keys.get(key_pk(key_arn), KEY_SK, consistent_read=True)
        except self.keys.DoesNotExist:
            return None
        return self.key_status_of(item)

    @staticmethod
    def key_status_of(item: KeyItem) -> KeyStatus:
        return KeyStatus(
            key_arn=item.arn,
            state=KeyState(item.keyState) if item.keyState else KeyState.ENABLED,
            changed_by=_state_fact(item),
            deletion_date=parse_utc_iso(item.deletionDate) if item.deletionDate else None,
            grants_verified_at=parse_utc_iso(item.verifiedAt) if item.verifiedAt else None,
        )

    def key_lineage(self, key_arn: str) -> list[KeyFact]:
        stored = self._lineage(key_pk(key_arn), self.keys, KEY_SK)
        return sorted(
            (key_fact_from_map(d, key_arn) for d in stored), key=lambda f: (f.event_time, f.event_id)
        )

    def key_fact(self, key_arn: str, event_id: str, event_time: datetime) -> KeyFact | None:
        """One fact of the key's lineage, by its event: one read (two for a key not yet migrated)."""
        pk = key_pk(key_arn)
        try:
            item = self.facts.get(pk, fact_sk(utc_iso(event_time), event_id), consistent_read=True)
        except self.facts.DoesNotExist:
            legacy = [d for d in self._legacy_lineage(pk, self.keys, KEY_SK) if d["eventId"] == event_id]
            return key_fact_from_map(legacy[0], key_arn) if legacy else None
        return key_fact_from_map(item.stored(), key_arn)

    def keys_in(self, account: str, region: str) -> Iterator[str]:
        """The keys the table knows in one account and region: the range of by-entity their ARNs share."""
        prefix = key_pk(key_arn_prefix(account, region))
        for item in self.keys.by_entity.query(
            KEY_ENTITY, KeyItem.pk.startswith(prefix), attributes_to_get=["arn"]
        ):
            yield item.arn

    def record_role(self, fact: RoleFact) -> bool:
        r = self.roles
        pk = role_pk(fact.role_key)
        stored = role_fact_to_map(fact)
        added = self._add_fact(pk, stored)
        at = utc_iso(fact.event_time)
        if fact.change is RoleChange.CREATED:
            actions = [r.createdAt.set(at), r.createdEventId.set(fact.event_id), r.created.set(stored)]
            condition = newer_than_stored(r.createdAt, r.createdEventId, at, fact.event_id)
        else:
            actions = [r.deletedAt.set(at), r.deletedEventId.set(fact.event_id), r.deleted.set(stored)]
            condition = newer_than_stored(r.deletedAt, r.deletedEventId, at, fact.event_id)
        self._move_state(r(pk, ROLE_SK), actions, condition)
        return added

    def role(self, account: str, name: str) -> RoleStatus | None:
        try:
            item = self.roles.get(role_pk(role_key(account, name)), ROLE_SK, consistent_read=True)
        except self.roles.DoesNotExist:
            return None
        return self.role_status_of(item, account, name)

    @staticmethod
    def role_status_of(item: RoleItem, account: str, name: str) -> RoleStatus:
        return RoleStatus(
            account=account,
            role_name=name,
            created=role_fact_from_map(_plain(item.created), account, name) if item.created else None,
            deleted=role_fact_from_map(_plain(item.deleted), account, name) if item.deleted else None,
        )

    def role_lineage(self, account: str, name: str) -> list[RoleFact]:
        stored = self._lineage(role_pk(role_key(account, name)), self.roles, ROLE_SK)
        facts = [role_fact_from_map(d, account, name) for d in stored]
        return sorted(facts, key=lambda f: (f.event_time, f.event_id))

    def _lineage(self, pk: str, state: type[KeyItem] | type[RoleItem], state_sk: str) -> list[dict[str, Any]]:
        """Every fact of a key or role, once: its fact items, and what an unmigrated state item holds."""
        found = {d["eventId"]: d for d in self._legacy_lineage(pk, state, state_sk)}
        facts = self.facts
        for item in facts.query(pk, facts.sk.startswith(FACT_PREFIX)):
            found[item.eventId] = item.stored()
        return list(found.values())

    @staticmethod
    def _legacy_lineage(
        pk: str, state: type[KeyItem] | type[RoleItem], state_sk: str
    ) -> list[dict[str, Any]]:
        try:
            item = state.get(pk, state_sk, attributes_to_get=["events"])
        except state.DoesNotExist:
            return []
        return [_plain(e) for e in item.events or []]

    def dependents_of_key(
        self, key_arn: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        return self._dependents(key_pk(key_arn), after, limit)

    def dependents_of_role(
        self, account: str, name: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        return self._dependents(role_pk(role_key(account, name)), after, limit)

    def _dependents(self, pk: str, after: str | None, limit: int | None) -> list[str]:
        d = self.dependencies
        found = d.query(
            pk,
            d.sk.startswith(DEPENDENT_PREFIX),
            consistent_read=True,
            last_evaluated_key={"pk": {"S": pk}, "sk": {"S": dependent_sk(after)}} if after else None,
            limit=limit,
            page_size=limit,
        )
        return [item.dependent for item in found]

    def link(
        self, function_arn: str, *, key: str | None, role: str | None, was: tuple[str | None, str | None]
    ) -> bool:
        """Make the function a dependent of its key and role (role as `account/name`), and no longer of
        the ones it had: one transaction, conditional on the links being still `was`, so the function item
        always says which dependency items exist. False: they changed meanwhile; nothing was written."""
        if (key, role) == was:
            return True
        return self.functions.relink(function_arn, Relink(key, role, *was))

    def mark_verified(self, key_arn: str, at: datetime) -> None:
        """Reconciliation has compared the key's grants with ListGrants at `at`."""
        k = self.keys
        actions = [k.arn.set(key_arn), k.entity.set(KEY_ENTITY), k.verifiedAt.set(utc_iso(at))]
        self._move_state(k(key_pk(key_arn), KEY_SK), actions)

    def claim_key_notice(self, fact: KeyFact) -> bool:
        """Claim the one sending of the informational notice about a key fact, on its fact item (written
        whole, in case the fact is still only in an unmigrated state item)."""
        f = self.facts
        item = f(key_pk(fact.key_arn), fact_sk(utc_iso(fact.event_time), fact.event_id))
        actions = [*self._fact_actions(key_fact_to_map(fact)), f.noticeClaimed.set(True)]
        try:
            item.update(actions=actions, condition=f.noticeClaimed.does_not_exist())
        except UpdateError as error:
            if error_code(error) == _CHECK_FAILED:
                return False
            raise
        return True

    def release_key_notice(self, fact: KeyFact) -> None:
        f = self.facts
        item = f(key_pk(fact.key_arn), fact_sk(utc_iso(fact.event_time), fact.event_id))
        item.update(actions=[f.noticeClaimed.remove()])

    def key_notice_deliveries(self, fact: KeyFact) -> dict[str, ChannelState]:
        """Where the notice about the key fact stands in each channel (read by the holder of its claim)."""
        f = self.facts
        try:
            item = f.get(
                key_pk(fact.key_arn),
                fact_sk(utc_iso(fact.event_time), fact.event_id),
                consistent_read=True,
                attributes_to_get=["noticeDeliveries"],
            )
        except f.DoesNotExist:
            return {}
        stored = item.noticeDeliveries
        return states_from_map(stored.as_dict() if stored is not None else None)

    def record_key_notice_deliveries(self, fact: KeyFact, states: dict[str, ChannelState]) -> None:
        f = self.facts
        item = f(key_pk(fact.key_arn), fact_sk(utc_iso(fact.event_time), fact.event_id))
        item.update(actions=[f.noticeDeliveries.set(states_to_map(states))], condition=f.pk.exists())

    def _add_fact(self, pk: str, stored: dict[str, Any]) -> bool:
        """Write the fact item unless it exists. False: the event was seen before."""
        f = self.facts
        item = f(pk, fact_sk(stored["eventTime"], stored["eventId"]))
        try:
            item.update(actions=self._fact_actions(stored), condition=f.pk.does_not_exist())
        except UpdateError as error:
            if error_code(error) == _CHECK_FAILED:
                return False
            raise
        return True

    def _add_fact_and_touch(
        self, pk: str, stored: dict[str, Any], state: Model, actions: Sequence[Action]
    ) -> bool:
        """The fact item and an update of the state item that moves no state, in one transaction."""
        f = self.facts
        connection = f._get_connection().connection
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.update(
                    f(pk, fact_sk(stored["eventTime"], stored["eventId"])),
                    actions=self._fact_actions(stored),
                    condition=f.pk.does_not_exist(),
                )
                transaction.update(state, actions=list(actions))
        except TransactWriteError as error:
            if cancelled_by_a_condition(error):
                return False
            raise
        return True

    def _fact_actions(self, stored: dict[str, Any]) -> list[Action]:
        f = self.facts
        known = f.get_attributes()
        actions: list[Action] = [
            getattr(f, name).set(value) for name, value in stored.items() if name in known
        ]
        expires = self.settings.expires_at(parse_utc_iso(stored["eventTime"]))
        if expires is not None:
            actions.append(f.expiresAt.set(expires))
        return actions

    def _move_state(
        self, state: KeyItem | RoleItem, actions: Sequence[Action], condition: Condition | None = None
    ) -> None:
        """Move the state if the condition holds. A state item that still holds its lineage in the old
        layout and has reached DynamoDB's item size limit is migrated first, so its events keep being
        recorded."""
        try:
            _update_if(state, actions, condition)
        except UpdateError as error:
            if not _too_large(error):
                raise
            self.migrate_item(state.pk, state.sk)
            _update_if(state, actions, condition)

    def stamp_events(self, *, dry_run: bool) -> tuple[int, int]:
        """Key and role event items given the expiresAt of the current retention period: those recorded
        before it was set, and those stamped under another period (a scan: a one-off, for `grantwatch
        migrate`; the lineage move stamps what it writes). How many of each."""
        f = self.facts
        done: Counter[Stamped] = Counter()
        for item in f.scan(filter_condition=f.sk.startswith(FACT_PREFIX)):
            at = parse_utc_iso(item.eventTime)
            if did := settle_expiry(item, f.expiresAt, at, self.settings, dry_run=dry_run):
                done[did] += 1
        return done[Stamped.STAMPED], done[Stamped.RESTAMPED]

    def unmigrated(self) -> Iterator[tuple[str, str]]:
        """The key and role state items that still hold lineage in the old layout: a scan (a one-off)."""
        k = self.keys
        state_items = (k.sk == KEY_SK) | (k.sk == ROLE_SK)
        old_layout = k.events.exists() | k.eventIds.exists() | k.noticesSent.exists()
        for item in k.scan(filter_condition=state_items & old_layout, attributes_to_get=["pk", "sk"]):
            yield item.pk, item.sk

    def migrate_item(self, pk: str, sk: str, *, dry_run: bool = False) -> Migrated | None:
        """Move a state item's old-layout lineage (and a key's notice claims) to fact items, then remove
        it from the state item, on condition that nothing was appended meanwhile (else again). Each step
        is idempotent: an interrupted migration is finished by the next one. None: no such item."""
        state: type[KeyItem] | type[RoleItem] = self.keys if sk == KEY_SK else self.roles
        for _ in range(_MIGRATION_ATTEMPTS):
            try:
                item = state.get(pk, sk, consistent_read=True)
            except state.DoesNotExist:
                return None
            events = [_plain(e) for e in item.events or []]
            claimed = set(getattr(item, "noticesSent", None) or ())
            if dry_run:
                return Migrated(facts=len(events), written=0, claims=len(claimed))
            written = sum(self._add_fact(pk, stored) for stored in events)
            claims = [stored for stored in events if stored["eventId"] in claimed]
            for stored in claims:
                self._mark_claimed(pk, stored)
            if self._drop_old_layout(item, events, claimed):
                return Migrated(facts=len(events), written=written, claims=len(claims))
        raise RuntimeError(f"{pk} kept changing while it was migrated; run the migration again")

    def _mark_claimed(self, pk: str, stored: dict[str, Any]) -> None:
        f = self.facts
        item = f(pk, fact_sk(stored["eventTime"], stored["eventId"]))
        item.update(actions=[f.noticeClaimed.set(True)])

    def _drop_old_layout(
        self, item: KeyItem | RoleItem, events: list[dict[str, Any]], claimed: set[str]
    ) -> bool:
        """Remove the old-layout attributes, unless they changed since they were read (then False)."""
        state = type(item)
        actions: list[Action] = [state.events.remove(), state.eventIds.remove()]
        unchanged = _holds(state.events, len(events))
        if isinstance(item, KeyItem):
            k = self.keys
            actions.append(k.noticesSent.remove())
            unchanged &= _holds(k.noticesSent, len(claimed))
            changed_by = next((e for e in events if e["eventId"] == item.stateEventId), None)
            if item.stateFact is None and changed_by is not None:
                actions.append(k.stateFact.set(changed_by))
        try:
            state(item.pk, item.sk).update(actions=actions, condition=unchanged)
        except UpdateError as error:
            if error_code(error) == _CHECK_FAILED:
                return False
            raise
        return True


_MIGRATION_ATTEMPTS = 5


def relink_dependencies(
    transaction: TransactWrite, settings: Settings, function_arn: str, relink: Relink
) -> None:
    """Within the caller's transaction, the dependency items: the function's old key and role no longer
    list it, the new ones do."""
    d = _bound_dependencies(settings)
    moves = ((relink.was_key, relink.key, key_pk), (relink.was_role, relink.role, role_pk))
    for old, new, pk in moves:
        if old == new:
            continue
        if old:
            transaction.delete(d(pk(old), dependent_sk(function_arn)))
        if new:
            transaction.save(d(pk(new), dependent_sk(function_arn), dependent=function_arn))


@cache
def _bound_dependencies(settings: Settings) -> type[DependencyItem]:
    return bind(DependencyItem, settings)


def _holds(attribute: Any, count: int) -> Condition:
    """The list or set attribute still has `count` elements (none: it does not exist)."""
    held: Condition = attribute.does_not_exist() if count == 0 else size(attribute) == count
    return held


def _too_large(error: PynamoDBException) -> bool:
    """DynamoDB refused a write because the item would exceed its 400 KB limit."""
    return error_code(error) == "ValidationException" and "maximum allowed size" in (
        error_message(error) or ""
    )


def _plain(stored: Any) -> dict[str, Any]:
    """A raw map as read back: a MapAttribute at the top level, a plain dict inside a list."""
    return dict(stored.as_dict() if isinstance(stored, MapAttribute) else stored)


def _update_if(item: Model, actions: Sequence[Action], condition: Condition | None) -> None:
    try:
        item.update(actions=list(actions), condition=condition)
    except UpdateError as error:
        if error_code(error) != _CHECK_FAILED:
            raise


def _actor_map(actor: Actor) -> dict[str, Any]:
    return {
        "actor": actor.principal,
        "actorType": actor.identity_type,
        "via": actor.via,
        "sourceIp": actor.source_ip,
    }


def _actor_from(data: dict[str, Any]) -> Actor:
    return Actor(
        principal=data.get("actor") or "unknown",
        identity_type=data.get("actorType"),
        via=data.get("via"),
        source_ip=data.get("sourceIp"),
    )


def key_fact_to_map(fact: KeyFact) -> dict[str, Any]:
    stored = {
        "change": fact.change.value,
        "eventId": fact.event_id,
        "eventTime": utc_iso(fact.event_time),
        "eventName": fact.event_name,
        "deletionDate": utc_iso(fact.deletion_date) if fact.deletion_date else None,
        "source": None if fact.source == "cloudtrail" else fact.source,
    } | _actor_map(fact.actor)
    return {k: v for k, v in stored.items() if v is not None}


def key_fact_from_map(data: dict[str, Any], key_arn: str) -> KeyFact:
    return KeyFact(
        change=KeyChange(data["change"]),
        key_arn=key_arn,
        event_id=data["eventId"],
        event_time=parse_utc_iso(data["eventTime"]),
        event_name=data["eventName"],
        actor=_actor_from(data),
        deletion_date=parse_utc_iso(data["deletionDate"]) if data.get("deletionDate") else None,
        source=data.get("source") or "cloudtrail",
    )


def _state_fact(item: KeyItem) -> KeyFact | None:
    """The fact that moved the key's state: on the state item, or, not yet migrated, in its old lineage."""
    if item.stateFact is not None:
        return key_fact_from_map(_plain(item.stateFact), item.arn)
    old = (_plain(e) for e in item.events or [])
    stored = next((e for e in old if e["eventId"] == item.stateEventId), None)
    return key_fact_from_map(stored, item.arn) if stored else None


def role_fact_to_map(fact: RoleFact) -> dict[str, Any]:
    stored = {
        "change": fact.change.value,
        "eventId": fact.event_id,
        "eventTime": utc_iso(fact.event_time),
        "roleId": fact.role_id,
        "roleArn": fact.role_arn,
    } | _actor_map(fact.actor)
    return {k: v for k, v in stored.items() if v is not None}


def role_fact_from_map(data: dict[str, Any], account: str, name: str) -> RoleFact:
    return RoleFact(
        change=RoleChange(data["change"]),
        account=account,
        role_name=name,
        event_id=data["eventId"],
        event_time=parse_utc_iso(data["eventTime"]),
        actor=_actor_from(data),
        role_id=data.get("roleId"),
        role_arn=data.get("roleArn"),
    )
