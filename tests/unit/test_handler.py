"""The recorder handler: one domain call, outcome metrics, rejected events sent to the dead-letter queue."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from grantwatch.domain.facts import GrantFact
from grantwatch.domain.records import EvaluationRequest
from grantwatch.handlers import recorder as handler
from grantwatch.ports import RecordedGrant, RecordResult
from grantwatch.recorder import Recorder
from grantwatch.settings import settings
from tests.support.iam_contract import stands_for
from tests.support.lambda_context import FakeLambdaContext
from tests.support.samples import load_event


class FakeStore:
    """Records facts in memory; answers as the table would for a first delivery and a redelivery."""

    def __init__(self) -> None:
        self.facts: list[GrantFact] = []
        self.scheduled: list[EvaluationRequest] = []

    def record(self, fact: GrantFact) -> RecordedGrant:
        seen = any(f.event_id == fact.event_id for f in self.facts)
        self.facts.append(fact)
        result = RecordResult.DUPLICATE if seen else RecordResult.RECORDED
        return RecordedGrant(result, fact.terms.function_arn if fact.terms else None)

    def schedule(self, request: EvaluationRequest) -> None:
        self.scheduled.append(request)


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    store = FakeStore()
    monkeypatch.setattr(handler, "recorder", lambda: Recorder(store, None, None, store))  # type: ignore[arg-type]
    return store


@pytest.fixture
def queue_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with mock_aws():
        url = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="recorder-dlq")["QueueUrl"]
        stands_for("RecorderDeadLetterQueue", url)
        monkeypatch.setenv("GRANTWATCH_REJECTED_QUEUE_URL", url)
        settings.cache_clear()
        handler.rejected_sink.cache_clear()
        yield url
    settings.cache_clear()
    handler.rejected_sink.cache_clear()


def test_a_grant_event_is_recorded_once(
    fake_store: FakeStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log_stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", log_stream)
    event = load_event("kms-create-grant-lambda.json")
    assert handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))["outcome"] == "recorded"
    assert handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))["outcome"] == "duplicate"
    assert [f.event_id for f in fake_store.facts] == [event["detail"]["eventID"]] * 2
    function_arn = event["detail"]["requestParameters"]["constraints"]["encryptionContextEquals"][
        "aws:lambda:FunctionArn"
    ]
    assert [r.function_arn for r in fake_store.scheduled] == [function_arn] * 2
    logs = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    processed = [line for line in logs if line.get("message") == "event processed"]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert processed and processed[0]["correlation_id"] == event["detail"]["eventID"]
    metric_names = {
        m["Name"]
        for line in metrics
        if "_aws" in line
        for d in line["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    }
    assert {"EventsRecorded", "EventsDuplicate"} <= metric_names


def test_a_malformed_event_goes_to_the_dead_letter_queue_with_its_reason(
    fake_store: FakeStore, queue_url: str
) -> None:
    event = load_event("kms-create-grant-lambda.json")
    del event["detail"]["responseElements"]["grantId"]
    result = handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))
    assert result["outcome"] == "rejected"
    assert fake_store.facts == []
    messages = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=queue_url, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 1
    body: dict[str, Any] = json.loads(messages[0]["Body"])
    assert body["eventID"] == event["detail"]["eventID"]
    assert "grantId is missing" in body["error"]
    event["detail"]["userIdentity"]["accessKeyId"] = "[redacted]"  # a credential's id is not kept either
    assert body["event"] == event
    assert "grantId is missing" in messages[0]["MessageAttributes"]["grantwatch-error"]["StringValue"]


def test_a_huge_malformed_event_is_truncated_to_fit_a_queue_message(
    fake_store: FakeStore, queue_url: str
) -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["responseElements"] = {"padding": "x" * 300_000}
    assert handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))["outcome"] == "rejected"
    [message] = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=queue_url)["Messages"]
    body = json.loads(message["Body"])
    assert body["eventTruncated"] is True
    assert len(message["Body"].encode()) < 256 * 1024


def test_without_a_queue_a_rejected_event_fails_the_invocation_so_lambda_keeps_it(
    fake_store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRANTWATCH_REJECTED_QUEUE_URL", raising=False)
    settings.cache_clear()
    handler.rejected_sink.cache_clear()
    with pytest.raises(RuntimeError, match="GRANTWATCH_REJECTED_QUEUE_URL"):
        handler.lambda_handler(
            {"detail-type": "AWS API Call via CloudTrail", "detail": {}},
            FakeLambdaContext("grantwatch-recorder"),
        )


def test_a_rejected_event_is_stored_without_its_grant_tokens(fake_store: FakeStore, queue_url: str) -> None:
    event = load_event("kms-create-grant-lambda.json")
    event["detail"]["requestParameters"]["grantTokens"] = ["AQpAM2RhZ-a-grant-token"]
    event["detail"]["additionalEventData"] = {"grantToken": "AQpAM2RhZ-another-token"}
    event["detail"]["responseElements"] = {"grantToken": "AQpAM2RhZ-response-token"}
    assert handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))["outcome"] == "rejected"
    [message] = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=queue_url)["Messages"]
    assert "AQpAM2RhZ" not in message["Body"]
    assert json.loads(message["Body"])["event"]["detail"]["requestParameters"]["grantTokens"] == "[redacted]"
