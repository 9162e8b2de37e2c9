"""Evaluator: evaluation requests from the delay queue in, after the settle window; incidents opened or
closed and their notices published to SNS. A request that fails is retried by SQS, then dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch.adapters.channels import alert_notifier
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.records import EvaluationRequest
from grantwatch.evaluator import Evaluator
from grantwatch.settings import required, settings

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def evaluator() -> Evaluator:
    config = settings()
    topic = required(config.alert_topic_arn, "GRANTWATCH_ALERT_TOPIC_ARN")
    queue_url = required(config.evaluation_queue_url, "GRANTWATCH_EVALUATION_QUEUE_URL")
    return Evaluator(
        DynamoGrantStore(config),
        DynamoFunctionStore(config),
        DynamoHazardStore(config),
        alert_notifier(config, topic),
        SqsEvaluationScheduler(queue_url),
        temporary_role=config.heal_temporary_role_arn,
    )


def evaluate_request(record: SQSRecord) -> None:
    request = EvaluationRequest.model_validate_json(record.body)
    named = {"functionArn": request.function_arn, "keyArn": request.key_arn, "role": request.role}
    subject: dict[str, object] = {k: v for k, v in named.items() if v is not None}
    for notice in evaluator().run(request, datetime.now(UTC)):
        metrics.add_metric(name=f"Notices{notice.kind.title()}", unit=MetricUnit.Count, value=1)
        if notice.kind == "alert":  # the dashboard's alerts by type
            alert_type = notice.attributes["alertType"]
            metrics.add_metric(name=f"Alerts-{alert_type}", unit=MetricUnit.Count, value=1)
        logger.info(
            "notice published", extra={"incidentId": notice.incident_id, "kind": notice.kind} | subject
        )
    logger.info("evaluated", extra={"eventID": request.event_id} | subject)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=evaluate_request, processor=processor, context=context
    )
