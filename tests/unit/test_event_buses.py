"""Where the events go: every rule, target and output follows the stack's EventBusName, no forwarder ever
forwards to the bus it reads, and two stacks on one bus keep their own permission statement."""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest

from tests.support.cloudformation import Stack
from tests.support.samples import ROOT, TEMPLATE

ACCOUNT = "210987654321"
FORWARDER = ROOT / "forwarders" / "iam-role-events.yaml"
MEMBER = ROOT / "member" / "forwarder.yaml"


def _bus(region: str, name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:events:{region}:{account}:event-bus/{name}"


def _rules(stack: Stack) -> dict[str, dict[str, Any]]:
    return {
        name: stack.resolve(resource["Properties"])
        for name, resource in stack.resources.items()
        if resource["Type"] == "AWS::Events::Rule" and stack.exists(name)
    }


def _assertions_hold(stack: Stack) -> bool:
    return all(
        stack._truth(assertion["Assert"])
        for rule in stack.template.get("Rules", {}).values()
        for assertion in rule["Assertions"]
    )


@pytest.mark.parametrize("bus", ["default", "grantwatch-central"])
def test_every_rule_and_the_bus_output_follow_event_bus_name(bus: str) -> None:
    stack = Stack.load(
        TEMPLATE,
        parameters={
            "EventBusName": bus,
            "ConfirmWithDecryptFailures": "true",
            "OrganizationId": "o-a1b2c3d4e5",
        },
    )
    rules = _rules(stack)
    assert len(rules) == 4
    assert {rule["EventBusName"] for rule in rules.values()} == {bus}
    assert stack.resolve(stack.template["Outputs"]["EventBusArn"]["Value"]) == _bus(stack.region, bus)
    policy = stack.resolve(stack.resources["OrganizationEventBusPolicy"]["Properties"])
    assert policy["EventBusName"] == bus
    assert policy["Statement"]["Resource"] == _bus(stack.region, bus)


def _forwarder(region: str, bus: str | None, target_region: str = "eu-central-1") -> Stack:
    parameters = {"TargetRegion": target_region} | ({"TargetEventBusName": bus} if bus else {})
    return Stack.load(FORWARDER, parameters=parameters, region=region)


@pytest.mark.parametrize("bus", ["default", "grantwatch-central"])
def test_the_iam_forwarder_sends_to_the_stacks_bus_and_may_put_events_there_only(bus: str) -> None:
    stack = _forwarder("us-east-1", bus)
    [rule] = _rules(stack).values()
    [target] = rule["Targets"]
    assert target["Arn"] == _bus("eu-central-1", bus)
    role = stack.resolve(stack.resources["ForwardingRole"]["Properties"])
    [statement] = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": _bus("eu-central-1", bus),
    }


def test_the_iam_forwarder_deploys_in_us_east_1_and_never_forwards_to_the_bus_it_reads() -> None:
    assert _assertions_hold(_forwarder("us-east-1", None))
    assert _assertions_hold(_forwarder("us-east-1", "grantwatch-central", target_region="us-east-1"))
    assert not _assertions_hold(_forwarder("us-east-1", None, target_region="us-east-1"))  # a loop
    assert not _assertions_hold(_forwarder("us-east-1", "default", target_region="us-east-1"))
    assert not _assertions_hold(_forwarder("eu-west-1", None))  # IAM's events are not there


def _member(region: str, central: str, account: str = ACCOUNT) -> Stack:
    parameters = {"CentralEventBusArn": central, "ForwardDecryptFailures": "true"}
    return Stack.load(MEMBER, parameters=parameters, region=region, account=account)


@pytest.mark.parametrize(
    ("region", "account", "central", "forwarded"),
    [
        # A member account: everything to the central bus (IAM's events from us-east-1 only).
        ("eu-west-1", "111122223333", _bus("eu-central-1", "default"), 3),
        ("us-east-1", "111122223333", _bus("eu-central-1", "default"), 4),
        # The central account with a bus of its own: its default bus forwarded to it, as a member's.
        ("eu-central-1", ACCOUNT, _bus("eu-central-1", "grantwatch-central"), 3),
        ("us-east-1", ACCOUNT, _bus("eu-central-1", "grantwatch-central"), 4),
        # The central account's other regions, to its default bus.
        ("us-east-1", ACCOUNT, _bus("eu-central-1", "default"), 4),
        # Never to itself: the central stack's rules read this very bus.
        ("eu-central-1", ACCOUNT, _bus("eu-central-1", "default"), 0),
        ("us-east-1", ACCOUNT, _bus("us-east-1", "default"), 0),
    ],
)
def test_the_member_forwarder_forwards_to_the_central_bus_never_to_its_own(
    region: str, account: str, central: str, forwarded: int
) -> None:
    stack = _member(region, central, account)
    rules = _rules(stack)
    assert len(rules) == forwarded
    for rule in rules.values():
        assert [target["Arn"] for target in rule["Targets"]] == [central]
        assert rule.get("EventBusName", "default") == "default"  # where CloudTrail delivers
    assert stack.resolve(stack.template["Outputs"]["Forwarding"]["Value"]) == str(bool(forwarded)).lower()


def _statement_ids(stack: Stack) -> tuple[str, str]:
    properties = stack.resolve(stack.resources["OrganizationEventBusPolicy"]["Properties"])
    return properties["StatementId"], properties["Statement"]["Sid"]


def _statement_id_rule() -> tuple[int, int, str]:
    """A StatementId's bounds as EventBridge's own API model states them."""
    model = botocore.session.get_session().get_service_model("events")
    request = model.operation_model("PutPermission").input_shape
    assert request is not None
    shape = request.members["StatementId"]
    return shape.metadata["min"], shape.metadata["max"], shape.metadata["pattern"]


@pytest.mark.parametrize("name", ["g", "grantwatch", "grantwatch-" + "x" * 117])  # 128: the longest
def test_the_organization_statement_is_the_stacks_own_and_a_valid_statement_id(name: str) -> None:
    low, high, pattern = _statement_id_rule()
    one = Stack.load(TEMPLATE, parameters={"OrganizationId": "o-a1b2c3d4e5"}, name=name)
    other = Stack.load(
        TEMPLATE,
        parameters={"OrganizationId": "o-a1b2c3d4e5"},
        name=name,
        uuid="7c1d2e3f-9a7b-11ef-8c3e-0a1b2c3d4e5f",
    )
    statement_id, sid = _statement_ids(one)
    assert statement_id == sid
    assert low <= len(statement_id) <= high
    assert re.fullmatch(pattern, statement_id)
    assert _statement_ids(other)[0] != statement_id  # a second stack on the bus adds its own statement
