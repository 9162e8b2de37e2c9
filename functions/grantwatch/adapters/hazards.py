"""Keys, roles and which functions depend on them, in the grant table.

Key item: pk ``KEY#<keyArn>``, sk ``KEY``: the key's lineage (every state change and policy change, each
event applied once) and its state as the newest state change left it. Role item: pk
``ROLE#<account>/<name>``, sk ``ROLE``: its lineage, the newest creation and the newest deletion.
Dependency items, in the key's and the role's partitions: sk ``FUNCTION#<functionArn>``, one per function
whose last evaluation found it on that key or role, so that a key or role event reaches its functions
with one Query. Each fact is written in two steps, both idempotent: append to the lineage (conditional
on its event id, so a redelivery changes nothing), then move the state if the fact is newer (always
tried, so a crash between the two is repaired by the redelivery).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from pynamodb.attributes import ListAttribute, MapAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from grantwatch.adapters.functions import (
    FUNCTION_SK,
    ByEntityIndex,
    FunctionItem,
    cancelled_by_a_condition,
    function_pk,
    newer_than_stored,
)
from grantwatch.adapters.tables import bind, error_code
from grantwatch.domain.facts import Actor, parse_utc_iso, utc_iso
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
from grantwatch.settings import Settings

KEY_SK = "KEY"
ROLE_SK = "ROLE"
KEY_ENTITY = "KEY"


def key_pk(key_arn: str) -> str:
    return f"KEY#{key_arn}"


def role_pk(key: str) -> str:
    return f"ROLE#{key}"


def dependent_sk(function_arn: str) -> str:
    return f"FUNCTION#{function_arn}"


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
    deletionDate = UnicodeAttribute(null=True)
    events = ListAttribute(of=MapAttribute, null=True)
    eventIds = UnicodeSetAttribute(null=True)
    verifiedAt = UnicodeAttribute(null=True)
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
    events = ListAttribute(of=MapAttribute, null=True)
    eventIds = UnicodeSetAttribute(null=True)


class DependencyItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    dependent = UnicodeAttribute()


class HazardStore(Protocol):
    def record_key(self, fact: KeyFact) -> bool: ...

    def key(self, key_arn: str) -> KeyStatus | None: ...

    def key_lineage(self, key_arn: str) -> list[KeyFact]: ...

    def record_role(self, fact: RoleFact) -> bool: ...

    def role(self, account: str, name: str) -> RoleStatus | None: ...

    def dependents_of_key(self, key_arn: str) -> list[str]: ...

    def dependents_of_role(self, account: str, name: str) -> list[str]: ...

    def link(
        self, function_arn: str, *, key: str | None, role: str | None, was: tuple[str | None, str | None]
    ) -> bool: ...

    def mark_verified(self, key_arn: str, at: datetime) -> None: ...

    def claim_key_notice(self, key_arn: str, notice_id: str) -> bool: ...

    def release_key_notice(self, key_arn: str, notice_id: str) -> None: ...


class DynamoHazardStore:
    def __init__(self, settings: Settings) -> None:
        self.keys = bind(KeyItem, settings)
        self.roles = bind(RoleItem, settings)
        self.dependencies = bind(DependencyItem, settings)
        self.functions = bind(FunctionItem, settings)

    def record_key(self, fact: KeyFact) -> bool:
        """Add the fact to the key's lineage, and move its state if the fact is the newest. False: seen."""
        k = self.keys
        item = k(key_pk(fact.key_arn), KEY_SK)
        appended = _append(
            item,
            [k.arn.set(fact.key_arn), k.entity.set(KEY_ENTITY)],
            k.events,
            k.eventIds,
            key_fact_to_map(fact),
            fact.event_id,
        )
        state = fact.change.state_after
        if state is not None:
            at = utc_iso(fact.event_time)
            actions: list[Action] = [
                k.keyState.set(state.value),
                k.stateAt.set(at),
                k.stateEventId.set(fact.event_id),
                k.deletionDate.set(utc_iso(fact.deletion_date))
                if fact.deletion_date
                else k.deletionDate.remove(),
            ]
            _update_if(item, actions, newer_than_stored(k.stateAt, k.stateEventId, at, fact.event_id))
        return appended

    def key(self, key_arn: str) -> KeyStatus | None:
        try:
            item = self.keys.get(key_pk(key_arn), KEY_SK, consistent_read=True)
        except self.keys.DoesNotExist:
            return None
        lineage = {f.event_id: f for f in _key_facts(item)}
        return KeyStatus(
            key_arn=item.arn,
            state=KeyState(item.keyState) if item.keyState else KeyState.ENABLED,
            changed_by=lineage.get(item.stateEventId or ""),
            deletion_date=parse_utc_iso(item.deletionDate) if item.deletionDate else None,
            grants_verified_at=parse_utc_iso(item.verifiedAt) if item.verifiedAt else None,
        )

    def key_lineage(self, key_arn: str) -> list[KeyFact]:
        try:
            item = self.keys.get(key_pk(key_arn), KEY_SK)
        except self.keys.DoesNotExist:
            return []
        return sorted(_key_facts(item), key=lambda f: (f.event_time, f.event_id))

    def all_keys(self) -> Iterator[str]:
        for item in self.keys.by_entity.query(KEY_ENTITY, attributes_to_get=["arn"]):
            yield item.arn

    def record_role(self, fact: RoleFact) -> bool:
        r = self.roles
        item = r(role_pk(fact.role_key), ROLE_SK)
        appended = _append(item, [], r.events, r.eventIds, role_fact_to_map(fact), fact.event_id)
        at = utc_iso(fact.event_time)
        stored = role_fact_to_map(fact)
        if fact.change is RoleChange.CREATED:
            actions = [r.createdAt.set(at), r.createdEventId.set(fact.event_id), r.created.set(stored)]
            condition = newer_than_stored(r.createdAt, r.createdEventId, at, fact.event_id)
        else:
            actions = [r.deletedAt.set(at), r.deletedEventId.set(fact.event_id), r.deleted.set(stored)]
            condition = newer_than_stored(r.deletedAt, r.deletedEventId, at, fact.event_id)
        _update_if(item, actions, condition)
        return appended

    def role(self, account: str, name: str) -> RoleStatus | None:
        try:
            item = self.roles.get(role_pk(role_key(account, name)), ROLE_SK, consistent_read=True)
        except self.roles.DoesNotExist:
            return None
        return RoleStatus(
            account=account,
            role_name=name,
            created=role_fact_from_map(_plain(item.created), account, name) if item.created else None,
            deleted=role_fact_from_map(_plain(item.deleted), account, name) if item.deleted else None,
        )

    def role_lineage(self, account: str, name: str) -> list[RoleFact]:
        try:
            item = self.roles.get(role_pk(role_key(account, name)), ROLE_SK)
        except self.roles.DoesNotExist:
            return []
        facts = [role_fact_from_map(_plain(e), account, name) for e in item.events or []]
        return sorted(facts, key=lambda f: (f.event_time, f.event_id))

    def dependents_of_key(self, key_arn: str) -> list[str]:
        return self._dependents(key_pk(key_arn))

    def dependents_of_role(self, account: str, name: str) -> list[str]:
        return self._dependents(role_pk(role_key(account, name)))

    def _dependents(self, pk: str) -> list[str]:
        d = self.dependencies
        return [item.dependent for item in d.query(pk, d.sk.startswith("FUNCTION#"), consistent_read=True)]

    def link(
        self, function_arn: str, *, key: str | None, role: str | None, was: tuple[str | None, str | None]
    ) -> bool:
        """Make the function a dependent of its key and role (role as `account/name`), and no longer of
        the ones it had: one transaction, conditional on the links being still `was`, so the function item
        always says which dependency items exist. False: they changed meanwhile; nothing was written."""
        f = self.functions
        old_key, old_role = was
        if (key, role) == (old_key, old_role):
            return True
        unchanged = (f.dependsOnKey == old_key if old_key else f.dependsOnKey.does_not_exist()) & (
            f.dependsOnRole == old_role if old_role else f.dependsOnRole.does_not_exist()
        )
        connection = f._get_connection().connection
        try:
            with TransactWrite(connection=connection) as transaction:
                self._relink(transaction, function_arn, key, role, old_key, old_role, unchanged)
        except TransactWriteError as error:
            if cancelled_by_a_condition(error):
                return False
            raise
        return True

    def _relink(
        self,
        transaction: TransactWrite,
        function_arn: str,
        key: str | None,
        role: str | None,
        old_key: str | None,
        old_role: str | None,
        unchanged: Any,
    ) -> None:
        f, d = self.functions, self.dependencies
        transaction.update(
            f(function_pk(function_arn), FUNCTION_SK),
            actions=[
                f.arn.set(f.arn | function_arn),
                f.dependsOnKey.set(key) if key else f.dependsOnKey.remove(),
                f.dependsOnRole.set(role) if role else f.dependsOnRole.remove(),
            ],
            condition=unchanged,
        )
        for old, new, pk in ((old_key, key, key_pk), (old_role, role, role_pk)):
            if old == new:
                continue
            if old:
                transaction.delete(d(pk(old), dependent_sk(function_arn)))
            if new:
                transaction.save(d(pk(new), dependent_sk(function_arn), dependent=function_arn))

    def mark_verified(self, key_arn: str, at: datetime) -> None:
        """Reconciliation has compared the key's grants with ListGrants at `at`."""
        k = self.keys
        k(key_pk(key_arn), KEY_SK).update(
            actions=[k.arn.set(key_arn), k.entity.set(KEY_ENTITY), k.verifiedAt.set(utc_iso(at))]
        )

    def claim_key_notice(self, key_arn: str, notice_id: str) -> bool:
        """Claim the one sending of an informational notice about a key."""
        k = self.keys
        try:
            k(key_pk(key_arn), KEY_SK).update(
                actions=[k.noticesSent.add({notice_id})], condition=~k.noticesSent.contains(notice_id)
            )
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_key_notice(self, key_arn: str, notice_id: str) -> None:
        k = self.keys
        k(key_pk(key_arn), KEY_SK).update(actions=[k.noticesSent.delete({notice_id})])


def _append(
    item: Model, actions: list[Action], events: Any, event_ids: Any, stored: dict[str, Any], event_id: str
) -> bool:
    try:
        item.update(
            actions=[*actions, events.set((events | []).append([stored])), event_ids.add({event_id})],
            condition=~event_ids.contains(event_id),
        )
    except UpdateError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _plain(stored: Any) -> dict[str, Any]:
    """A raw map as read back: a MapAttribute at the top level, a plain dict inside a list."""
    return dict(stored.as_dict() if isinstance(stored, MapAttribute) else stored)


def _update_if(item: Model, actions: Sequence[Action], condition: Any) -> None:
    try:
        item.update(actions=list(actions), condition=condition)
    except UpdateError as error:
        if error_code(error) != "ConditionalCheckFailedException":
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


def _key_facts(item: KeyItem) -> list[KeyFact]:
    facts = []
    for event in item.events or []:
        data = _plain(event)
        facts.append(
            KeyFact(
                change=KeyChange(data["change"]),
                key_arn=item.arn,
                event_id=data["eventId"],
                event_time=parse_utc_iso(data["eventTime"]),
                event_name=data["eventName"],
                actor=_actor_from(data),
                deletion_date=parse_utc_iso(data["deletionDate"]) if data.get("deletionDate") else None,
                source=data.get("source") or "cloudtrail",
            )
        )
    return facts


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
