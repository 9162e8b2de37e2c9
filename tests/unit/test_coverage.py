"""Coverage decisions: which account-regions are stale, what a run records, what a reconciliation request
must name, and which ARNs an account and region select."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grantwatch.domain.coverage import (
    MAX_ERRORS_KEPT,
    Coverage,
    Target,
    TargetError,
    interval_of,
    reconciled,
    stale,
    targets,
    unreachable,
)
from grantwatch.queries import coverage_rows, placed

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
A, B = Target("111122223333", "eu-west-1"), Target("444455556666", "eu-west-1")
REPORT = {
    "keys": 2,
    "grantsListed": 3,
    "functionsListed": 4,
    "evaluationsScheduled": 1,
    "repairs": {},
    "errors": [],
}


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        ("rate(1 hour)", HOUR),
        ("rate(30 minutes)", timedelta(minutes=30)),
        ("rate(2 days)", timedelta(days=2)),
        ("cron(0 * * * ? *)", HOUR),
    ],
)
def test_the_interval_is_the_schedules(schedule: str, interval: timedelta) -> None:
    assert interval_of(schedule) == interval


def test_an_account_region_is_stale_when_its_last_success_is_older_than_two_intervals() -> None:
    fresh = reconciled(A, REPORT, NOW - 2 * HOUR, None)
    old = reconciled(B, REPORT, NOW - 2 * HOUR - timedelta(seconds=1), None)
    assert stale([A, B], [fresh, old], NOW, HOUR) == [B]
    refused = unreachable(A, "AccessDenied: no", NOW - timedelta(minutes=5), fresh)
    assert refused.last_reconciled_at == fresh.last_reconciled_at and refused.grants == 3  # kept
    assert stale([A], [refused], NOW, HOUR) == []  # its last success is still recent
    never = unreachable(A, "AccessDenied: no", NOW - timedelta(minutes=5), None)
    assert stale([A], [never], NOW, HOUR) == [A]  # tried and never reconciled
    assert stale([A, B], [], NOW, HOUR) == []  # not tried yet: this run queues them
    assert stale([A], [old], NOW, HOUR) == []  # B is no longer expected (account closed)


def test_a_run_with_failed_keys_is_no_success_and_keeps_a_bounded_list_of_errors() -> None:
    earlier = reconciled(A, REPORT, NOW - HOUR, None)
    errors = [f"arn:aws:kms:eu-west-1:111122223333:key/{i}: AccessDeniedException: no" for i in range(50)]
    partial = reconciled(A, REPORT | {"errors": errors}, NOW, earlier)
    assert not partial.reachable and partial.last_reconciled_at == NOW - HOUR
    assert len(partial.errors) == MAX_ERRORS_KEPT and partial.error_count == 50


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "account"),
        ({"account": "12345", "region": "eu-west-1"}, "account"),
        ({"account": "111122223333", "region": "EU"}, "region"),
        ({"account": 111122223333}, "account"),
    ],
)
def test_a_request_naming_no_valid_account_or_region_is_refused_by_field(
    body: dict[str, object], field: str
) -> None:
    with pytest.raises(TargetError) as refused:
        Target.parse(body)
    assert refused.value.field_name == field and str(body.get(field, "absent")) not in str(refused.value)


def test_every_account_in_every_region_once() -> None:
    assert targets(["2", "1", "1"], ["r", "q"]) == [
        Target("1", "q"),
        Target("1", "r"),
        Target("2", "q"),
        Target("2", "r"),
    ]


def test_accounts_rows_count_open_incidents_by_the_function_arns_account_and_region() -> None:
    coverage = [reconciled(B, REPORT, NOW, None), reconciled(A, REPORT, NOW, None)]
    arns = [
        "arn:aws:lambda:eu-west-1:111122223333:function:billing",
        "arn:aws:lambda:us-east-1:111122223333:function:billing",
    ]
    rows = coverage_rows(coverage, arns)
    assert [(r["account"], r["openIncidents"]) for r in rows] == [(A.account, 1), (B.account, 0)]
    assert rows[0]["lastReconciledAt"] == "2026-11-30T12:00:00Z" and rows[0]["grants"] == 3


def test_an_arn_is_placed_by_its_account_and_region() -> None:
    arn = "arn:aws:kms:eu-west-1:111122223333:key/k"
    assert (
        placed(arn, "111122223333", "eu-west-1")
        and placed(arn, None, "eu-west-1")
        and placed(arn, None, None)
    )
    assert not placed(arn, "444455556666", None) and not placed(arn, None, "us-east-1")
    assert not placed("alias/k", "111122223333", None) and not placed(None, None, "eu-west-1")


def test_coverage_json_names_every_figure() -> None:
    entry = Coverage(A.account, A.region, NOW, None, repairs={"b": 1, "a": 2})
    assert list(entry.as_json()["repairs"]) == ["a", "b"] and entry.as_json()["lastReconciledAt"] is None
