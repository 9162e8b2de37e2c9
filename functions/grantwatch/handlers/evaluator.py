"""Evaluator: evaluation requests from the delay queue in, after the settle window; incidents opened or
closed and their notices published to SNS. A request that fails is retried by SQS, then dead-lettered.

The SQS partial batch response is built here rather than by Powertools' batch utility: importing that
utility (asyncio and every event data class) cost about as much as a fifth of boto3's own import, billed
on every cold start."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.domain.records import EvaluationRequest
from grantwatch.evaluator import Evaluator
from grantwatch.handlers.delivery_metrics import ChannelMetrics
from grantwatch.settings import settings

logger = Logger()
metrics = Metrics()


class EveryRequestFailed(RuntimeError):
    """No request of the batch was evaluated: the invocation fails, as a whole, so it shows as an error."""


@cache
def evaluator() -> Evaluator:
    return wiring.evaluator(settings(), monitor=ChannelMetrics(metrics))


def evaluate_request(body: str) -> None:
    request = EvaluationRequest.from_body(body)
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
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    """Each message that fails is reported by id, so SQS retries it alone (ReportBatchItemFailures)."""
    records = event.get("Records") or []
    failed = [
        {"itemIdentifier": str(record.get("messageId"))} for record in records if not _evaluated(record)
    ]
    if records and len(failed) == len(records):
        raise EveryRequestFailed(f"none of the {len(records)} evaluation requests was evaluated")
    return {"batchItemFailures": failed}


def _evaluated(record: dict[str, Any]) -> bool:
    try:
        evaluate_request(record["body"])
    except Exception:
        logger.exception("evaluation failed", extra={"messageId": record.get("messageId")})
        return False
    return True
