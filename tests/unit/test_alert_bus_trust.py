"""Who can reach the stack's buses and what reaches PagerDuty.

The organization bus policy admits only the sources member/forwarder.yaml forwards, so that no principal of
the organization can put a `grantwatch` notice (or any event of its own) on the bus; the PagerDuty rules
match only this account's own notices. A page PagerDuty refuses, or that outlives EventBridge's retries,
waits in a dead-letter queue and raises an alarm instead of being dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from tests.support.cloudformation import Stack
from tests.support.iam_contract import Request, decide
from tests.support.samples import ROOT, TEMPLATE, load_event

CENTRAL, MEMBER, ORGANIZATION, OTHER_ORGANIZATION = (
    "210987654321",
    "111122223333",
    "o-a1b2c3d4e5",
    "o-zz9y8x7w6v",
)
SECRET = "grantwatch/pagerduty-routing-key"
PAGERDUTY_RULES = ("PagerDutyTriggerRule", "PagerDutyResolveRule")


def central(**parameters: str) -> Stack:
    return Stack.load(
        TEMPLATE,
        parameters={"OrganizationId": ORGANIZATION, **parameters},
        account=CENTRAL,
        region="eu-central-1",
    )


def paging(**parameters: str) -> Stack:
    return central(AlertEventBusName="ops", PagerDutyRoutingKeySecret=SECRET, **parameters)


def _forwarded_sources() -> set[str]:
    member = Stack.load(ROOT / "member" / "forwarder.yaml")
    return {
        source
        for resource in member.resources.values()
        if resource["Type"] == "AWS::Events::Rule"
        for source in resource["Properties"]["EventPattern"]["source"]
    }


def _bus_policy(stack: Stack) -> list[dict[str, Any]]:
    statement = stack.resolve(stack.resources["OrganizationEventBusPolicy"]["Properties"]["Statement"])
    return [statement]


def _put_events(stack: Stack, org: str, *sources: str) -> Request:
    """A PutEvents request of one entry per source: events:source holds every entry's Source."""
    bus = f"arn:aws:events:eu-central-1:{CENTRAL}:event-bus/{stack.parameter('EventBusName')}"
    return Request("events:PutEvents", bus, (("aws:PrincipalOrgID", (org,)), ("events:source", sources)))


# --- the organization bus policy ----------------------------------------------------------------------------


def test_the_bus_policy_admits_exactly_the_sources_the_member_forwarders_send() -> None:
    (statement,) = _bus_policy(central())
    condition = statement["Condition"]
    assert sorted(condition["ForAllValues:StringEquals"]["events:source"]) == sorted(_forwarded_sources())
    assert condition["StringEquals"] == {"aws:PrincipalOrgID": ORGANIZATION}


@pytest.mark.parametrize(
    ("organization", "sources", "allowed"),
    [
        (ORGANIZATION, ("aws.kms",), True),  # a member's forwarded KMS event
        (ORGANIZATION, ("aws.lambda",), True),
        (ORGANIZATION, ("aws.iam",), True),
        (ORGANIZATION, ("aws.kms", "aws.iam"), True),  # a batch of forwarded events
        (ORGANIZATION, ("grantwatch",), False),  # a member principal forging a notice
        (ORGANIZATION, ("aws.kms", "grantwatch"), False),  # a forged notice hidden in a forwarded batch
        (ORGANIZATION, ("com.example.anything",), False),
        (OTHER_ORGANIZATION, ("aws.kms",), False),  # outside the organization
    ],
)
def test_the_bus_policy_decides_each_event_by_its_source_and_organization(
    organization: str, sources: tuple[str, ...], allowed: bool
) -> None:
    stack = central()
    assert decide(_bus_policy(stack), _put_events(stack, organization, *sources)).allowed is allowed


# --- the PagerDuty rules ------------------------------------------------------------------------------------


def _matches(stack: Stack, rule: str, event: dict[str, Any]) -> bool:
    pattern = EventPattern.load(
        json.dumps(stack.resolve(stack.resources[rule]["Properties"]["EventPattern"]))
    )
    matched: bool = pattern.matches_event(event)  # type: ignore[arg-type]
    return matched


def _notice(account: str, detail_type: str) -> dict[str, Any]:
    return {
        "source": "grantwatch",
        "account": account,
        "region": "eu-central-1",
        "detail-type": detail_type,
        "detail": {"incidentId": "INCIDENT#1"},
    }


@pytest.mark.parametrize(
    ("rule", "detail_type"),
    [("PagerDutyTriggerRule", "GrantWatch Alert"), ("PagerDutyResolveRule", "GrantWatch Incident Resolved")],
)
def test_the_pagerduty_rules_page_for_this_accounts_notices_only(rule: str, detail_type: str) -> None:
    stack = paging()
    assert stack.resolve(stack.resources[rule]["Properties"]["EventPattern"])["account"] == [CENTRAL]
    assert _matches(stack, rule, _notice(CENTRAL, detail_type))
    assert not _matches(stack, rule, _notice(MEMBER, detail_type))


def test_a_forwarded_cloudtrail_event_never_pages() -> None:
    stack = paging()
    event = load_event("kms-create-grant-lambda.json")
    assert not any(_matches(stack, rule, event) for rule in PAGERDUTY_RULES)


# --- PagerDuty delivery failures ----------------------------------------------------------------------------


def test_each_pagerduty_target_retries_then_dead_letters_to_an_encrypted_queue() -> None:
    stack = paging()
    queue_arn = stack.attribute("PagerDutyDeadLetterQueue", "Arn")
    for rule in PAGERDUTY_RULES:
        (target,) = stack.resolve(stack.resources[rule]["Properties"]["Targets"])
        assert target["DeadLetterConfig"] == {"Arn": queue_arn}
        assert int(target["RetryPolicy"]["MaximumRetryAttempts"]) > 0
    queue = stack.resolve(stack.resources["PagerDutyDeadLetterQueue"]["Properties"])
    assert queue["SqsManagedSseEnabled"] is True


def test_only_the_two_pagerduty_rules_may_send_to_the_dead_letter_queue() -> None:
    stack = paging()
    policy = stack.resolve(stack.resources["PagerDutyDeadLetterQueuePolicy"]["Properties"])
    assert policy["Queues"] == [stack.ref("PagerDutyDeadLetterQueue")]
    statements = policy["PolicyDocument"]["Statement"]
    queue_arn = stack.attribute("PagerDutyDeadLetterQueue", "Arn")
    rules = [stack.attribute(rule, "Arn") for rule in PAGERDUTY_RULES]

    def send(source_arn: str) -> bool:
        request = Request("sqs:SendMessage", queue_arn, (("aws:SourceArn", (source_arn,)),))
        allowing = [s for s in statements if s["Effect"] == "Allow"]
        assert all(s["Principal"] == {"Service": "events.amazonaws.com"} for s in allowing)
        return decide(allowing, request).allowed

    assert all(send(rule) for rule in rules)
    assert not send(stack.attribute("GrantEventsRule", "Arn"))
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert sorted(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(rules)


@pytest.mark.parametrize(("bus", "with_bus_dimension"), [("ops", True), ("default", False)])
def test_the_delivery_alarm_watches_both_rules_failed_and_lost_invocations_and_the_queue(
    bus: str, with_bus_dimension: bool
) -> None:
    stack = central(
        AlertEventBusName=bus,
        PagerDutyRoutingKeySecret=SECRET,
        AlarmTopicArn="arn:aws:sns:eu-central-1:210987654321:ops",
    )
    alarm = stack.resolve(stack.resources["PagerDutyDeliveryAlarm"]["Properties"])
    assert alarm["AlarmActions"] == ["arn:aws:sns:eu-central-1:210987654321:ops"]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    rule_names = {stack.resolve(stack.resources[rule]["Properties"]["Name"]) for rule in PAGERDUTY_RULES}
    watched = set()
    for metric in metrics.values():
        if "MetricStat" not in metric:
            continue
        stat = metric["MetricStat"]["Metric"]
        dimensions = {d["Name"]: d["Value"] for d in stat["Dimensions"]}
        if stat["Namespace"] == "AWS/Events":
            # failed, and failed even to reach the dead-letter queue (lost)
            assert stat["MetricName"] in {"FailedInvocations", "InvocationsFailedToBeSentToDlq"}
            # EventBridge reports a custom bus's rules with EventBusName and RuleName, the default bus's
            # with RuleName alone
            assert ("EventBusName" in dimensions) is with_bus_dimension
            assert dimensions.get("EventBusName", bus) == bus
            watched.add((dimensions["RuleName"], stat["MetricName"]))
        else:
            assert (stat["Namespace"], stat["MetricName"]) == (
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
            )
            assert dimensions == {"QueueName": stack.attribute("PagerDutyDeadLetterQueue", "QueueName")}
            watched.add(("queue", "ApproximateNumberOfMessagesVisible"))
    assert watched == {
        (rule, name)
        for rule in rule_names
        for name in ("FailedInvocations", "InvocationsFailedToBeSentToDlq")
    } | {("queue", "ApproximateNumberOfMessagesVisible")}
    (expression,) = [m for m in metrics.values() if m.get("ReturnData")]
    assert all(f"FILL({id_}, 0)" in expression["Expression"] for id_ in metrics if id_ != expression["Id"])
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    # a rule name fits EventBridge's 64 characters whatever the stack is called
    assert all(len(name) <= 64 for name in rule_names)


def test_the_events_api_endpoint_is_a_parameter_limited_to_pagerdutys_regions() -> None:
    declared = Stack.load(TEMPLATE).template["Parameters"]["PagerDutyEventsEndpoint"]
    assert declared["Default"] == "https://events.pagerduty.com/v2/enqueue"
    assert set(declared["AllowedValues"]) == {
        "https://events.pagerduty.com/v2/enqueue",
        "https://events.eu.pagerduty.com/v2/enqueue",
    }
    eu = paging(PagerDutyEventsEndpoint="https://events.eu.pagerduty.com/v2/enqueue")
    destination = eu.resolve(eu.resources["PagerDutyApiDestination"]["Properties"])
    assert destination["InvocationEndpoint"] == "https://events.eu.pagerduty.com/v2/enqueue"
