"""Self-healing against moto's Lambda, KMS, SNS and SQS (its server, on loopback) and DynamoDB Local.

moto's Lambda creates no grant when a function's configuration is updated; AWS's does. Where a test needs
the heal to work, a botocore hook on the healer's Lambda client creates the grant on moto's KMS right
after UpdateFunctionConfiguration returns, as Lambda would; where it must fail, nothing creates it. Either
way the healer verifies through moto's ListGrants, and the hook counts every UpdateFunctionConfiguration.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.heal_records import DynamoHealRecords
from grantwatch.adapters.lambda_healer import AwsFunctionHealer
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.cli import app
from grantwatch.domain.alerts import Notice
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.healing import HealPolicy, HealStatus
from grantwatch.handlers import remediation
from grantwatch.healer import Healer
from grantwatch.local import free_port
from grantwatch.pipeline import LocalPipeline, local_pipeline
from grantwatch.queries import incident_rows
from grantwatch.settings import Settings
from tests.conftest import FakeLambdaContext
from tests.integration.test_reconcile import ACCOUNT, REGION, Aws, delivered_create, session
from tests.scenarios import retire_grant

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
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # noqa: S310
    for service in ("KMS", "LAMBDA", "IAM", "STS", "SNS", "SQS"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)
    try:
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="grantwatch-alerts")["TopicArn"]
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
    finally:
        server.stop()


@dataclass
class LambdaStandIn:
    """Counts UpdateFunctionConfiguration calls and, if `creates_grant`, creates the grant AWS would."""

    cloud: Cloud
    creates_grant: bool
    updates: list[str] = field(default_factory=list)

    def client(self) -> Any:
        client = boto3.client("lambda", region_name=REGION)
        client.meta.events.register("after-call.lambda.UpdateFunctionConfiguration", self._updated)
        return client

    def _updated(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.updates.append(parsed["FunctionArn"])
        if self.creates_grant:
            role = parsed["Role"].rsplit("/", 1)[-1]
            self.cloud.lambda_grant(
                parsed["KMSKeyArn"] or "", parsed["FunctionArn"], session(role, parsed["FunctionName"])
            )


@dataclass
class Story:
    pipeline: LocalPipeline
    function: str
    key: str
    alert: Notice


def retired_grant_story(cloud: Cloud, settings: Settings, *, tagged: bool = True) -> Story:
    """A function on a customer managed key whose only grant an administrator retired: one open incident."""
    key = cloud.kms.create_key()["KeyMetadata"]["Arn"]
    function = cloud.function("billing", cloud.role("billing-role"), key)
    if tagged:
        cloud.lambda_.tag_resource(Resource=function, Tags={TAG: "true"})
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


def healer(cloud: Cloud, settings: Settings, stand_in: LambdaStandIn, max_attempts: int = 2) -> Healer:
    return Healer(
        incidents=local_pipeline(settings).functions,
        hazards=local_pipeline(settings).hazards,
        records=DynamoHealRecords(settings),
        aws=AwsFunctionHealer(stand_in.client(), boto3.client("kms", region_name=REGION)),
        notifier=SnsNotifier(cloud.topic, cloud.sns),
        policy=HealPolicy(tag=TAG, max_attempts=max_attempts),
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

    report = heal.heal(story.function)
    assert report.decision.heal and report.healed, report.as_json()
    assert stand_in.updates == [story.function]
    configuration = cloud.lambda_.get_function_configuration(FunctionName=story.function)
    assert configuration["KMSKeyArn"] == story.key  # nothing the owner set has changed
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert (fields["healStatus"], fields["healAttempts"]) == ("healed", "1")
    assert report.outcome is not None and fields["healGrantId"] == report.outcome.grant_id
    [envelope] = cloud.received()
    assert envelope["MessageAttributes"]["alertType"]["Value"] == "heal-succeeded"
    assert envelope["Subject"] == "[grantwatch] billing healed"

    again = heal.heal(story.function)  # the same alert delivered a second time
    assert (again.decision.heal, again.outcome) == (False, None)
    assert again.decision.reason == "already healed once for this incident"
    assert stand_in.updates == [story.function]
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
    assert report.decision.reason == f"the function is not tagged {TAG}=true"
    assert stand_in.updates == []
    after = cloud.lambda_.get_function_configuration(FunctionName=story.function)
    assert {k: v for k, v in after.items() if k != "ResponseMetadata"} == {
        k: v for k, v in before.items() if k != "ResponseMetadata"
    }
    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert set(fields) == {"healSkippedAt", "healSkippedReason"}  # no attempt was taken
    assert fields["healSkippedReason"] == f"the function is not tagged {TAG}=true"
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
        assert report.outcome.error == "the function was updated, but no new grant was listed within 0 s"
    assert (third.decision.heal, third.decision.reason) == (False, "2 of 2 attempts used")
    assert stand_in.updates == [story.function, story.function]

    fields = heal_fields(table_settings, story.function, story.alert.incident_id)
    assert (fields["healStatus"], fields["healAttempts"]) == ("failed", "2")
    assert "no new grant was listed" in fields["healError"]
    envelopes = cloud.received()
    assert [e["MessageAttributes"]["alertType"]["Value"] for e in envelopes] == ["heal-failed", "heal-failed"]
    assert "No further attempt will be made." in envelopes[-1]["Message"]
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
                    "Message": notice.message,
                    "Timestamp": "2026-11-20T16:45:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {
                        name: {"Type": "String", "Value": value} for name, value in notice.attributes.items()
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

    [report] = remediation.lambda_handler(
        sns_event(story.alert, cloud.topic), FakeLambdaContext("remediation")
    )
    assert (report["decision"], report["incidentId"], report["outcome"]["healed"]) == (
        "heal",
        story.alert.incident_id,
        True,
    )
    assert stand_in.updates == [story.function]

    forged = sns_event(story.alert, cloud.topic)
    forged["Records"][0]["Sns"]["Message"] = "not an alert"
    with pytest.raises(ValueError, match="no 'Details \\(JSON\\)' section"):
        remediation.lambda_handler(forged, FakeLambdaContext("remediation"))


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
    assert stand_in.updates == [story.function]


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
    cloud: Cloud, table_settings: Settings
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
