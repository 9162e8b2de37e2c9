"""The organization worker's handler: a message naming no valid account or region is logged by field and
dropped without failing the others; a failure to record is that message's alone, retried by SQS."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from grantwatch.domain.coverage import Coverage, Target
from grantwatch.handlers import organization as handler
from tests.support.lambda_context import FakeLambdaContext


class Worker:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.ran: list[Target] = []

    def run(self, target: Target, now: datetime) -> Coverage:
        if target.account in self.failing:
            raise RuntimeError("the table stopped answering")
        self.ran.append(target)
        return Coverage(target.account, target.region, now, now)


def _record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "handle",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:210987654321:OrganizationQueue",
        "awsRegion": "eu-central-1",
    }


def test_bad_requests_are_dropped_by_field_and_failures_are_retried_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(failing={"444455556666"})
    monkeypatch.setattr(handler, "organization_reconciler", lambda: worker)
    event = {
        "Records": [
            _record("bad-json", "{not json"),
            _record("bad-region", json.dumps({"account": "111122223333", "region": "secret-value"})),
            _record("good", json.dumps({"account": "111122223333", "region": "eu-west-1"})),
            _record("failing", json.dumps({"account": "444455556666", "region": "eu-west-1"})),
        ]
    }
    answer = handler.lambda_handler(event, FakeLambdaContext("OrganizationWorkerFunction"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "failing"}]}
    assert worker.ran == [Target("111122223333", "eu-west-1")]
    refused = [
        r.__dict__.get("field") for r in caplog.records if r.getMessage() == "reconciliation request refused"
    ]
    assert refused == ["body", "region"]
    assert "secret-value" not in caplog.text and all(
        "secret-value" not in str(r.__dict__) for r in caplog.records
    )
