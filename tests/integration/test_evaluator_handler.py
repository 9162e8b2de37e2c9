"""The evaluator Lambda: SQS batch in, notices to SNS, bad messages reported as batch item failures."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.evaluator import Evaluator
from grantwatch.handlers import evaluator as handler
from grantwatch.pipeline import LocalPipeline
from grantwatch.settings import Settings
from tests.support.iam_contract import STACK_ACCOUNT, STACK_REGION, stands_for
from tests.support.lambda_context import FakeLambdaContext
from tests.support.scenarios import create_grant, function_arn, retire_grant

# The stack's alert topic, in the stack's own account and region, as the IAM contract checks the publish.
TOPIC = stands_for("AlertTopic", f"arn:aws:sns:{STACK_REGION}:{STACK_ACCOUNT}:grantwatch-alerts")


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"r{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-central-1:210987654321:grantwatch-evaluations",
                "awsRegion": "eu-central-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def test_an_evaluation_publishes_the_alert_once_and_reports_bad_messages(
    table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    recorder = LocalPipeline(grants, functions, hazards).recorder
    recorder.record(create_grant("billing", "g1", "2026-11-01T10:00:00Z"))
    recorder.record(retire_grant("g1", "2026-11-03T10:00:00Z"))

    client = boto3.client("sns", region_name=STACK_REGION)
    monkeypatch.setattr(
        handler,
        "evaluator",
        lambda: Evaluator(grants, functions, hazards, SnsNotifier(TOPIC, client), recorder.scheduler),
    )
    request = json.dumps(
        {"functionArn": function_arn("billing"), "eventID": "e1", "eventTime": "2026-11-03T10:00:00Z"}
    )
    with Stubber(client) as stub:
        stub.add_response(
            "publish",
            {"MessageId": "1"},
            {
                "TopicArn": TOPIC,
                "Subject": ANY,
                "Message": ANY,
                "MessageStructure": "json",
                "MessageAttributes": ANY,
            },
        )
        response = handler.lambda_handler(
            sqs_event(request, "{not json", request), FakeLambdaContext("grantwatch-evaluator")
        )
        stub.assert_no_pending_responses()
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def test_a_batch_where_every_request_fails_fails_the_invocation() -> None:
    bad = json.dumps({"functionArn": "f", "eventID": "e", "eventTime": "secret-when"})
    with pytest.raises(handler.EveryRequestFailed, match="2 evaluation requests"):
        handler.lambda_handler(sqs_event(bad, "{not json"), FakeLambdaContext("grantwatch-evaluator"))
