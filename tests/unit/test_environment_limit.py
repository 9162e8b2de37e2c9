"""Every Lambda function of the templates deploys with every parameter at its longest allowed value: its
environment variables stay within Lambda's 4 KB (tests/support/limits_contract.py measures them as Lambda
does). A parameter's longest value is its longest AllowedValue, its MaxValue, the longest its AllowedPattern
allows, or, where nothing bounds it, CloudFormation's own limit of 4,096 bytes for a parameter value."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.cloudformation import Stack
from tests.support.limits_contract import KB, environment_size
from tests.support.samples import TEMPLATE
from tests.support.templates import load_template

TEMPLATES = [
    TEMPLATE,
    TEMPLATE.parent / "member" / "forwarder.yaml",
    TEMPLATE.parent / "forwarders" / "iam-role-events.yaml",
]

# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html: a parameter
# value is at most 4,096 bytes; a stack name at most 128 characters.
PARAMETER_VALUE_BYTES = 4096
STACK_NAME = "s" * 128
# The longest names the services give a resource CloudFormation names (stack-LogicalId-SUFFIX, truncated).
NAME_LENGTHS = {"AWS::SQS::Queue": 80, "AWS::SNS::Topic": 256, "AWS::DynamoDB::Table": 255}


def _repeated(one: str, bound: int, separator: str = ",") -> str:
    count = (bound + len(separator)) // (len(one) + len(separator))
    return separator.join([one] * count)


# List parameters: as many entries as their MaxLength (or CloudFormation's limit) holds.
LIST_ENTRIES = {"AccountIds": "123456789012", "Regions": "ap-southeast-7"}


# The longest value of each string parameter that AllowedValues does not list, checked against its
# AllowedPattern below. An unbounded pattern is filled to CloudFormation's 4,096 bytes.
LONGEST = {
    "SelfHealingTag": "t" * 128,
    "SelfHealingTemporaryRoleArn": "arn:aws-us-gov:iam::123456789012:role/" + "r" * 512,
    "EventBusName": "b" * 256,
    "OrganizationId": "o-" + "a" * 32,
    "RetentionDays": "9999",
    "ChatTopicArn": "arn:aws-us-gov:sns:ap-southeast-7:123456789012:" + "c" * 256,
    "AlertEventBusName": "e" * 256,
    "PagerDutyRoutingKeySecret": "p" * 2048,
    "CentralRoleName": "r" * 64,
    "MemberRoleName": "m" * 64,
    "ExternalId": "x" * 1224,
    "AccountIdsParameter": "/" + "p" * 511,
    # EventBridge Scheduler's ScheduleExpression: at most 256 characters (API_CreateSchedule).
    "ReconcileSchedule": "cron(" + "0" * 250 + ")",
    # Unbounded, and in no environment: CloudFormation's limit.
    "AlertEmail": "a" * (PARAMETER_VALUE_BYTES - len("@example.com")) + "@example.com",
    "AlarmTopicArn": "arn:aws:sns:ap-southeast-7:123456789012:" + "a" * 256,
    "CentralEventBusArn": "arn:aws-us-gov:events:ap-southeast-7:123456789012:event-bus/" + "b" * 256,
    "CentralAccountId": "123456789012",
    "MemberRoleRegion": "ap-southeast-7",
    "TargetRegion": "ap-southeast-7",
    "TargetEventBusName": "b" * 256,
}


def longest(declared: dict[str, Any], name: str) -> str:
    if "AllowedValues" in declared:
        return max((str(v) for v in declared["AllowedValues"]), key=len)
    if declared.get("Type") == "Number":
        return str(declared.get("MaxValue", declared.get("Default")))
    if name in LIST_ENTRIES:
        return _repeated(LIST_ENTRIES[name], int(declared.get("MaxLength", PARAMETER_VALUE_BYTES)))
    return LONGEST[name]


class LongestNames(Stack):
    def physical_name(self, logical_id: str) -> str:
        name = super().physical_name(logical_id)
        return name[: NAME_LENGTHS.get(self.resources[logical_id]["Type"], 255)]


def _stack(path: Any) -> Stack:
    template = load_template(path)
    parameters = {name: longest(d, name) for name, d in template.get("Parameters", {}).items()}
    return LongestNames(template, parameters=parameters, region="ap-southeast-7", name=STACK_NAME)


def _functions() -> list[tuple[str, str]]:
    found = []
    for path in TEMPLATES:
        for logical_id, resource in load_template(path)["Resources"].items():
            if resource["Type"] in {"AWS::Serverless::Function", "AWS::Lambda::Function"}:
                found.append((path.name, logical_id))
    return found


def test_every_longest_value_is_one_the_template_allows() -> None:
    for path in TEMPLATES:
        for name, declared in load_template(path).get("Parameters", {}).items():
            value = longest(declared, name)
            assert len(value.encode()) <= PARAMETER_VALUE_BYTES, name
            if "AllowedPattern" in declared:
                assert re.fullmatch(declared["AllowedPattern"], value), (path.name, name)
            if "MaxLength" in declared:
                assert len(value) <= int(declared["MaxLength"]), (path.name, name)
    assert {name for name, _ in _functions()} == {"template.yaml", "forwarder.yaml"}


@pytest.mark.parametrize(("template", "function"), _functions())
def test_a_functions_environment_fits_lambdas_4_kb_with_every_parameter_at_its_longest(
    template: str, function: str
) -> None:
    stack = _stack(next(path for path in TEMPLATES if path.name == template))
    common = stack.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = stack.resources[function]["Properties"].get("Environment", {}).get("Variables", {})
    variables = stack.resolve({**common, **own})

    size = environment_size(variables)

    longest_variable = max(variables, key=lambda name: len(str(variables[name])))
    assert size <= 4 * KB, f"{function}: {size:,} bytes, {longest_variable} the longest"
