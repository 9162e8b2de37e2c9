"""Organization fan-out: on the reconciliation schedule, one message per account and region on the
organization queue, a notice for the account-regions not reconciled for two intervals, and one for the member
account-regions whose canary was not heard for two canary intervals (MemberHeartbeatsStale, which
MemberHeartbeatsStaleAlarm watches). Accounts that
cannot be read or of which none can be covered (ListAccounts answering no ACTIVE account, an SSM parameter
missing or holding something else than account ids) are logged as one structured error and counted in the
AccountSourceErrors metric, which OrganizationAccountSourceAlarm watches; nothing is queued."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.fanout import OrganizationFanOut
from grantwatch.ports import AccountSourceError
from grantwatch.settings import settings

logger = Logger()
metrics = Metrics()


def fan_out() -> OrganizationFanOut:
    return wiring.fan_out(settings())


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        result = fan_out().run(datetime.now(UTC))
    except AccountSourceError as error:
        metrics.add_metric(name="AccountSourceErrors", unit=MetricUnit.Count, value=1)
        logger.error(
            "accounts not listed", extra={"reason": error.reason, "error": str(error), **error.details}
        )
        return {"queued": 0, "notQueued": [], "stale": [], "silent": [], "error": {"reason": error.reason}}
    metrics.add_metric(name="ReconciliationsQueued", unit=MetricUnit.Count, value=result["queued"])
    metrics.add_metric(name="AccountRegionsStale", unit=MetricUnit.Count, value=len(result["stale"]))
    metrics.add_metric(name="MemberHeartbeatsStale", unit=MetricUnit.Count, value=len(result["silent"]))
    summary = summarised(result)
    if result["notQueued"]:
        logger.error(
            "reconciliations not queued",
            extra={"targets": summary["notQueued"], "count": summary["notQueuedCount"]},
        )
    logger.info("fanned out", extra=summary)
    return summary


# The account-regions a log line or the answer names; both count them all. Thousands of them would pass
# CloudWatch Logs' 256 KB per event (`grantwatch accounts` lists every one).
LISTED_TARGETS = 25


def summarised(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "queued": result["queued"],
        "notQueued": result["notQueued"][:LISTED_TARGETS],
        "notQueuedCount": len(result["notQueued"]),
        "stale": result["stale"][:LISTED_TARGETS],
        "staleCount": len(result["stale"]),
        "silent": result["silent"][:LISTED_TARGETS],
        "silentCount": len(result["silent"]),
    }
