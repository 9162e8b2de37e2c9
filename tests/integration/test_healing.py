"""Self-healing against moto's Lambda, KMS, SNS and SQS (its server, on loopback) and DynamoDB Local.

moto's Lambda creates no grant when a function's configuration is updated; AWS's does. Where a test needs
the heal to work, a botocore hook on the healer's Lambda client creates the grant on moto's KMS right
after UpdateFunctionConfiguration returns, as Lambda would; where it must fail, nothing creates it. Either
way the healer verifies through moto's ListGrants, and the hook counts every UpdateFunctionConfiguration.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from typer.testing import CliRunner

from grantwatch import wiring
from grantwatch.adapters.channels import FanOut
from grantwatch.adapters.functions import DynamoFunctionStore, DynamoHealRecords
from grantwatch.adapters.lambda_healer import AwsFunctionHealer
from grantwatch.adapters.notifier import SnsNotifier, machine_message, publish_request
from grantwatch.cli import app
from grantwatch.domain.alerts import unpredicted_incident
from grantwatch.domain.facts import Actor, utc_iso
from grantwatch.domain.healing import FunctionDenied, HealPolicy, HealStatus
from grantwatch.domain.notices import Notice, alert_notice
from grantwatch.domain.risk import Evidence
from grantwatch.handlers import remediation
from grantwatch.healer import Healer
from grantwatch.pipeline import LocalPipeline
from grantwatch.queries import incident_rows
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.aws import ACCOUNT, REGION, TEMPORARY_ROLE, Aws, delivered_create, session
from tests.support.iam_contract import stands_for
from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_server import moto_server
from tests.support.scenarios import retire_grant

TAG = "grantwatch:self-heal"


@dataclass
class Cloud(Aws):
    sns: Any = None
    sqs: Any = None
    topic: str = ""
    queue: str = ""

    def received(self) -> list[dict[str, Any]]:
        """What a subscriber of the topic received: one SNS envelope per notice."""
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with moto_server(monkeypatch, "KMS", "LAMBDA", "IAM", "STS", "SNS", "SQS") as endpoint:
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = stands_for("AlertTopic", sns.create_topic(Name="grantwatch-alerts")["TopicArn"])
        queue = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield Cloud(
            endpoint,
            boto3.client("kms", region_name=REGION),
            boto3.client("lambda", region_name=REGION),
            boto3.client("iam", region_name=REGION),
            sns=sns,
            sqs=sqs,
            topic=topic,
            queue=queue,
        )


def aws_error(code: str, message: str, status: int) -> tuple[Any, dict[str, Any]]:
    """A short-circuited response as botocore parses Lambda's REST-JSON errors: the code from the
    x-amzn-ErrorType header, the message from the body, the HTTP status."""
    request_id = "8f7a6b5c-4d3e-4f2a-9b1c-0d9e8f7a6b5c"
    http = SimpleNamespace(status_code=status, headers={"x-amzn-errortype": code}, content=b"")
    parsed = {
        "Error": {"Code": code, "Message": message},
        "Message": message,
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": {"x-amzn-requestid": request_id, "x-amzn-errortype": code},
            "RetryAttempts": 0,
        },
    }
    return http, parsed


def denied(operation: str, resource: str) -> tuple[Any, dict[str, Any]]:
    """What IAM answers the remediation role for a function its tag condition does not allow."""
    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/grantwatch-RemediationFunctionRole/grantwatch-remediation"
    return aws_error(
        "AccessDeniedException",
        f"User: {caller} is not authorized to perform: lambda:{operation} on resource: {resource} because no "
        f"identity-based policy allows the lambda:{operation} action",
        403,
    )


def revision_mismatch() -> tuple[Any, dict[str, Any]]:
    return aws_error(
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/"
        "GetAlias API to retrieve the latest Revision Id",
        412,
    )


@dataclass
class LambdaStandIn:
    """Lambda as the remediation role meets it, in front of moto's (which keeps the functions and tags, but
    evaluates no IAM, ignores KMSKeyArn and RevisionId on update and creates no grant). It enforces:

    - the remediation policy's tag condition: any function not tagged TAG=true (untagged, tagged false,
      deleted, in another account) answers AccessDeniedException, 403, with IAM's message;
    - the RevisionId guard (PreconditionFailedException, 412) and a new RevisionId on every update;
    - LastUpdateStatus InProgress for `in_progress_reads` reads after an update, then Successful;
    - a grant on moto's KMS for the function's role when an update *changes* its key or its role, as
      Lambda documents, and none when it changes nothing (or when `creates_grant` is off);
    - `failures`: the n-th UpdateFunctionConfiguration (1-based) answers the error given, once;
    - `read_failures`: the n-th GetFunctionConfiguration answers the error given, once;
    - `lost`: the n-th UpdateFunctionConfiguration gets no answer: "applied" (applied, then the read
      times out), "dropped" (times out, nothing applied) or "retried" (applied, and the client's retry,
      sent with the same RevisionId, is refused with PreconditionFailedException).
    """

    cloud: Cloud
    creates_grant: bool = True
    in_progress_reads: int = 1
    failures: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    lost: dict[int, str] = field(default_factory=dict)
    read_failures: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    reads: int = 0  # GetFunctionConfiguration calls answered
    updates: list[dict[str, str]] = field(default_factory=list)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    aws_lambda_key: str | None = None  # the AWS managed key (aws/lambda): moto knows no such key

    def client(self) -> Any:
        client: Any = boto3.client(
            "lambda", region_name=REGION
        )  # before-call handlers answer in Lambda's stead
        for operation in ("GetFunctionConfiguration", "ListTags", "UpdateFunctionConfiguration"):
            client.meta.events.register(f"before-parameter-build.lambda.{operation}", self._remember)
        client.meta.events.register("before-call.lambda.GetFunctionConfiguration", self._get)
        client.meta.events.register("before-call.lambda.ListTags", self._tags)
        client.meta.events.register("before-call.lambda.UpdateFunctionConfiguration", self._update)
        return client

    def kms_client(self) -> Any:
        """moto's KMS, except that DescribeKey says the aws/lambda key is AWS managed."""
        client = boto3.client("kms", region_name=REGION)
        client.meta.events.register("after-call.kms.DescribeKey", self._key_manager)
        return client

    def default_key(self) -> str:
        if self.aws_lambda_key is None:
            self.aws_lambda_key = self.cloud.kms.create_key(Description="aws/lambda")["KeyMetadata"]["Arn"]
        return self.aws_lambda_key

    def config(self, function: str) -> dict[str, Any]:
        """The function as Lambda would describe it now (what moto keeps, with what the stand-in applied)."""
        current = {
            k: v
            for k, v in self.cloud.lambda_.get_function_configuration(FunctionName=function).items()
            if k != "ResponseMetadata"
        }
        state = self.configs.setdefault(function, {})
        state.setdefault("RevisionId", current.get("RevisionId") or str(uuid.uuid4()))
        return {k: v for k, v in (current | state).items() if k != "pending"}

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["stand_in_params"] = dict(params)

    def _allowed(self, function: str) -> bool:
        try:
            tags = self.cloud.lambda_.list_tags(Resource=function)["Tags"]
        except self.cloud.lambda_.exceptions.ResourceNotFoundException:
            return False  # a deleted function has no tag: the condition does not hold
        return bool(tags.get(TAG, "").lower() == "true")

    def _get(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        function = context["stand_in_params"]["FunctionName"]
        if not self._allowed(function):
            return denied("GetFunctionConfiguration", function)
        self.reads += 1
        failure = self.read_failures.pop(self.reads, None)
        if failure is not None:
            return aws_error(*failure)
        state = self.configs.setdefault(function, {})
        answer = self.config(function)
        if state.get("pending", 0) > 0:
            state["pending"] -= 1
            answer["LastUpdateStatus"] = "InProgress"
        else:
            answer["LastUpdateStatus"] = "Successful"
        return SimpleNamespace(status_code=200), answer | {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _tags(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        function = context["stand_in_params"]["Resource"]
        if not self._allowed(function):
            return denied("ListTags", function)
        tags = self.cloud.lambda_.list_tags(Resource=function)["Tags"]
        return SimpleNamespace(status_code=200), {"Tags": tags, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _update(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        params = context["stand_in_params"]
        function = params["FunctionName"]
        if not self._allowed(function):
            return denied("UpdateFunctionConfiguration", function)
        self.updates.append({k: v for k, v in params.items() if k != "FunctionName"})
        failure = self.failures.pop(len(self.updates), None)
        if failure is not None:
            return aws_error(*failure)
        lost = self.lost.pop(len(self.updates), None)
        if lost == "dropped":
            raise ReadTimeoutError(endpoint_url=self.cloud.endpoint)
        current = self.config(function)
        if params.get("RevisionId") not in (None, current["RevisionId"]):
            return revision_mismatch()
        changed = {
            k: params[k] for k in ("KMSKeyArn", "Role") if k in params and params[k] != current.get(k, "")
        }
        state = self.configs.setdefault(function, {})
        state.update(changed)
        state["RevisionId"] = str(uuid.uuid4())
        state["pending"] = self.in_progress_reads
        if changed and self.creates_grant:
            key = state.get("KMSKeyArn", current.get("KMSKeyArn")) or self.default_key()
            role = state.get("Role", current["Role"]).rsplit("/", 1)[-1]
            self.cloud.lambda_grant(key, function, session(role, current["FunctionName"]))
        if lost == "applied":
            raise ReadTimeoutError(endpoint_url=self.cloud.endpoint)
        if lost == "retried":
            http, refused = revision_mismatch()
            refused["ResponseMetadata"]["RetryAttempts"] = 1
            return http, refused
        answer = self.config(function) | {"LastUpdateStatus": "InProgress"}
        return SimpleNamespace(status_code=200), answer | {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _key_manager(self, parsed: dict[str, Any], **_: Any) -> None:
        metadata = parsed.get("KeyMetadata", {})
        if self.aws_lambda_key is not None and metadata.get("Arn") == self.aws_lambda_key:
            metadata["KeyManager"] = "AWS"

    def unchanged_but(self, before: dict[str, Any], function: str) -> dict[str, Any]:
        """What differs between the configuration `before` and now, besides the revision."""
        now = self.config(function)
        ignored = {"RevisionId", "LastModified", "LastUpdateStatus"}
        return {
            k: (before.get(k), now.get(k)) for k in {*before, *now} - ignored if before.get(k) != now.get(k)
        }


@dataclass
class Story:
    pipeline: LocalPipeline
    function: str
    key: str
    alert: Notice


def retired_grant_story(
    cloud: Cloud,
    settings: Settings,
    *,
    tagged: bool = True,
    tag_value: str = "true",
    aws_key: str | None = None,
) -> Story:
    """A function on a customer managed key (or, with `aws_key`, on the AWS managed key: no KMSKeyArn)
    whose only grant an administrator retired: one open incident."""
    key = aws_key or cloud.kms.create_key()["KeyMetadata"]["Arn"]
    function = cloud.function("billing", cloud.role("billing-role"), None if aws_key else key)
    if tagged:
        cloud.lambda_.tag_resource(Resource=function, Tags={TAG: tag_value})
    grantee = session("billing-role", "billing")
    grant = cloud.lambda_grant(key, function, grantee)
    pipeline = local_pipeline(settings)
    created = datetime.now(UTC) - timedelta(days=1)
    pipeline.feed(delivered_create(grant, key, function, grantee, utc_iso(created)))
    cloud.kms.retire_grant(KeyId=key, GrantId=grant)
    retired = retire_grant("any", utc_iso(datetime.now(UTC) - timedelta(minutes=10)))
    retired["detail"] |= {"awsRegion": REGION, "recipientAccountId": ACCOUNT}
    retired["detail"]["additionalEventData"]["grantId"] = grant
    retired["detail"]["resources"] = [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}]
    pipeline.feed(retired)
    [alert] = pipeline.drain()
    assert alert.attributes["alertType"] == "grant-retired"
    return Story(pipeline, function, key, alert)


def healer(
    cloud: Cloud,
    settings: Settings,
    stand_in: LambdaStandIn,
    max_attempts: int = 2,
    temporary_role: str | None = None,
) -> Healer:
    return Healer(
        incidents=local_pipeline(settings).functions,
        hazards=local_pipeline(settings).hazards,
        records=DynamoHealRecords(settings),
        aws=AwsFunctionHealer(stand_in.client(), stand_in.kms_client()),
        notifier=SnsNotifier(cloud.topic, cloud.sns),
        policy=HealPolicy(tag=TAG, max_attempts=max_attempts, temporary_role=temporary_role),
        verify_for=timedelta(seconds=0),
        sleep=lambda _: None,
    )


def heal_fields(settings: Settings, function: str, incident_id: str) -> dict[str, Any]:
    table = boto3.client("dynamodb", region_name=REGION, endpoint_url=settings.endpoint_url)
    item = table.get_item(
        TableName=settings.table_name,
        Key={"pk": {"S": f"FUNCTION#{function}"}, "sk": {"S": f"INCIDENT#{incident_id}"}},
        ConsistentRead=True,
    )["Item"]
    return {name: next(iter(value.values())) for name, value in item.items() if name.startswith("heal")}


def test_a_retired_grant_on_a_tagged_function_is_healed_once(cloud: Cloud, table_settings: Settings) -> None:
    story = retired_grant_story(cloud, table_settings)
    stand_in = LambdaStandIn(cloud, creates_grant=True)
    heal = healer(cloud, table_settings, stand_in)

    before = stand_in.config(story.function)
    report = heal.heal(story.function)
    assert report.decision.heal and report.healed, report.as_json()
    # the key switch: away to the AWS managed key, then back, each guarded by the revision just read
    away, back = stand_in.updates
    assert away == {"KMSKeyArn": "", "RevisionId": before["RevisionId"]}
    assert back["KMSKeyArn"] == story.key and back["RevisionId"] != before["RevisionId"]
    assert stand_in.unchanged_but(before, story.function) == {}  # nothing the owner set has changed
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert (fields["healStatus"], fields["healAttempts"]) == ("healed", "1")
    assert report.outcome is not None and fields["healGrantId"] == report.outcome.grant_id
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-succeeded"
    assert envelope["Subject"] == "[grantwatch] billing healed"

    again = heal.heal(story.function)  # the same alert delivered a second time
    assert (again.decision.heal, again.outcome) == (False, None)
    assert again.decision.reason == "already healed once for this incident"
    assert len(stand_in.updates) == 2
    assert cloud.received() == []

    # The grant Lambda created arrives as a CloudTrail event: the evaluator resolves the incident.
    created = next(
        g for g in cloud.kms.list_grants(KeyId=story.key)["Grants"] if g["GrantId"] == fields["healGrantId"]
    )
    story.pipeline.feed(
        delivered_create(
            created["GrantId"],
            story.key,
            story.function,
            created["GranteePrincipal"],
            utc_iso(datetime.now(UTC)),
        )
    )
    [resolved] = story.pipeline.drain()
    assert (resolved.kind.value, resolved.incident_id) == ("resolved", story.alert.incident_id)


def test_an_untagged_function_is_not_touched(cloud: Cloud, table_settings: Settings) -> None:
    story = retired_grant_story(cloud, table_settings, tagged=False)
    before = cloud.lambda_.get_function_configuration(FunctionName=story.function)
    stand_in = LambdaStandIn(cloud, creates_grant=True)

    report = healer(cloud, table_settings, stand_in).heal(story.function)
    assert (report.decision.heal, report.outcome) == (False, None)
    reason = (
        f"Lambda denied lambda:GetFunctionConfiguration: the function is not tagged {TAG}=true (or it was "
        "deleted, or it is in another account)"
    )
    assert report.decision.reason == reason
    assert stand_in.updates == []
    after = cloud.lambda_.get_function_configuration(FunctionName=story.function)
    assert {k: v for k, v in after.items() if k != "ResponseMetadata"} == {
        k: v for k, v in before.items() if k != "ResponseMetadata"
    }
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert set(fields) == {"healSkippedAt", "healSkippedReason"}  # no attempt was taken
    assert fields["healSkippedReason"] == reason
    assert cloud.received() == []


def test_a_disabled_key_is_not_touched(cloud: Cloud, table_settings: Settings) -> None:
    story = retired_grant_story(cloud, table_settings)
    cloud.kms.disable_key(KeyId=story.key.rsplit("/", 1)[1])  # its DisableKey event is not recorded yet
    stand_in = LambdaStandIn(cloud, creates_grant=True)

    report = healer(cloud, table_settings, stand_in).heal(story.function)
    assert (report.decision.heal, report.decision.reason) == (
        False,
        "the key's state is Disabled, not Enabled",
    )
    assert stand_in.updates == []
    assert report.facts["keyState"] == "Disabled"
    assert cloud.received() == []


def test_a_failing_heal_is_reported_and_not_retried_forever(cloud: Cloud, table_settings: Settings) -> None:
    story = retired_grant_story(cloud, table_settings)
    stand_in = LambdaStandIn(cloud, creates_grant=False)  # Lambda never creates the grant
    heal = healer(cloud, table_settings, stand_in, max_attempts=2)

    first, second, third = (heal.heal(story.function) for _ in range(3))
    for attempt, report in enumerate((first, second), start=1):
        assert report.outcome is not None and not report.outcome.healed
        assert report.outcome.attempt == attempt
        assert report.outcome.error == "the function was reset, but no new grant was listed within 0 s"
    assert (third.decision.heal, third.decision.reason) == (False, "2 of 2 attempts used")
    assert [u["KMSKeyArn"] for u in stand_in.updates] == ["", story.key, "", story.key]

    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert (fields["healStatus"], fields["healAttempts"]) == ("failed", "2")
    assert "no new grant was listed" in fields["healError"]
    envelopes = cloud.received()
    assert [e["MessageAttributes"]["alertType"]["Value"] for e in envelopes] == ["heal-failed", "heal-failed"]
    last = json.loads(envelopes[-1]["Message"])  # an SQS subscriber reads the notice's details as JSON
    assert (last["attempt"], last["maxAttempts"], last["leftOn"]) == (2, 2, None)  # no further attempt
    [incident] = incident_rows(DynamoFunctionStore(table_settings), open_only=True)
    assert incident["heal"]["attempts"] == 2 and incident["heal"]["status"] == "failed"


def test_concurrent_claims_take_one_attempt_at_a_time(cloud: Cloud, table_settings: Settings) -> None:
    story = retired_grant_story(cloud, table_settings)
    records = DynamoHealRecords(table_settings)
    now = datetime.now(UTC)
    incident = story.alert.incident_id
    assert records.claim(story.function, incident, 2, now) == 1
    assert records.claim(story.function, incident, 2, now) is None  # the first still holds its lease
    assert records.claim(story.function, incident, 2, now + timedelta(minutes=6)) == 2  # it died: lease over
    assert records.claim(story.function, incident, 2, now + timedelta(minutes=12)) is None  # none left
    assert records.state(story.function, incident).status is HealStatus.IN_PROGRESS


def sns_event(notice: Notice, topic: str) -> dict[str, Any]:
    """How SNS invokes a subscribed Lambda function, one record per invocation."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic}:3c1f0b2e-8d4a-4f6b-9e1d-2a7c5b8e0f13",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": topic,
                    "Subject": notice.subject,
                    "Message": machine_message(notice),
                    "Timestamp": "2026-11-20T16:45:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {
                        name: {"Type": attribute["DataType"], "Value": attribute["StringValue"]}
                        for name, attribute in publish_request(topic, notice)["MessageAttributes"].items()
                    },
                },
            }
        ]
    }


def test_the_remediation_handler_heals_from_the_alert_as_sns_delivers_it(
    cloud: Cloud, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = retired_grant_story(cloud, table_settings)
    stand_in = LambdaStandIn(cloud, creates_grant=True)
    monkeypatch.setattr(remediation, "healer", lambda: healer(cloud, table_settings, stand_in))

    # The text is for people: reworded (or garbled on its way through a chat bridge), the alert still
    # names its incident and function in its message attributes, which is all remediation reads.
    event = sns_event(story.alert, cloud.topic)
    event["Records"][0]["Sns"]["Subject"] = "[grantwatch] reworded"
    event["Records"][0]["Sns"]["Message"] = "Reworded notice.\n\nDetails (JSON)\n{not json"
    [report] = remediation.lambda_handler(event, FakeLambdaContext("remediation"))
    assert (report["decision"], report["incidentId"], report["outcome"]["healed"]) == (
        "heal",
        story.alert.incident_id,
        True,
    )
    assert [u["KMSKeyArn"] for u in stand_in.updates] == ["", story.key]


def test_an_alert_without_its_incident_attribute_is_refused_naming_the_attribute() -> None:
    at = datetime(2026, 11, 20, tzinfo=UTC)
    alert = alert_notice(
        unpredicted_incident(
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:billing",
            f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k",
            None,
            Evidence("failed", "Decrypt", "e1", at, Actor("p", None, None)),
            at,
        )
    )
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    for name in ("incidentId", "functionArn", "alertType"):
        event = sns_event(alert, topic)
        del event["Records"][0]["Sns"]["MessageAttributes"][name]
        with pytest.raises(ValueError, match=rf"missing Sns\.MessageAttributes\.{name}$") as refused:
            remediation.lambda_handler(event, FakeLambdaContext("remediation"))
        assert alert.incident_id not in str(refused.value)  # the field is named, never a value
    event = sns_event(alert, topic)
    event["Records"][0]["Sns"]["MessageAttributes"]["functionArn"]["Value"] = "arn:aws:iam::1:role/x"
    with pytest.raises(ValueError, match=r"invalid Sns\.MessageAttributes\.functionArn$"):
        remediation.lambda_handler(event, FakeLambdaContext("remediation"))


def test_the_remediation_handler_fails_a_failed_heal_so_it_is_retried_within_the_limit(
    cloud: Cloud, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = retired_grant_story(cloud, table_settings)
    stand_in = LambdaStandIn(cloud, creates_grant=False)
    monkeypatch.setattr(
        remediation, "healer", lambda: healer(cloud, table_settings, stand_in, max_attempts=1)
    )
    event = sns_event(story.alert, cloud.topic)

    with pytest.raises(remediation.HealFailed, match="no new grant was listed"):
        remediation.lambda_handler(event, FakeLambdaContext("remediation"))
    [retried] = remediation.lambda_handler(event, FakeLambdaContext("remediation"))  # Lambda's retry
    assert (retried["decision"], retried["reason"]) == ("skip", "1 of 1 attempts used")
    assert len(stand_in.updates) == 2


def run_cli(settings: Settings, *args: str) -> Any:
    where = [
        "--table",
        settings.table_name,
        "--endpoint-url",
        settings.endpoint_url or "",
        "--region",
        REGION,
    ]
    return CliRunner().invoke(app, ["heal", *args, "--json", *where])


def test_the_cli_decides_with_dry_run_and_reports_each_outcome_by_exit_code(
    cloud: Cloud, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = retired_grant_story(cloud, table_settings)

    dry = run_cli(table_settings, story.function, "--dry-run")
    assert dry.exit_code == 0, dry.output
    decided = json.loads(dry.stdout)["heal"]
    assert (decided["decision"], decided["dryRun"], decided["outcome"]) == ("heal", True, None)
    assert decided["facts"]["tag"] == {TAG: "true"} and decided["facts"]["keyState"] == "Enabled"
    assert heal_fields(table_settings, story.function, story.alert.incident_id) == {}  # nothing written

    # moto's Lambda creates no grant: the attempt is made, the verification finds none, exit 7.
    failed = run_cli(table_settings, story.function, "--verify-seconds", "0")
    assert failed.exit_code == 7, failed.output
    notice, report = (json.loads(line) for line in failed.stdout.splitlines())
    assert notice["alert"]["attributes"]["alertType"] == "heal-failed"
    assert report["heal"]["outcome"]["attempt"] == 1
    assert heal_fields(table_settings, story.function, story.alert.incident_id)["healAttempts"] == "1"

    refused = run_cli(table_settings, story.function, "--tag", "team:heal")
    assert refused.exit_code == 6, refused.output
    assert json.loads(refused.stdout)["heal"]["reason"] == "the function is not tagged team:heal=true"

    unknown = run_cli(table_settings, story.function.replace("billing", "nobody"))
    assert unknown.exit_code == 4, unknown.output


def test_a_failure_of_the_restoring_update_is_retried_with_the_revision_just_read(
    cloud: Cloud, table_settings: Settings
) -> None:
    story = retired_grant_story(cloud, table_settings)
    conflict = (
        "ResourceConflictException",
        "The operation cannot be performed at this time. An update is in progress for resource: "
        + story.function,
        409,
    )
    stand_in = LambdaStandIn(cloud, failures={2: conflict})
    before = stand_in.config(story.function)

    report = healer(cloud, table_settings, stand_in).heal(story.function)
    assert report.healed, report.as_json()
    away, refused, back = stand_in.updates
    assert (away["KMSKeyArn"], refused["KMSKeyArn"], back["KMSKeyArn"]) == ("", story.key, story.key)
    assert away["RevisionId"] == before["RevisionId"]
    assert refused["RevisionId"] == back["RevisionId"] != before["RevisionId"]  # the revision after `away`
    assert stand_in.unchanged_but(before, story.function) == {}
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-succeeded"


@pytest.mark.parametrize("lost", ["applied", "retried"])
def test_a_first_update_applied_without_a_clear_answer_is_still_restored(
    cloud: Cloud, table_settings: Settings, lost: str
) -> None:
    story = retired_grant_story(cloud, table_settings)
    stand_in = LambdaStandIn(cloud, lost={1: lost})
    before = stand_in.config(story.function)

    report = healer(cloud, table_settings, stand_in).heal(story.function)
    assert report.healed, report.as_json()
    assert [u["KMSKeyArn"] for u in stand_in.updates] == ["", story.key]
    away, back = stand_in.updates
    assert away["RevisionId"] == before["RevisionId"] != back["RevisionId"]  # the revision read after it
    assert stand_in.unchanged_but(before, story.function) == {}
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-succeeded"


def test_a_first_update_that_timed_out_unapplied_is_reported_as_nothing_changed(
    cloud: Cloud, table_settings: Settings
) -> None:
    story = retired_grant_story(cloud, table_settings)
    stand_in = LambdaStandIn(cloud, lost={1: "dropped"})
    before = stand_in.config(story.function)

    report = healer(cloud, table_settings, stand_in).heal(story.function)
    assert not report.healed
    assert report.outcome is not None and report.outcome.left_on is None
    assert report.outcome.error == "the first update was not applied, nothing changed: ReadTimeoutError"
    assert len(stand_in.updates) == 1
    assert stand_in.unchanged_but(before, story.function) == {}
    assert stand_in.config(story.function)["KMSKeyArn"] == story.key
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-failed"
    assert json.loads(envelope["Message"])["leftOn"] is None


def test_a_first_update_whose_outcome_cannot_be_read_back_is_reported_loudly(
    cloud: Cloud, table_settings: Settings
) -> None:
    story = retired_grant_story(cloud, table_settings)
    throttled = ("TooManyRequestsException", "Rate exceeded", 429)
    stand_in = LambdaStandIn(cloud, lost={1: "applied"}, read_failures={2: throttled})  # 1: the decision's
    target = healer(cloud, table_settings, stand_in)

    report = target.heal(story.function)
    assert report.outcome is not None and not report.healed
    assert report.outcome.left_on == "the AWS managed key (aws/lambda)"
    assert report.outcome.error == (
        "the function may be left on the AWS managed key (aws/lambda): the first update got no clear "
        "answer (ReadTimeoutError) and its configuration could not be read back: TooManyRequestsException: "
        "Rate exceeded"
    )
    assert stand_in.config(story.function)["KMSKeyArn"] == ""
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert (fields["healStatus"], fields["healLeftOn"]) == ("failed", "the AWS managed key (aws/lambda)")
    [envelope] = cloud.received()
    assert json.loads(envelope["Message"])["leftOn"] == "the AWS managed key (aws/lambda)"

    again = target.heal(story.function)  # no second reset of a function that may be elsewhere
    assert not again.decision.heal and "an earlier heal left the function on" in again.decision.reason
    assert len(stand_in.updates) == 1


def test_a_first_update_refused_outright_changes_nothing_and_is_not_read_back(
    cloud: Cloud, table_settings: Settings
) -> None:
    story = retired_grant_story(cloud, table_settings)
    conflict = ("ResourceConflictException", "An update is in progress for resource: " + story.function, 409)
    stand_in = LambdaStandIn(cloud, failures={1: conflict})
    target = healer(cloud, table_settings, stand_in)
    reads_before = stand_in.reads

    report = target.heal(story.function)
    assert report.outcome is not None and not report.healed
    assert report.outcome.error == (
        "the first update was refused, nothing changed: ResourceConflictException: An update is in "
        f"progress for resource: {story.function}"
    )
    assert (len(stand_in.updates), stand_in.reads - reads_before) == (1, 1)  # the read before it, only


def test_a_restore_that_keeps_failing_is_reported_loudly_with_where_the_function_was_left(
    cloud: Cloud, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = retired_grant_story(cloud, table_settings)
    throttled = ("TooManyRequestsException", "Rate exceeded", 429)
    stand_in = LambdaStandIn(cloud, failures={2: throttled, 3: throttled, 4: throttled})
    monkeypatch.setattr(remediation, "healer", lambda: healer(cloud, table_settings, stand_in))

    with pytest.raises(remediation.HealFailed, match="left on the AWS managed key"):
        remediation.lambda_handler(sns_event(story.alert, cloud.topic), FakeLambdaContext("remediation"))
    assert [u["KMSKeyArn"] for u in stand_in.updates] == ["", story.key, story.key, story.key]
    assert stand_in.config(story.function)["KMSKeyArn"] == ""  # what the notice must say
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert (fields["healStatus"], fields["healLeftOn"]) == ("failed", "the AWS managed key (aws/lambda)")
    assert fields["healError"].startswith("the function is left on the AWS managed key (aws/lambda)")
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-failed"
    details = json.loads(envelope["Message"])
    assert details["leftOn"] == "the AWS managed key (aws/lambda)"
    [restore] = [s for s in details["fix"][0]["steps"] if s["restores"]]
    assert restore["command"].endswith(f"--kms-key-arn {story.key}")

    # Lambda's retry of the invocation: no second reset of a function left elsewhere, and it says why
    [retried] = remediation.lambda_handler(
        sns_event(story.alert, cloud.topic), FakeLambdaContext("remediation")
    )
    assert retried["decision"] == "skip" and "an earlier heal left the function on" in retried["reason"]
    assert len(stand_in.updates) == 4


def test_a_function_on_the_aws_managed_key_is_healed_only_with_a_temporary_role(
    cloud: Cloud, table_settings: Settings
) -> None:
    stand_in = LambdaStandIn(cloud)
    story = retired_grant_story(cloud, table_settings, aws_key=stand_in.default_key())
    before = stand_in.config(story.function)
    assert not before.get("KMSKeyArn")

    skipped = healer(cloud, table_settings, stand_in).heal(story.function)
    assert (skipped.decision.heal, skipped.outcome) == (False, None)
    assert skipped.decision.reason.startswith("it is on the AWS managed key: only the role switch")
    assert stand_in.updates == []

    report = healer(cloud, table_settings, stand_in, temporary_role=TEMPORARY_ROLE).heal(story.function)
    assert report.healed, report.as_json()
    away, back = stand_in.updates
    assert away == {"Role": TEMPORARY_ROLE, "RevisionId": before["RevisionId"]}
    assert back["Role"] == before["Role"] and back["RevisionId"] != before["RevisionId"]
    assert stand_in.unchanged_but(before, story.function) == {}
    assert report.outcome is not None and report.outcome.grant_id is not None
    listed = cloud.kms.list_grants(KeyId=story.key)["Grants"]
    new = next(g for g in listed if g["GrantId"] == report.outcome.grant_id)
    assert new["GranteePrincipal"] == session("billing-role", "billing")


@pytest.mark.parametrize("case", ["untagged", "tagged false", "deleted"])
def test_a_function_the_tag_condition_denies_is_skipped_cleanly_and_nothing_alarming_is_published(
    cloud: Cloud, table_settings: Settings, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """IAM refuses the remediation role every function not tagged for self-healing: AccessDeniedException,
    not ResourceNotFoundException, even for a deleted function."""
    story = retired_grant_story(
        cloud,
        table_settings,
        tagged=case != "untagged",
        tag_value="false" if case == "tagged false" else "true",
    )
    if case == "deleted":
        cloud.lambda_.delete_function(FunctionName=story.function)
    stand_in = LambdaStandIn(cloud)
    monkeypatch.setattr(remediation, "healer", lambda: healer(cloud, table_settings, stand_in))

    [report] = remediation.lambda_handler(
        sns_event(story.alert, cloud.topic), FakeLambdaContext("remediation")
    )
    assert (report["decision"], report["outcome"]) == ("skip", None)
    assert report["reason"].startswith(
        "Lambda denied lambda:GetFunctionConfiguration: the function is not tagged"
    )
    assert report["facts"]["functionDenied"] == "lambda:GetFunctionConfiguration"
    assert report["facts"]["keyState"] is None  # nothing more was asked of AWS about it
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert fields["healSkippedReason"] == report["reason"]
    assert "healAttempts" not in fields
    assert cloud.received() == []
    assert stand_in.updates == []

    monkeypatch.setattr(wiring, "healer", lambda *_, **__: healer(cloud, table_settings, stand_in))
    refused = run_cli(table_settings, story.function)
    assert refused.exit_code == 6, refused.output
    assert json.loads(refused.stdout)["heal"]["reason"] == report["reason"]


def test_access_denied_as_aws_sends_it_means_not_opted_in() -> None:
    """Lambda's AccessDeniedException exactly as botocore parses it (HTTP 403): for a function in another
    account, as every member-account alert in organization mode names."""
    other = "arn:aws:lambda:eu-central-1:111122223333:function:billing"
    client = boto3.client("lambda", region_name="eu-central-1")
    kms = boto3.client("kms", region_name="eu-central-1")
    message = (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/grantwatch-RemediationRole/grantwatch-remediation is not "
        f"authorized to perform: lambda:GetFunctionConfiguration on resource: {other} because no "
        "resource-based policy allows the lambda:GetFunctionConfiguration action"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_function_configuration",
            service_error_code="AccessDeniedException",
            service_message=message,
            http_status_code=403,
            expected_params={"FunctionName": other},
        )
        stub.add_response("get_function_configuration", {"FunctionArn": other, "RevisionId": "r1"})
        stub.add_client_error(
            "list_tags",
            service_error_code="AccessDeniedException",
            service_message=message.replace("GetFunctionConfiguration", "ListTags"),
            http_status_code=403,
        )
        healer_aws = AwsFunctionHealer(client, kms)
        assert healer_aws.function(other) == FunctionDenied("lambda:GetFunctionConfiguration")
        assert healer_aws.function(other) == FunctionDenied("lambda:ListTags")
        stub.assert_no_pending_responses()
    with Stubber(kms) as stub:
        stub.add_client_error(
            "describe_key",
            service_error_code="AccessDeniedException",
            service_message="User: … is not authorized to perform: kms:DescribeKey on this resource",
            http_status_code=400,
        )
        assert AwsFunctionHealer(client, kms).key("arn:aws:kms:eu-central-1:111122223333:key/k") is None


def test_a_heal_outcome_a_channel_refuses_is_counted_once_and_does_not_fail_the_heal(
    cloud: Cloud, table_settings: Settings
) -> None:
    """A retry of the heal would heal again: a channel other than the SNS topic is given up on at once."""
    story = retired_grant_story(cloud, table_settings)
    counted: list[tuple[str, str, str]] = []

    class Counted:
        def failed(self, channel: str, reason: str) -> None:
            counted.append(("failed", channel, reason))

        def gave_up(self, channel: str, reason: str) -> None:
            counted.append(("gave up", channel, reason))

    class Gone:
        def publish(self, notice: Notice) -> None:
            raise ConnectionError("bus unreachable")

    heal = healer(cloud, table_settings, LambdaStandIn(cloud, creates_grant=True))
    heal.notifier = FanOut([("sns", SnsNotifier(cloud.topic, cloud.sns)), ("events", Gone())])
    heal.monitor = Counted()
    report = heal.heal(story.function)
    assert report.healed
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-succeeded"
    assert counted == [("gave up", "events", "ConnectionError"), ("failed", "events", "ConnectionError")]
