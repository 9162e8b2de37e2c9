"""The IAM contract's checker (tests/support/iam_contract.py) catches what template.yaml does not allow, and
reads the policies as AWS does: wildcards, conditions, an index's own ARN, a transaction's items."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.support.iam_contract import (
    CORRIDORS,
    RUNS_AS,
    STACK_ACCOUNT,
    STACK_REGION,
    UNEVALUATED_CONDITIONS,
    Call,
    Checker,
    Recording,
    Request,
    attribute,
    central_stack,
    decide,
    handler_modules,
    stands_for,
    statements,
    uncovered,
)

REGION, ACCOUNT = STACK_REGION, STACK_ACCOUNT
STACK = central_stack()
OTHER_ACCOUNT, OTHER_REGION = "999988887777", "eu-west-1"
# The names the crafted calls below use, each standing for its template resource as a fixture's would.
TABLE = stands_for("GrantsTable", "grantwatch-unit-table")
ALERT_TOPIC = stands_for("AlertTopic", f"arn:aws:sns:{REGION}:{ACCOUNT}:grantwatch-unit-alerts")
CHAT_TOPIC = stands_for("AlertChatTopic", f"arn:aws:sns:{REGION}:{ACCOUNT}:grantwatch-unit-chat")
REJECTED_QUEUE = stands_for(
    "RecorderDeadLetterQueue", f"http://127.0.0.1:1/{ACCOUNT}/grantwatch-unit-rejected"
)
ORGANIZATION_QUEUE = stands_for(
    "OrganizationQueue", f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/grantwatch-unit-organization"
)


def _call(
    function: str,
    service: str,
    operation: str,
    adapter: str | None = None,
    region: str = REGION,
    **params: Any,
) -> Call:
    return Call(function, service, operation, region, adapter, params)


def _violations(*calls: Call) -> list[str]:
    checker = Checker()
    for call in calls:
        checker.check(call)
    return sorted(checker.violations)


def _item(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "X"}}


def test_a_call_the_template_does_not_allow_is_a_violation() -> None:
    table = TABLE
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


def test_the_table_topic_and_queue_the_call_names_are_checked_not_the_functions_environment() -> None:
    """The contract used to take a call's table, topic and queue from the function's environment in
    template.yaml: a write to someone else's table passed."""

    def update(table: str) -> Call:
        return _call("RecorderFunction", "dynamodb", "UpdateItem", TableName=table, Key=_item("GRANT#1"))

    assert _violations(update(TABLE)) == []
    [unknown] = _violations(update("someone-elses-table"))
    assert "someone-elses-table stands for no resource of template.yaml" in unknown
    [elsewhere] = _violations(update(f"arn:aws:dynamodb:{OTHER_REGION}:{ACCOUNT}:table/{TABLE}"))
    assert f"dynamodb:UpdateItem on arn:aws:dynamodb:{OTHER_REGION}:{ACCOUNT}:table/" in elsewhere
    # The fan-out may publish to the alert topic, not to the chat topic (its environment names the former).
    assert _violations(_call("OrganizationFanOutFunction", "sns", "Publish", TopicArn=ALERT_TOPIC)) == []
    [chat] = _violations(_call("OrganizationFanOutFunction", "sns", "Publish", TopicArn=CHAT_TOPIC))
    assert "sns:Publish on arn:aws:sns:" in chat and "AlertChatTopic" in chat
    # The recorder may report a rejected event to its dead-letter queue, never to the organization's queue.
    assert _violations(_call("RecorderFunction", "sqs", "SendMessage", QueueUrl=REJECTED_QUEUE)) == []
    [queue] = _violations(_call("RecorderFunction", "sqs", "SendMessage", QueueUrl=ORGANIZATION_QUEUE))
    assert "sqs:SendMessage on arn:aws:sqs:" in queue and "OrganizationQueue" in queue
    [unnamed] = _violations(_call("EvaluatorFunction", "sns", "Publish", TopicArn=f"{ALERT_TOPIC}-not"))
    assert "grantwatch-unit-alerts-not stands for no resource" in unnamed


def test_a_central_functions_call_into_another_account_or_region_is_refused() -> None:
    """The contract used to resolve each policy in the account and region of the resource the call named,
    so a statement scoped to ${AWS::AccountId} or ${AWS::Region} could never deny."""

    def list_grants(key: str, region: str = REGION) -> Call:
        return _call("ReconcilerFunction", "kms", "ListGrants", region=region, KeyId=key)

    assert _violations(list_grants(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5f1e2d3c")) == []
    [account] = _violations(list_grants(f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/5f1e2d3c"))
    assert f"kms:ListGrants on arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/5f1e2d3c: no statement" in account
    [region] = _violations(list_grants(f"arn:aws:kms:{OTHER_REGION}:{ACCOUNT}:key/5f1e2d3c"))
    assert f"arn:aws:kms:{OTHER_REGION}:{ACCOUNT}:key/5f1e2d3c: no statement allows it" in region
    # A bare key id is a key of the client's region: a client of another region reads another region's key.
    [bare] = _violations(list_grants("5f1e2d3c", region=OTHER_REGION))
    assert f"arn:aws:kms:{OTHER_REGION}:{ACCOUNT}:key/5f1e2d3c" in bare
    elsewhere = f"arn:aws:lambda:{OTHER_REGION}:{OTHER_ACCOUNT}:function:invoice-renderer"
    [function] = _violations(
        _call("RemediationFunction", "lambda", "GetFunctionConfiguration", FunctionName=elsewhere)
    )
    assert "no statement allows it" in function


def test_a_member_roles_call_is_decided_by_that_role_in_the_members_account() -> None:
    member = "111122223333"
    role = f"arn:aws:iam::{member}:role/grantwatch-member-reader"

    def as_member(operation: str, key: str, assumed: str = role) -> Call:
        return Call(
            "OrganizationWorkerFunction", "kms", operation, OTHER_REGION, None, {"KeyId": key}, assumed
        )

    assert _violations(as_member("ListGrants", f"arn:aws:kms:{OTHER_REGION}:{member}:key/k")) == []
    assert _violations(as_member("ListGrants", "k")) == []  # a bare id: the member's key in its region
    [other] = _violations(as_member("ListGrants", f"arn:aws:kms:{OTHER_REGION}:{OTHER_ACCOUNT}:key/k"))
    assert "no statement allows it" in other
    [write] = _violations(as_member("RetireGrant", f"arn:aws:kms:{OTHER_REGION}:{member}:key/k"))
    assert "kms:RetireGrant" in write
    [stranger] = _violations(as_member("ListGrants", "k", f"arn:aws:iam::{member}:role/admin"))
    assert "a role no template of the stack creates" in stranger


def test_the_accounts_own_tables_databases_and_volumes_are_read_in_its_account_and_region_only() -> None:
    """What keys the account's resources are on: the tables the resource reader names are the account's own
    (not the stack's table), RDS lists are authorized against `db:*` and `cluster:*`."""
    reader = "grantwatch.adapters.service_resources"

    def read(service: str, operation: str, region: str = REGION, **params: Any) -> Call:
        return _call("ReconcilerFunction", service, operation, reader, region, **params)

    allowed = [
        read("dynamodb", "ListTables"),
        read("dynamodb", "DescribeTable", TableName="orders"),
        read("rds", "DescribeDBInstances"),
        read("rds", "DescribeDBClusters"),
        read("ec2", "DescribeVolumes"),
    ]
    assert _violations(*allowed) == []
    [table] = _violations(read("dynamodb", "DescribeTable", OTHER_REGION, TableName="orders"))
    assert f"dynamodb:DescribeTable on arn:aws:dynamodb:{OTHER_REGION}:{ACCOUNT}:table/orders" in table
    [database] = _violations(read("rds", "DescribeDBInstances", OTHER_REGION))
    assert f"rds:DescribeDBInstances on arn:aws:rds:{OTHER_REGION}:{ACCOUNT}:db:*" in database
    [item] = _violations(read("dynamodb", "GetItem", TableName="orders", Key=_item("X")))
    assert "dynamodb:GetItem on" in item and "no statement allows it" in item
    # the member role may read them in the member's account, in any region
    member = "111122223333"
    role = f"arn:aws:iam::{member}:role/grantwatch-member-reader"
    as_member = [
        Call(
            "OrganizationWorkerFunction",
            "dynamodb",
            "DescribeTable",
            OTHER_REGION,
            reader,
            {"TableName": "t"},
            role,
        ),
        Call("OrganizationWorkerFunction", "rds", "DescribeDBClusters", OTHER_REGION, reader, {}, role),
        Call("OrganizationWorkerFunction", "ec2", "DescribeVolumes", OTHER_REGION, reader, {}, role),
    ]
    assert _violations(*as_member) == []


def test_the_evaluator_writes_only_the_partitions_it_owns() -> None:
    def put(pk: str) -> Call:
        return _call("EvaluatorFunction", "dynamodb", "PutItem", TableName=TABLE, Item=_item(pk))

    assert _violations(put("FUNCTION#arn:aws:lambda:eu-central-1:1:function:f")) == []
    assert _violations(put("KEY#arn:aws:kms:eu-central-1:1:key/k"), put("ROLE#1/role")) == []
    [line] = _violations(put("GRANT#0123"))
    assert "dynamodb:PutItem" in line and "GRANT#0123" in line
    transaction = _call(
        "EvaluatorFunction",
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[
            {"Update": {"TableName": TABLE, "Key": _item("FUNCTION#f")}},
            {"Delete": {"TableName": TABLE, "Key": _item("GRANT#0123")}},
        ],
    )
    [only_the_grant] = _violations(transaction)
    assert "dynamodb:DeleteItem" in only_the_grant and "GRANT#0123" in only_the_grant


def test_a_query_needs_the_indexs_own_arn() -> None:
    def query(function: str, index: str) -> Call:
        return _call(
            function, "dynamodb", "Query", TableName=TABLE, IndexName=index, KeyConditionExpression="#0 = :0"
        )

    assert _violations(query("EvaluatorFunction", "by-function")) == []
    assert _violations(query("EvaluatorFunction", "by-key")) == []  # a key's grants, for resource alerts
    [line] = _violations(query("EvaluatorFunction", "by-grantee"))
    assert line.endswith("/index/by-grantee: no statement allows it")


def test_actions_and_resources_match_with_wildcards_and_resource_names_resolve_in_the_stacks_region() -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5f1e2d3c"
    assert _violations(_call("ReconcilerFunction", "kms", "ListGrants", KeyId=key)) == []
    assert _violations(_call("ReconcilerFunction", "kms", "ListGrants", KeyId="5f1e2d3c")) == []
    [line] = _violations(_call("ReconcilerFunction", "kms", "RetireGrant", KeyId=key))
    assert "kms:RetireGrant" in line
    assert _violations(_call("ReconcilerFunction", "lambda", "ListFunctions")) == []


def test_a_tag_conditioned_call_is_allowed_only_through_its_named_condition() -> None:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:invoice-renderer"
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
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:invoice-renderer"
    role = f"arn:aws:iam::{ACCOUNT}:role/invoice-renderer"
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


def _coverage_query(**params: Any) -> Call:
    return _call("OrganizationFanOutFunction", "dynamodb", "Query", TableName=TABLE, **params)


def test_a_query_whose_leading_keys_cannot_be_computed_is_refused_by_a_leading_keys_condition() -> None:
    """The fan-out may read the COVERAGE partition only (ForAllValues:StringEquals dynamodb:LeadingKeys). A
    query whose partition key the contract could not read used to carry no LeadingKeys, and ForAllValues
    holds for a request without the key: it passed."""
    names = {"#0": "pk", "#1": "sk"}
    coverage = {":0": {"S": "COVERAGE"}, ":1": {"S": "ACCOUNT#1#"}}
    readable = [
        "#0 = :0",
        "(#0 = :0)",
        "#0 = :0 AND begins_with (#1, :1)",
        "begins_with(#1, :1) AND #0 = :0",
        "#0 = :0 AND #1 BETWEEN :1 AND :1",
    ]
    for expression in readable:
        query = _coverage_query(
            KeyConditionExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=coverage,
        )
        assert _violations(query) == [], expression
    heartbeats = {":0": {"S": "HEARTBEAT"}, ":1": {"S": "ACCOUNT#1#"}}
    beats = _coverage_query(
        KeyConditionExpression="#0 = :0", ExpressionAttributeNames=names, ExpressionAttributeValues=heartbeats
    )
    assert _violations(beats) == []  # the member canary check's one Query
    grants = {":0": {"S": "GRANT#1"}, ":1": {"S": "X"}}
    [other] = _violations(
        _coverage_query(
            KeyConditionExpression="#0 = :0", ExpressionAttributeNames=names, ExpressionAttributeValues=grants
        )
    )
    assert "no statement allows it" in other
    legacy = _coverage_query(
        KeyConditions={"pk": {"AttributeValueList": [{"S": "GRANT#1"}], "ComparisonOperator": "EQ"}}
    )
    unparsed = [
        _coverage_query(
            KeyConditionExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=grants,
        )
        for expression in ("(#0) = :0", "#0 = :0 OR #0 = :1", "#0 = :0 AND #0 = :1 AND #1 = :1")
    ]
    for refused in (legacy, *unparsed):
        [line] = _violations(refused)
        statement = "dynamodb:LeadingKeys of statement ReadCoverageAndHeartbeats"
        assert f"{statement}: the request's value cannot be computed" in line


def test_an_item_without_its_partition_key_is_refused_by_a_leading_keys_condition() -> None:
    [line] = _violations(
        _call("EvaluatorFunction", "dynamodb", "PutItem", TableName=TABLE, Item={"sk": {"S": "X"}})
    )
    assert "dynamodb:LeadingKeys of statement OpenAndCloseIncidentsAndLinkDependencies" in line


def test_an_error_inside_the_checker_is_a_violation_never_an_exception_into_the_caller() -> None:
    """The code under test catches Exception in places: an error of the contract raised into it was
    swallowed, and the call went unchecked."""
    [broken] = _violations(_call("EvaluatorFunction", "dynamodb", "TransactWriteItems", TransactItems=None))
    assert broken.startswith("EvaluatorFunction: dynamodb TransactWriteItems: the contract failed: TypeError")

    failures: list[str] = []

    def sink(call: Call) -> None:
        raise RuntimeError("a contract bug")

    recording = Recording(sink, lambda where, error: failures.append(f"{where}: {error!r}"))
    recording.install()
    try:
        client = boto3.client("sts", region_name=REGION, endpoint_url="http://127.0.0.1:9")
        with Stubber(client) as stubbed:
            stubbed.add_response("get_caller_identity", {"Account": ACCOUNT})
            scope: dict[str, Any] = {"__name__": "grantwatch.recorder", "client": client}
            exec("def run():\n    return client.get_caller_identity()", scope)  # noqa: S102
            answer = scope["run"]()
    finally:
        recording.uninstall()
    assert answer["Account"] == ACCOUNT
    assert failures == ["recording GetCallerIdentity: RuntimeError('a contract bug')"]


def test_a_function_no_call_was_checked_for_is_reported() -> None:
    every = {k for k, r in STACK.resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert uncovered(every) == []
    [line] = uncovered(every - {"RemediationFunction"})
    assert line.startswith("RemediationFunction: made no call the contract checked")


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


def _called_from(*modules: str, nested: bool = False) -> tuple[str | None, str | None]:
    """attribute() as a call sees it when made through frames of these modules, outermost first (`nested`:
    while another call is in flight)."""
    inner: Any = None
    for module in reversed(modules):
        scope: dict[str, Any] = {
            "__name__": module,
            "attribute": attribute,
            "sys": sys,
            "inner": inner,
            "nested": nested,
        }
        # A function defined in a namespace named after the module: its frame is that module's.
        code = "def run():\n    return inner() if inner else attribute(sys._getframe(), nested=nested)"
        exec(code, scope)  # noqa: S102
        inner = scope["run"]
    found: tuple[str | None, str | None] = inner()
    return found


@pytest.mark.parametrize(("module", "function"), [*CORRIDORS.items(), ("grantwatch.cli", None)])
def test_a_call_is_attributed_to_the_corridor_on_the_stack(module: str, function: str | None) -> None:
    assert _called_from("grantwatch.cli", module, "grantwatch.adapters.store") == (
        function,
        "grantwatch.adapters.store" if function else None,
    )


def test_the_innermost_corridor_wins_and_an_outer_corridor_runs_it_as_its_own() -> None:
    nested = _called_from("grantwatch.reconciler", "grantwatch.evaluator", "grantwatch.adapters.notifier")
    assert nested == ("EvaluatorFunction", "grantwatch.adapters.notifier")
    handler = _called_from("grantwatch.handlers.recorder", "grantwatch.adapters.rejected")
    assert handler == ("RecorderFunction", "grantwatch.adapters.rejected")
    worker = _called_from("grantwatch.organization", "grantwatch.reconciler", "grantwatch.adapters.readers")
    assert worker == ("OrganizationWorkerFunction", "grantwatch.adapters.readers")


def test_a_test_frame_between_the_corridor_and_botocore_does_not_hide_the_call() -> None:
    """A test double wrapping a client, called by the corridor: the call used to be no function's."""
    assert _called_from("grantwatch.healer", "tests.integration.test_healing") == (
        "RemediationFunction",
        None,
    )
    wrapped = _called_from(
        "tests.unit.x", "grantwatch.reconciler", "grantwatch.adapters.readers", "tests.fakes"
    )
    assert wrapped == ("ReconcilerFunction", "grantwatch.adapters.readers")


def test_a_call_a_test_makes_from_a_botocore_hook_while_another_is_in_flight_is_no_functions() -> None:
    """A stand-in playing an AWS service (Lambda creating a grant when the healer updates a function)."""
    hook = ("grantwatch.healer", "grantwatch.adapters.lambda_healer", "botocore.hooks", "tests.integration.x")
    assert _called_from(*hook, nested=True) == (None, None)
    assert _called_from(*hook) == ("RemediationFunction", "grantwatch.adapters.lambda_healer")
    # Product code's own call made while another is in flight stays the function's.
    product = ("grantwatch.healer", "botocore.hooks", "grantwatch.adapters.lambda_healer")
    assert _called_from(*product, nested=True) == ("RemediationFunction", "grantwatch.adapters.lambda_healer")


def test_the_contract_deploys_the_temporary_role_the_self_healing_tests_configure() -> None:
    """Else the role switch's iam:PassRole statements would not exist in the stack the calls are checked
    against, or would name another role than the one the tests pass."""
    from tests.support.aws import TEMPORARY_ROLE
    from tests.support.iam_contract import PARAMETERS

    assert PARAMETERS["SelfHealingTemporaryRoleArn"] == TEMPORARY_ROLE
