"""The evaluation queue's batch sending through moto's SQS server: every request arrives once, as it was
asked for, ten to a SendMessageBatch (AWS's limit, checked by the limits contract)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.domain.records import EvaluationRequest
from tests.support.iam_contract import stands_for
from tests.support.moto_server import moto_server

AT = datetime(2026, 11, 10, 9, tzinfo=UTC)
FUNCTIONS = "arn:aws:lambda:eu-central-1:210987654321:function:"


def test_a_page_of_requests_is_sent_ten_to_a_batch_and_each_arrives_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with moto_server(monkeypatch, "SQS"):
        sqs = boto3.client("sqs", region_name="eu-central-1")
        calls: list[int] = []
        sqs.meta.events.register(
            "provide-client-params.sqs.SendMessageBatch",
            lambda params, **_: calls.append(len(params["Entries"])),
        )
        url = sqs.create_queue(QueueName="grantwatch-evaluations", Attributes={"DelaySeconds": "120"})[
            "QueueUrl"
        ]
        stands_for("EvaluationQueue", url)
        asked = [
            EvaluationRequest.about(
                f"arn:aws:lambda:eu-central-1:210987654321:function:fn-{n}", "disable", AT, immediate=True
            )
            for n in range(23)
        ]
        SqsEvaluationScheduler(url, sqs).schedule_many(asked)

        received: list[EvaluationRequest] = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received += [EvaluationRequest.from_body(m["Body"]) for m in batch]
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
            )
    assert calls == [10, 10, 3]
    assert sorted(r.function_arn or "" for r in received) == sorted(r.function_arn or "" for r in asked)
    assert all(r.immediate for r in received)


def test_an_entry_sqs_refuses_for_its_own_fault_is_not_sent_again_and_one_it_could_not_take_is() -> None:
    sqs: Any = botocore.session.get_session().create_client("sqs", region_name="eu-central-1")
    url = "https://sqs.eu-central-1.amazonaws.com/210987654321/grantwatch-evaluations"
    asked = [
        EvaluationRequest.about(f"arn:aws:lambda:eu-central-1:210987654321:function:fn-{n}", "e", AT)
        for n in range(3)
    ]
    with Stubber(sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "0" * 32}],
                "Failed": [
                    {"Id": "1", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "bad"},
                    {"Id": "2", "SenderFault": False, "Code": "InternalError", "Message": "try again"},
                ],
            },
        )
        stub.add_response(
            "send_message",
            {"MessageId": "m2", "MD5OfMessageBody": "0" * 32},
            {"QueueUrl": url, "MessageBody": asked[2].body()},
        )
        SqsEvaluationScheduler(url, sqs).schedule_many(asked)
        stub.assert_no_pending_responses()
