"""The IAM contract's checker (tests/support/iam_contract.py) catches what template.yaml does not allow, and
reads the policies as AWS does: wildcards, conditions, an index's own ARN, a transaction's items."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from tests.support.iam_contract import (
    CORRIDORS,
    RUNS_AS,
    UNEVALUATED_CONDITIONS,
    Call,
    Checker,
    Request,
    attribute,
    decide,
    handler_modules,
    stack_for,
    statements,
)

REGION, ACCOUNT = "eu-central-1", "210987654321"
STACK = stack_for(ACCOUNT, REGION)


def _call(function: str, service: str, operation: str, adapter: str | None = None, **params: Any) -> Call:
    return Call(function, service, operation, REGION, adapter, params)


def _violations(*calls: Call) -> list[str]:
    checker = Checker()
    for call in calls:
        checker.check(call)
    return sorted(checker.violations)


def _item(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "X"}}


def test_a_call_the_template_does_not_allow_is_a_violation() -> None:
    table = "anything"  # the runtime name: the contract reads which table from the function's environment
    [line] = _violations(
        _call("RecorderFunction", "dynamodb", "DeleteItem", TableName=table, Key=_item("GRANT#1"))
    )
    assert line.startswith("RecorderFunction: dynamodb DeleteItem: dynamodb:DeleteItem on arn:aws:dynamodb:")
    assert "no statement allows it" in line
    assert (
        _violations(
            _call("RecorderFunction", "dynamodb", "UpdateItem", TableName=table, Key=_item("GRANT#1"))
        )
        == []
    )


def test_a_destination_the_functions_environment_does_not_name_is_a_violation() -> None:
    [line] = _violations(_call("RecorderFunction", "sns", "Publish", TopicArn="arn:aws:sns:eu-central-1:1:t"))
    assert "does not set GRANTWATCH_ALERT_TOPIC_ARN" in line
    [unknown] = _violations(
        _call("EvaluatorFunction", "sqs", "SendMessage", "grantwatch.adapters.new", QueueUrl="u")
    )
    assert "Add its environment variable to DESTINATIONS" in unknown


def test_the_evaluator_writes_only_the_partitions_it_owns() -> None:
    def put(pk: str) -> Call:
        return _call("EvaluatorFunction", "dynamodb", "PutItem", TableName="t", Item=_item(pk))

    assert _violations(put("FUNCTION#arn:aws:lambda:eu-central-1:1:function:f")) == []
    assert _violations(put("KEY#arn:aws:kms:eu-central-1:1:key/k"), put("ROLE#1/role")) == []
    [line] = _violations(put("GRANT#0123"))
    assert "dynamodb:PutItem" in line and "GRANT#0123" in line
    transaction = _call(
        "EvaluatorFunction",
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[
            {"Update": {"TableName": "t", "Key": _item("FUNCTION#f")}},
            {"Delete": {"TableName": "t", "Key": _item("GRANT#0123")}},
        ],
    )
    [only_the_grant] = _violations(transaction)
    assert "dynamodb:DeleteItem" in only_the_grant and "GRANT#0123" in only_the_grant


def test_a_query_needs_the_indexs_own_arn() -> None:
    def query(function: str, index: str) -> Call:
        return _call(
            function, "dynamodb", "Query", TableName="t", IndexName=index, KeyConditionExpression="#0 = :0"
        )

    assert _violations(query("EvaluatorFunction", "by-function")) == []
    [line] = _violations(query("EvaluatorFunction", "by-key"))
    assert line.endswith("/index/by-key: no statement allows it")


def test_actions_and_resources_match_with_wildcards_and_resource_names_resolve_in_the_stacks_region() -> None:
    key = "arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c"
    assert _violations(_call("ReconcilerFunction", "kms", "ListGrants", KeyId=key)) == []
    assert _violations(_call("ReconcilerFunction", "kms", "ListGrants", KeyId="5f1e2d3c")) == []
    [line] = _violations(_call("ReconcilerFunction", "kms", "RetireGrant", KeyId=key))
    assert "kms:RetireGrant" in line
    assert _violations(_call("ReconcilerFunction", "lambda", "ListFunctions")) == []


def test_a_tag_conditioned_call_is_allowed_only_through_its_named_condition() -> None:
    arn = "arn:aws:lambda:eu-central-1:210987654321:function:invoice-renderer"
    checker = Checker()
    checker.check(_call("RemediationFunction", "lambda", "GetFunctionConfiguration", FunctionName=arn))
    assert not checker.violations
    assert checker.assumed == {"aws:ResourceTag/grantwatch:self-heal": 1}

    policy = [
        {
            "Effect": "Allow",
            "Action": "lambda:ListTags",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "x"}},
        }
    ]
    decision = decide(policy, Request("lambda:ListTags", arn))
    assert not decision.allowed and "aws:PrincipalTag/team cannot be evaluated" in decision.reason


def test_a_role_passed_to_lambda_needs_iam_pass_role() -> None:
    arn = "arn:aws:lambda:eu-central-1:210987654321:function:invoice-renderer"
    role = "arn:aws:iam::210987654321:role/invoice-renderer"
    # A function with no iam:PassRole statement is refused it ...
    refused = _violations(
        _call("ReconcilerFunction", "lambda", "UpdateFunctionConfiguration", FunctionName=arn, Role=role)
    )
    assert [line for line in refused if "iam:PassRole" in line]
    # ... the remediation function (with a temporary role) may pass a role, to Lambda only.
    allowed = _violations(
        _call("RemediationFunction", "lambda", "UpdateFunctionConfiguration", FunctionName=arn, Role=role)
    )
    assert not [line for line in allowed if "iam:PassRole" in line]
    passing = [s for s in statements(STACK, "RemediationFunction") if "iam:PassRole" in str(s.get("Action"))]
    to_ec2 = Request("iam:PassRole", role, (("iam:PassedToService", ("ec2.amazonaws.com",)),))
    assert passing and not decide(passing, to_ec2).allowed


def test_an_explicit_deny_wins_and_for_all_values_holds_for_a_request_without_the_key() -> None:
    allow = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}
    assert not decide([allow, deny], Request("dynamodb:DeleteItem", "arn:aws:dynamodb:r:a:table/t")).allowed
    leading = {**allow, "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["A#*"]}}}
    assert decide([leading], Request("dynamodb:Scan", "arn:aws:dynamodb:r:a:table/t")).allowed
    assert not decide(
        [leading], Request("dynamodb:GetItem", "t", (("dynamodb:LeadingKeys", ("B#1",)),))
    ).allowed


def test_every_function_has_its_corridor_and_every_unevaluated_condition_its_handling_code() -> None:
    functions = {k for k, r in STACK.resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(CORRIDORS.values()) | set(RUNS_AS.values()) == functions
    assert set(handler_modules(STACK).values()) == functions
    for module in [*CORRIDORS, *RUNS_AS, *handler_modules(STACK)]:
        importlib.import_module(module)
    for function in functions:
        assert statements(STACK, function)  # every policy readable
    for module, qualified, _ in UNEVALUATED_CONDITIONS.values():
        target: Any = importlib.import_module(module)
        for part in qualified.split("."):
            target = getattr(target, part)  # the code that handles the denial exists


def _called_from(*modules: str) -> tuple[str | None, str | None]:
    """attribute() as a call sees it when made through frames of these modules, outermost first."""
    inner: Any = None
    for module in reversed(modules):
        scope: dict[str, Any] = {"__name__": module, "attribute": attribute, "sys": sys, "inner": inner}
        # A function defined in a namespace named after the module: its frame is that module's.
        exec("def run():\n    return inner() if inner else attribute(sys._getframe())", scope)  # noqa: S102
        inner = scope["run"]
    found: tuple[str | None, str | None] = inner()
    return found


@pytest.mark.parametrize(("module", "function"), [*CORRIDORS.items(), ("grantwatch.cli", None)])
def test_a_call_is_attributed_to_the_corridor_on_the_stack(module: str, function: str | None) -> None:
    assert _called_from("grantwatch.cli", module, "grantwatch.adapters.store") == (
        function,
        "grantwatch.adapters.store" if function else None,
    )


def test_the_innermost_corridor_wins_and_a_tests_own_call_is_no_functions() -> None:
    nested = _called_from("grantwatch.reconciler", "grantwatch.evaluator", "grantwatch.adapters.notifier")
    assert nested == ("EvaluatorFunction", "grantwatch.adapters.notifier")
    handler = _called_from("grantwatch.handlers.recorder", "grantwatch.adapters.rejected")
    assert handler == ("RecorderFunction", "grantwatch.adapters.rejected")
    assert _called_from("grantwatch.healer", "tests.integration.test_healing") == (None, None)


def test_the_contract_deploys_the_temporary_role_the_self_healing_tests_configure() -> None:
    """Else the role switch's iam:PassRole statements would not exist in the stack the calls are checked
    against, or would name another role than the one the tests pass."""
    from tests.support.aws import TEMPORARY_ROLE
    from tests.support.iam_contract import PARAMETERS

    assert PARAMETERS["SelfHealingTemporaryRoleArn"] == TEMPORARY_ROLE
