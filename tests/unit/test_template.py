"""template.yaml is the single source of truth: the code's table model, the rule and the layer follow it."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
from moto.events.models import EventPattern

from grantwatch.adapters.functions import FunctionItem, IncidentItem
from grantwatch.adapters.store import GrantItem
from grantwatch.domain.catalogue import (
    CATALOGUE,
    DECRYPT_FAILURES,
    FUNCTION_CALLS,
    GRANT_CALLS,
    KEY_STATE_CALLS,
    ROLE_CALLS,
    rule_pattern,
)
from grantwatch.domain.healing import HEALABLE
from grantwatch.template import table_properties
from tests.support.samples import ROOT, TEMPLATE, load_event, sample_event_files
from tests.support.templates import load_template

TEMPLATE_DOC = load_template(TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE_DOC["Resources"]


def _keys(schema: list[dict[str, str]]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in schema}


MODELS = (GrantItem, FunctionItem, IncidentItem)


def test_the_pynamodb_models_have_the_table_keys_and_indexes_of_the_template() -> None:
    table = table_properties(TEMPLATE_DOC)
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    for name, attribute_type in types.items():
        declaring = [m for m in MODELS if name in m.get_attributes()]
        assert declaring, f"no model declares {name}"
        assert all(m.get_attributes()[name].attr_type == attribute_type for m in declaring), name

    for model in MODELS:
        assert _keys(table["KeySchema"]) == {"HASH": model._hash_keyname, "RANGE": model._range_keyname}

    model_indexes = {index.Meta.index_name: index for m in MODELS for index in m._indexes.values()}
    template_indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(model_indexes) == set(template_indexes)
    for name, index in model_indexes.items():
        declared = template_indexes[name]
        model_keys = {
            ("HASH" if a.is_hash_key else "RANGE"): a.attr_name for a in index.Meta.attributes.values()
        }
        assert model_keys == _keys(declared["KeySchema"]), name
        assert index.Meta.projection.projection_type == declared["Projection"]["ProjectionType"], name


def test_the_table_is_protected() -> None:
    table = RESOURCES["GrantsTable"]
    props = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert props["DeletionProtectionEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def _matches(rule: str, event: dict[str, Any]) -> bool:
    pattern = EventPattern.load(json.dumps(RESOURCES[rule]["Properties"]["EventPattern"]))
    matched: bool = pattern.matches_event(event)  # type: ignore[arg-type]
    return matched


@pytest.mark.parametrize("path", sample_event_files(), ids=lambda p: p.name)
def test_each_sample_invokes_the_recorder_through_exactly_its_rule(path: Any) -> None:
    event = load_event(path.name)
    rules = ("GrantEventsRule", "FunctionEventsRule", "RoleEventsRule", "DecryptFailuresRule")
    matched = {rule for rule in rules if _matches(rule, event)}
    if "errorCode" in event["detail"]:
        expected = {"DecryptFailuresRule"} if event["detail"]["eventName"] == "Decrypt" else set()
    else:
        expected = {
            {"aws.kms": "GrantEventsRule", "aws.lambda": "FunctionEventsRule", "aws.iam": "RoleEventsRule"}[
                event["source"]
            ]
        }
    assert matched == expected


def test_failed_decrypts_are_seen_only_when_the_operator_turns_them_on() -> None:
    rule = RESOURCES["DecryptFailuresRule"]
    assert rule["Condition"] == "ConfirmsWithDecryptFailures"
    assert TEMPLATE_DOC["Parameters"]["ConfirmWithDecryptFailures"]["Default"] == "false"
    assert rule["Properties"]["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


DECRYPT_SHAPES = ("kms-decrypt-access-denied-lambda.json", "kms-decrypt-access-denied-no-context.json")


def _succeeded(event: dict[str, Any]) -> None:
    del event["detail"]["errorCode"], event["detail"]["errorMessage"]


def _throttled(event: dict[str, Any]) -> None:
    event["detail"]["errorCode"] = "ThrottlingException"


def _by_a_user(event: dict[str, Any]) -> None:
    event["detail"]["userIdentity"] = {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEUSER00001",
        "arn": "arn:aws:iam::210987654321:user/dana",
        "accountId": "210987654321",
        "userName": "dana",
    }


def _by_a_service(event: dict[str, Any]) -> None:
    event["detail"]["userIdentity"] = {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}


@pytest.mark.parametrize("sample", DECRYPT_SHAPES)
@pytest.mark.parametrize(
    ("change", "delivered"),
    [
        (lambda e: None, True),
        (lambda e: e["detail"].update(errorCode="KMSDisabledException"), True),
        (lambda e: e["detail"].update(errorCode="NotFoundException"), True),
        (_succeeded, False),
        (_throttled, False),
        (_by_a_user, False),
        (_by_a_service, False),
        (lambda e: e["detail"].update(eventName="GenerateDataKey"), False),
    ],
)
def test_the_decrypt_rule_delivers_both_shapes_of_a_lost_decrypt_and_nothing_else(
    sample: str, change: Any, delivered: bool
) -> None:
    """Both shapes CloudTrail writes of a function's failed Decrypt (with the encryption context that names
    the function; with no request parameters at all), by its execution role's session, with an access-loss
    error; no successful, throttled, user's or service's Decrypt, and no other call."""
    event = load_event(sample)
    change(event)
    assert _matches("DecryptFailuresRule", event) is delivered
    member = load_template(ROOT / "member" / "forwarder.yaml")["Resources"]["DecryptFailuresRule"]
    forwarded = EventPattern.load(json.dumps(member["Properties"]["EventPattern"]))
    assert forwarded.matches_event(event) is delivered  # type: ignore[arg-type]


# Which of the catalogue's kinds each rule delivers, in the central stack and in both forwarders.
RULES_OF_THE_CATALOGUE = {
    ("template.yaml", "GrantEventsRule"): (GRANT_CALLS, KEY_STATE_CALLS),
    ("template.yaml", "FunctionEventsRule"): (FUNCTION_CALLS,),
    ("template.yaml", "RoleEventsRule"): (ROLE_CALLS,),
    ("template.yaml", "DecryptFailuresRule"): (DECRYPT_FAILURES,),
    ("member/forwarder.yaml", "KmsEventsRule"): (GRANT_CALLS, KEY_STATE_CALLS),
    ("member/forwarder.yaml", "LambdaFunctionEventsRule"): (FUNCTION_CALLS,),
    ("member/forwarder.yaml", "IamRoleEventsRule"): (ROLE_CALLS,),
    ("member/forwarder.yaml", "DecryptFailuresRule"): (DECRYPT_FAILURES,),
    ("forwarders/iam-role-events.yaml", "RoleEventsForwardingRule"): (ROLE_CALLS,),
}


@pytest.mark.parametrize(("where", "rule"), list(RULES_OF_THE_CATALOGUE), ids=lambda x: str(x))
def test_every_rule_delivers_exactly_what_the_catalogue_declares(where: str, rule: str) -> None:
    resource = load_template(ROOT / where)["Resources"][rule]
    assert resource["Properties"]["EventPattern"] == rule_pattern(*RULES_OF_THE_CATALOGUE[(where, rule)])


def test_every_rule_of_the_templates_is_one_the_catalogue_declares() -> None:
    for where in ("template.yaml", "member/forwarder.yaml", "forwarders/iam-role-events.yaml"):
        resources = load_template(ROOT / where)["Resources"]
        rules = {
            name
            for name, r in resources.items()
            if r["Type"] == "AWS::Events::Rule" and not _routes_notices(r)
        }
        declared = {rule for place, rule in RULES_OF_THE_CATALOGUE if place == where}
        assert rules == declared, where
    covered = {kind for kinds in RULES_OF_THE_CATALOGUE.values() for kind in kinds}
    assert covered == set(CATALOGUE)


def test_the_reconciler_may_list_grants_functions_and_resources_on_keys_and_record_repairs_only() -> None:
    granted = _granted("ReconcilerFunction")
    assert {action for action, _ in granted} == {
        "kms:ListGrants",
        "lambda:ListFunctions",
        "lambda:GetFunctionConfiguration",
        "dynamodb:ListTables",
        "dynamodb:DescribeTable",
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "ec2:DescribeVolumes",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
    }
    wildcards = {action for action, resource in granted if resource == json.dumps("*")}
    # the calls with no resource-level permission
    assert wildcards == {"lambda:ListFunctions", "dynamodb:ListTables", "ec2:DescribeVolumes"}
    assert (
        "dynamodb:DescribeTable",
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}),
    ) in granted
    assert ("dynamodb:Scan", json.dumps({"Fn::Sub": "${GrantsTable.Arn}/index/by-key"})) in granted
    schedule = RESOURCES["ReconcilerFunction"]["Properties"]["Events"]["Schedule"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert TEMPLATE_DOC["Parameters"]["ReconcileSchedule"]["Default"] == "rate(1 hour)"


@pytest.mark.parametrize(
    ("event_name", "matches"),
    [
        ("UpdateFunctionConfiguration20150331v2", True),
        ("CreateFunction20150331", True),
        ("DeleteFunction20150331", True),
        ("UpdateFunctionCode20150331v2", False),
        ("DeleteFunctionConcurrency20171031", False),
        ("CreateFunctionUrlConfig20211031", False),
        ("Invoke", False),
    ],
)
def test_the_function_rule_matches_lambda_api_versions_by_prefix(event_name: str, matches: bool) -> None:
    event = load_event("lambda-update-function-configuration.json")
    event["detail"]["eventName"] = event_name
    assert _matches("FunctionEventsRule", event) is matches


def test_the_rule_does_not_invoke_for_other_kms_calls() -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["eventName"] = "Decrypt"
    assert not _matches("GrantEventsRule", event)


def test_the_rule_retries_and_has_a_dead_letter_queue() -> None:
    [target] = RESOURCES["GrantEventsRule"]["Properties"]["Targets"]
    for rule in ("FunctionEventsRule", "RoleEventsRule", "DecryptFailuresRule"):
        assert RESOURCES[rule]["Properties"]["Targets"] == [target]
    assert 0 < target["RetryPolicy"]["MaximumRetryAttempts"] <= 185  # EventBridge's bounds
    event_age = TEMPLATE_DOC["Parameters"]["EventMaximumAgeSeconds"]
    assert 60 <= event_age["MinValue"] <= event_age["Default"] <= event_age["MaxValue"] <= 86400
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["RecorderDeadLetterQueue", "Arn"]}
    on_failure = RESOURCES["RecorderFunction"]["Properties"]["EventInvokeConfig"]["DestinationConfig"][
        "OnFailure"
    ]
    assert on_failure["Destination"] == {"Fn::GetAtt": ["RecorderDeadLetterQueue", "Arn"]}


def _routes_notices(rule: dict[str, Any]) -> bool:
    """A rule on the alert bus, routing grantwatch's own notices (tests/unit/test_channels_template.py)."""
    return bool(rule["Properties"]["EventPattern"].get("source") == ["grantwatch"])


# The opt-in alert channels' statements, tested in tests/unit/test_channels_template.py.
CHANNEL_CONDITIONS = {"HasChatTopic", "HasAlertEventBus", "ImportsFindings"}


def _statements(function: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in RESOURCES[function]["Properties"]["Policies"]:
        statements.extend(
            s for s in policy["Statement"] if s.get("Fn::If", [None])[0] not in CHANNEL_CONDITIONS
        )
    return statements


def _granted(function: str) -> set[tuple[str, str]]:
    granted = set()
    for statement in _statements(function):
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        granted |= {(action, json.dumps(resource)) for action in actions for resource in resources}
    return granted


TABLE = json.dumps({"Fn::GetAtt": ["GrantsTable", "Arn"]})


def test_the_recorder_may_only_write_its_table_and_send_to_its_queues() -> None:
    assert _granted("RecorderFunction") == {
        ("dynamodb:UpdateItem", TABLE),
        ("dynamodb:GetItem", TABLE),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["RecorderDeadLetterQueue", "Arn"]})),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["EvaluationQueue", "Arn"]})),
    }


def test_the_evaluator_may_read_and_write_its_table_and_publish_to_its_topic() -> None:
    granted = _granted("EvaluatorFunction")
    assert {action for action, _ in granted} == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "sns:Publish",
        "sqs:SendMessage",
    }
    assert ("sns:Publish", json.dumps({"Ref": "AlertTopic"})) in granted
    assert ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["EvaluationQueue", "Arn"]})) in granted
    assert all("*" not in resource for _, resource in granted)


def test_the_settle_window_is_the_evaluation_queues_delivery_delay() -> None:
    queue = RESOURCES["EvaluationQueue"]["Properties"]
    assert queue["DelaySeconds"] == {"Ref": "SettleSeconds"}
    assert TEMPLATE_DOC["Parameters"]["SettleSeconds"]["Default"] == 120
    assert TEMPLATE_DOC["Parameters"]["SettleSeconds"]["MaxValue"] <= 900
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["EvaluationDeadLetterQueue", "Arn"]
    }
    assert queue["VisibilityTimeout"] >= 6 * RESOURCES["EvaluatorFunction"]["Properties"]["Timeout"]
    assert RESOURCES["AlertTopic"]["Properties"]["KmsMasterKeyId"]


def test_functions_run_python_3_13_on_arm64_with_log_retention() -> None:
    function_globals = TEMPLATE_DOC["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert RESOURCES["RecorderLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert RESOURCES["RecorderFunction"]["Properties"]["LoggingConfig"]["LogGroup"] == {
        "Ref": "RecorderLogGroup"
    }


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def test_the_layer_ships_every_runtime_dependency_of_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cli_only = {"typer", "rich", "pyyaml", "pydantic"}  # tests/unit/test_import_path.py
    provided_by_runtime = {"boto3"}
    needed = {_name(r) for r in project["dependencies"]} - cli_only - provided_by_runtime
    lines = (ROOT / "layers/deps/requirements.txt").read_text().splitlines()
    pinned = {_name(line) for line in lines if line.strip() and not line.startswith("#")}
    assert needed <= pinned
    assert all("==" in line for line in lines if line.strip() and not line.startswith("#"))


def test_self_healing_is_off_by_default_and_every_resource_of_it_is_conditional() -> None:
    parameters = TEMPLATE_DOC["Parameters"]
    assert parameters["SelfHealing"]["Default"] == "false"
    assert parameters["SelfHealingMaxAttempts"]["Default"] == 2
    assert re.fullmatch(
        parameters["SelfHealingTag"]["AllowedPattern"], parameters["SelfHealingTag"]["Default"]
    )
    assert not re.fullmatch(
        parameters["SelfHealingTag"]["AllowedPattern"], 'x": "*", "y'
    )  # no JSON breaks out
    remediation = {name for name in RESOURCES if name.startswith("Remediation")}
    assert remediation >= {
        "RemediationFunction",
        "RemediationTaggedFunctionsRolePolicy",
        "RemediationErrorsAlarm",
    }
    assert all(RESOURCES[name].get("Condition") == "SelfHealingEnabled" for name in remediation)


def test_the_remediation_function_hears_only_healable_alerts() -> None:
    event = RESOURCES["RemediationFunction"]["Properties"]["Events"]["HealableAlerts"]["Properties"]
    assert event["Topic"] == {"Ref": "AlertTopic"}
    assert event["FilterPolicyScope"] == "MessageAttributes"
    assert sorted(event["FilterPolicy"]["alertType"]) == sorted(c.value for c in HEALABLE)
    assert not {"heal-succeeded", "heal-failed", "resolved"} & set(
        event["FilterPolicy"]["alertType"]
    )  # no loop
    invoke = RESOURCES["RemediationFunction"]["Properties"]["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] <= 1
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["RemediationDeadLetterQueue", "Arn"]
    }


def _remediation_statements(*, temporary_role: bool) -> list[dict[str, Any]]:
    """The remediation function's inline statements, with each Fn::If on HealsWithTemporaryRole taken."""
    policies = RESOURCES["RemediationFunction"]["Properties"]["Policies"]
    statements = []
    for statement in (
        s for p in policies if isinstance(p, dict) and "Statement" in p for s in p["Statement"]
    ):
        if "Fn::If" in statement:
            condition, when_set, when_empty = statement["Fn::If"]
            if condition in CHANNEL_CONDITIONS:
                continue
            assert condition == "HealsWithTemporaryRole"
            assert when_empty == {"Ref": "AWS::NoValue"}
            if not temporary_role:
                continue
            statement = when_set
        statements.append(statement)
    return statements


def _actions(statement: dict[str, Any]) -> set[str]:
    return {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])


def test_the_remediation_function_may_change_tagged_functions_only() -> None:
    tagged = RESOURCES["RemediationTaggedFunctionsRolePolicy"]
    # an inline policy of the function's own role: the Serverless Application Repository takes no managed one
    assert tagged["Type"] == "AWS::IAM::Policy"
    assert tagged["Properties"]["Roles"] == [{"Ref": "RemediationFunctionRole"}]
    assert "Role" not in RESOURCES["RemediationFunction"]["Properties"]  # SAM's generated role is that one
    inline = _remediation_statements(temporary_role=False)
    inline_actions = {a for s in inline for a in _actions(s)}
    assert not any(action.startswith("lambda:") for action in inline_actions)  # Lambda only through the tag
    assert inline_actions == {
        "kms:DescribeKey",
        "kms:ListGrants",
        "kms:CreateGrant",
        "kms:Encrypt",
        "kms:Decrypt",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sns:Publish",
        "sqs:SendMessage",
    }
    assert all("*" not in json.dumps(s["Resource"]).replace("key/*", "") for s in inline)
    [create_grant] = [s for s in inline if s["Action"] == "kms:CreateGrant"]
    assert create_grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert "kms:ViaService" in create_grant["Condition"]["StringEquals"]

    text = RESOURCES["RemediationTaggedFunctionsRolePolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"]
    document = json.loads(
        text.replace("${SelfHealingTag}", "grantwatch:self-heal")
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "eu-central-1")
        .replace("${AWS::AccountId}", "210987654321")
    )
    [statement] = document["Statement"]
    assert set(statement["Action"]) == {
        "lambda:GetFunctionConfiguration",
        "lambda:ListTags",
        "lambda:UpdateFunctionConfiguration",
    }
    assert statement["Resource"] == "arn:aws:lambda:eu-central-1:210987654321:function:*"
    assert statement["Condition"] == {
        "StringEqualsIgnoreCase": {"aws:ResourceTag/grantwatch:self-heal": "true"}
    }


def test_the_key_switch_may_configure_a_customer_managed_key_through_lambda_only() -> None:
    """Lambda documents kms:CreateGrant and kms:Encrypt for configuring a customer managed key on a function,
    and kms:Decrypt for the environment already encrypted with it: all three, and only via Lambda."""
    inline = _remediation_statements(temporary_role=False)
    [encrypt] = [s for s in inline if "kms:Encrypt" in _actions(s)]
    assert _actions(encrypt) == {"kms:Encrypt", "kms:Decrypt"}
    assert encrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "lambda.${AWS::Region}.amazonaws.com"}}
    }
    assert encrypt["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
    }


def test_the_role_switch_may_pass_roles_to_lambda_only_when_a_temporary_role_is_configured() -> None:
    parameter = TEMPLATE_DOC["Parameters"]["SelfHealingTemporaryRoleArn"]
    assert parameter["Default"] == ""
    pattern = parameter["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "arn:aws:iam::210987654321:role/ops/heal-tmp")
    assert not re.fullmatch(pattern, "arn:aws:iam::210987654321:role/*")
    assert not any("iam:PassRole" in _actions(s) for s in _remediation_statements(temporary_role=False))

    passes = [s for s in _remediation_statements(temporary_role=True) if "iam:PassRole" in _actions(s)]
    assert [s["Resource"] for s in passes] == [
        {"Ref": "SelfHealingTemporaryRoleArn"},
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"},  # the function's own, back
    ]
    for statement in passes:
        assert _actions(statement) == {"iam:PassRole"}
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    assert TEMPLATE_DOC["Conditions"]["HealsWithTemporaryRole"] == {
        "Fn::And": [
            {"Fn::Condition": "SelfHealingEnabled"},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "SelfHealingTemporaryRoleArn"}, ""]}]},
        ]
    }
    for function in ("RemediationFunction", "EvaluatorFunction"):  # the heal, and the alerts' fix text
        variables = RESOURCES[function]["Properties"]["Environment"]["Variables"]
        assert variables["GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN"] == {"Ref": "SelfHealingTemporaryRoleArn"}
