"""Security: least privilege and encryption in both templates, no secret in any log, queue message, notice
or item of a full replay, and notices that untrusted names cannot turn into something else."""

from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.adapters.rejected import SqsRejectedEventSink
from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import app
from grantwatch.domain.alerts import Incident
from grantwatch.domain.facts import Actor
from grantwatch.domain.notices import MAX_SUBJECT, alert_notice, resolved_notice
from grantwatch.domain.risk import Cause, Evidence
from grantwatch.evaluator import Evaluator
from grantwatch.handlers import evaluator as evaluator_handler
from grantwatch.handlers import recorder as recorder_handler
from grantwatch.recorder import Outcome
from grantwatch.settings import Settings
from tests.support.lambda_context import FakeLambdaContext
from tests.support.reliability.harness import new_table, scan_all
from tests.support.samples import ROOT, TEMPLATE, load_event
from tests.support.sqs import SqsRules
from tests.support.templates import load_template

TEMPLATES = {
    path.name: load_template(path)
    for path in (TEMPLATE, ROOT / "member" / "forwarder.yaml", ROOT / "forwarders" / "iam-role-events.yaml")
}


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement in a template: inline function policies, roles, resource policies."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(name: str, value: Any) -> None:
        if isinstance(value, dict):
            if "Effect" in value and "Action" in value:
                found.append((name, value))
            for item in value.values():
                walk(name, item)
        elif isinstance(value, list):
            for item in value:
                walk(name, item)

    for name, resource in template["Resources"].items():
        walk(name, resource.get("Properties", {}))
    return found


# Actions that take no resource-level permission in IAM: only these may name Resource "*".
CANNOT_BE_SCOPED = {
    "lambda:ListFunctions",
    "kms:ListKeys",
    "organizations:ListAccounts",
    "xray:PutTraceSegments",  # the canary's own role (the others' are SAM's managed policy)
    "xray:PutTelemetryRecords",
    "dynamodb:ListTables",
    "ec2:DescribeVolumes",  # as every EC2 Describe action
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_allow_names_its_actions_and_resources(name: str) -> None:
    statements = _statements(TEMPLATES[name])
    assert statements
    for resource, statement in statements:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(a != "*" and not a.endswith(":*") for a in actions), (resource, actions)
        key_policy = TEMPLATES[name]["Resources"][resource]["Type"] == "AWS::KMS::Key"
        if "Resource" in statement and not key_policy:  # (a key policy's "*" is the key itself)
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            assert "*" not in resources or set(actions) <= CANNOT_BE_SCOPED, (resource, statement)
        if statement.get("Principal") == "*":  # anyone: only with a condition that narrows it
            assert statement.get("Condition"), (resource, statement)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_store_is_encrypted_and_every_skip_has_a_reason(name: str) -> None:
    for logical_id, resource in TEMPLATES[name]["Resources"].items():
        props = resource.get("Properties", {})
        match resource["Type"]:
            case "AWS::SQS::Queue":
                assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), logical_id
            case "AWS::SNS::Topic":
                assert props.get("KmsMasterKeyId"), logical_id
            case "AWS::DynamoDB::Table":
                assert props["SSESpecification"]["SSEEnabled"] is True
                assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
                assert props["DeletionProtectionEnabled"] is True
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            assert len(skip.get("comment", "")) >= 60, f"{logical_id}: skip {skip['id']} without a reason"


CANARIES = (
    "AQpAM2RhZ-CANARY-GRANT-TOKEN",
    "CANARY-ENVIRONMENT-VALUE-hunter2",
    "ASIACANARYACCESSKEY1",
    "CANARY/SECRET+ACCESS/KEY",
    "CANARY-SESSION-TOKEN",
)


def _with_secrets(event: dict[str, Any]) -> dict[str, Any]:
    """The event as if CloudTrail had let through everything that must never be kept."""
    detail = event["detail"]
    token, env_value, key_id, secret, session = CANARIES
    detail["userIdentity"]["accessKeyId"] = key_id
    detail["userIdentity"]["sessionCredentials"] = {"secretAccessKey": secret, "sessionToken": session}
    params = detail.setdefault("requestParameters", None) or {}
    detail["requestParameters"] = params
    params["grantTokens"] = [token]
    params["grantToken"] = token
    params["environment"] = {"variables": {"DATABASE_PASSWORD": env_value}}
    if isinstance(detail.get("responseElements"), dict):
        detail["responseElements"]["grantToken"] = token
        detail["responseElements"]["environment"] = {"variables": {"DATABASE_PASSWORD": env_value}}
    return event


class RecordingSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **request: Any) -> dict[str, str]:
        self.published.append(request)
        return {"MessageId": str(len(self.published))}


def test_a_full_replay_keeps_and_logs_no_secret(
    table_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Through both Lambda handlers at DEBUG (botocore's request bodies included), the dead-letter queue,
    SNS, the table, and the CLI's replay: none of the planted token, environment value or credential."""
    caplog.set_level(logging.DEBUG)
    story = [
        "lambda-create-function.json",
        "kms-create-grant-lambda.json",
        "lambda-update-function-configuration.json",
        "kms-retire-grant-by-admin.json",
    ]
    events = [_with_secrets(load_event(name)) for name in story]
    malformed = _with_secrets(load_event("kms-create-grant-lambda.json"))
    del malformed["detail"]["responseElements"]["grantId"]

    queues, sns, logs = SqsRules(), RecordingSns(), io.StringIO()
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    from grantwatch.recorder import Recorder

    scheduler = SqsEvaluationScheduler("https://sqs.eu-central-1.amazonaws.com/1/evaluations", queues)  # type: ignore[arg-type]
    hazards = DynamoHazardStore(table_settings)
    recorder = Recorder(grants, functions, hazards, scheduler)
    sink = SqsRejectedEventSink("https://sqs.eu-central-1.amazonaws.com/1/dlq", queues)  # type: ignore[arg-type]
    notifier = SnsNotifier("arn:aws:sns:eu-central-1:210987654321:alerts", sns)  # type: ignore[arg-type]
    monkeypatch.setattr(recorder_handler, "recorder", lambda: recorder)
    monkeypatch.setattr(recorder_handler, "rejected_sink", lambda: sink)
    evaluator = Evaluator(grants, functions, hazards, notifier, scheduler)
    monkeypatch.setattr(evaluator_handler, "evaluator", lambda: evaluator)
    for module in (recorder_handler, evaluator_handler):
        monkeypatch.setattr(module.logger.registered_handler, "stream", logs)
        module.logger.setLevel(logging.DEBUG)

    outcomes = [
        recorder_handler.lambda_handler(e, FakeLambdaContext("grantwatch-recorder"))["outcome"]
        for e in [*events, malformed]
    ]
    assert outcomes == [Outcome.RECORDED] * len(events) + [Outcome.REJECTED]
    bodies = [m for m in queues.messages if "functionArn" in m]
    evaluation = {
        "Records": [
            {"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": json.dumps(b), "attributes": {}}
            for i, b in enumerate(bodies)
        ]
    }
    assert evaluator_handler.lambda_handler(evaluation, FakeLambdaContext("grantwatch-evaluator")) == {
        "batchItemFailures": []
    }
    assert len(sns.published) == 1  # the alert went out, so the whole path ran

    replay_dir = tmp_path / "events"
    replay_dir.mkdir()
    for index, event in enumerate([*events, malformed]):
        (replay_dir / f"{index:02}.json").write_text(json.dumps(event), encoding="utf-8")
    cli = CliRunner().invoke(
        app,
        [
            "replay",
            str(replay_dir),
            "--json",
            "--table",
            new_table(table_settings.endpoint_url or "").table_name,
            "--endpoint-url",
            table_settings.endpoint_url or "",
        ],
        catch_exceptions=False,
    )
    searched = {
        "powertools logs": logs.getvalue(),
        "python logging, botocore at DEBUG": "\n".join(r.getMessage() for r in caplog.records),
        "stdout and stderr": "".join(capsys.readouterr()),
        "dead-letter and evaluation queues": json.dumps(queues.messages),
        "SNS": json.dumps(sns.published),
        "SNS e-mail": "\n".join(json.loads(p["Message"])["email"] for p in sns.published),
        "table": json.dumps(scan_all(table_settings)),
        "CLI replay": cli.output,
    }
    assert '"eventID"' in searched["CLI replay"] and "DeleteItem" not in searched["table"]
    assert "UpdateItem" in searched["python logging, botocore at DEBUG"]  # request bodies were logged
    leaks = {where: [c for c in CANARIES if c in text] for where, text in searched.items()}
    assert leaks == {where: [] for where in searched}


_UNTRUSTED = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300)
_NAME = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=":"), min_size=1, max_size=200)


def _incident(
    name: str, by: str, via: str | None, source: str | None, role: str, grant: str, cause: Cause
) -> Incident:
    at = datetime(2026, 11, 3, 10, tzinfo=UTC)
    return Incident(
        incident_id=f"20261103T100000Z-{grant[:16]}",
        function_arn=f"arn:aws:lambda:eu-central-1:210987654321:function:{name}",
        key_arn=f"arn:aws:kms:eu-central-1:210987654321:key/{grant}",
        role=role,
        cause=cause,
        evidence=Evidence("retired", "RetireGrant", grant, at, Actor(by, "AssumedRole", via, source)),
        detected_at=at,
        grant_id=grant,
        deletion_date=at if cause is Cause.KEY_PENDING_DELETION else None,
        functions_on_key=(f"arn:aws:lambda:eu-central-1:210987654321:function:{name}",),
    )


@given(
    name=_NAME,
    by=_UNTRUSTED,
    via=_UNTRUSTED,
    source=_UNTRUSTED,
    role=_UNTRUSTED,
    grant=_UNTRUSTED,
    cause=st.sampled_from(Cause),
)
def test_untrusted_names_cannot_forge_or_mark_up_a_notice(
    name: str, by: str, via: str, source: str, role: str, grant: str, cause: Cause
) -> None:
    at = datetime(2026, 11, 3, 10, tzinfo=UTC)
    incident = _incident(name, by, via, source, role, grant, cause)
    benign = alert_notice(_incident("f", "x", "y", "z", "r", grant, cause))
    for notice, shape in (
        (alert_notice(incident), benign),
        (resolved_notice(incident, "ok", at, grant), None),
    ):
        assert len(notice.subject) <= MAX_SUBJECT
        assert all(" " <= c <= "~" for c in notice.subject), notice.subject
        for text in (notice.message, notice.email, *notice.attributes.values()):
            for c in text:
                assert c == "\n" or unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
                assert c not in "<>`", text
        if shape is not None:  # the same lines as a notice about harmless names: none added or removed
            assert len(notice.message.splitlines()) == len(shape.message.splitlines())
            assert len(notice.email.splitlines()) == len(shape.email.splitlines())
        block = notice.message.split("Details (JSON)\n", 1)[1]
        assert json.loads(block) == json.loads(json.dumps(notice.details))


def test_bidi_overrides_chat_markup_and_non_ascii_names_are_neutralised() -> None:
    """Found by the property above: a right-to-left override or zero-width space in a principal reached
    the message, a non-ASCII function name the subject (which SNS refuses, so the alert never went out),
    and <!channel> or <url|text> the JSON details, which chat renderers read as markup."""
    incident = _incident(
        "pay\u00e9",
        "arn:aws:sts::210987654321:assumed-role/admin/\u202edana\u200b<!channel>",
        "<https://example.com|console>",
        None,
        "r",
        "abc",
        Cause.GRANT_RETIRED,
    )
    notice = alert_notice(incident)
    assert notice.subject == "[grantwatch] pay?: next cold start will fail (grant retired)"
    assert "admin/?dana??!channel?" in notice.message
    assert "\u202e" not in notice.message and "<" not in notice.message and ">" not in notice.message
    assert "\\u003c!channel\\u003e" in notice.message
    details = json.loads(notice.message.split("Details (JSON)\n", 1)[1])
    assert details["evidence"]["by"] == incident.evidence.actor.principal
