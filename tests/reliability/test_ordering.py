"""Duplicates and order: whatever order EventBridge delivers a scenario in, and however often, the table
ends the same and every incident alerts once.

Two properties. Delivered in any order within each settle window (phases are days apart, as real
disorder is minutes at most) and each event up to three times, at any later time: the same table and the
same notices as the in-order delivery. Delivered in any order at all, days of disorder included: the same
table, the same functions at risk at the end, and still one alert per incident. (A grant that arrives days
late cannot un-send an alert raised meanwhile: for those orders the notices may differ, by design.)
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from grantwatch import local as local_dynamo
from tests.support.reliability.harness import (
    assert_one_notice_of_each_kind_per_incident,
    canonical_table,
    drop_table,
    new_table,
    notice_set,
    pipeline_for,
    replay,
)
from tests.support.reliability.scale import report
from tests.support.reliability.stories import stories
from tests.support.scenarios import create_grant, retire_grant, update_function

_COUNTS: dict[str, dict[str, int]] = {}


def _count(test: str, delivered: int, distinct: int) -> None:
    counts = _COUNTS.setdefault(test, {"examples": 0, "eventsDelivered": 0, "redeliveries": 0})
    counts["examples"] += 1
    counts["eventsDelivered"] += delivered
    counts["redeliveries"] += delivered - distinct
    report(test, **counts)


def _run(endpoint: str, events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    settings = new_table(endpoint)
    try:
        notices = replay(pipeline_for(settings), events)
        return canonical_table(settings), notices
    finally:
        drop_table(settings)


def _copies(data: st.DataObject, phases: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Each event once in its own phase, and up to twice more in its phase or any later one."""
    buckets: list[list[dict[str, Any]]] = [list(phase) for phase in phases]
    for number, phase in enumerate(phases):
        for event in phase:
            for _ in range(data.draw(st.integers(min_value=0, max_value=2), label="extra copies")):
                buckets[data.draw(st.integers(min_value=number, max_value=len(phases) - 1))].append(event)
    return buckets


def _open_incidents(table: dict[str, Any]) -> set[str]:
    """The functions with an open incident, each of which must have alerted."""
    found = {pk for (pk, status, *_), _n in table["incidents"] if status == "open"}
    assert all(
        notified == "True" for (_, status, *_, notified, _r), _n in table["incidents"] if status == "open"
    )
    return found


def _not_vacuous(noticed: list[int]) -> None:
    """A metamorphic property holds for a story with no notice and no incident whatever the order: some
    generated story must have produced notices, or the run proved nothing."""
    assert noticed, "no example ran"
    assert any(noticed), f"no generated story produced a notice in {len(noticed)} examples"


def test_any_order_within_the_settle_window_and_redeliveries_leave_the_same_table_and_notices(
    dynamodb_local: local_dynamo.LocalDynamo,
) -> None:
    noticed: list[int] = []

    @given(data=st.data())
    def reordered(data: st.DataObject) -> None:
        phases = data.draw(stories(), label="story")
        in_order = [event for phase in phases for event in phase]
        delivered = [
            event for bucket in _copies(data, phases) for event in data.draw(st.permutations(bucket))
        ]
        expected_table, expected_notices = _run(dynamodb_local.endpoint_url, in_order)
        table, notices = _run(dynamodb_local.endpoint_url, delivered)

        assert table == expected_table
        assert notice_set(notices) == notice_set(expected_notices)
        assert_one_notice_of_each_kind_per_incident(notices)
        assert_one_notice_of_each_kind_per_incident(expected_notices)
        noticed.append(len(expected_notices))
        _count("ordering: any order within the settle window", len(delivered), len(in_order))

    reordered()
    _not_vacuous(noticed)


def test_any_permutation_at_all_leaves_the_same_table_and_the_same_functions_at_risk(
    dynamodb_local: local_dynamo.LocalDynamo,
) -> None:
    noticed: list[int] = []

    @given(data=st.data())
    def permuted(data: st.DataObject) -> None:
        phases = data.draw(stories(), label="story")
        in_order = [event for phase in phases for event in phase]
        copies = [event for bucket in _copies(data, phases) for event in bucket]
        delivered = data.draw(st.permutations(copies), label="delivery order")
        expected_table, expected_notices = _run(dynamodb_local.endpoint_url, in_order)
        table, notices = _run(dynamodb_local.endpoint_url, delivered)

        assert table["grants"] == expected_table["grants"]
        assert table["functions"] == expected_table["functions"]  # configuration, and whether one is open
        assert _open_incidents(table) == _open_incidents(expected_table)
        assert_one_notice_of_each_kind_per_incident(notices)
        assert_one_notice_of_each_kind_per_incident(expected_notices)
        noticed.append(len(expected_notices))
        _count("ordering: any permutation", len(delivered), len(in_order))

    permuted()
    _not_vacuous(noticed)


def test_a_redelivered_old_event_is_evaluated_a_settle_window_after_it_arrived(
    dynamodb_local: local_dynamo.LocalDynamo,
) -> None:
    """Found by the ordering property: replay evaluated a late event at its eventTime plus the window, that
    is at once, in the middle of a configuration update's churn, and raised a false alert."""
    first = create_grant("billing", "g1", "2026-11-01T10:00:00Z")
    delivered = [
        first,
        update_function("billing", "2026-11-03T10:00:00Z"),
        retire_grant("g1", "2026-11-03T10:00:03Z", by_lambda=True),
        first,  # redelivered two days late, between the retire and the new grant
        create_grant("billing", "g2", "2026-11-03T10:00:01Z"),
    ]
    table, notices = _run(dynamodb_local.endpoint_url, delivered)
    assert notices == []
    assert not any(status == "open" for (_pk, status, *_), _n in table["incidents"])
