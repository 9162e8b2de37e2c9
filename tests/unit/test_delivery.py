"""Where a notice stands in each channel (grantwatch.domain.delivery), and the alarm that watches the
channels that give up (template.yaml's ChannelDeliveryAlarm on the handlers' ChannelDeliveryAbandoned)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grantwatch.domain.delivery import (
    MAX_CHANNEL_ATTEMPTS,
    PRIMARY,
    ChannelState,
    Delivery,
    settle,
    settled_channels,
    states_from_map,
    states_to_map,
)
from grantwatch.handlers.delivery_metrics import ABANDONED
from tests.support.cloudformation import Stack
from tests.support.reliability.delivery import RetryPolicy
from tests.support.samples import TEMPLATE

CHANNELS = ("sns", "chat", "events", "securityhub")
AT = datetime(2026, 11, 20, 16, 43, tzinfo=UTC)


def test_a_channel_that_took_the_notice_is_left_out_and_one_that_keeps_failing_is_given_up_on() -> None:
    first = settle(CHANNELS, {}, Delivery(frozenset({"sns", "chat", "events"}), {"securityhub": "X"}), AT)
    assert not first.complete and first.gave_up == ()
    assert settled_channels(first.states) == {"sns", "chat", "events"}
    assert first.unsent(CHANNELS) == ["securityhub"]
    states = first.states
    for attempt in range(2, MAX_CHANNEL_ATTEMPTS + 1):
        after = settle(
            CHANNELS, states, Delivery(frozenset(), {"securityhub": "X"}), AT + timedelta(minutes=attempt)
        )
        states = after.states
    assert after.complete and after.gave_up == ("securityhub",)
    assert states["securityhub"].failures == MAX_CHANNEL_ATTEMPTS and states["securityhub"].settled
    assert states["sns"].delivered_at == "2026-11-20T16:43:00Z"  # stamped once, when it was sent


def test_the_sns_topic_is_never_given_up_on() -> None:
    states: dict[str, ChannelState] = {}
    for _ in range(MAX_CHANNEL_ATTEMPTS * 3):
        outcome = settle(
            CHANNELS, states, Delivery(frozenset(CHANNELS) - {PRIMARY}, {PRIMARY: "Throttled"}), AT
        )
        states = outcome.states
        assert not outcome.complete and outcome.gave_up == ()
    assert states[PRIMARY].failures == MAX_CHANNEL_ATTEMPTS * 3 and not states[PRIMARY].settled
    done = settle(CHANNELS, states, Delivery(frozenset({PRIMARY})), AT)
    assert done.complete and done.states[PRIMARY].failures == MAX_CHANNEL_ATTEMPTS * 3


def test_the_channel_states_are_stored_in_this_shape_and_an_item_without_them_reads_as_none_sent() -> None:
    stored = {
        "securityhub": {"failures": 3, "error": "InvalidAccessException", "gaveUpAt": "2026-11-20T18:43:00Z"},
        "sns": {"deliveredAt": "2026-11-20T16:43:00Z"},
    }
    states = {
        "sns": ChannelState(delivered_at="2026-11-20T16:43:00Z"),
        "securityhub": ChannelState(
            failures=3, error="InvalidAccessException", gave_up_at="2026-11-20T18:43:00Z"
        ),
    }
    assert states_to_map(states) == stored
    assert states_from_map(stored) == states
    assert states_from_map(None) == {}  # written before deliveries were kept: no channel is skipped


def test_a_channel_is_given_up_on_before_its_evaluation_request_would_be_dead_lettered() -> None:
    assert RetryPolicy.from_template().evaluation_receives > MAX_CHANNEL_ATTEMPTS


def test_the_channel_delivery_alarm_sums_what_the_evaluator_and_remediation_count() -> None:
    s = Stack.load(
        TEMPLATE, parameters={"SelfHealing": "true"}, account="210987654321", region="eu-central-1"
    )
    alarm = s.resolve(s.resources["ChannelDeliveryAlarm"]["Properties"])
    namespace = s.template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    services = {
        s.resources[f]["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for f in ("EvaluatorFunction", "RemediationFunction")
    }
    watched = {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {(m["Namespace"], m["MetricName"]) for m in watched.values()} == {(namespace, ABANDONED)}
    assert {
        d["Value"] for m in watched.values() for d in m["Dimensions"] if d["Name"] == "service"
    } == services
    (summed,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert all(metric_id in summed["Expression"] for metric_id in watched)
    # One notice given up on is one channel that never received it: an hour boundary cannot split it.
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    raw = s.resources["ChannelDeliveryAlarm"]["Properties"]["AlarmActions"]
    assert raw == s.resources["EvaluationLagAlarm"]["Properties"]["AlarmActions"]  # AlarmTopicArn, if set
