"""Organization fan-out: on the reconciliation schedule, one message per account and region on the
organization queue, and a notice for the account-regions not reconciled for two intervals."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch.adapters.accounts import (
    DynamoCoverageStore,
    ListedAccounts,
    OrganizationAccounts,
    SqsReconciliationQueue,
)
from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.domain.coverage import interval_of
from grantwatch.fanout import AccountLister, FanOut
from grantwatch.settings import required, settings

logger = Logger()
metrics = Metrics()


def listed(variable: str) -> list[str]:
    return [v.strip() for v in os.environ.get(variable, "").split(",") if v.strip()]


def fan_out() -> FanOut:
    config = settings()
    account_ids = listed("GRANTWATCH_ACCOUNT_IDS")
    accounts: AccountLister = ListedAccounts(account_ids) if account_ids else OrganizationAccounts()
    return FanOut(
        accounts=accounts,
        regions=listed("GRANTWATCH_REGIONS") or [config.region],
        queue=SqsReconciliationQueue(
            required(os.environ.get("GRANTWATCH_ORGANIZATION_QUEUE_URL"), "GRANTWATCH_ORGANIZATION_QUEUE_URL")
        ),
        coverage=DynamoCoverageStore(config),
        notifier=SnsNotifier(required(config.alert_topic_arn, "GRANTWATCH_ALERT_TOPIC_ARN")),
        interval=interval_of(os.environ.get("GRANTWATCH_RECONCILE_SCHEDULE", "rate(1 hour)")),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = fan_out().run(datetime.now(UTC))
    metrics.add_metric(name="ReconciliationsQueued", unit=MetricUnit.Count, value=result["queued"])
    metrics.add_metric(name="AccountRegionsStale", unit=MetricUnit.Count, value=len(result["stale"]))
    if result["notQueued"]:
        logger.error("reconciliations not queued", extra={"targets": result["notQueued"]})
    logger.info("fanned out", extra=result)
    return result
