"""Fold a grant's facts into its state. Pure, and order-independent: any arrival order gives one answer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.facts import Actor, FactKind, GrantFact, GrantTerms, KeyRefStrength

_KIND_ORDER = {
    FactKind.CREATED: 0,
    FactKind.INVALIDATED: 1,
    FactKind.RETIRED: 2,
    FactKind.REVOKED: 2,
    FactKind.VANISHED: 2,
}
_SOURCE_ORDER = {"cloudtrail": 0}


class GrantStatus(StrEnum):
    ACTIVE = "active"
    DEAD = "dead"  # still listed by KMS, but bound to a role that no longer exists
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class GrantState:
    grant_id: str
    key_arn: str
    account: str
    region: str
    terms: GrantTerms | None
    created: GrantFact | None
    ended: GrantFact | None
    lineage: tuple[GrantFact, ...]
    invalidated: GrantFact | None = None

    @property
    def status(self) -> GrantStatus:
        if self.ended:
            return GrantStatus.ENDED
        return GrantStatus.DEAD if self.invalidated else GrantStatus.ACTIVE

    @property
    def created_at(self) -> datetime | None:
        return self.created.event_time if self.created else None

    @property
    def created_by(self) -> Actor | None:
        return self.created.actor if self.created else None


def lineage_order(fact: GrantFact) -> tuple[datetime, int, str]:
    """eventTime first; within one second a creation comes before an end; then the event id."""
    return (fact.event_time, _KIND_ORDER[fact.kind], fact.event_id)


def fold(facts: Iterable[GrantFact]) -> GrantState:
    """The state of one grant from every fact about it, whatever order they came in."""
    lineage = tuple(sorted(facts, key=lineage_order))
    if not lineage:
        raise ValueError("a grant needs at least one fact")
    grant_ids = {f.grant_id for f in lineage}
    if len(grant_ids) != 1:
        raise ValueError(f"facts of several grants folded together: {sorted(grant_ids)}")
    created = next((f for f in lineage if f.kind is FactKind.CREATED), None)
    endings = [f for f in lineage if f.kind.ends]
    ended = min(endings, key=lambda f: (_SOURCE_ORDER.get(f.source, 1), lineage_order(f)), default=None)
    key_fact = min(lineage, key=lambda f: (f.key_ref_strength is not KeyRefStrength.ARN, f.key_ref))
    return GrantState(
        grant_id=lineage[0].grant_id,
        key_arn=key_fact.key_ref,
        account=key_fact.account,
        region=key_fact.region,
        terms=created.terms if created else None,
        created=created,
        ended=ended,
        lineage=lineage,
        invalidated=next((f for f in lineage if f.kind is FactKind.INVALIDATED), None),
    )
