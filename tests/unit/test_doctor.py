"""doctor's judgement on its own (grantwatch.domain.doctor): what counts as a trail that logs management
events, a reconciliation schedule's period, when a check applies, and which exit code wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grantwatch.cli.doctor import exit_code
from grantwatch.cli.errors import ExitCode
from grantwatch.domain.doctor import (
    Check,
    Diagnosis,
    ForwarderRule,
    Kind,
    ReconcileRun,
    StackFacts,
    Status,
    Subscription,
    TrailFacts,
    check_forwarder,
    check_heartbeats,
    check_reconciliation,
    check_subscriptions,
    check_trail,
    reconcile_period,
    rule_name_and_bus,
)

MANAGEMENT = {"Field": "eventCategory", "Equals": ["Management"]}
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def stack(region: str = "eu-central-1", **parameters: str) -> StackFacts:
    bus = parameters.get("EventBusName", "default")
    return StackFacts(
        name="grantwatch",
        region=region,
        outputs={"EventBusArn": f"arn:aws:events:{region}:210987654321:event-bus/{bus}"},
        parameters=parameters,
    )


def trail(**fields: Any) -> TrailFacts:
    defaults: dict[str, Any] = {"name": "main", "home_region": "eu-central-1", "multi_region": False}
    return TrailFacts(**(defaults | {"logging": True} | fields))


@pytest.mark.parametrize(
    ("schedule", "period"),
    [
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(2 days)", timedelta(days=2)),
        ("cron(0 * * * ? *)", timedelta(hours=1)),
        ("cron(0/15 * * * ? *)", timedelta(minutes=15)),
        ("cron(30 */6 * * ? *)", timedelta(hours=6)),
        ("cron(0 12 * * ? *)", timedelta(days=1)),
    ],
)
def test_a_schedules_period(schedule: str, period: timedelta) -> None:
    assert reconcile_period(schedule) == period


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({}, Status.OK),  # no selector: CloudTrail's default, every management event
        ({"event_selectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}]}, Status.OK),
        ({"event_selectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]}, Status.FAIL),
        ({"event_selectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False}]}, Status.FAIL),
        (  # the console's "Exclude AWS KMS events": every grant event gone
            {"event_selectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True,
                                  "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]},
            Status.FAIL,
        ),
        (
            {"event_selectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True,
                                  "ExcludeManagementEventSources": ["rdsdata.amazonaws.com"]}]},
            Status.OK,
        ),
        ({"advanced_selectors": [{"FieldSelectors": [MANAGEMENT]}]}, Status.OK),
        (
            {"advanced_selectors": [{"FieldSelectors": [
                MANAGEMENT, {"Field": "readOnly", "Equals": ["false"]}]}]},
            Status.FAIL,
        ),
        (
            {"advanced_selectors": [{"FieldSelectors": [
                MANAGEMENT, {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]}]},
            Status.FAIL,
        ),
        (  # the console's "Exclude Amazon RDS Data API events": KMS's events still logged
            {"advanced_selectors": [{"FieldSelectors": [
                MANAGEMENT, {"Field": "eventSource", "NotEquals": ["rdsdata.amazonaws.com"]}]}]},
            Status.OK,
        ),
        ({"logging": False}, Status.FAIL),
        ({"home_region": "us-west-2"}, Status.FAIL),  # a single-region trail of another region
        ({"home_region": "us-west-2", "multi_region": True}, Status.OK),
    ],
)  # fmt: skip
def test_a_trail_logs_every_management_event_of_the_region(facts: dict[str, Any], status: Status) -> None:
    assert check_trail("eu-central-1", [trail(**facts)]).status is status


def test_the_selector_fix_keeps_the_trails_other_selectors() -> None:
    """PutEventSelectors replaces every selector: the fix says to put back the whole list, never one."""
    partial = trail(event_selectors=[{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
    fix = check_trail("eu-central-1", [partial]).fix
    assert "get-event-selectors" in fix and "replaces every selector" in fix
    assert "--event-selectors '[" not in fix and "ReadWriteType All" in fix
    advanced = trail(
        advanced_selectors=[{"FieldSelectors": [MANAGEMENT, {"Field": "readOnly", "Equals": ["false"]}]}]
    )
    fix = check_trail("eu-central-1", [advanced]).fix
    assert "--advanced-event-selectors" in fix and "no readOnly field" in fix and "ReadWriteType" not in fix


def test_one_good_trail_is_enough() -> None:
    assert check_trail("eu-central-1", [trail(name="stopped", logging=False), trail()]).status is Status.OK


def test_the_forwarder_is_needed_outside_us_east_1_or_on_a_bus_of_its_own() -> None:
    assert check_forwarder(stack("us-east-1"), []).status is Status.SKIPPED
    assert check_forwarder(stack("us-east-1", EventBusName="central"), []).status is Status.FAIL
    assert check_forwarder(stack("eu-central-1"), []).status is Status.FAIL


def test_a_rule_that_targets_the_bus_but_forwards_no_iam_event_is_no_forwarder() -> None:
    other = ForwarderRule("kms-copy", "ENABLED", '{"source": ["aws.kms"]}')
    assert check_forwarder(stack(), [other]).status is Status.FAIL
    iam = ForwarderRule("iam-copy", "ENABLED", '{"source": ["aws.iam"]}')
    assert check_forwarder(stack(), [other, iam]).status is Status.OK


def test_a_topic_without_subscriptions_is_a_warning() -> None:
    topic = "arn:aws:sns:eu-central-1:210987654321:alerts"
    assert check_subscriptions([topic], []).status is Status.WARN
    confirmed = Subscription(topic, "email", f"{topic}:0f8c5e10")
    assert check_subscriptions([topic], [confirmed]).status is Status.OK


def test_the_canary_off_is_a_warning_and_its_absence_a_skip() -> None:
    off = check_heartbeats(stack(CanaryIntervalMinutes="0"), {}, NOW)
    assert off.status is Status.WARN
    assert "set CanaryIntervalMinutes" in off.fix
    assert check_heartbeats(stack(), {}, NOW).status is Status.SKIPPED


def test_the_decrypt_path_is_expected_only_with_decrypt_failures() -> None:
    recent = {"CreateGrant": NOW - timedelta(minutes=5), "RetireGrant": NOW - timedelta(minutes=5)}
    assert check_heartbeats(stack(CanaryIntervalMinutes="30"), recent, NOW).status is Status.OK
    with_decrypt = stack(CanaryIntervalMinutes="30", ConfirmWithDecryptFailures="true")
    check = check_heartbeats(with_decrypt, recent, NOW)
    assert check.status is Status.FAIL
    assert check.found == "no recent heartbeat: Decrypt (none in 1 h 00 min)"


def test_a_heartbeat_older_than_two_intervals_is_stale() -> None:
    last = {"CreateGrant": NOW - timedelta(minutes=61), "RetireGrant": NOW - timedelta(minutes=59)}
    check = check_heartbeats(stack(CanaryIntervalMinutes="30"), last, NOW)
    assert check.found == "no recent heartbeat: CreateGrant (last 1 h 01 min ago)"


def test_a_reconciliation_with_errors_is_a_warning() -> None:
    run = ReconcileRun(at=NOW - timedelta(minutes=10), errors=2)
    check = check_reconciliation(stack(ReconcileSchedule="rate(1 hour)"), run, NOW)
    assert (check.status, check.found) == (Status.WARN, "last run 10 min ago left 2 key(s) unreconciled")


def test_a_rules_name_and_bus_from_its_arn() -> None:
    assert rule_name_and_bus("arn:aws:events:eu-central-1:210987654321:rule/grant-events") == (
        "grant-events",
        "default",
    )
    assert rule_name_and_bus("arn:aws:events:eu-central-1:210987654321:rule/central/grant-events") == (
        "grant-events",
        "central",
    )


def diagnosis(*statuses: tuple[Kind, Status]) -> Diagnosis:
    return Diagnosis(
        "grantwatch", "eu-central-1", [Check(f"c{i}", k, s, "") for i, (k, s) in enumerate(statuses)]
    )


def test_the_first_kind_that_fails_sets_the_exit_code() -> None:
    assert (
        exit_code(diagnosis((Kind.SILENCE, Status.FAIL), (Kind.DELIVERY, Status.FAIL))) is ExitCode.DELIVERY
    )
    assert exit_code(diagnosis((Kind.WIRING, Status.FAIL), (Kind.WIRING, Status.ERROR))) is ExitCode.WIRING
    assert exit_code(diagnosis((Kind.SILENCE, Status.FAIL))) is ExitCode.SILENCE


def test_an_unread_check_without_a_failure_exits_3_and_warnings_exit_0() -> None:
    assert (
        exit_code(diagnosis((Kind.WIRING, Status.ERROR), (Kind.SILENCE, Status.WARN))) is ExitCode.UNAVAILABLE
    )
    assert exit_code(diagnosis((Kind.SILENCE, Status.WARN), (Kind.WIRING, Status.SKIPPED))) is ExitCode.OK


def test_a_trail_that_cannot_be_read_is_no_verdict_unless_another_one_logs() -> None:
    unread = trail(name="organization", multi_region=True, logging=False, unread="TrailNotFoundException: …")
    check = check_trail("eu-central-1", [unread])
    assert check.status is Status.ERROR
    assert check.found == "could not read trail organization: TrailNotFoundException: …"
    assert check_trail("eu-central-1", [unread, trail()]).status is Status.OK
