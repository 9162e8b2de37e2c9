"""Recorder: one CloudTrail event (a KMS grant or key change, a Lambda configuration change, an IAM role
created or deleted, a failed Decrypt) from EventBridge in, recorded in the table, and an evaluation of
what it touched scheduled after the settle window."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.rejected import RejectedEventSink, SqsRejectedEventSink
from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import required, settings

logger = Logger()
metrics = Metrics()


@cache
def recorder() -> Recorder:
    config = settings()
    queue_url = required(config.evaluation_queue_url, "GRANTWATCH_EVALUATION_QUEUE_URL")
    return Recorder(
        DynamoGrantStore(config),
        DynamoFunctionStore(config),
        DynamoHazardStore(config),
        SqsEvaluationScheduler(queue_url),
    )


@cache
def rejected_sink() -> RejectedEventSink:
    return SqsRejectedEventSink(required(settings().rejected_queue_url, "GRANTWATCH_REJECTED_QUEUE_URL"))


@logger.inject_lambda_context(correlation_id_path="detail.eventID")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = recorder().record(event)
    metrics.add_metric(name=f"Events{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    if result.outcome is Outcome.REJECTED:
        logger.error("event rejected", extra=result.as_json())
        rejected_sink().send(event, event_id=result.event_id, error=result.error or "rejected")
    else:
        logger.info("event processed", extra=result.as_json())
    return result.as_json()
