"""Which resources of the covered services are on a key: from the grants recorded on it, and from what the
services' read APIs said during reconciliation. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from grantwatch.domain.lineage import GrantState, GrantStatus
from grantwatch.domain.services import Service

SEEN_IN_LINEAGE = "lineage"
SEEN_BY_READ_API = "read-api"


@dataclass(frozen=True)
class DiscoveredResource:
    """What a service's read API said of one resource during reconciliation."""

    service: Service
    resource_id: str
    key_arn: str
    account: str
    region: str
    state: str | None
    inaccessible_since: datetime | None
    observed_at: datetime


@dataclass(frozen=True)
class ResourceOnKey:
    service: Service
    resource_id: str
    key_arn: str
    account: str
    region: str
    usable_grants: int  # the service's active grants for it on this key
    seen_by: frozenset[str]  # {"lineage"}, {"read-api"} or both
    state: str | None  # from a read API, else None
    inaccessible_since: datetime | None


def covered_service(name: str | None) -> Service | None:
    """The covered Service a grant's terms name, or None (Lambda and services not in the catalogue)."""
    try:
        return Service(name) if name else None
    except ValueError:
        return None


def resources_on_key(
    key_arn: str, grants: Iterable[GrantState], discovered: Iterable[DiscoveredResource] = ()
) -> list[ResourceOnKey]:
    """Every resource of a covered service on the key, sorted by service and id. From the lineage, a
    resource is on the key while at least one of its grants has not ended (a resource whose grants all ended,
    because the service retired them or the resource was deleted, is not); a resource a read API reports on
    the key is on it whatever its grants."""
    lineage: dict[tuple[Service, str], list[GrantState]] = {}
    for grant in grants:
        terms = grant.terms
        if grant.key_arn != key_arn or terms is None or not terms.resource:
            continue
        service = covered_service(terms.service)
        if service is not None:
            lineage.setdefault((service, terms.resource), []).append(grant)
    latest: dict[tuple[Service, str], DiscoveredResource] = {}
    for found in discovered:
        if found.key_arn != key_arn:
            continue
        ident = (found.service, found.resource_id)
        if ident not in latest or found.observed_at > latest[ident].observed_at:
            latest[ident] = found
    on_key: list[ResourceOnKey] = []
    for ident in sorted(set(lineage) | set(latest)):
        states = lineage.get(ident, [])
        live = [g for g in states if g.status is not GrantStatus.ENDED]
        read = latest.get(ident)
        if not live and read is None:
            continue
        seen_by = ({SEEN_IN_LINEAGE} if live else set()) | ({SEEN_BY_READ_API} if read else set())
        first = read or live[0]
        on_key.append(
            ResourceOnKey(
                service=ident[0],
                resource_id=ident[1],
                key_arn=key_arn,
                account=first.account,
                region=first.region,
                usable_grants=sum(1 for g in states if g.status is GrantStatus.ACTIVE),
                seen_by=frozenset(seen_by),
                state=read.state if read else None,
                inaccessible_since=read.inaccessible_since if read else None,
            )
        )
    return on_key
