"""The fan-out handler finds the member account-regions whose canary is silent: coverage and heartbeats in
DynamoDB Local (written by the stores the recorder and the workers use), the notice through SNS and SQS on
moto's server, its one Query of the heartbeats checked against the fan-out's policy."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from grantwatch import wiring
from grantwatch.adapters.accounts import DynamoCoverageStore
from grantwatch.adapters.heartbeats import DynamoHeartbeatStore
from grantwatch.domain.canary import CanaryPath
from grantwatch.domain.coverage import Target, reconciled
from grantwatch.handlers import fanout as handler
from grantwatch.settings import Settings
from tests.support.iam_contract import SESSION, stands_for
from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_server import moto_server

CENTRAL = "210987654321"
HOME, OTHER = "us-east-1", "eu-west-1"  # HOME: the region the IAM contract deploys the stack in
FRESH, LATE, NEVER, NEW = "111100000001", "111100000002", "111100000003", "111100000004"
REPORT = {
    "keys": 0,
    "grantsListed": 0,
    "functionsListed": 0,
    "evaluationsScheduled": 0,
    "repairs": {},
    "errors": [],
}


@dataclasses.dataclass
class Stand:
    queue_url: str
    topic_arn: str
    inbox_url: str

    def notices(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        answer = sqs.receive_message(
            QueueUrl=self.inbox_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


@pytest.fixture
def stand(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stand]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_server(monkeypatch, "SQS", "SNS"):
        sqs = boto3.client("sqs", region_name="us-east-1")
        sns = boto3.client("sns", region_name="us-east-1")
        queue = stands_for("OrganizationQueue", sqs.create_queue(QueueName="reconciliations")["QueueUrl"])
        topic = stands_for("AlertTopic", sns.create_topic(Name="alerts")["TopicArn"])
        inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=inbox_arn["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        yield Stand(queue, topic, inbox)


def _cover(store: DynamoCoverageStore, account: str, since: datetime, now: datetime) -> None:
    """Covered since `since`, reconciled again a few minutes ago: never stale."""
    first = reconciled(Target(account, OTHER), REPORT, since, None)
    store.put(reconciled(Target(account, OTHER), REPORT, now - timedelta(minutes=5), first))


def test_the_fan_out_names_the_silent_members_once_and_counts_them_in_its_metric(
    stand: Stand,
    table_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    settings = dataclasses.replace(
        table_settings,
        region=HOME,
        organization_queue_url=stand.queue_url,
        alert_topic_arn=stand.topic_arn,
        account_ids=",".join([FRESH, LATE, NEVER, NEW]),
        central_account_id=CENTRAL,
        regions=f"{HOME},{OTHER}",
        member_canary_interval_minutes=60,
    )
    coverage, heartbeats = DynamoCoverageStore(settings), DynamoHeartbeatStore(settings)
    for account in (FRESH, LATE, NEVER):
        _cover(coverage, account, now - 9 * hour, now)
    _cover(coverage, NEW, now - hour, now)  # its canary's first run may still be ahead
    coverage.put(reconciled(Target(CENTRAL, HOME), REPORT, now - timedelta(minutes=5), None))  # own alarms
    heartbeats.record(FRESH, OTHER, CanaryPath.CREATE_GRANT.value, now - timedelta(minutes=30))
    heartbeats.record(LATE, OTHER, CanaryPath.CREATE_GRANT.value, now - 3 * hour)
    heartbeats.record(LATE, OTHER, CanaryPath.DECRYPT.value, now)  # Decrypt alone keeps nobody fresh

    monkeypatch.setattr(handler, "fan_out", lambda: wiring.fan_out(settings))
    monkeypatch.setattr(handler.logger.registered_handler, "stream", io.StringIO())
    monkeypatch.setattr(handler.metrics, "service", "grantwatch-organization-fanout")
    monkeypatch.setattr(handler.metrics, "namespace", "grantwatch")
    capsys.readouterr()
    scope = SESSION.scope()
    checker = next(scope)
    try:
        answer = handler.lambda_handler({}, FakeLambdaContext("OrganizationFanOutFunction"))
    finally:
        next(scope, None)

    assert answer["silentCount"] == 2 and answer["staleCount"] == 0
    assert [(s["account"], s["lastHeardAt"] is None) for s in answer["silent"]] == [
        (LATE, False),
        (NEVER, True),
    ]
    assert checker.calls[("OrganizationFanOutFunction", "dynamodb:Query")] == 2  # coverage, heartbeats
    [notice] = stand.notices()
    assert notice["alertType"] == "member-canary-silent" and notice["targetCount"] == 2
    assert [t["account"] for t in notice["targets"]] == [LATE, NEVER]
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')
    ]
    [metrics] = emitted
    assert metrics["MemberHeartbeatsStale"] in (2.0, [2.0])
    assert metrics["service"] == "grantwatch-organization-fanout"


def test_with_the_member_check_off_the_heartbeats_are_not_read(
    stand: Stand, table_settings: Settings
) -> None:
    now = datetime.now(UTC)
    settings = dataclasses.replace(
        table_settings,
        organization_queue_url=stand.queue_url,
        alert_topic_arn=stand.topic_arn,
        account_ids=NEVER,
        regions=OTHER,
        member_canary_interval_minutes=0,
    )
    _cover(DynamoCoverageStore(settings), NEVER, now - timedelta(hours=9), now)
    scope = SESSION.scope()
    checker = next(scope)
    try:
        result = wiring.fan_out(settings).run(now)
    finally:
        next(scope, None)
    assert result["silent"] == [] and stand.notices() == []
    assert checker.calls[("OrganizationFanOutFunction", "dynamodb:Query")] == 1  # the coverage only
