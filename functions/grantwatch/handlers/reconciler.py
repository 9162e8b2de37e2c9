"""Reconciler: on a schedule, compares ListGrants and ListFunctions with the table, records the
differences with `source: reconciliation`, and schedules the evaluation of every function concerned."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.reconciler import Reconciler
from grantwatch.settings import settings

logger = Logger()
metrics = Metrics()


def reconciler(account: str) -> Reconciler:
    return wiring.reconciler(settings(), account)


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
