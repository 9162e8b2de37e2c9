"""The fold is order-independent: every permutation of a grant's facts gives one state."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta

import pytest

from grantwatch.domain.facts import FactKind, GrantFact, KeyRefStrength
from grantwatch.domain.lineage import GrantStatus, fold
from tests.support.facts import fact_of
from tests.support.samples import KEY_ARN, load_event


def seed_facts() -> tuple[GrantFact, GrantFact]:
    return fact_of(load_event("kms-create-grant-lambda.json")), fact_of(
        load_event("kms-retire-grant-by-admin.json")
    )


def test_create_then_retire_is_an_ended_grant_with_both_events() -> None:
    created, retired = seed_facts()
    state = fold([created, retired])
    assert state.status is GrantStatus.ENDED
    assert state.created == created
    assert state.ended == retired
    assert state.lineage == (created, retired)
    assert state.terms == created.terms


def test_every_order_gives_the_same_state() -> None:
    created, retired = seed_facts()
    revoked = dataclasses.replace(
        retired,
        kind=FactKind.REVOKED,
        event_id="later-revoke",
        event_name="RevokeGrant",
        event_time=retired.event_time + timedelta(hours=1),
    )
    expected = fold([created, retired, revoked])
    assert expected.ended == retired
    for order in itertools.permutations([created, retired, revoked]):
        assert fold(order) == expected


def test_a_retire_without_its_create_still_ends_the_grant() -> None:
    _, retired = seed_facts()
    state = fold([retired])
    assert state.status is GrantStatus.ENDED
    assert state.created is None and state.terms is None
    assert state.key_arn == KEY_ARN


def test_an_end_in_the_same_second_as_the_create_sorts_after_it() -> None:
    created, retired = seed_facts()
    retired = dataclasses.replace(retired, event_time=created.event_time, event_id="00000000")
    assert fold([retired, created]).lineage == (created, retired)


def test_a_key_arn_wins_over_an_alias_whatever_the_order() -> None:
    created, retired = seed_facts()
    by_alias = dataclasses.replace(
        retired, key_ref="alias/batch-data", key_ref_strength=KeyRefStrength.AS_SEEN
    )
    assert fold([by_alias, created]).key_arn == KEY_ARN
    assert fold([created, by_alias]).key_arn == KEY_ARN


def test_an_inferred_end_gives_way_to_an_end_cloudtrail_recorded() -> None:
    created, retired = seed_facts()
    inferred = dataclasses.replace(
        retired,
        event_id="reconciled",
        source="reconciliation",
        event_time=retired.event_time - timedelta(days=1),
    )
    assert fold([created, inferred, retired]).ended == retired


def test_facts_of_two_grants_cannot_be_folded_together() -> None:
    created, retired = seed_facts()
    with pytest.raises(ValueError, match="several grants"):
        fold([created, dataclasses.replace(retired, grant_id="other")])
    with pytest.raises(ValueError, match="at least one"):
        fold([])
