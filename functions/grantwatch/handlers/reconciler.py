"""Reconciler: on a schedule, compares ListGrants and ListFunctions with the table, records the
differences with `source: reconciliation`, and schedules the evaluation of every function concerned."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.readers import KmsGrantReader, LambdaFunctionReader
from grantwatch.adapters.scheduler import SqsEvaluationScheduler
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.reconciler import Reconciler
from grantwatch.settings import required, settings

logger = Logger()
metrics = Metrics()


def reconciler(account: str) -> Reconciler:
    config = settings()
    return Reconciler(
        grants=DynamoGrantStore(config),
        functions=DynamoFunctionStore(config),
        hazards=DynamoHazardStore(config),
        kms=KmsGrantReader(region=config.region),
        lambda_=LambdaFunctionReader(region=config.region),
        scheduler=SqsEvaluationScheduler(
            required(config.evaluation_queue_url, "GRANTWATCH_EVALUATION_QUEUE_URL")
        ),
        account=account,
        region=config.region,
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    account = context.invoked_function_arn.split(":")[4]
    report = reconciler(account).run(datetime.now(UTC))
    for what, count in report.repairs.items():
        metrics.add_metric(name=f"Repairs-{what}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="ReconcileErrors", unit=MetricUnit.Count, value=len(report.errors))
    if report.errors:
        logger.warning("keys not reconciled", extra={"errors": report.errors})
    logger.info("reconciled", extra=report.as_json())
    return report.as_json()
