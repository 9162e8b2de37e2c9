"""The resources the services' own read APIs found on a key (grantwatch.adapters.service_resources), kept
in the key's partition so that what depends on a key is one Query of it.

One item per resource, ``KEY#<keyArn>`` / ``RESOURCE#<service>#<resourceId>``, written by reconciliation
only: one Query of the key's resources, then an UpdateItem for each resource that is new, changed, or was
written twelve hours ago or more (which replaces what the earlier run wrote). Each carries an
`expiresAt` a lifetime after it was observed: a resource that is no longer listed (deleted, or moved to
another key) ages out, read as gone once that time has passed and deleted by DynamoDB's TTL when the
table has one (RetentionDays). The items carry no index attribute (`keyArn`, `entity`, `functionArn`,
`granteePrincipal`): no index holds them, and a Query of the key's other items never selects them (each
selects its kind by its sort key's prefix).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from grantwatch.adapters.hazards import key_pk
from grantwatch.domain.facts import parse_utc_iso, utc_iso
from grantwatch.domain.resources import DiscoveredResource
from grantwatch.domain.services import Service
from grantwatch.settings import Settings

RESOURCE_PREFIX = "RESOURCE#"
# How long a resource is taken to be on its key after a run last saw it there: two days of hourly runs,
# so that a run or two that could not read the service does not drop it.
RESOURCE_LIFETIME = timedelta(days=2)
# An unchanged resource's item is rewritten (its lifetime renewed) once it is this old.
REFRESH = timedelta(hours=12)


def resource_sk(service: str, resource_id: str) -> str:
    return f"{RESOURCE_PREFIX}{service}#{resource_id}"


class ResourceItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    service = UnicodeAttribute()
    resourceId = UnicodeAttribute()
    account = UnicodeAttribute()
    region = UnicodeAttribute()
    resourceState = UnicodeAttribute(null=True)
    inaccessibleSince = UnicodeAttribute(null=True)
    observedAt = UnicodeAttribute()
    expiresAt = NumberAttribute()


class DynamoDiscoveredResources:
    def __init__(self, settings: Settings, lifetime: timedelta = RESOURCE_LIFETIME) -> None:
        from grantwatch.adapters.tables import bind

        self.items = bind(ResourceItem, settings)
        self.lifetime = lifetime

    def record(self, discovered: Iterable[DiscoveredResource]) -> int:
        """Each resource as observed now; how many items were written. What a key's partition already
        holds is read first (one Query a key): a resource whose state is unchanged and whose item was
        written less than `REFRESH` ago is not written again, so an hourly run writes a steady resource
        about twice a day, not 24 times."""
        by_key: dict[str, list[DiscoveredResource]] = {}
        for resource in discovered:
            by_key.setdefault(resource.key_arn, []).append(resource)
        written = 0
        for key_arn, found in sorted(by_key.items()):
            stored = {(r.service, r.resource_id): r for r in self._stored(key_arn)}
            for resource in found:
                if not _stale(stored.get((resource.service, resource.resource_id)), resource):
                    continue
                self._write(resource)
                written += 1
        return written

    def _stored(self, key_arn: str) -> list[DiscoveredResource]:
        found = self.items.query(key_pk(key_arn), self.items.sk.startswith(RESOURCE_PREFIX))
        return [_resource(item, key_arn) for item in found]

    def _write(self, resource: DiscoveredResource) -> None:
        i = self.items
        item = i(key_pk(resource.key_arn), resource_sk(resource.service, resource.resource_id))
        since = resource.inaccessible_since
        item.update(
            actions=[
                i.service.set(str(resource.service)),
                i.resourceId.set(resource.resource_id),
                i.account.set(resource.account),
                i.region.set(resource.region),
                i.resourceState.set(resource.state) if resource.state else i.resourceState.remove(),
                i.inaccessibleSince.set(utc_iso(since)) if since else i.inaccessibleSince.remove(),
                i.observedAt.set(utc_iso(resource.observed_at)),
                i.expiresAt.set(int((resource.observed_at + self.lifetime).timestamp())),
            ]
        )

    def on_key(self, key_arn: str, now: datetime | None = None) -> list[DiscoveredResource]:
        """The resources last seen on the key whose lifetime has not run out (one Query)."""
        at = int((now or datetime.now(UTC)).timestamp())
        found = self.items.query(key_pk(key_arn), self.items.sk.startswith(RESOURCE_PREFIX))
        return [_resource(item, key_arn) for item in found if int(item.expiresAt) > at]


def _stale(stored: DiscoveredResource | None, seen: DiscoveredResource) -> bool:
    """Whether `seen` must be written: new, changed, or last written `REFRESH` or more before."""
    if stored is None or (stored.state, stored.inaccessible_since, stored.account, stored.region) != (
        seen.state,
        seen.inaccessible_since,
        seen.account,
        seen.region,
    ):
        return True
    return seen.observed_at - stored.observed_at >= REFRESH


def _resource(item: ResourceItem, key_arn: str) -> DiscoveredResource:
    return DiscoveredResource(
        service=Service(item.service),
        resource_id=item.resourceId,
        key_arn=key_arn,
        account=item.account,
        region=item.region,
        state=item.resourceState,
        inaccessible_since=parse_utc_iso(item.inaccessibleSince) if item.inaccessibleSince else None,
        observed_at=parse_utc_iso(item.observedAt),
    )
