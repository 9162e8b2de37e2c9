"""The settle window in AWS: an SQS queue whose delivery delay is the window, feeding the evaluator."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from grantwatch.adapters.clients import Clients, create_client
from grantwatch.domain.records import EvaluationRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


logger = logging.getLogger(__name__)


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

    def schedule_many(self, requests: Sequence[EvaluationRequest]) -> None:
        """Ten to a SendMessageBatch; an entry SQS did not take is sent on its own (raising if it fails
        again, so that the request that asked for them is retried: a second evaluation is harmless)."""
        for start in range(0, len(requests), SEND_BATCH):
            batch = requests[start : start + SEND_BATCH]
            entries: list[SendMessageBatchRequestEntryTypeDef] = []
            for n, request in enumerate(batch):
                entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(n), "MessageBody": request.body()}
                if request.immediate:  # as `schedule`: no settle window to wait for
                    entry["DelaySeconds"] = 0
                entries.append(entry)
            answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failed in answer.get("Failed", []):
                request = batch[int(failed["Id"])]
                if failed.get("SenderFault"):  # SQS will never take it: sending it again would not help
                    subject = request.function_arn or request.key_arn or request.role
                    logger.error(
                        "evaluation request for %s refused by SQS (%s): not sent again",
                        subject,
                        failed.get("Code"),
                    )
                    continue
                self.schedule(request)


SEND_BATCH = 10  # the most SendMessageBatch takes
