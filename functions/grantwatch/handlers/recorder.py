"""Recorder: one CloudTrail grant event from EventBridge in, one write to the grant table."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch.adapters.rejected import RejectedEventSink, SqsRejectedEventSink
from grantwatch.adapters.store import DynamoGrantStore, GrantStore
from grantwatch.recorder import Outcome, record_event
from grantwatch.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def grant_store() -> GrantStore:
    return DynamoGrantStore(settings())


@cache
def rejected_sink() -> RejectedEventSink:
    queue_url = settings().rejected_queue_url
    if not queue_url:
        raise RuntimeError("GRANTWATCH_REJECTED_QUEUE_URL is not set: rejected events would be lost")
    return SqsRejectedEventSink(queue_url)


@logger.inject_lambda_context(correlation_id_path="detail.eventID")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = record_event(event, grant_store())
    metrics.add_metric(name=f"Events{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    if result.outcome is Outcome.REJECTED:
        logger.error("event rejected", extra=result.as_json())
        rejected_sink().send(event, event_id=result.event_id, error=result.error or "rejected")
    else:
        logger.info("event processed", extra=result.as_json())
    return result.as_json()
