"""The evaluation queue's batch sending through moto's SQS server: every request arrives once, as it was
asked for, ten to a SendMessageBatch (AWS's limit, checked by the limits contract)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.domain.records import EvaluationRequest
from tests.support.iam_contract import stands_for
from tests.support.moto_server import moto_server

AT = datetime(2026, 11, 10, 9, tzinfo=UTC)


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
