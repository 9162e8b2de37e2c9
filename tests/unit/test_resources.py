"""Which resources are on a key: from the grants recorded on it, and from what read APIs found."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from grantwatch.domain.facts import FactKind, GrantFact
from grantwatch.domain.lineage import GrantState, fold
from grantwatch.domain.resources import DiscoveredResource, resources_on_key
from grantwatch.domain.services import Service
from tests.support.facts import fact_of
from tests.support.samples import ACCOUNT, KEY_ARN, REGION, load_event

OTHER_KEY = KEY_ARN.replace("5f1e2d3c", "0000aaaa")
SEEN = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def created(name: str, grant_id: str, resource: str | None = None) -> GrantFact:
    fact = fact_of(load_event(name))
    assert fact.terms is not None
    terms = fact.terms if resource is None else dataclasses.replace(fact.terms, resource=resource)
    return dataclasses.replace(fact, grant_id=grant_id, event_id=f"create-{grant_id}", terms=terms)


def ended(fact: GrantFact, kind: FactKind = FactKind.RETIRED) -> GrantFact:
    return dataclasses.replace(
        fact,
        kind=kind,
        event_id=f"end-{fact.grant_id}",
        event_name="RetireGrant",
        event_time=fact.event_time + timedelta(hours=1),
        terms=None,
    )


def table_grant(grant_id: str, table: str = "orders") -> GrantFact:
    return created("kms-create-grant-dynamodb-service-principal.json", grant_id, table)


def volume_grant(grant_id: str, volume: str = "vol-0123456789abcdef0") -> GrantFact:
    return created("kms-create-grant-ebs-volume.json", grant_id, volume)


def states(*groups: list[GrantFact]) -> list[GrantState]:
    return [fold(group) for group in groups]


def test_lineage_lists_each_resource_once_with_its_usable_grants() -> None:
    grants = states(
        [volume_grant("g1")],
        [volume_grant("g2")],  # a second instance attached the same volume
        [table_grant("g3")],
        [created("kms-create-grant-lambda.json", "g4")],  # Lambda: judged elsewhere
    )
    found = resources_on_key(KEY_ARN, grants)
    assert [(r.service, r.resource_id, r.usable_grants) for r in found] == [
        (Service.DYNAMODB, "orders", 1),
        (Service.EBS, "vol-0123456789abcdef0", 2),
    ]
    assert all(r.seen_by == frozenset({"lineage"}) and r.state is None for r in found)
    assert all((r.key_arn, r.account, r.region) == (KEY_ARN, ACCOUNT, REGION) for r in found)


def test_a_resource_whose_grants_all_ended_is_not_on_the_key() -> None:
    first, second = volume_grant("g1"), volume_grant("g2", "vol-0fedcba9876543210")
    grants = states([first, ended(first)], [second, ended(second, FactKind.REVOKED)])
    assert resources_on_key(KEY_ARN, grants) == []


def test_churn_leaves_the_resource_on_the_key_with_the_grants_still_active() -> None:
    detached = volume_grant("g1")
    grants = states([detached, ended(detached)], [volume_grant("g2")])
    [volume] = resources_on_key(KEY_ARN, grants)
    assert volume.usable_grants == 1


def test_grants_on_another_key_and_without_a_resource_do_not_count() -> None:
    elsewhere = dataclasses.replace(volume_grant("g1"), key_ref=OTHER_KEY)
    no_resource = table_grant("g2")
    assert no_resource.terms is not None
    no_resource = dataclasses.replace(
        no_resource, terms=dataclasses.replace(no_resource.terms, resource=None)
    )
    assert resources_on_key(KEY_ARN, states([elsewhere], [no_resource])) == []


def discovered(
    resource_id: str, service: Service = Service.DYNAMODB, **changes: object
) -> DiscoveredResource:
    found = DiscoveredResource(
        service=service,
        resource_id=resource_id,
        key_arn=KEY_ARN,
        account=ACCOUNT,
        region=REGION,
        state=None,
        inaccessible_since=None,
        observed_at=SEEN,
    )
    return dataclasses.replace(found, **changes)  # type: ignore[arg-type]


def test_a_read_api_merges_with_the_lineage_and_its_latest_observation_wins() -> None:
    since = SEEN - timedelta(days=2)
    reads = [
        discovered("orders", state="ACTIVE"),
        discovered(
            "orders",
            state="INACCESSIBLE_ENCRYPTION_CREDENTIALS",
            inaccessible_since=since,
            observed_at=SEEN + timedelta(hours=1),
        ),
    ]
    [table] = resources_on_key(KEY_ARN, states([table_grant("g1")]), reads)
    assert table.seen_by == frozenset({"lineage", "read-api"})
    assert (table.state, table.inaccessible_since) == ("INACCESSIBLE_ENCRYPTION_CREDENTIALS", since)
    assert table.usable_grants == 1


def test_a_discovered_resource_is_on_the_key_whatever_its_grants() -> None:
    grant = table_grant("g1")
    reads = [
        discovered("orders"),
        discovered("db-ABCDEFGHIJKLMNOP", Service.RDS, state="available"),
        discovered("vol-elsewhere", Service.EBS, key_arn=OTHER_KEY),
    ]
    found = resources_on_key(KEY_ARN, states([grant, ended(grant)]), reads)
    assert [(r.service, r.resource_id, r.seen_by, r.usable_grants) for r in found] == [
        (Service.DYNAMODB, "orders", frozenset({"read-api"}), 0),
        (Service.RDS, "db-ABCDEFGHIJKLMNOP", frozenset({"read-api"}), 0),
    ]
