"""template.yaml can be published to the Serverless Application Repository: every resource type and every
function event type it declares is one the repository accepts (tests/support/serverless_repository.py), and
no managed policy, which it refuses: the self-healing tag policy is inline on the function's role."""

from __future__ import annotations

from tests.support.cloudformation import Stack
from tests.support.iam_contract import PARAMETERS, statements
from tests.support.samples import TEMPLATE
from tests.support.serverless_repository import (
    REFUSED_RESOURCE_TYPES,
    SUPPORTED_FUNCTION_EVENT_TYPES,
    SUPPORTED_RESOURCE_TYPES,
)
from tests.support.templates import load_template

RESOURCES = load_template(TEMPLATE)["Resources"]


def test_every_resource_type_is_one_the_repository_accepts() -> None:
    types = {resource["Type"] for resource in RESOURCES.values()}
    assert not types & REFUSED_RESOURCE_TYPES
    assert sorted(types - SUPPORTED_RESOURCE_TYPES) == []


def test_every_function_event_type_is_one_the_repository_accepts() -> None:
    events = {
        (logical_id, event["Type"])
        for logical_id, resource in RESOURCES.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
    }
    assert events  # the functions have events, so the check below checks something
    assert sorted(e for e in events if e[1] not in SUPPORTED_FUNCTION_EVENT_TYPES) == []


def test_the_tagged_functions_policy_is_inline_on_the_remediation_role_and_read_by_the_iam_contract() -> None:
    stack = Stack.load(TEMPLATE, parameters=PARAMETERS)
    policy = stack.resources["RemediationTaggedFunctionsRolePolicy"]
    assert policy["Type"] == "AWS::IAM::Policy"
    assert stack.resources["RemediationFunction"]["DependsOn"] == "RemediationTaggedFunctionsRolePolicy"
    tagged = [s for s in statements(stack, "RemediationFunction") if s.get("Sid") == "TaggedFunctionsOnly"]
    assert [s["Condition"] for s in tagged] == [
        {"StringEqualsIgnoreCase": {"aws:ResourceTag/grantwatch:self-heal": "true"}}
    ]
