"""Recorder: one CloudTrail event (a KMS grant or key change, a Lambda configuration change, an IAM role
created or deleted, a failed Decrypt) from EventBridge in, recorded in the table, and an evaluation of
what it touched scheduled after the settle window."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.ports import RejectedEventSink
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import settings

logger = Logger()
metrics = Metrics()
# The canary's heartbeat (docs/canary.md): one metric a path, which the template's alarms watch.
HEARTBEAT_METRIC = "CanaryHeartbeat"


@cache
def recorder() -> Recorder:
    return wiring.recorder(settings())


@cache
def rejected_sink() -> RejectedEventSink:
    return wiring.rejected_sink(settings())


@logger.inject_lambda_context(correlation_id_path="detail.eventID")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = recorder().record(event)
    metrics.add_metric(name=f"Events{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    if result.canary_path is not None and result.canary_from == own_account_region(context):
        heartbeat(result.canary_path)
    if result.outcome is Outcome.REJECTED:
        logger.error("event rejected", extra=result.as_json())
        rejected_sink().send(event, event_id=result.event_id, error=result.error or "rejected")
    else:
        logger.info("event processed", extra=result.as_json())
    return result.as_json()


def own_account_region(context: LambdaContext) -> str:
    """ACCOUNT/REGION of this function (from its ARN): the metric the stack's alarms watch counts the
    heartbeats of this account-region's canary only, so that members heard never hide a deaf central path
    (member accounts' heartbeats are kept in the table: `grantwatch accounts`)."""
    parts = context.invoked_function_arn.split(":")
    return f"{parts[4]}/{parts[3]}"


def heartbeat(path: str) -> None:
    """One CanaryHeartbeat, by service and path: its own metric object, so that the path dimension is its
    alone and not every event metric's."""
    with single_metric(
        name=HEARTBEAT_METRIC,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={"service": metrics.service or "grantwatch-recorder"},
    ) as metric:
        metric.add_dimension(name="path", value=path)
