"""The settle window in AWS: an SQS queue whose delivery delay is the window, feeding the evaluator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grantwatch.adapters.clients import Clients, create_client
from grantwatch.domain.records import EvaluationRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class SqsEvaluationScheduler:
    """Without `client`, one from `clients` (boto3's without), created when the first request is sent."""

    def __init__(
        self, queue_url: str, client: SQSClient | None = None, *, clients: Clients | None = None
    ) -> None:
        self._client = client
        self._clients = clients
        self.queue_url = queue_url

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = create_client("sqs", self._clients)
        return self._client

    def schedule(self, request: EvaluationRequest) -> None:
        if request.immediate:  # a failure already happened: no settle window to wait for
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=request.body(), DelaySeconds=0)
        else:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=request.body())
