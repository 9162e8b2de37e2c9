"""The grant table: one item per grant, holding every fact about it, written with one UpdateItem per event.

Item: pk ``GRANT#<grantId>``, sk ``GRANT``; ``events`` is the lineage (one map per fact, in arrival order;
readers sort it), ``eventIds`` the ids already applied, which makes a redelivered event a conditional-check
failure instead of a second write; ``terms`` what the creation granted. Index attributes (``keyArn``,
``functionArn``, ``granteePrincipal``, ``state``) are written so that any arrival order leaves the same
values. What all facts share is stored once, on the item, to keep a grant within one 1 KB write unit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from grantwatch.adapters.tables import Stamped, bind, error_code, settle_expiry
from grantwatch.domain.facts import (
    KEY_ARN_PATTERN as _KEY_ARN,
)
from grantwatch.domain.facts import (
    Actor,
    FactKind,
    GrantFact,
    GrantTerms,
    KeyRefStrength,
    parse_utc_iso,
    utc_iso,
)
from grantwatch.domain.lineage import GrantState, GrantStatus, fold
from grantwatch.ports import RecordedGrant, RecordResult
from grantwatch.settings import Settings

GRANT_SK = "GRANT"


def grant_pk(grant_id: str) -> str:
    return f"GRANT#{grant_id}"


class LineageEventAttribute(MapAttribute[str, Any]):
    """One fact as stored: the event that stated it and who made the call. What every fact of the grant
    shares (its key, account and region; the terms of its creation) is stored once, on the item."""

    kind = UnicodeAttribute()
    eventId = UnicodeAttribute()
    eventTime = UnicodeAttribute()
    actor = UnicodeAttribute()
    actorType = UnicodeAttribute(null=True)
    via = UnicodeAttribute(null=True)
    sourceIp = UnicodeAttribute(null=True)
    sharedEventId = UnicodeAttribute(null=True)
    eventName = UnicodeAttribute(null=True)  # only when it is not the kind's own API name
    source = UnicodeAttribute(null=True)  # only when not CloudTrail
    keyRef = UnicodeAttribute(null=True)  # only for a key known as the caller typed it (an alias)
    account = UnicodeAttribute(null=True)  # with keyRef
    region = UnicodeAttribute(null=True)  # with keyRef


class GrantTermsAttribute(MapAttribute[str, Any]):
    """What the creation granted. Identical for every CreateGrant of one grant id (KMS returns the same id
    only for the same parameters), so written whole by each."""

    operations = ListAttribute(of=UnicodeAttribute)
    retiringPrincipal = UnicodeAttribute(null=True)
    retiringIsGrantee = BooleanAttribute(null=True)
    constraints = MapAttribute[str, Any](null=True)
    name = UnicodeAttribute(null=True)
    service = UnicodeAttribute(null=True)
    resource = UnicodeAttribute(null=True)  # when it is not the function
    grantee = UnicodeAttribute(null=True)  # a grantee the by-grantee index does not hold (see below)


class ByKeyIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "by-key"
        projection = KeysOnlyProjection()

    keyArn = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class ByFunctionIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "by-function"
        projection = KeysOnlyProjection()

    functionArn = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


# by-grantee is sparse: it holds the grantees people look up, IAM roles and users (by ARN) and AWS service
# principals. An EC2 instance principal (ACCOUNT:aws:ec2-infrastructure:i-…, one per encrypted EBS attach)
# or a role session (assumed-role/ROLE/SESSION: a Lambda function's grants, found with by-function) is kept
# in the grant's terms instead, so that its creation writes one index fewer.
_INDEXED_GRANTEE = re.compile(
    r"^arn:aws[a-z-]*:iam::\d{12}:(?:role|user)/\S+$|^[a-z0-9][a-z0-9.-]*\.amazonaws\.com(?:\.cn)?$"
)


def indexed_grantee(principal: str) -> bool:
    """Whether grants to this principal are found through the by-grantee index."""
    return _INDEXED_GRANTEE.match(principal) is not None


class UnindexedGrantee(ValueError):
    """A grantee the by-grantee index does not hold: such grants are found by function or by key."""


class ByGranteeIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "by-grantee"
        projection = KeysOnlyProjection()

    granteePrincipal = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class GrantItem(Model):
    """The schema of a grant item. Bound to a table at run time by `grantwatch.adapters.tables.bind`."""

    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    keyArn = UnicodeAttribute()
    state = UnicodeAttribute()
    functionArn = UnicodeAttribute(null=True)
    granteePrincipal = UnicodeAttribute(null=True)
    terms = GrantTermsAttribute(null=True)
    events = ListAttribute(of=LineageEventAttribute)
    eventIds = UnicodeSetAttribute()
    expiresAt = NumberAttribute(null=True)  # an ended grant, with a retention period: when TTL may delete it

    by_key = ByKeyIndex()
    by_function = ByFunctionIndex()
    by_grantee = ByGranteeIndex()

    @property
    def grant_id(self) -> str:
        return self.pk.removeprefix("GRANT#")


class DynamoGrantStore:
    """GrantStore on DynamoDB (or DynamoDB Local) through pynamodb."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = bind(GrantItem, settings)

    def record(self, fact: GrantFact) -> RecordedGrant:
        """One UpdateItem. A creation knows its function, so nothing comes back; an end asks for the item
        back and reads only its function (deserialising the whole lineage costs more than the call)."""
        known = fact.terms is not None
        try:
            data = self.model._get_connection().update_item(
                grant_pk(fact.grant_id),
                GRANT_SK,
                actions=self._actions(fact),
                condition=self._not_yet_applied(fact),
                return_values="NONE" if known else "ALL_NEW",
            )
        except UpdateError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return RecordedGrant(RecordResult.DUPLICATE, self._function_of(fact))
        if fact.terms is not None:
            return RecordedGrant(RecordResult.RECORDED, fact.terms.function_arn)
        stored = data.get("Attributes", {}).get("functionArn", {})
        return RecordedGrant(RecordResult.RECORDED, stored.get("S"))

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
            elif grantee and indexed_grantee(grantee):
                hits = model.by_grantee.query(grantee)
            else:
                raise UnindexedGrantee(
                    "grants are looked up by grantee for IAM role and user ARNs and AWS service principals; "
                    "find a Lambda function's grants by its function, an EBS volume's by its key"
                )
            items = model.batch_get([(hit.pk, hit.sk) for hit in hits])
        else:
            only_grants = model.sk == GRANT_SK  # the table also holds functions, keys, roles, incidents
            stored = GrantStatus.ACTIVE if status is GrantStatus.DEAD else status  # dead: listed, unusable
            items = model.scan(
                filter_condition=only_grants & (model.state == stored.value) if stored else only_grants
            )
        for item in items:
            if (key and item.keyArn != key) or (grantee and item.granteePrincipal != grantee):
                continue
            state = state_of(item)
            if status and state.status is not status:
                continue
            yield state

    def stamp_ended(self, *, dry_run: bool) -> tuple[int, int]:
        """Ended grants given the expiresAt of the current retention period: those recorded before it was
        set, and those stamped under another period (a scan: a one-off, for `grantwatch migrate`). How
        many of each."""
        m = self.model
        ended = (m.sk == GRANT_SK) & (m.state == GrantStatus.ENDED.value)
        done: Counter[Stamped] = Counter()
        for item in m.scan(filter_condition=ended):
            end = state_of(item).ended
            if end is not None and (
                did := settle_expiry(item, m.expiresAt, end.event_time, self.settings, dry_run=dry_run)
            ):
                done[did] += 1
        return done[Stamped.STAMPED], done[Stamped.RESTAMPED]

    def key_arns(self) -> set[str]:
        """Every key with a recorded grant: a scan of the keys-only by-key index, whose items are small."""
        return {hit.keyArn for hit in self.model.by_key.scan(attributes_to_get=["keyArn"])}

    def _actions(self, fact: GrantFact) -> list[Action]:
        m = self.model
        keyed = fact.key_ref_strength is KeyRefStrength.ARN
        actions: list[Action] = [
            m.events.set((m.events | []).append([fact_to_map(fact)])),
            m.eventIds.add(set(fact.dedup_keys)),
            m.keyArn.set(fact.key_ref if keyed else m.keyArn | fact.key_ref),
        ]
        if fact.kind.ends:
            actions.append(m.state.set(GrantStatus.ENDED.value))
            expires = self.settings.expires_at(fact.event_time)
            if expires is not None:
                actions.append(m.expiresAt.set(expires))
        else:
            actions.append(m.state.set(m.state | GrantStatus.ACTIVE.value))
            if fact.terms is not None:
                actions.append(m.terms.set(terms_to_map(fact.terms)))
                if indexed_grantee(fact.terms.grantee_principal):
                    actions.append(m.granteePrincipal.set(fact.terms.grantee_principal))
                if fact.terms.function_arn:
                    actions.append(m.functionArn.set(fact.terms.function_arn))
        return actions

    def _not_yet_applied(self, fact: GrantFact) -> Condition:
        first, *others = (~self.model.eventIds.contains(k) for k in fact.dedup_keys)
        condition: Condition = first
        for other in others:
            condition &= other
        return condition


def state_of(item: GrantItem) -> GrantState:
    terms = terms_from_item(item)
    return fold(fact_from_map(event, item, terms) for event in item.events)


_API_NAMES = {
    FactKind.CREATED: "CreateGrant",
    FactKind.RETIRED: "RetireGrant",
    FactKind.REVOKED: "RevokeGrant",
    FactKind.VANISHED: "ListGrants",
    FactKind.INVALIDATED: "ListGrants",
}


def fact_to_map(fact: GrantFact) -> dict[str, Any]:
    """The event, without what the item holds once for all its facts."""
    as_seen = fact.key_ref_strength is KeyRefStrength.AS_SEEN
    stored: dict[str, Any] = {
        "kind": fact.kind.value,
        "eventId": fact.event_id,
        "eventTime": utc_iso(fact.event_time),
        "actor": fact.actor.principal,
        "actorType": fact.actor.identity_type,
        "via": fact.actor.via,
        "sourceIp": fact.actor.source_ip,
        "sharedEventId": fact.shared_event_id,
        "eventName": None if fact.event_name == _API_NAMES[fact.kind] else fact.event_name,
        "source": None if fact.source == "cloudtrail" else fact.source,
        "keyRef": fact.key_ref if as_seen else None,
        "account": fact.account if as_seen else None,
        "region": fact.region if as_seen else None,
    }
    return {k: v for k, v in stored.items() if v is not None}


def terms_to_map(terms: GrantTerms) -> dict[str, Any]:
    same = terms.retiring_principal == terms.grantee_principal
    stored: dict[str, Any] = {
        "grantee": None if indexed_grantee(terms.grantee_principal) else terms.grantee_principal,
        "operations": list(terms.operations),
        "retiringPrincipal": None if same else terms.retiring_principal,
        "retiringIsGrantee": True if same else None,
        "constraints": terms.constraints or None,
        "name": terms.name,
        "service": terms.service,
        "resource": None if terms.resource == terms.function_arn else terms.resource,
    }
    return {k: v for k, v in stored.items() if v is not None}


def terms_from_item(item: GrantItem) -> GrantTerms | None:
    if item.terms is None:
        return None
    stored: dict[str, Any] = item.terms.as_dict()
    grantee = item.granteePrincipal or stored.get("grantee")  # items written before: in the index
    if grantee is None:
        return None
    return GrantTerms(
        grantee_principal=grantee,
        retiring_principal=grantee if stored.get("retiringIsGrantee") else stored.get("retiringPrincipal"),
        operations=tuple(stored.get("operations") or ()),
        constraints=stored.get("constraints") or {},
        name=stored.get("name"),
        service=stored.get("service"),
        resource=stored.get("resource") or item.functionArn,
        function_arn=item.functionArn,
    )


def fact_from_map(stored: LineageEventAttribute, item: GrantItem, terms: GrantTerms | None) -> GrantFact:
    data: dict[str, Any] = stored.as_dict()
    kind = FactKind(data["kind"])
    key_ref = data.get("keyRef")
    key_match = _KEY_ARN.match(item.keyArn)
    return GrantFact(
        kind=kind,
        grant_id=item.grant_id,
        key_ref=key_ref or item.keyArn,
        key_ref_strength=KeyRefStrength.AS_SEEN if key_ref else KeyRefStrength.ARN,
        account=data.get("account") or (key_match["account"] if key_match else "unknown"),
        region=data.get("region") or (key_match["region"] if key_match else "unknown"),
        event_id=data["eventId"],
        event_time=parse_utc_iso(data["eventTime"]),
        event_name=data.get("eventName") or _API_NAMES[kind],
        actor=Actor(
            principal=data["actor"],
            identity_type=data.get("actorType"),
            via=data.get("via"),
            source_ip=data.get("sourceIp"),
        ),
        source=data.get("source") or "cloudtrail",
        shared_event_id=data.get("sharedEventId"),
        terms=terms if kind is FactKind.CREATED else None,
    )
