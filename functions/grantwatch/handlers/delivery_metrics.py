"""The metrics of notices a channel did not take, for the evaluator and the remediation function:
`ChannelDeliveryFailed` for each failed attempt and `ChannelDeliveryAbandoned` for each channel given up on
for a notice, each once with the function's `service` dimension alone (what ChannelDeliveryAlarm watches)
and once with a `Channel` dimension too (which channel it was)."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

FAILED = "ChannelDeliveryFailed"
ABANDONED = "ChannelDeliveryAbandoned"


class ChannelMetrics:
    """A DeliveryMonitor that counts in CloudWatch (embedded metric format, flushed with the handler's)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def failed(self, channel: str, reason: str) -> None:
        self._count(FAILED, channel)

    def gave_up(self, channel: str, reason: str) -> None:
        self._count(ABANDONED, channel)

    def _count(self, name: str, channel: str) -> None:
        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="Channel", value=channel)
