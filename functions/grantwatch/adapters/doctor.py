"""The AWS reads of `grantwatch doctor`, each one call or a few, all from one botocore session with short
timeouts and few retries, so that a read that stalls ends the check in seconds. A refusal or a silence is
the port's ServiceError; a stack that does not exist, StackNotFound."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.adapters.aws_errors import code_of, describe, service_error
from grantwatch.adapters.clients import Clients
from grantwatch.domain.doctor import (
    IAM_REGION,
    ForwarderRule,
    QueueDepth,
    ReconcileRun,
    RuleFacts,
    StackFacts,
    Subscription,
    TrailFacts,
    rule_name_and_bus,
)
from grantwatch.ports import ServiceError

NAMESPACE = "grantwatch"  # POWERTOOLS_METRICS_NAMESPACE of every function of the stack
HEARTBEAT_METRIC = "CanaryHeartbeat"
HEARTBEAT_SERVICE = "grantwatch-recorder"
RECONCILE_METRIC = "ReconcileErrors"  # every run of the reconciler puts one, errors or not
RECONCILE_SERVICE = "grantwatch-reconciler"
MOST_DATAPOINTS = 1440  # GetMetricStatistics answers at most this many


class StackNotFound(ServiceError):
    """CloudFormation knows no stack of that name in the region."""


def _reads[**P, R](read: Callable[P, R]) -> Callable[P, R]:
    """A botocore error becomes the port's ServiceError: one line, never a traceback."""

    @functools.wraps(read)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(*args, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise service_error(error) from None

    return run


class AwsDoctorReads:
    """What doctor reads, in the stack's region and, for the IAM forwarder, in us-east-1."""

    def __init__(self, region: str, *, timeout_seconds: float = 10, clients: Clients | None = None) -> None:
        self.region = region
        self._clients = clients or Clients(region)
        self._config = Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self._made: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        where = region or self.region
        key = (service, where)
        if key not in self._made:
            self._made[key] = self._clients.client(service, region_name=where, config=self._config)
        return self._made[key]

    def stack(self, name: str) -> StackFacts:
        try:
            found = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as error:
            if code_of(error) == "ValidationError":  # DescribeStacks' answer for a name it does not know
                raise StackNotFound(describe(error)) from None
            raise service_error(error) from None
        except BotoCoreError as error:
            raise service_error(error) from None
        return StackFacts(
            name=found["StackName"],
            region=self.region,
            outputs={o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])},
            parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])},
        )

    @_reads
    def trails(self) -> list[TrailFacts]:
        cloudtrail = self.client("cloudtrail")
        trails = []
        for trail in cloudtrail.describe_trails(includeShadowTrails=True)["trailList"]:
            facts = TrailFacts(
                name=trail["Name"],
                home_region=trail.get("HomeRegion", self.region),
                multi_region=bool(trail.get("IsMultiRegionTrail")),
                logging=False,
            )
            try:
                facts = self._trail_state(facts, trail["TrailARN"])
            except ClientError as error:  # the others may still do; a stall ends the check
                facts = replace(facts, unread=describe(error))
            trails.append(facts)
        return trails

    def _trail_state(self, facts: TrailFacts, arn: str) -> TrailFacts:
        cloudtrail = self.client("cloudtrail")
        selectors = cloudtrail.get_event_selectors(TrailName=arn)
        return replace(
            facts,
            logging=bool(cloudtrail.get_trail_status(Name=arn)["IsLogging"]),
            event_selectors=selectors.get("EventSelectors") or [],
            advanced_selectors=selectors.get("AdvancedEventSelectors") or [],
        )

    @_reads
    def rule(self, rule_arn: str) -> RuleFacts:
        name, bus = rule_name_and_bus(rule_arn)
        try:
            state = self.client("events").describe_rule(Name=name, EventBusName=bus)["State"]
        except ClientError as error:
            if code_of(error) != "ResourceNotFoundException":
                raise
            state = None
        return RuleFacts(name=name, state=state)

    @_reads
    def forwarder_rules(self, bus_arn: str) -> list[ForwarderRule]:
        """us-east-1's default-bus rules that target the stack's bus."""
        events = self.client("events", IAM_REGION)
        names = _pages(events, "list_rule_names_by_target", "RuleNames", TargetArn=bus_arn)
        rules = []
        for name in names:
            rule = events.describe_rule(Name=name)
            rules.append(ForwarderRule(name=name, state=rule["State"], pattern=rule.get("EventPattern", "")))
        return rules

    @_reads
    def subscriptions(self, topic_arn: str) -> list[Subscription]:
        sns = self.client("sns")
        found = _pages(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=topic_arn)
        return [Subscription(topic_arn, s["Protocol"], s["SubscriptionArn"]) for s in found]

    @_reads
    def security_hub_enabled(self) -> bool:
        try:
            self.client("securityhub").describe_hub()
        except ClientError as error:
            if code_of(error) == "InvalidAccessException":  # the account is not subscribed
                return False
            raise
        return True

    @_reads
    def event_bus_exists(self, name: str) -> bool:
        try:
            self.client("events").describe_event_bus(Name=name)
        except ClientError as error:
            if code_of(error) == "ResourceNotFoundException":
                return False
            raise
        return True

    @_reads
    def connection_state(self, connection_arn: str) -> tuple[str | None, str]:
        name = connection_arn.split(":connection/", 1)[-1].split("/")[0]
        try:
            found = self.client("events").describe_connection(Name=name)
        except ClientError as error:
            if code_of(error) == "ResourceNotFoundException":
                return None, ""
            raise
        return found["ConnectionState"], found.get("StateReason", "")

    @_reads
    def queue_depth(self, output: str, url: str) -> QueueDepth:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return QueueDepth(
            output,
            url,
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )

    @_reads
    def last_heartbeats(
        self, paths: Iterable[str], since: datetime, now: datetime
    ) -> dict[str, datetime | None]:
        found: dict[str, datetime | None] = {}
        for path in paths:
            points = self._datapoints(
                HEARTBEAT_METRIC, {"service": HEARTBEAT_SERVICE, "path": path}, since, now, "SampleCount"
            )
            found[path] = max((p["Timestamp"] for p in points), default=None)
        return found

    @_reads
    def last_reconciliation(self, since: datetime, now: datetime) -> ReconcileRun | None:
        points = self._datapoints(RECONCILE_METRIC, {"service": RECONCILE_SERVICE}, since, now, "Sum")
        if not points:
            return None
        newest = max(points, key=lambda p: p["Timestamp"])
        return ReconcileRun(at=newest["Timestamp"], errors=int(newest.get("Sum", 0)))

    def _datapoints(
        self, metric: str, dimensions: dict[str, str], since: datetime, now: datetime, statistic: str
    ) -> list[dict[str, Any]]:
        span = (now - since).total_seconds()
        period = max(60, -(-int(span / MOST_DATAPOINTS) // 60) * 60)
        answer = self.client("cloudwatch").get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=since,
            EndTime=now + timedelta(minutes=1),
            Period=period,
            Statistics=[statistic],
        )
        points: list[dict[str, Any]] = answer["Datapoints"]
        return points


def _pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of a listing that pages with NextToken."""
    items: list[Any] = []
    while True:
        answer = getattr(client, operation)(**params)
        items += answer.get(key, [])
        token = answer.get("NextToken")
        if not token:
            return items
        params["NextToken"] = token
