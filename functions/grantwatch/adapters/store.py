"""The grant table: one item per grant, holding every fact about it, written with one UpdateItem per event.

Item: pk ``GRANT#<grantId>``, sk ``GRANT``; ``events`` is the lineage (one map per fact, in arrival order;
readers sort it), ``eventIds`` the ids already applied, which makes a redelivered event a conditional-check
failure instead of a second write; ``terms`` what the creation granted. Index attributes (``keyArn``,
``functionArn``, ``granteePrincipal``, ``state``) are written so that any arrival order leaves the same
values. What all facts share is stored once, on the item, to keep a grant within one 1 KB write unit.

A grant made for a Lambda function also has a link item in the function's partition: pk
``FUNCTION#<functionArn>``, sk ``GRANT#<grantId>``, holding the grant's key ARN and its grantee's role
(``account/name``). It is put just before the grant's creation is written and changes only to expire with
its grant (with a retention period, an ended grant's link is given the grant's expiresAt). It is how an
evaluation finds a function's grants (and which key and role items to read with them) in the one
Query of the function's partition it makes anyway. Tables written before links existed are given them by
`grantwatch migrate`, which then writes the layout item (pk and sk ``LAYOUT``); until it has, a function's
grants are also looked up through the by-function index.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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

from grantwatch.adapters.tables import (
    Stamped,
    bind,
    error_code,
    settle_expiry,
)
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
from grantwatch.domain.hazards import role_of
from grantwatch.domain.lineage import GrantState, GrantStatus, fold
from grantwatch.ports import EvaluationReader, GrantLink, RecordedGrant, RecordResult
from grantwatch.settings import Settings

GRANT_SK = "GRANT"
LINK_PREFIX = "GRANT#"
LAYOUT_KEY = "LAYOUT"
LINKS_COMPLETE = "complete"
LAYOUT_RECHECK_SECONDS = 300  # how long a table known not yet migrated is taken as such


def grant_pk(grant_id: str) -> str:
    return f"GRANT#{grant_id}"


def new_table_layout() -> dict[str, Any]:
    """The layout item of a table created empty, in DynamoDB's own shape: nothing in it predates links."""
    return {"pk": {"S": LAYOUT_KEY}, "sk": {"S": LAYOUT_KEY}, "grantLinks": {"S": LINKS_COMPLETE}}


def link_pk(function_arn: str) -> str:
    """The function's partition (grantwatch.adapters.functions owns its other items)."""
    return f"FUNCTION#{function_arn}"


def link_sk(grant_id: str) -> str:
    return f"{LINK_PREFIX}{grant_id}"


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
    lambdaContext = BooleanAttribute(null=True)  # the constraint is Lambda's: the item's function's ARN


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


@dataclass(frozen=True, slots=True)
class Linked:
    """What giving grants their links did (`DynamoGrantStore.link_all`)."""

    links: int  # grants of a function linked (or, in a dry run, to link)
    complete: bool  # every grant of a function has its link now


class GrantLinkItem(Model):
    """A grant of a function, in the function's partition: what an evaluation reads with it, no index
    attribute (so a link writes no index)."""

    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    key = UnicodeAttribute(null=True)  # the key's ARN, when the creation named it by ARN
    role = UnicodeAttribute(null=True)  # the grantee's role as ``account/name``, when it is a role
    expiresAt = NumberAttribute(null=True)  # its grant's: TTL deletes the two together

    def link(self) -> GrantLink:
        return GrantLink(grant_id=self.sk.removeprefix(LINK_PREFIX), key_arn=self.key, role=self.role)


class LayoutItem(Model):
    """How far `grantwatch migrate` has brought the table: ``grantLinks`` is ``complete`` once every grant
    of a function has its link; ``linkCursor`` is where an interrupted run resumes."""

    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    grantLinks = UnicodeAttribute(null=True)
    linkCursor = UnicodeAttribute(null=True)


class GrantItem(Model):
    """The schema of a grant item. Bound to a table at run time by `grantwatch.adapters.tables.bind`."""

    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    keyArn = UnicodeAttribute()
    state = UnicodeAttribute()
    # the by-function index's key. Links find a function's grants now; the index is still written for one
    # release so that a rollback to the version before links misses no grant (decision 7)
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
        self.links = bind(GrantLinkItem, settings)
        self.layout = bind(LayoutItem, settings)
        self._links_complete = False
        self._layout_checked_until = 0.0

    def record(self, fact: GrantFact) -> RecordedGrant:
        """One UpdateItem, and for a creation for a function its link first. An end asks for the item back
        and reads only its function (deserialising the whole lineage costs more than the call); with a
        retention period, an ended grant's link is given the grant's expiresAt (one more UpdateItem), so
        that DynamoDB's TTL deletes both."""
        function_arn = fact.terms.function_arn if fact.terms is not None else None
        if function_arn is not None:
            return self._record_with_link(fact, function_arn)
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
        stored = data.get("Attributes", {})
        function_arn = _function_in(stored)
        if function_arn is not None:
            self._expire_link(function_arn, fact.grant_id, _expiry_in(stored))
        return RecordedGrant(RecordResult.RECORDED, function_arn, _service_in(stored))

    def _record_with_link(self, fact: GrantFact, function_arn: str) -> RecordedGrant:
        """The link first, then the grant: a link is the same whoever writes it, so a redelivery after a
        failure between the two finds it there, and a grant is never recorded without its link. Two
        plain writes rather than one transaction, which would bill each item twice. The link's write
        sets its key and role only, so a redelivery keeps the expiry an ended grant gave it."""
        self._link(fact, function_arn)
        try:
            data = self.model._get_connection().update_item(
                grant_pk(fact.grant_id),
                GRANT_SK,
                actions=self._actions(fact),
                condition=self._not_yet_applied(fact),
                # with a retention period: whether the grant had ended already (its end arrived first)
                return_values="ALL_NEW" if self.settings.retention_days else "NONE",
            )
        except UpdateError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            self._function_of(fact)  # with a retention period: the link's expiry, if it missed it
            return RecordedGrant(RecordResult.DUPLICATE, function_arn)
        self._expire_link(function_arn, fact.grant_id, _expiry_in(data.get("Attributes", {})))
        return RecordedGrant(RecordResult.RECORDED, function_arn)

    def _expire_link(self, function_arn: str, grant_id: str, expires: int | None) -> None:
        """Give the link its ended grant's expiresAt, if the grant has one and the link exists."""
        if expires is None:
            return
        links = self.links
        try:
            links(link_pk(function_arn), link_sk(grant_id)).update(
                actions=[links.expiresAt.set(expires)], condition=links.pk.exists()
            )
        except UpdateError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise  # no link: its creation (or `grantwatch migrate`) gives it its expiry then

    def _link(self, fact: GrantFact, function_arn: str) -> None:
        """Write the grant's link: its key and role, nothing else of the item (its expiry stays)."""
        ref = role_of(fact.terms.grantee_principal) if fact.terms is not None else None
        key = fact.key_ref if fact.key_ref_strength is KeyRefStrength.ARN else None
        role = f"{ref[0]}/{ref[1]}" if ref else None
        links = self.links
        links(link_pk(function_arn), link_sk(fact.grant_id)).update(
            actions=[
                links.key.set(key) if key else links.key.remove(),
                links.role.set(role) if role else links.role.remove(),
            ]
        )

    def evaluation_reader(self, functions: object, hazards: object) -> EvaluationReader | None:
        """One Query and one BatchGetItem per evaluation, when the other two stores are on DynamoDB too."""
        from grantwatch.adapters.functions import DynamoFunctionStore
        from grantwatch.adapters.hazards import DynamoHazardStore
        from grantwatch.adapters.snapshot import DynamoSnapshotReader

        if isinstance(functions, DynamoFunctionStore) and isinstance(hazards, DynamoHazardStore):
            return DynamoSnapshotReader(self, functions, hazards)
        return None

    def links_complete(self) -> bool:
        """Whether every grant of a function has its link (`grantwatch migrate` has run, or the table was
        created with links). Remembered once true, a table never goes back; not yet, it is read again
        after LAYOUT_RECHECK_SECONDS."""
        now = time.monotonic()
        if not self._links_complete and now >= self._layout_checked_until:
            try:
                item = self.layout.get(LAYOUT_KEY, LAYOUT_KEY, attributes_to_get=["grantLinks"])
                self._links_complete = item.grantLinks == LINKS_COMPLETE
            except self.layout.DoesNotExist:
                pass
            self._layout_checked_until = now + LAYOUT_RECHECK_SECONDS
        return self._links_complete

    def function_grant_ids(self, function_arn: str) -> list[str]:
        """The ids of the function's grants: its links, and, until the table is migrated, the by-function
        index too."""
        links = self.links
        ids = [
            item.sk.removeprefix(LINK_PREFIX)
            for item in links.query(
                link_pk(function_arn),
                links.sk.startswith(LINK_PREFIX),
                consistent_read=True,
                attributes_to_get=["sk"],
            )
        ]
        if not self.links_complete():
            known = set(ids)
            ids += [g for g in self.ids_by_function_index(function_arn) if g not in known]
        return ids

    def ids_by_function_index(self, function_arn: str) -> list[str]:
        return [hit.grant_id for hit in self.model.by_function.query(function_arn)]

    def _function_of(self, fact: GrantFact) -> str | None:
        """The function of a grant whose fact was already applied: one read, on redelivery only (none for
        a creation, which names it, unless a retention period asks for the grant's expiry). With a
        retention period, the link is given the grant's expiry again, in case the first delivery failed
        before it did."""
        known = fact.terms.function_arn if fact.terms is not None else None
        if known is not None and not self.settings.retention_days:
            return known
        try:
            item = self.model.get(
                grant_pk(fact.grant_id), GRANT_SK, attributes_to_get=["functionArn", "expiresAt"]
            )
        except self.model.DoesNotExist:
            return known
        function_arn = known or item.functionArn
        if function_arn and item.expiresAt:
            self._expire_link(function_arn, fact.grant_id, int(item.expiresAt))
        return function_arn

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
        if function:
            items = model.batch_get([(grant_pk(g), GRANT_SK) for g in self.function_grant_ids(function)])
        elif key or grantee:
            if key:
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
            if item.functionArn and item.expiresAt and not dry_run:  # its link too, stamped or not
                self._expire_link(item.functionArn, item.grant_id, int(item.expiresAt))
        return done[Stamped.STAMPED], done[Stamped.RESTAMPED]

    def link_all(self, *, dry_run: bool, page_size: int = 500) -> Linked:
        """Give every grant made for a function its link (for `grantwatch migrate`), then mark the table's
        links complete. A scan, page by page: where it stands is kept in the layout item after each page,
        so an interrupted run resumes there; putting a link that exists changes nothing. With `dry_run`,
        only counts."""
        m, layout = self.model, self.layout
        try:
            state = layout.get(LAYOUT_KEY, LAYOUT_KEY, consistent_read=True)
        except layout.DoesNotExist:
            state = layout(LAYOUT_KEY, LAYOUT_KEY)
        if state.grantLinks == LINKS_COMPLETE:
            return Linked(links=0, complete=True)
        connection = m._get_connection()
        cursor = _cursor(state.linkCursor) if not dry_run else None
        linked = 0
        for_functions = (m.sk == GRANT_SK) & m.functionArn.exists()
        while True:
            page = connection.scan(
                filter_condition=for_functions,
                attributes_to_get=["pk", "keyArn", "functionArn", "granteePrincipal", "terms", "expiresAt"],
                exclusive_start_key=cursor,  # type: ignore[arg-type]  # a key map, as DynamoDB gave it
                limit=page_size,
            )
            items = page.get("Items", [])
            linked += len(items)
            if not dry_run:
                with self.links.batch_write() as batch:
                    for raw in items:
                        batch.save(self._link_of(raw))
            cursor = page.get("LastEvaluatedKey")
            if cursor is None:
                break
            if not dry_run:
                state.update(actions=[LayoutItem.linkCursor.set(json.dumps(cursor))])
        if not dry_run:
            state.update(actions=[LayoutItem.grantLinks.set(LINKS_COMPLETE), LayoutItem.linkCursor.remove()])
            self._links_complete = True
        return Linked(links=linked, complete=not dry_run)

    def _link_of(self, raw: dict[str, Any]) -> GrantLinkItem:
        """The link of a grant item as stored (its attributes in DynamoDB's own shape)."""
        terms = raw.get("terms", {}).get("M", {})
        grantee = raw.get("granteePrincipal", {}).get("S") or terms.get("grantee", {}).get("S")
        key = raw.get("keyArn", {}).get("S", "")
        ref = role_of(grantee)
        return self.links(
            link_pk(raw["functionArn"]["S"]),
            link_sk(raw["pk"]["S"].removeprefix("GRANT#")),
            key=key if _KEY_ARN.match(key) else None,
            role=f"{ref[0]}/{ref[1]}" if ref else None,
            expiresAt=_expiry_in(raw),
        )

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


# Lambda's grant binds the function by the encryption context holding its ARN: stored as a flag, not the
# ARN a second time (the item then stays within one write unit once it has ended).
_LAMBDA_CONTEXT = "aws:lambda:FunctionArn"


def _constraints_of_function(function_arn: str) -> dict[str, Any]:
    return {"encryptionContextEquals": {_LAMBDA_CONTEXT: function_arn}}


def terms_to_map(terms: GrantTerms) -> dict[str, Any]:
    same = terms.retiring_principal == terms.grantee_principal
    lambda_context = terms.function_arn is not None and terms.constraints == _constraints_of_function(
        terms.function_arn
    )
    stored: dict[str, Any] = {
        "grantee": None if indexed_grantee(terms.grantee_principal) else terms.grantee_principal,
        "operations": list(terms.operations),
        "retiringPrincipal": None if same else terms.retiring_principal,
        "retiringIsGrantee": True if same else None,
        "constraints": None if lambda_context else terms.constraints or None,
        "lambdaContext": True if lambda_context else None,
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
    function = item.functionArn
    constraints = stored.get("constraints") or {}
    if stored.get("lambdaContext") and function:
        constraints = _constraints_of_function(function)
    return GrantTerms(
        grantee_principal=grantee,
        retiring_principal=grantee if stored.get("retiringIsGrantee") else stored.get("retiringPrincipal"),
        operations=tuple(stored.get("operations") or ()),
        constraints=constraints,
        name=stored.get("name"),
        service=stored.get("service"),
        resource=stored.get("resource") or function,
        function_arn=function,
    )


def _cursor(stored: str | None) -> dict[str, Any] | None:
    """Where an interrupted link migration stopped; from the start when it is missing or unreadable
    (putting links again changes nothing)."""
    try:
        cursor = json.loads(stored) if stored else None
    except ValueError:
        return None
    return cursor if isinstance(cursor, dict) else None


def _expiry_in(attributes: dict[str, Any]) -> int | None:
    """The expiresAt of a grant item in DynamoDB's own shape."""
    stored = attributes.get("expiresAt", {}).get("N")
    return int(stored) if stored is not None else None


def _function_in(attributes: dict[str, Any]) -> str | None:
    """The function of a grant item returned in DynamoDB's own shape."""
    stored = attributes.get("functionArn") or {}
    value: str | None = stored.get("S")
    return value


def _service_in(attributes: dict[str, Any]) -> str | None:
    """The service a grant item's terms name, in DynamoDB's own shape (its creation recorded)."""
    terms = attributes.get("terms", {}).get("M", {})
    value: str | None = terms.get("service", {}).get("S")
    return value


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
