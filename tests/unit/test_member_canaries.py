"""Member account-regions whose canary is silent: the fan-out's pure decision, the coverage it reads, the
bounded notice, the metric its handler emits and the alarm that watches exactly that metric."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grantwatch.adapters.notifier import publish_request
from grantwatch.domain.canary import CanaryPath, Heartbeat
from grantwatch.domain.channels import chat_notification, event_entry
from grantwatch.domain.coverage import (
    MEMBER_CANARY_PATH,
    Target,
    Unheard,
    reconciled,
    unheard,
    unreachable,
)
from grantwatch.domain.notices import MAX_EMAIL_LINES, MAX_LISTED_TARGETS, member_canary_notice
from grantwatch.handlers import fanout as handler
from grantwatch.settings import Settings, SettingsError
from tests.support.cloudformation import Stack
from tests.support.lambda_context import FakeLambdaContext
from tests.support.limits_contract import check
from tests.support.samples import TEMPLATE

NOW = datetime(2026, 12, 8, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
CENTRAL = Target("210987654321", "eu-central-1")
MEMBER = Target("111122223333", "eu-west-1")
REPORT = {
    "keys": 0,
    "grantsListed": 0,
    "functionsListed": 0,
    "evaluationsScheduled": 0,
    "repairs": {},
    "errors": [],
}


def _covered(target: Target, since: datetime) -> Any:
    return reconciled(target, REPORT, since, None)


def _beat(target: Target, at: datetime, path: str = MEMBER_CANARY_PATH) -> Heartbeat:
    return Heartbeat(target.account, target.region, path, at)


def test_the_member_path_is_the_canarys_create_grant() -> None:
    assert CanaryPath.CREATE_GRANT.value == MEMBER_CANARY_PATH


def test_a_member_heard_within_two_intervals_is_not_named_and_one_older_is() -> None:
    coverage = [_covered(MEMBER, NOW - 10 * HOUR)]
    fresh = [_beat(MEMBER, NOW - 2 * HOUR)]  # exactly two intervals: not yet older
    assert unheard([MEMBER], coverage, fresh, NOW, HOUR) == []
    late = [_beat(MEMBER, NOW - 2 * HOUR - timedelta(seconds=1))]
    assert unheard([MEMBER], coverage, late, NOW, HOUR) == [Unheard(MEMBER, late[0].at)]


def test_only_create_grant_counts_a_decrypt_heard_alone_does_not_keep_a_member_fresh() -> None:
    beats = [_beat(MEMBER, NOW - 5 * HOUR), _beat(MEMBER, NOW, CanaryPath.DECRYPT.value)]
    assert unheard([MEMBER], [], beats, NOW, HOUR) == [Unheard(MEMBER, NOW - 5 * HOUR)]


def test_a_member_never_heard_is_named_once_covered_for_longer_than_two_intervals() -> None:
    old = [_covered(MEMBER, NOW - 3 * HOUR)]
    assert unheard([MEMBER], old, [], NOW, HOUR) == [Unheard(MEMBER, None)]
    assert Unheard(MEMBER, None).as_json() == {**MEMBER.as_json(), "lastHeardAt": None}


def test_a_new_member_is_not_named_before_its_canary_could_run() -> None:
    new = [_covered(MEMBER, NOW - HOUR)]
    assert unheard([MEMBER], new, [], NOW, HOUR) == []
    never_reached = [unreachable(MEMBER, "AccessDenied: no", NOW - 5 * HOUR, None)]
    assert unheard([MEMBER], never_reached, [], NOW, HOUR) == []  # never covered: the stale notice's
    assert unheard([MEMBER], [], [], NOW, HOUR) == []  # never tried


def test_the_central_stacks_own_account_region_and_members_no_longer_expected_are_left_out() -> None:
    coverage = [_covered(CENTRAL, NOW - 9 * HOUR), _covered(MEMBER, NOW - 9 * HOUR)]
    elsewhere = Target(CENTRAL.account, "eu-west-1")
    coverage.append(_covered(elsewhere, NOW - 9 * HOUR))
    found = unheard([CENTRAL, elsewhere], coverage, [], NOW, HOUR, central=CENTRAL)
    assert found == [Unheard(elsewhere, None)]  # the central account's other regions are members


def test_an_interval_of_zero_turns_the_check_off() -> None:
    coverage = [_covered(MEMBER, NOW - 99 * HOUR)]
    assert unheard([MEMBER], coverage, [_beat(MEMBER, NOW - 99 * HOUR)], NOW, timedelta(0)) == []


def test_coverage_keeps_its_first_success_through_failures_and_later_runs() -> None:
    first = reconciled(MEMBER, REPORT, NOW - 5 * HOUR, None)
    assert first.covered_since == NOW - 5 * HOUR
    failed = unreachable(MEMBER, "AccessDenied: no", NOW - 4 * HOUR, first)
    partly = reconciled(MEMBER, {**REPORT, "errors": ["KMS: throttled"]}, NOW - 3 * HOUR, failed)
    again = reconciled(MEMBER, REPORT, NOW, partly)
    assert failed.covered_since == partly.covered_since == again.covered_since == NOW - 5 * HOUR
    assert reconciled(MEMBER, {**REPORT, "errors": ["x"]}, NOW, None).covered_since is None


def test_the_setting_is_read_from_its_variable_and_checked() -> None:
    variable = "GRANTWATCH_MEMBER_CANARY_INTERVAL_MINUTES"
    assert Settings.from_environ({variable: "15"}).member_canary_interval_minutes == 15
    assert Settings.from_environ({}).member_canary_interval_minutes == 0
    with pytest.raises(SettingsError, match="member_canary_interval_minutes"):
        Settings.from_environ({variable: "1441"})


def test_the_notice_names_the_first_of_17000_silent_account_regions_and_fits_every_channel() -> None:
    regions = [f"xx-region-{n:02d}" for n in range(17)]
    silent = [
        Unheard(Target(f"{100000000000 + a}", region), None if a % 2 else NOW - 9 * HOUR)
        for a in range(1000)
        for region in regions
    ]
    notice = member_canary_notice(list(reversed(silent)), HOUR)
    assert notice.details["targetCount"] == len(silent) == 17_000
    assert notice.details["targets"] == [u.as_json() for u in silent[:MAX_LISTED_TARGETS]]
    assert notice.attributes == {"severity": "warning", "alertType": "member-canary-silent"}
    assert notice.message.endswith(f"... and {len(silent) - MAX_LISTED_TARGETS} more: grantwatch accounts")
    assert notice.command == "grantwatch accounts"
    assert len(notice.email.splitlines()) <= MAX_EMAIL_LINES
    assert notice.email.splitlines()[-1].strip() == "grantwatch accounts"
    assert "(120 min)" in notice.email and "... and 16995 more" in notice.email
    requests = [
        ("sns", "Publish", publish_request("arn:aws:sns:us-east-1:123456789012:alerts", notice)),
        ("events", "PutEvents", {"Entries": [event_entry(notice, "grantwatch-alerts")]}),
    ]
    for service, operation, params in requests:
        assert check(service, operation, params) == [], operation
    assert "17000 member account-region(s)" in json.dumps(chat_notification(notice))


def test_the_notice_keeps_its_id_while_the_same_account_regions_are_silent() -> None:
    one = member_canary_notice([Unheard(MEMBER, None)], HOUR)
    same = member_canary_notice([Unheard(MEMBER, NOW)], HOUR)
    other = member_canary_notice([Unheard(CENTRAL, None)], HOUR)
    assert one.incident_id == same.incident_id != other.incident_id
    assert one.incident_id.startswith("member-canary-silent-")


class _FanOut:
    def __init__(self, silent: int) -> None:
        self.silent = silent

    def run(self, now: datetime) -> dict[str, Any]:
        found = [
            Unheard(Target(f"{100000000000 + n}", "eu-west-1"), None).as_json() for n in range(self.silent)
        ]
        return {"queued": 3, "notQueued": [], "stale": [], "silent": found}


def _emitted(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_the_alarm_watches_the_metric_the_fan_out_emits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack.load(TEMPLATE, parameters={"OrganizationReconciliation": "true"})
    function = stack.resources["OrganizationFanOutFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    namespace = stack.template["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    monkeypatch.setattr(handler, "fan_out", lambda: _FanOut(30))
    monkeypatch.setattr(handler.logger.registered_handler, "stream", io.StringIO())
    monkeypatch.setattr(handler.metrics, "service", variables["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setattr(handler.metrics, "namespace", namespace)
    capsys.readouterr()
    summary = handler.lambda_handler({}, FakeLambdaContext("grantwatch-organization-fanout"))
    assert summary["silentCount"] == 30 and len(summary["silent"]) == handler.LISTED_TARGETS
    [document] = _emitted(capsys.readouterr().out)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert {"Name": "MemberHeartbeatsStale", "Unit": "Count"} in directive["Metrics"]
    assert document["MemberHeartbeatsStale"] in (30.0, [30.0])

    alarm = stack.resolve(stack.resources["MemberHeartbeatsStaleAlarm"]["Properties"])
    assert stack.resources["MemberHeartbeatsStaleAlarm"]["Condition"] == "ReconcilesOrganization"
    assert (alarm["Namespace"], alarm["MetricName"]) == (directive["Namespace"], "MemberHeartbeatsStale")
    assert alarm["Dimensions"] == [{"Name": d, "Value": document[d]} for d in directive["Dimensions"][0]]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "ignore"  # a schedule longer than an hour must not flap it back to OK
    assert "grantwatch accounts" in alarm["AlarmDescription"]
    assert alarm.get("AlarmActions") == stack.resolve(
        stack.resources["OrganizationAccountSourceAlarm"]["Properties"]
    ).get("AlarmActions")
    assert variables["GRANTWATCH_MEMBER_CANARY_INTERVAL_MINUTES"] == {"Ref": "CanaryIntervalMinutes"}


def test_the_canary_alarms_no_longer_claim_member_accounts() -> None:
    text = TEMPLATE.read_text()
    assert "member accounts' canaries add to it" not in text
    assert "a member account's forwarder deleted" not in text
    stack = Stack.load(TEMPLATE, parameters={})
    description = stack.resolve(stack.resources["CanaryCreateGrantHeartbeatAlarm"]["Properties"])[
        "AlarmDescription"
    ]
    assert "MemberHeartbeatsStaleAlarm" in description
