"""`grantwatch doctor` against moto's server: a stack (its outputs and parameters in CloudFormation), a trail,
the rules, the IAM forwarder in us-east-1, the alert topic, the dead-letter queues, Security Hub, the alert
bus, the PagerDuty connection and the heartbeat and reconciliation metrics, all healthy; then each check
failing on its own, with its name, its fix and its exit code. The botocore Stubber answers where moto cannot
(a subscription pending confirmation, a connection that is not authorized, an AccessDenied)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.session import get_session
from botocore.stub import Stubber
from typer.testing import CliRunner

from grantwatch.adapters.clients import Clients
from grantwatch.adapters.doctor import AwsDoctorReads
from grantwatch.cli import app
from grantwatch.cli import doctor as doctor_command
from grantwatch.cli.errors import ExitCode
from grantwatch.local import free_port
from tests.support.aws import ACCOUNT
from tests.support.moto_server import moto_server

REGION = "eu-central-1"
SERVICES = ("CLOUDFORMATION", "CLOUDTRAIL", "EVENTBRIDGE", "SNS", "SQS", "SECURITYHUB", "CLOUDWATCH", "S3")
BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@dataclass
class Stand:
    """moto's AWS as a healthy stack sees it, and the knobs each test turns to break one part."""

    endpoint: str

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def build(self, *, skip: frozenset[str] = frozenset(), now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        outputs: dict[str, str] = {"EventBusArn": BUS_ARN}
        if "trail" not in skip:
            self._trail()
        events = self.client("events")
        for output, name in (
            ("GrantEventsRuleArn", "grantwatch-grant-events"),
            ("FunctionEventsRuleArn", "grantwatch-function-events"),
            ("RoleEventsRuleArn", "grantwatch-role-events"),
        ):
            outputs[output] = events.put_rule(
                Name=name, EventPattern='{"source": ["aws.kms"]}', State="ENABLED"
            )["RuleArn"]
        outputs["DecryptFailuresRuleArn"] = events.put_rule(
            Name="grantwatch-decrypt-failures",
            EventPattern='{"source": ["aws.kms"]}',
            State="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
        )["RuleArn"]
        if "forwarder" not in skip:
            forwarder = self.client("events", "us-east-1")
            forwarder.put_rule(Name="grantwatch-iam-forwarder", EventPattern='{"source": ["aws.iam"]}')
            forwarder.put_targets(
                Rule="grantwatch-iam-forwarder", Targets=[{"Id": "grantwatch", "Arn": BUS_ARN}]
            )
        if "alert-bus" not in skip:
            events.create_event_bus(Name="grantwatch-alerts")
        outputs["PagerDutyConnectionArn"] = events.create_connection(
            Name="grantwatch-pagerduty",
            AuthorizationType="API_KEY",
            AuthParameters={
                "ApiKeyAuthParameters": {"ApiKeyName": "X-Routing-Key", "ApiKeyValue": "not-a-key"}
            },
        )["ConnectionArn"]
        sns = self.client("sns")
        topic = outputs["AlertTopicArn"] = sns.create_topic(Name="grantwatch-alerts")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
        sqs = self.client("sqs")
        for output in (
            "RecorderDeadLetterQueueUrl",
            "EvaluationDeadLetterQueueUrl",
            "PagerDutyDeadLetterQueueUrl",
        ):
            outputs[output] = sqs.create_queue(QueueName=output.removesuffix("Url"))["QueueUrl"]
        if "security-hub" not in skip:
            self.client("securityhub").enable_security_hub()
        paths = ["CreateGrant", "RetireGrant", "Decrypt"]
        self.heartbeats([p for p in paths if p not in skip], now - timedelta(minutes=20))
        if "reconciliation" not in skip:
            self.reconciled(now - timedelta(minutes=25))
        self.stack(outputs, self.parameters())

    def parameters(self) -> dict[str, str]:
        return {
            "EventBusName": "default",
            "ConfirmWithDecryptFailures": "true",
            "SecurityHubFindings": "true",
            "AlertEventBusName": "grantwatch-alerts",
            "PagerDutyRoutingKeySecret": "grantwatch/pagerduty",
            "CanaryIntervalMinutes": "60",
            "ReconcileSchedule": "rate(1 hour)",
        }

    def _trail(self) -> None:
        self.client("s3").create_bucket(
            Bucket="grantwatch-trail", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        cloudtrail = self.client("cloudtrail")
        cloudtrail.create_trail(Name="management", S3BucketName="grantwatch-trail", IsMultiRegionTrail=True)
        cloudtrail.put_event_selectors(
            TrailName="management", EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}]
        )
        cloudtrail.start_logging(Name="management")

    def heartbeats(self, paths: list[str], at: datetime) -> None:
        for path in paths:
            self.client("cloudwatch").put_metric_data(
                Namespace="grantwatch",
                MetricData=[
                    {
                        "MetricName": "CanaryHeartbeat",
                        "Dimensions": [
                            {"Name": "service", "Value": "grantwatch-recorder"},
                            {"Name": "path", "Value": path},
                        ],
                        "Value": 1,
                        "Timestamp": at,
                    }
                ],
            )

    def reconciled(self, at: datetime, errors: int = 0) -> None:
        self.client("cloudwatch").put_metric_data(
            Namespace="grantwatch",
            MetricData=[
                {
                    "MetricName": "ReconcileErrors",
                    "Dimensions": [{"Name": "service", "Value": "grantwatch-reconciler"}],
                    "Value": errors,
                    "Timestamp": at,
                }
            ],
        )

    def stack(self, outputs: dict[str, str], parameters: dict[str, str]) -> None:
        template = {
            "Parameters": {name: {"Type": "String"} for name in parameters},
            "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stack-marker"}}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        self.client("cloudformation").create_stack(
            StackName="grantwatch",
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )


@pytest.fixture
def stand(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stand]:
    monkeypatch.delenv("GRANTWATCH_STACK", raising=False)
    with moto_server(monkeypatch, *SERVICES) as endpoint:
        yield Stand(endpoint)


def doctor(*options: str) -> Any:
    return runner.invoke(app, ["doctor", "--region", REGION, *options])


def checks_of(result: Any) -> dict[str, dict[str, str]]:
    assert result.stdout, result.output
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def assert_only_failure(result: Any, name: str, code: ExitCode, fix: str) -> dict[str, str]:
    checks = checks_of(result)
    assert result.exit_code == code, result.output
    failing = {n for n, c in checks.items() if c["status"] != "ok"}
    assert failing == {name}, checks
    assert checks[name]["status"] == "fail"
    assert fix in checks[name]["fix"], checks[name]
    return checks[name]


def stub_reads(monkeypatch: pytest.MonkeyPatch, service: str, stub: Callable[[Stubber], None]) -> None:
    """doctor's reads as usual, but `service`'s client in the stack's region answers from a Stubber."""

    def reads(region: str, timeout_seconds: float) -> AwsDoctorReads:
        made = AwsDoctorReads(region, timeout_seconds=timeout_seconds)
        client = made.client(service)
        stubber = Stubber(client)
        stub(stubber)
        stubber.activate()
        return made

    monkeypatch.setattr(doctor_command, "doctor_reads", reads)


# --- a healthy stack ---------------------------------------------------------------------------------------


def test_a_healthy_stack_passes_every_check(stand: Stand) -> None:
    stand.build()
    result = doctor()
    assert result.exit_code == ExitCode.OK, result.output
    assert "11 ok, 0 warn, 0 fail, 0 unread, 0 skipped; failing: none" in result.stdout
    assert re.search(r"ok\s+heartbeats\s+a heartbeat on every path within 2 h 00 min", result.stdout)


def test_json_gives_each_check_and_a_summary(stand: Stand) -> None:
    stand.build()
    document = json.loads(doctor("--json").stdout)
    assert document["stack"] == "grantwatch" and document["region"] == REGION
    assert [c["name"] for c in document["checks"]] == list(doctor_command.AWS_CHECKS)
    assert set(document["checks"][0]) == {"name", "kind", "status", "found", "fix"}
    assert document["summary"] == {"ok": 11, "warn": 0, "fail": 0, "skipped": 0, "error": 0, "failing": []}


def test_the_stack_name_comes_from_the_environment(stand: Stand, monkeypatch: pytest.MonkeyPatch) -> None:
    stand.build()
    monkeypatch.setenv("GRANTWATCH_STACK", "another")
    result = doctor()
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "no stack 'another' in eu-central-1" in result.output


# --- each check failing on its own -------------------------------------------------------------------------


def test_no_trail(stand: Stand) -> None:
    stand.build(skip=frozenset({"trail"}))
    assert_only_failure(doctor("--json"), "trail", ExitCode.WIRING, "aws cloudtrail create-trail")


def test_a_trail_that_stopped_logging(stand: Stand) -> None:
    stand.build()
    stand.client("cloudtrail").stop_logging(Name="management")
    check = assert_only_failure(doctor("--json"), "trail", ExitCode.WIRING, "aws cloudtrail start-logging")
    assert "management not logging" in check["found"]


def test_a_trail_that_logs_writes_only(stand: Stand) -> None:
    stand.build()
    stand.client("cloudtrail").put_event_selectors(
        TrailName="management",
        AdvancedEventSelectors=[
            {
                "Name": "writes",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "readOnly", "Equals": ["false"]},
                ],
            }
        ],
    )
    check = assert_only_failure(doctor("--json"), "trail", ExitCode.WIRING, "get-event-selectors")
    assert "do not log all management events" in check["found"]


def test_a_disabled_rule(stand: Stand) -> None:
    stand.build()
    stand.client("events").disable_rule(Name="grantwatch-grant-events")
    check = assert_only_failure(
        doctor("--json"), "rules", ExitCode.WIRING, "aws events enable-rule --name grantwatch-grant-events"
    )
    assert check["found"] == "disabled: grantwatch-grant-events"


def test_a_decrypt_rule_that_cannot_see_read_only_events(stand: Stand) -> None:
    stand.build()
    stand.client("events").put_rule(
        Name="grantwatch-decrypt-failures", EventPattern='{"source": ["aws.kms"]}', State="ENABLED"
    )
    check = assert_only_failure(
        doctor("--json"),
        "decrypt-rule",
        ExitCode.WIRING,
        "--state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
    )
    assert "is ENABLED: failed Decrypt calls" in check["found"]


def test_no_iam_forwarder_in_us_east_1(stand: Stand) -> None:
    stand.build(skip=frozenset({"forwarder"}))
    assert_only_failure(
        doctor("--json"),
        "iam-forwarder",
        ExitCode.WIRING,
        "aws cloudformation deploy --region us-east-1 --stack-name grantwatch-iam-forwarder --template-file "
        "forwarders/iam-role-events.yaml --capabilities CAPABILITY_IAM --parameter-overrides "
        f"TargetRegion={REGION} TargetEventBusName=default",
    )


def test_a_disabled_iam_forwarder(stand: Stand) -> None:
    stand.build()
    stand.client("events", "us-east-1").disable_rule(Name="grantwatch-iam-forwarder")
    assert_only_failure(
        doctor("--json"),
        "iam-forwarder",
        ExitCode.WIRING,
        "aws events enable-rule --name grantwatch-iam-forwarder",
    )


def test_a_subscription_pending_confirmation(stand: Stand, monkeypatch: pytest.MonkeyPatch) -> None:
    stand.build()
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:grantwatch-alerts"
    pending = {"Subscriptions": [
        {"SubscriptionArn": "PendingConfirmation", "Owner": ACCOUNT, "Protocol": "email",
         "Endpoint": "oncall@example.com", "TopicArn": topic},
    ]}  # fmt: skip
    stub_reads(
        monkeypatch,
        "sns",
        lambda s: s.add_response("list_subscriptions_by_topic", pending, {"TopicArn": topic}),
    )
    check = assert_only_failure(doctor("--json"), "subscriptions", ExitCode.DELIVERY, "Confirm subscription")
    assert check["found"].startswith("1 subscription(s) pending confirmation (email on grantwatch-alerts)")


def test_security_hub_not_enabled(stand: Stand) -> None:
    stand.build(skip=frozenset({"security-hub"}))
    assert_only_failure(
        doctor("--json"),
        "security-hub",
        ExitCode.DELIVERY,
        f"aws securityhub enable-security-hub --region {REGION}",
    )


def test_no_alert_bus(stand: Stand) -> None:
    stand.build(skip=frozenset({"alert-bus"}))
    assert_only_failure(
        doctor("--json"),
        "alert-bus",
        ExitCode.DELIVERY,
        "aws events create-event-bus --name grantwatch-alerts",
    )


def test_a_pagerduty_connection_not_authorized(stand: Stand, monkeypatch: pytest.MonkeyPatch) -> None:
    stand.build()
    answer = {
        "ConnectionArn": f"arn:aws:events:{REGION}:{ACCOUNT}:connection/grantwatch-pagerduty/1d2c3b4a",
        "Name": "grantwatch-pagerduty",
        "ConnectionState": "DEAUTHORIZED",
        "StateReason": "The authorization endpoint returned 401",
        "AuthorizationType": "API_KEY",
    }
    real = AwsDoctorReads(REGION).client("events")

    def stub(stubber: Stubber) -> None:  # every other events call goes to moto through the real client
        client = stubber.client
        for name in ("describe_rule", "describe_event_bus"):
            setattr(client, name, getattr(real, name))
        stubber.add_response("describe_connection", answer, {"Name": "grantwatch-pagerduty"})

    stub_reads(monkeypatch, "events", stub)
    check = assert_only_failure(doctor("--json"), "pagerduty", ExitCode.DELIVERY, "PagerDutyRoutingKeySecret")
    assert "DEAUTHORIZED (The authorization endpoint returned 401)" in check["found"]


def test_a_dead_letter_queue_with_a_message(stand: Stand) -> None:
    stand.build()
    sqs = stand.client("sqs")
    url = sqs.get_queue_url(QueueName="RecorderDeadLetterQueue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    check = assert_only_failure(
        doctor("--json"), "dead-letter-queues", ExitCode.DELIVERY, f"--queue-url {url}"
    )
    assert check["found"].startswith("RecorderDeadLetterQueueUrl: 1 message(s)")


def test_a_path_without_a_recent_heartbeat(stand: Stand) -> None:
    stand.build(skip=frozenset({"RetireGrant"}))
    stand.heartbeats(["RetireGrant"], datetime.now(UTC) - timedelta(hours=3))
    check = assert_only_failure(doctor("--json"), "heartbeats", ExitCode.SILENCE, "recorder's logs")
    assert check["found"] == "no recent heartbeat: RetireGrant (none in 2 h 00 min)"


def test_no_recent_reconciliation(stand: Stand) -> None:
    stand.build(skip=frozenset({"reconciliation"}))
    stand.reconciled(datetime.now(UTC) - timedelta(hours=2))
    check = assert_only_failure(doctor("--json"), "reconciliation", ExitCode.SILENCE, "ReconcilerErrorsAlarm")
    assert check["found"] == "no reconciliation run recorded (none in 1 h 30 min)"


def test_the_first_kind_that_fails_sets_the_exit_code(stand: Stand) -> None:
    stand.build(skip=frozenset({"alert-bus", "reconciliation"}))
    result = doctor()
    assert result.exit_code == ExitCode.DELIVERY, result.output
    assert "failing: delivery, silence" in result.stdout
    assert "fix: aws events create-event-bus --name grantwatch-alerts" in result.stdout


# --- what cannot be read -----------------------------------------------------------------------------------


def test_an_unknown_stack(stand: Stand) -> None:
    result = doctor("--stack", "nothing-here")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "error: no stack 'nothing-here' in eu-central-1 (ValidationError: Stack with id nothing-here" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_a_read_refused_makes_its_check_unread_and_the_others_still_run(
    stand: Stand, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand.build()

    def refuse(stubber: Stubber) -> None:
        stubber.add_client_error(
            "describe_trails",
            service_error_code="AccessDeniedException",
            service_message="User: arn:aws:iam::123456789012:user/ops is not authorized to perform: "
            "cloudtrail:DescribeTrails",
            http_status_code=400,
        )

    stub_reads(monkeypatch, "cloudtrail", refuse)
    result = doctor("--json")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    checks = checks_of(result)
    assert checks["trail"]["status"] == "error"
    assert checks["trail"]["found"].startswith("could not read: AccessDeniedException: User: ")
    assert "read permissions in docs/doctor.md" in checks["trail"]["fix"]
    assert {n for n, c in checks.items() if c["status"] != "ok"} == {"trail"}


def test_the_stack_read_refused(stand: Stand, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(stubber: Stubber) -> None:
        stubber.add_client_error(
            "describe_stacks",
            service_error_code="AccessDenied",
            service_message="User is not authorized to perform: cloudformation:DescribeStacks",
            http_status_code=403,
        )

    stub_reads(monkeypatch, "cloudformation", refuse)
    result = doctor()
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert result.output.startswith(
        "error: cannot read the stack 'grantwatch' in eu-central-1: AccessDenied: "
    )
    assert "Traceback" not in result.output


@pytest.fixture
def stalled_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_a_stalled_endpoint_ends_in_a_clear_error(
    stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", stalled_endpoint)
    result = doctor("--timeout-seconds", "1")
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert result.output.startswith(
        "error: cannot read the stack 'grantwatch' in eu-central-1: ReadTimeoutError"
    )
    assert "Traceback" not in result.output


def test_a_stalled_read_makes_its_checks_unread(
    stand: Stand, stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand.build()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", stalled_endpoint)
    result = doctor("--json", "--timeout-seconds", "1")
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    checks = checks_of(result)
    assert {n for n, c in checks.items() if c["status"] != "ok"} == {"heartbeats", "reconciliation"}
    assert checks["heartbeats"]["status"] == "error"
    assert checks["heartbeats"]["found"] == "could not read: ReadTimeoutError"


def test_an_endpoint_that_refuses_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", f"http://127.0.0.1:{free_port()}")
    result = doctor("--timeout-seconds", "1")
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert result.output.startswith(
        "error: cannot read the stack 'grantwatch' in eu-central-1: EndpointConnectionError"
    )
    assert "Traceback" not in result.output


# --- the permissions it needs ------------------------------------------------------------------------------


def documented_policy() -> set[str]:
    text = (ROOT / "docs" / "doctor.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert block, "docs/doctor.md has no IAM policy"
    policy = json.loads(block.group(1))
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def test_the_documented_policy_allows_every_call_doctor_makes(
    stand: Stand, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand.build()
    calls: set[str] = set()

    def record(**event: Any) -> None:
        model = event["model"]
        calls.add(f"{model.service_model.service_name}:{model.name}")

    def reads(region: str, timeout_seconds: float) -> AwsDoctorReads:
        clients = Clients(region)
        session = clients._session = get_session()
        session.register("before-call", record)
        return AwsDoctorReads(region, timeout_seconds=timeout_seconds, clients=clients)

    monkeypatch.setattr(doctor_command, "doctor_reads", reads)
    assert doctor().exit_code == ExitCode.OK
    assert calls == documented_policy()


# --- the local setup ---------------------------------------------------------------------------------------


def test_local_checks_dynamodb_local_and_its_table(
    table_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", table_settings.endpoint_url)
    monkeypatch.setenv("GRANTWATCH_TABLE", table_settings.table_name)
    result = runner.invoke(app, ["doctor", "--local", "--json"])
    assert result.exit_code == ExitCode.OK, result.output
    checks = checks_of(result)
    assert checks["local-table"]["status"] == "ok"
    assert checks["deployed-stack"]["status"] == "skipped"
    assert checks["deployed-stack"]["found"].startswith("trail, rules, decrypt-rule, iam-forwarder, ")


def test_local_without_the_table(table_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", table_settings.endpoint_url)
    monkeypatch.setenv("GRANTWATCH_TABLE", "no-such-table")
    result = runner.invoke(app, ["doctor", "--local", "--json"])
    assert result.exit_code == ExitCode.WIRING
    check = checks_of(result)["local-table"]
    assert check["status"] == "fail"
    assert "ResourceNotFoundException" in check["found"]
    assert check["fix"].startswith("grantwatch local start")


def test_local_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    result = runner.invoke(app, ["doctor", "--local"])
    assert result.exit_code == ExitCode.WIRING
    assert "fail    local-table         AWS_ENDPOINT_URL_DYNAMODB is not set" in result.stdout
