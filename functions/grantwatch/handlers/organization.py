"""Organization worker: one account-region per SQS message (batch size 1, bounded concurrency on the event
source), reconciled as the member account's read-only role. An unreachable account is recorded in its
coverage item and the message is done; a failure to record (the table) is retried by SQS, then
dead-lettered. A message that names no valid account or region is logged with the field and dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.domain.coverage import Target, TargetError
from grantwatch.organization import OrganizationReconciler
from grantwatch.settings import required, settings

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def organization_reconciler() -> OrganizationReconciler:
    config = settings()
    return wiring.organization_reconciler(
        config,
        required(config.member_role_name, "GRANTWATCH_MEMBER_ROLE_NAME"),
        required(config.member_external_id, "GRANTWATCH_MEMBER_EXTERNAL_ID"),
        own_account=config.central_account_id,
    )


def target_of(body: str) -> Target | None:
    try:
        parsed = json.loads(body)
        return Target.parse(parsed if isinstance(parsed, dict) else {})
    except (ValueError, TargetError) as error:
        field_name = error.field_name if isinstance(error, TargetError) else "body"
        logger.error("reconciliation request refused", extra={"field": field_name, "reason": "invalid"})
        return None


def reconcile_target(record: SQSRecord) -> None:
    target = target_of(record.body)
    if target is None:
        metrics.add_metric(name="ReconciliationRequestsRefused", unit=MetricUnit.Count, value=1)
        return
    coverage = organization_reconciler().run(target, datetime.now(UTC))
    for what, count in coverage.repairs.items():
        metrics.add_metric(name=f"Repairs-{what}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=coverage.error_count)
    if coverage.errors:
        logger.warning("not all reconciled", extra=target.as_json() | {"errors": list(coverage.errors)})
    logger.info("reconciled", extra=coverage.as_json())


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=reconcile_target, processor=processor, context=context
    )
