"""The settle window in AWS: an SQS queue whose delivery delay is the window, feeding the evaluator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grantwatch.domain.records import EvaluationRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class SqsEvaluationScheduler:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sqs")
        self.client: SQSClient = client
        self.queue_url = queue_url

    def schedule(self, request: EvaluationRequest) -> None:
        if request.immediate:  # a failure already happened: no settle window to wait for
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=request.body(), DelaySeconds=0)
        else:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=request.body())
