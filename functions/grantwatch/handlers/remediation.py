"""Remediation (only when the stack's SelfHealing parameter is "true"): alerts of a healable kind in,
from the alert topic through a filter policy on alertType; the incident and the function taken from the
message attributes (incidentId, functionArn), never from the text; the function's grant reset the
documented way if every safety rule allows it; "healed" or "heal failed" on the incident and to the topic.

A failed heal fails the invocation, so Lambda retries it once (the attempt limit on the incident still
holds) and then sends the event to the remediation dead-letter queue. A skipped one (a function that is
not opted in, which Lambda answers with AccessDeniedException) is recorded and ends cleanly.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grantwatch import wiring
from grantwatch.domain.healing import heal_request
from grantwatch.handlers.delivery_metrics import ChannelMetrics
from grantwatch.healer import Healer
from grantwatch.settings import settings

logger = Logger()
metrics = Metrics()


class HealFailed(RuntimeError):
    """The heal was attempted and did not produce a grant (already reported on the incident and SNS)."""


@cache
def healer() -> Healer:
    return wiring.remediation_healer(settings(), monitor=ChannelMetrics(metrics))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> list[dict[str, Any]]:
    requests = [heal_request(record) for record in event.get("Records") or []]
    reports = []
    for request in requests:
        report = healer().heal(request.function_arn, incident_id=request.incident_id)
        reports.append(report.as_json())
        logger.info("heal", extra=report.as_json())
        if report.outcome is None:
            metrics.add_metric(name="HealsSkipped", unit=MetricUnit.Count, value=1)
        elif report.outcome.healed:
            metrics.add_metric(name="Healed", unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name="HealsFailed", unit=MetricUnit.Count, value=1)
            raise HealFailed(f"{request.function_arn}: {report.outcome.error}")
    return reports
