"""The grant table: one item per grant, holding every fact about it, written with one UpdateItem per event.

Item: pk ``GRANT#<grantId>``, sk ``GRANT``; ``events`` is the lineage (one map per fact, in arrival order;
readers sort it), ``eventIds`` the ids already applied, which makes a redelivered event a conditional-check
failure instead of a second write. Index attributes (``keyArn``, ``functionArn``, ``granteePrincipal``,
``state``) are written so that any arrival order leaves the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from grantwatch.adapters.tables import bind
from grantwatch.domain.facts import (
    Actor,
    FactKind,
    GrantFact,
    GrantTerms,
    KeyRefStrength,
    utc_iso,
)
from grantwatch.domain.lineage import GrantState, GrantStatus, fold
from grantwatch.settings import Settings

GRANT_SK = "GRANT"


def grant_pk(grant_id: str) -> str:
    return f"GRANT#{grant_id}"


class LineageEventAttribute(MapAttribute[str, Any]):
    """One fact as stored: the event that stated it, who made the call, and (for a creation) the terms."""

    kind = UnicodeAttribute()
    eventId = UnicodeAttribute()
    eventTime = UnicodeAttribute()
    eventName = UnicodeAttribute()
    source = UnicodeAttribute()
    sharedEventId = UnicodeAttribute(null=True)
    keyRef = UnicodeAttribute()
    keyRefStrength = UnicodeAttribute()
    account = UnicodeAttribute()
    region = UnicodeAttribute()
    actor = UnicodeAttribute()
    actorType = UnicodeAttribute(null=True)
    via = UnicodeAttribute(null=True)
    sourceIp = UnicodeAttribute(null=True)
    granteePrincipal = UnicodeAttribute(null=True)
    retiringPrincipal = UnicodeAttribute(null=True)
    operations = ListAttribute(of=UnicodeAttribute, null=True)
    constraints = MapAttribute[str, Any](null=True)
    name = UnicodeAttribute(null=True)
    service = UnicodeAttribute(null=True)
    resource = UnicodeAttribute(null=True)
    functionArn = UnicodeAttribute(null=True)


class ByKeyIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "by-key"
        projection = KeysOnlyProjection()

    keyArn = UnicodeAttribute(hash_key=True)
    grantId = UnicodeAttribute(range_key=True)


class ByFunctionIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "by-function"
        projection = KeysOnlyProjection()

    functionArn = UnicodeAttribute(hash_key=True)
    grantId = UnicodeAttribute(range_key=True)


class ByGranteeIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "by-grantee"
        projection = KeysOnlyProjection()

    granteePrincipal = UnicodeAttribute(hash_key=True)
    grantId = UnicodeAttribute(range_key=True)


class GrantItem(Model):
    """The schema of a grant item. Bound to a table at run time by `bind_grant_model`."""

    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    grantId = UnicodeAttribute()
    keyArn = UnicodeAttribute()
    account = UnicodeAttribute()
    region = UnicodeAttribute()
    state = UnicodeAttribute()
    functionArn = UnicodeAttribute(null=True)
    granteePrincipal = UnicodeAttribute(null=True)
    service = UnicodeAttribute(null=True)
    events = ListAttribute(of=LineageEventAttribute)
    eventIds = UnicodeSetAttribute()

    by_key = ByKeyIndex()
    by_function = ByFunctionIndex()
    by_grantee = ByGranteeIndex()


class RecordResult(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class RecordedGrant:
    """What recording a fact did, and the Lambda function the grant is for, where known."""

    result: RecordResult
    function_arn: str | None


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


class DynamoGrantStore:
    """GrantStore on DynamoDB (or DynamoDB Local) through pynamodb."""

    def __init__(self, settings: Settings) -> None:
        self.model = bind(GrantItem, settings)

    def record(self, fact: GrantFact) -> RecordedGrant:
        item = self.model(grant_pk(fact.grant_id), GRANT_SK)
        try:
            item.update(actions=self._actions(fact), condition=self._not_yet_applied(fact))
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return RecordedGrant(RecordResult.DUPLICATE, self._function_of(fact))
        return RecordedGrant(RecordResult.RECORDED, item.functionArn)

    def _function_of(self, fact: GrantFact) -> str | None:
        """The function of a grant whose fact was already applied: one read, on redelivery only."""
        if fact.terms is not None:
            return fact.terms.function_arn
        try:
            item = self.model.get(grant_pk(fact.grant_id), GRANT_SK, attributes_to_get=["functionArn"])
        except self.model.DoesNotExist:
            return None
        return item.functionArn

    def get(self, grant_id: str) -> GrantState | None:
        try:
            item = self.model.get(grant_pk(grant_id), GRANT_SK, consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return state_of(item)

    def grants(
        self,
        *,
        key: str | None = None,
        function: str | None = None,
        grantee: str | None = None,
        status: GrantStatus | None = None,
    ) -> Iterator[GrantState]:
        """Found through an index when a key, function or grantee is given; otherwise a paged scan.

        The indexes project keys only, so that an event that changes no index key writes no index; the
        grants they point at are then read in batches of up to 100.
        """
        model = self.model
        items: Iterable[GrantItem]
        if function or key or grantee:
            if function:
                hits = model.by_function.query(function)
            elif key:
                hits = model.by_key.query(key)
            else:
                hits = model.by_grantee.query(grantee)
            items = model.batch_get([(hit.pk, hit.sk) for hit in hits])
        else:
            only_grants = model.sk == GRANT_SK  # the table also holds functions and incidents
            items = model.scan(
                filter_condition=only_grants & (model.state == status.value) if status else only_grants
            )
        for item in items:
            if (key and item.keyArn != key) or (grantee and item.granteePrincipal != grantee):
                continue
            if status and item.state != status.value:
                continue
            yield state_of(item)

    def _actions(self, fact: GrantFact) -> list[Action]:
        m = self.model
        stored = [fact_to_map(fact)]
        keyed = fact.key_ref_strength is KeyRefStrength.ARN
        actions: list[Action] = [
            m.events.set((m.events | []).append(stored)),
            m.eventIds.add(set(fact.dedup_keys)),
            m.grantId.set(fact.grant_id),
            m.keyArn.set(fact.key_ref if keyed else m.keyArn | fact.key_ref),
            m.account.set(fact.account if keyed else m.account | fact.account),
            m.region.set(fact.region if keyed else m.region | fact.region),
        ]
        if fact.kind is FactKind.CREATED:
            actions.append(m.state.set(m.state | GrantStatus.ACTIVE.value))
            terms = fact.terms
            if terms is not None:
                actions.append(m.granteePrincipal.set(terms.grantee_principal))
                if terms.function_arn:
                    actions.append(m.functionArn.set(terms.function_arn))
                if terms.service:
                    actions.append(m.service.set(terms.service))
        else:
            actions.append(m.state.set(GrantStatus.ENDED.value))
        return actions

    def _not_yet_applied(self, fact: GrantFact) -> Condition:
        first, *others = (~self.model.eventIds.contains(k) for k in fact.dedup_keys)
        condition: Condition = first
        for other in others:
            condition &= other
        return condition


def state_of(item: GrantItem) -> GrantState:
    return fold(fact_from_map(event, item.grantId) for event in item.events)


def fact_to_map(fact: GrantFact) -> dict[str, Any]:
    stored: dict[str, Any] = {
        "kind": fact.kind.value,
        "eventId": fact.event_id,
        "eventTime": utc_iso(fact.event_time),
        "eventName": fact.event_name,
        "source": fact.source,
        "sharedEventId": fact.shared_event_id,
        "keyRef": fact.key_ref,
        "keyRefStrength": fact.key_ref_strength.value,
        "account": fact.account,
        "region": fact.region,
        "actor": fact.actor.principal,
        "actorType": fact.actor.identity_type,
        "via": fact.actor.via,
        "sourceIp": fact.actor.source_ip,
    }
    if fact.terms is not None:
        t = fact.terms
        stored |= {
            "granteePrincipal": t.grantee_principal,
            "retiringPrincipal": t.retiring_principal,
            "operations": list(t.operations),
            "constraints": t.constraints or None,
            "name": t.name,
            "service": t.service,
            "resource": t.resource,
            "functionArn": t.function_arn,
        }
    return {k: v for k, v in stored.items() if v is not None}


def fact_from_map(stored: LineageEventAttribute, grant_id: str) -> GrantFact:
    data: dict[str, Any] = stored.as_dict()
    terms = None
    if data.get("granteePrincipal") is not None:
        terms = GrantTerms(
            grantee_principal=data["granteePrincipal"],
            retiring_principal=data.get("retiringPrincipal"),
            operations=tuple(data.get("operations") or ()),
            constraints=data.get("constraints") or {},
            name=data.get("name"),
            service=data.get("service"),
            resource=data.get("resource"),
            function_arn=data.get("functionArn"),
        )
    return GrantFact(
        kind=FactKind(data["kind"]),
        grant_id=grant_id,
        key_ref=data["keyRef"],
        key_ref_strength=KeyRefStrength(data["keyRefStrength"]),
        account=data["account"],
        region=data["region"],
        event_id=data["eventId"],
        event_time=datetime.strptime(data["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        event_name=data["eventName"],
        actor=Actor(
            principal=data["actor"],
            identity_type=data.get("actorType"),
            via=data.get("via"),
            source_ip=data.get("sourceIp"),
        ),
        source=data.get("source", "cloudtrail"),
        shared_event_id=data.get("sharedEventId"),
        terms=terms,
    )
