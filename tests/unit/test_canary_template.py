"""The canary in the templates: the alarms watch exactly the metric the recorder emits, the rules deliver the
canary's three calls, its key can be used only through a grant, its role may create only its own grant, and
the member stack's inline code is the packaged canary itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from grantwatch import canary
from grantwatch.domain.canary import MEMBER_ROLE_PREFIX, CanaryPath
from grantwatch.handlers import recorder as recorder_handler
from tests.support.canary import as_member, canary_event
from tests.support.cloudformation import Stack
from tests.support.iam_contract import (
    PARAMETERS,
    Call,
    central_stack,
    decide,
    requests_of,
    stands_for,
    statements,
)
from tests.support.samples import ROOT, TEMPLATE

MEMBER = ROOT / "member" / "forwarder.yaml"
CANARY_SOURCE = ROOT / "functions" / "grantwatch" / "canary.py"
ZIPFILE_LIMIT = 4096  # CloudFormation's limit on inline Code.ZipFile (AWS::Lambda::Function Code)
ALARMS = {path: f"Canary{path.value}HeartbeatAlarm" for path in CanaryPath}
CANARY_RESOURCES = ("CanaryKey", "CanaryLogGroup", "CanaryRole", "CanaryRolePolicy", "CanaryFunction")


def _central(**parameters: str) -> Stack:
    return Stack.load(TEMPLATE, parameters=parameters)


def _member(**parameters: str) -> Stack:
    central = "arn:aws:events:eu-central-1:210987654321:event-bus/grantwatch"
    given = {"CentralEventBusArn": central, "ForwardDecryptFailures": "true", **parameters}
    return Stack.load(MEMBER, parameters=given, account="111122223333", region="eu-west-1")


def _alarms_on_heartbeats(stack: Stack) -> dict[str, dict[str, Any]]:
    return {
        name: stack.resolve(r["Properties"])
        for name, r in stack.resources.items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == recorder_handler.HEARTBEAT_METRIC
        and stack.exists(name)
    }


def test_one_alarm_per_path_watches_the_metric_the_recorder_emits() -> None:
    stack = _central(ConfirmWithDecryptFailures="true")
    namespace = stack.template["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"
    ]
    service = stack.resources["RecorderFunction"]["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_SERVICE_NAME"
    ]
    alarms = _alarms_on_heartbeats(stack)
    assert set(alarms) == set(ALARMS.values())
    for path, name in ALARMS.items():
        alarm = alarms[name]
        assert alarm["Namespace"] == namespace == "grantwatch"
        assert alarm["Dimensions"] == [
            {"Name": "service", "Value": service},
            {"Name": "path", "Value": path.value},
        ]
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Sum",
            1,
            "LessThanThreshold",
        )
        assert alarm["TreatMissingData"] == "breaching"  # silence is what it is for
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 2
        assert f"deaf to {path.value}" in alarm["AlarmDescription"]
        assert "docs/canary.md" in alarm["AlarmDescription"]
        other = stack.resolve(stack.resources["RecorderErrorsAlarm"]["Properties"])
        assert alarm.get("AlarmActions") == other.get("AlarmActions")
    assert {p.value for p in CanaryPath} == {"CreateGrant", "RetireGrant", "Decrypt"}


@pytest.mark.parametrize("minutes", [15, 30, 60, 120, 180, 360, 720])
def test_an_alarm_fires_after_two_intervals_without_a_heartbeat(minutes: int) -> None:
    stack = _central(CanaryIntervalMinutes=str(minutes), ConfirmWithDecryptFailures="true")
    allowed = stack.template["Parameters"]["CanaryIntervalMinutes"]["AllowedValues"]
    assert sorted(int(v) for v in allowed if int(v)) == [15, 30, 60, 120, 180, 360, 720]
    for name in ALARMS.values():
        alarm = stack.resolve(stack.resources[name]["Properties"])
        assert alarm["Period"] * alarm["EvaluationPeriods"] == 2 * minutes * 60
        assert alarm["Period"] * alarm["EvaluationPeriods"] <= 86400  # CloudWatch's evaluation range
    schedule = stack.resolve(stack.resources["CanaryFunction"]["Properties"]["Events"]["Schedule"])
    assert schedule["Properties"]["ScheduleExpression"] == f"rate({minutes} minutes)"


def test_without_the_decrypt_rule_there_is_no_decrypt_alarm() -> None:
    stack = _central()
    assert stack.parameter("ConfirmWithDecryptFailures") == "false"
    assert set(_alarms_on_heartbeats(stack)) == {
        ALARMS[CanaryPath.CREATE_GRANT],
        ALARMS[CanaryPath.RETIRE_GRANT],
    }


def test_zero_turns_the_canary_off_entirely() -> None:
    stack = _central(CanaryIntervalMinutes="0", ConfirmWithDecryptFailures="true")
    assert stack.parameter("CanaryIntervalMinutes") == "0"
    assert not any(stack.exists(name) for name in CANARY_RESOURCES)
    assert _alarms_on_heartbeats(stack) == {}
    assert stack.template["Outputs"]["CanaryFunctionName"]["Condition"] == "RunsCanary"
    assert not stack.condition("RunsCanary")
    recorder = stack.resolve(stack.resources["RecorderFunction"]["Properties"]["Environment"])
    assert "GRANTWATCH_CANARY_KEY_ARN" not in recorder["Variables"]


def test_on_by_default_every_hour_and_the_recorder_knows_the_key() -> None:
    stack = _central()
    assert stack.parameter("CanaryIntervalMinutes") == "60"
    assert all(stack.exists(name) for name in CANARY_RESOURCES)
    key = stack.attribute("CanaryKey", "Arn")
    recorder = stack.resolve(stack.resources["RecorderFunction"]["Properties"]["Environment"])
    assert recorder["Variables"]["GRANTWATCH_CANARY_KEY_ARN"] == key
    function = stack.resolve(stack.resources["CanaryFunction"]["Properties"])
    assert function["Handler"] == "grantwatch.handlers.canary.lambda_handler"
    assert function["Environment"]["Variables"]["GRANTWATCH_CANARY_KEY_ARN"] == key
    assert function["Environment"]["Variables"]["GRANTWATCH_CANARY_ROLE_ARN"] == stack.attribute(
        "CanaryRole", "Arn"
    )
    assert stack.resolve(stack.template["Outputs"]["CanaryFunctionName"]["Value"]) == stack.ref(
        "CanaryFunction"
    )


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    matched: bool = EventPattern.load(json.dumps(pattern)).matches_event(event)  # type: ignore[arg-type]
    return matched


RULE_OF_PATH = {
    CanaryPath.CREATE_GRANT: "GrantEventsRule",
    CanaryPath.RETIRE_GRANT: "GrantEventsRule",
    CanaryPath.DECRYPT: "DecryptFailuresRule",
}


@pytest.mark.parametrize("path", list(CanaryPath))
def test_each_canary_call_reaches_the_recorder_through_its_rule_and_no_other(path: CanaryPath) -> None:
    stack = _central()
    event = canary_event(path)
    rules = ("GrantEventsRule", "FunctionEventsRule", "RoleEventsRule", "DecryptFailuresRule")
    matched = {r for r in rules if _matches(stack.resources[r]["Properties"]["EventPattern"], event)}
    assert matched == {RULE_OF_PATH[path]}


@pytest.mark.parametrize("path", list(CanaryPath))
def test_a_member_canarys_call_is_forwarded_to_the_central_bus(path: CanaryPath) -> None:
    stack = _member()
    event = as_member(canary_event(path), region="eu-west-1")
    forwarding = {
        name: r["Properties"]["EventPattern"]
        for name, r in stack.resources.items()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"] and stack.exists(name)
    }
    matched = {name for name, pattern in forwarding.items() if _matches(pattern, event)}
    assert matched == {"DecryptFailuresRule" if path is CanaryPath.DECRYPT else "KmsEventsRule"}


USES_THE_KEY = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo")


@pytest.mark.parametrize("stack", [_central(), _member()], ids=["central", "member"])
def test_nobody_may_use_the_canary_key_but_through_a_grant(stack: Stack) -> None:
    key = stack.resolve(stack.resources["CanaryKey"]["Properties"])
    assert key["EnableKeyRotation"] is False  # it protects no data: rotation would only cost
    for statement in key["KeyPolicy"]["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{stack.account}:root"}
        actions = statement["Action"]
        assert not any("*" in a for a in actions)
        assert not set(USES_THE_KEY) & set(actions)


def _create_grant(role: str, key: str, **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "KeyId": key,
        "GranteePrincipal": role,
        "RetiringPrincipal": role,
        "Operations": ["Encrypt", "Decrypt"],
        "Constraints": {"EncryptionContextEquals": canary.CONTEXT},
        "Name": "grantwatch-canary",
    }
    return {**params, **changes}


def _allowed(policy: list[dict[str, Any]], operation: str, params: dict[str, Any], stack: Stack) -> bool:
    call = Call("CanaryFunction", "kms", operation, stack.region, None, params)
    return all(decide(policy, request).allowed for request in requests_of(call))


@pytest.mark.parametrize("stack", [central_stack(), _member()], ids=["central", "member"])
def test_the_canary_role_may_create_only_its_own_grant_on_its_own_key_and_never_decrypt(stack: Stack) -> None:
    role, key = stack.attribute("CanaryRole", "Arn"), stack.attribute("CanaryKey", "Arn")
    if stack.template is central_stack().template:
        policy = statements(stack, "CanaryFunction")
    else:
        documents = [
            stack.resolve(stack.resources[r]["Properties"]["PolicyDocument"]) for r in ("CanaryRolePolicy",)
        ]
        role_policies = stack.resolve(stack.resources["CanaryRole"]["Properties"]["Policies"])
        policy = [s for d in documents + [p["PolicyDocument"] for p in role_policies] for s in d["Statement"]]
    assert _allowed(policy, "CreateGrant", _create_grant(role, key), stack)
    other_key = key.replace("CanaryKey", "SomeoneElsesKey")
    assert not _allowed(policy, "CreateGrant", _create_grant(role, other_key), stack)
    assert not _allowed(policy, "CreateGrant", _create_grant(role.replace("Canary", "Other"), key), stack)
    wider = _create_grant(role, key, Operations=["Encrypt", "Decrypt", "CreateGrant"])
    assert not _allowed(policy, "CreateGrant", wider, stack)
    unconstrained = _create_grant(role, key, Constraints={})
    assert not _allowed(policy, "CreateGrant", unconstrained, stack)
    for operation in ("Decrypt", "Encrypt", "RetireGrant", "RevokeGrant"):
        assert not _allowed(policy, operation, {"KeyId": key}, stack), operation


def test_the_member_canary_is_the_packaged_canary_inline() -> None:
    code = _member().resources["CanaryFunction"]["Properties"]["Code"]["ZipFile"]
    assert code == CANARY_SOURCE.read_text(encoding="utf-8"), "run: python scripts/inline_canary.py"
    assert len(code) <= ZIPFILE_LIMIT
    assert _member().resources["CanaryFunction"]["Properties"]["Handler"] == "index.lambda_handler"


def test_the_member_canarys_role_is_named_as_the_recorder_recognises_it() -> None:
    stack = _member()
    name = stack.resolve(stack.resources["CanaryRole"]["Properties"]["RoleName"])
    assert name == f"{MEMBER_ROLE_PREFIX}{stack.region}"
    assert len(name) <= 64  # IAM's limit on a role name, with the longest region names
    assert stack.parameter("CanaryIntervalMinutes") == "60"
    schedule = stack.resolve(stack.resources["CanarySchedule"]["Properties"])
    assert schedule["ScheduleExpression"] == "rate(60 minutes)"
    assert schedule["Target"]["Arn"] == stack.attribute("CanaryFunction", "Arn")
    assert schedule["Target"]["RoleArn"] == stack.attribute("CanaryScheduleRole", "Arn")
    [invoke] = stack.resolve(stack.resources["CanaryScheduleRole"]["Properties"]["Policies"])
    [statement] = invoke["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == (
        "lambda:InvokeFunction",
        schedule["Target"]["Arn"],
    )


def test_the_member_canary_runs_only_where_events_are_forwarded() -> None:
    own_bus = "arn:aws:events:eu-west-1:111122223333:event-bus/default"
    assert not _member(CentralEventBusArn=own_bus).condition("RunsCanary")
    assert not _member(CanaryIntervalMinutes="0").condition("RunsCanary")
    assert _member().condition("RunsCanary")
    assert _member().template["Outputs"]["CanaryFunctionName"]["Condition"] == "RunsCanary"


def test_the_iam_contract_deploys_the_canary() -> None:
    assert PARAMETERS.get("CanaryIntervalMinutes", "60") != "0"
    assert central_stack().exists("CanaryFunction")
    assert stands_for("CanaryKey", "arn:aws:kms:us-east-1:123456789012:key/unit-canary-key").endswith(
        "unit-canary-key"
    )


def test_the_inliner_rewrites_only_the_code_block(tmp_path: Path) -> None:
    from scripts.inline_canary import MARKER, inlined

    template = f"A:\n{MARKER}\n            old line\n\n            more\n\n  Next:\n    x: 1\n"
    written = inlined(template, "new = 1\n\ndef f():\n    return new\n")
    code = "            new = 1\n\n            def f():\n                return new\n"
    assert written == f"A:\n{MARKER}\n{code}\n  Next:\n    x: 1\n"
