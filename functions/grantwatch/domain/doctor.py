"""`grantwatch doctor`'s judgement: from what the AWS reads returned, whether each part a deployed stack
needs to hear and to speak is wired, and what to do about each that is not. No I/O: the reads are
grantwatch.adapters.doctor's, and grantwatch.doctor hands their answers here."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from grantwatch.domain.catalogue import KMS_EVENT_SOURCE

MANAGEMENT_EVENTS_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
IAM_REGION = "us-east-1"  # IAM's CloudTrail events reach EventBridge there only
CANARY_PATHS = ("CreateGrant", "RetireGrant")  # and Decrypt with ConfirmWithDecryptFailures
RECONCILE_SLACK = timedelta(minutes=30)  # a run takes up to 15 minutes, and its metric a few more
DEFAULT_RECONCILE_PERIOD = timedelta(hours=24)  # a cron expression this module cannot read


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but something is off or off by choice
    FAIL = "fail"
    SKIPPED = "skipped"  # does not apply to this stack's parameters
    ERROR = "error"  # could not be read: doctor cannot say


class Kind(StrEnum):
    """What a failure means: the monitor does not hear (wiring), cannot tell anyone (delivery), or has
    gone quiet for a reason the other checks do not show (silence)."""

    WIRING = "wiring"
    DELIVERY = "delivery"
    SILENCE = "silence"


@dataclass(frozen=True)
class Check:
    name: str
    kind: Kind
    status: Status
    found: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "found": self.found,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class StackFacts:
    """The stack's outputs and parameters (DescribeStacks), and where it runs."""

    name: str
    region: str
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]

    def parameter(self, name: str, default: str = "") -> str:
        return self.parameters.get(name, default)

    def is_on(self, name: str) -> bool:
        return self.parameter(name, "false") == "true"

    @property
    def bus_name(self) -> str:
        return self.parameter("EventBusName", "default") or "default"

    @property
    def bus_arn(self) -> str:
        return self.outputs.get("EventBusArn", "")

    def needs_forwarder(self) -> bool:
        """IAM events reach only us-east-1's default bus: anywhere else a forwarder there sends them on."""
        return not (self.region == IAM_REGION and self.bus_name == "default")

    def dead_letter_queues(self) -> dict[str, str]:
        return {k: v for k, v in sorted(self.outputs.items()) if k.endswith("DeadLetterQueueUrl")}


# --- CloudTrail ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrailFacts:
    """A trail as DescribeTrails, GetTrailStatus and GetEventSelectors describe it."""

    name: str
    home_region: str
    multi_region: bool
    logging: bool
    event_selectors: Sequence[Mapping[str, Any]] = ()
    advanced_selectors: Sequence[Mapping[str, Any]] = ()
    unread: str = ""  # why its status or selectors could not be read (an organization's trail, say)

    def covers(self, region: str) -> bool:
        return self.multi_region or self.home_region == region

    def logs_all_management_events(self) -> bool:
        """No selector at all is CloudTrail's default: every management event, reads and writes."""
        if not self.advanced_selectors and not self.event_selectors:
            return True
        if self.advanced_selectors:
            return any(_advanced_takes_all_management(s) for s in self.advanced_selectors)
        return any(
            s.get("IncludeManagementEvents", True)
            and s.get("ReadWriteType", "All") == "All"
            and KMS_EVENT_SOURCE not in s.get("ExcludeManagementEventSources", ())
            for s in self.event_selectors
        )


def _advanced_takes_all_management(selector: Mapping[str, Any]) -> bool:
    """An advanced selector of management events that filters out neither reads nor writes (nor any event
    source, such as KMS's, that grantwatch needs)."""
    fields = {f.get("Field"): f for f in selector.get("FieldSelectors", [])}
    category = fields.get("eventCategory", {})
    if "Management" not in category.get("Equals", []):
        return False
    source = fields.get("eventSource")  # the console's "Exclude ... events" options: fine unless KMS's
    if source is not None and (
        set(source) - {"Field", "NotEquals"} or KMS_EVENT_SOURCE in source["NotEquals"]
    ):
        return False
    return set(fields) <= {"eventCategory", "eventSource"}


def check_trail(region: str, trails: Sequence[TrailFacts]) -> Check:
    name, kind = "trail", Kind.WIRING
    covering = [t for t in trails if t.covers(region)]
    good = [t for t in covering if t.logging and t.logs_all_management_events()]
    if good:
        return Check(name, kind, Status.OK, f"trail {good[0].name} logs read and write management events")
    create = (
        f"create a multi-region trail that logs management events, read and write: aws cloudtrail "
        f"create-trail --name grantwatch --s3-bucket-name BUCKET --is-multi-region-trail --region {region} "
        f"&& aws cloudtrail start-logging --name grantwatch --region {region}"
    )
    unread = [t for t in covering if t.unread]
    if unread:
        return Check(
            name,
            kind,
            Status.ERROR,
            "; ".join(f"could not read trail {t.name}: {t.unread}" for t in unread),
            "give doctor's credentials the read permissions in docs/doctor.md (an organization's trail is "
            "read in its management account)",
        )
    if not covering:
        return Check(
            name,
            kind,
            Status.FAIL,
            f"no trail covers {region}: no CloudTrail event reaches EventBridge",
            create,
        )
    stopped = [t.name for t in covering if not t.logging]
    partial = [t for t in covering if t.logging and not t.logs_all_management_events()]
    found = "; ".join(
        part
        for part in (
            f"trail(s) {', '.join(stopped)} not logging" if stopped else "",
            f"trail(s) {', '.join(t.name for t in partial)} do not log all management events (reads and "
            "writes)"
            if partial
            else "",
        )
        if part
    )
    fixes = []
    if stopped:
        fixes.append(f"aws cloudtrail start-logging --name {stopped[0]} --region {region}")
    if partial:
        fixes.append(_selector_fix(partial[0], region))
    return Check(name, kind, Status.FAIL, found, "; or ".join(fixes))


def _selector_fix(trail: TrailFacts, region: str) -> str:
    """PutEventSelectors replaces every selector a trail has: change one, put back the whole list."""
    read = f"aws cloudtrail get-event-selectors --trail-name {trail.name} --region {region}"
    if trail.advanced_selectors:
        change = (
            "make its Management selector filter on eventCategory alone (no readOnly field, no eventSource "
            "that excludes kms.amazonaws.com), then put back the whole list with aws cloudtrail "
            "put-event-selectors --advanced-event-selectors"
        )
    else:
        change = (
            "make one log management events with ReadWriteType All and no excluded KMS events, then put "
            "back the whole list with aws cloudtrail put-event-selectors --event-selectors"
        )
    return (
        f"read trail {trail.name}'s selectors ({read}), {change}: it replaces every selector the trail has, "
        "data events included"
    )


# --- EventBridge -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleFacts:
    """A rule as DescribeRule answers (None: it does not exist)."""

    name: str
    state: str | None


def rule_name_and_bus(rule_arn: str) -> tuple[str, str]:
    """(name, bus) from a rule's ARN: `…:rule/NAME` on the default bus, `…:rule/BUS/NAME` on another."""
    path = rule_arn.split(":", 5)[-1].removeprefix("rule/")
    bus, _, name = path.rpartition("/")
    return name, bus or "default"


RULE_OUTPUTS = ("GrantEventsRuleArn", "FunctionEventsRuleArn", "RoleEventsRuleArn")


def check_rules(stack: StackFacts, rules: Sequence[RuleFacts]) -> Check:
    name, kind = "rules", Kind.WIRING
    if not rules:
        return Check(
            name,
            kind,
            Status.SKIPPED,
            "the stack has no rule outputs (deployed before 0.2.0)",
            "update the stack to this version",
        )
    missing = [r.name for r in rules if r.state is None]
    off = [r for r in rules if r.state is not None and r.state == "DISABLED"]
    if not missing and not off:
        return Check(name, kind, Status.OK, f"{len(rules)} rule(s) enabled on bus {stack.bus_name}")
    found = "; ".join(
        part
        for part in (
            f"missing: {', '.join(missing)}" if missing else "",
            f"disabled: {', '.join(r.name for r in off)}" if off else "",
        )
        if part
    )
    if missing:
        fix = f"redeploy the stack {stack.name} (sam deploy): it re-creates its rules"
    else:
        fix = "; ".join(
            f"aws events enable-rule --name {r.name} --event-bus-name {stack.bus_name} "
            f"--region {stack.region}"
            for r in off
        )
    return Check(name, kind, Status.FAIL, found, fix)


def check_decrypt_rule(stack: StackFacts, rule: RuleFacts | None) -> Check:
    name, kind = "decrypt-rule", Kind.WIRING
    if not stack.is_on("ConfirmWithDecryptFailures"):
        return Check(name, kind, Status.SKIPPED, "ConfirmWithDecryptFailures is off")
    if rule is None:
        return Check(
            name,
            kind,
            Status.SKIPPED,
            "the stack has no DecryptFailuresRuleArn output (deployed before 0.2.0)",
            "update the stack to this version",
        )
    if rule.state == MANAGEMENT_EVENTS_STATE:
        return Check(name, kind, Status.OK, f"{rule.name} is {rule.state}")
    if rule.state is None:
        return Check(
            name,
            kind,
            Status.FAIL,
            f"{rule.name} does not exist",
            f"redeploy the stack {stack.name} (sam deploy): it re-creates the rule",
        )
    return Check(
        name,
        kind,
        Status.FAIL,
        f"{rule.name} is {rule.state}: failed Decrypt calls (read-only events) never reach it",
        f"aws events put-rule --name {rule.name} --event-bus-name {stack.bus_name} --region {stack.region} "
        f'--state {MANAGEMENT_EVENTS_STATE} --event-pattern "$(aws events describe-rule --name {rule.name} '
        f'--event-bus-name {stack.bus_name} --region {stack.region} --query EventPattern --output text)" '
        "(PutRule keeps only what it is given: add --description to keep the rule's)",
    )


@dataclass(frozen=True)
class ForwarderRule:
    """A us-east-1 rule that targets the stack's bus: its name, state and event pattern (DescribeRule)."""

    name: str
    state: str
    pattern: str = ""

    def forwards_role_events(self) -> bool:
        try:
            sources = json.loads(self.pattern or "{}").get("source", [])
        except ValueError:
            return False
        return "aws.iam" in sources


def check_forwarder(stack: StackFacts, rules: Sequence[ForwarderRule]) -> Check:
    name, kind = "iam-forwarder", Kind.WIRING
    if not stack.needs_forwarder():
        return Check(
            name,
            kind,
            Status.SKIPPED,
            f"the stack listens on {IAM_REGION}'s default bus: IAM events arrive there",
        )
    deploy = (
        f"deploy forwarders/iam-role-events.yaml in {IAM_REGION}: aws cloudformation deploy --region "
        f"{IAM_REGION} --stack-name grantwatch-iam-forwarder --template-file forwarders/iam-role-events.yaml "
        f"--capabilities CAPABILITY_IAM --parameter-overrides TargetRegion={stack.region} "
        f"TargetEventBusName={stack.bus_name}"
    )
    forwarding = [r for r in rules if r.forwards_role_events()]
    if not forwarding:
        return Check(
            name,
            kind,
            Status.FAIL,
            f"no rule in {IAM_REGION} forwards IAM role events to {stack.bus_arn}: "
            "a re-created role goes unseen",
            deploy,
        )
    enabled = [r for r in forwarding if r.state != "DISABLED"]
    if not enabled:
        rule = forwarding[0].name
        return Check(
            name,
            kind,
            Status.FAIL,
            f"the forwarding rule {rule} in {IAM_REGION} is disabled",
            f"aws events enable-rule --name {rule} --region {IAM_REGION}",
        )
    return Check(
        name, kind, Status.OK, f"{enabled[0].name} in {IAM_REGION} forwards IAM role events to this bus"
    )


# --- delivery --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    topic_arn: str
    protocol: str
    arn: str  # `PendingConfirmation` until the endpoint confirms

    @property
    def pending(self) -> bool:
        return self.arn == "PendingConfirmation"


def check_subscriptions(topics: Sequence[str], subscriptions: Sequence[Subscription]) -> Check:
    name, kind = "subscriptions", Kind.DELIVERY
    pending = [s for s in subscriptions if s.pending]
    if pending:
        which = ", ".join(f"{s.protocol} on {s.topic_arn.rsplit(':', 1)[-1]}" for s in pending)
        return Check(
            name,
            kind,
            Status.FAIL,
            f"{len(pending)} subscription(s) pending confirmation ({which}): they receive nothing",
            'open the confirmation message SNS sent to each endpoint (an email\'s "Confirm subscription" '
            "link), "
            f"or request it again: aws sns subscribe --topic-arn {pending[0].topic_arn} --protocol "
            f"{pending[0].protocol} --notification-endpoint ENDPOINT",
        )
    empty = [t for t in topics if not any(s.topic_arn == t for s in subscriptions)]
    if empty:
        return Check(
            name,
            kind,
            Status.WARN,
            f"no subscription on {', '.join(empty)}: its alerts reach no one",
            f"aws sns subscribe --topic-arn {empty[0]} --protocol email "
            "--notification-endpoint YOU@EXAMPLE.COM "
            "(or set AlertEmail)",
        )
    return Check(
        name, kind, Status.OK, f"{len(subscriptions)} confirmed subscription(s) on {len(topics)} topic(s)"
    )


def check_security_hub(stack: StackFacts, enabled: bool) -> Check:
    name, kind = "security-hub", Kind.DELIVERY
    if not stack.is_on("SecurityHubFindings"):
        return Check(name, kind, Status.SKIPPED, "SecurityHubFindings is off")
    if enabled:
        return Check(name, kind, Status.OK, f"Security Hub is enabled in {stack.region}")
    return Check(
        name,
        kind,
        Status.FAIL,
        f"Security Hub is not enabled in {stack.region}: findings are refused",
        f"aws securityhub enable-security-hub --region {stack.region}",
    )


def check_alert_bus(stack: StackFacts, exists: bool) -> Check:
    name, kind = "alert-bus", Kind.DELIVERY
    bus = stack.parameter("AlertEventBusName")
    if not bus:
        return Check(name, kind, Status.SKIPPED, "AlertEventBusName is empty")
    if exists:
        return Check(name, kind, Status.OK, f"the alert bus {bus} exists")
    return Check(
        name,
        kind,
        Status.FAIL,
        f"the alert bus {bus} does not exist: alert events are refused",
        f"aws events create-event-bus --name {bus} --region {stack.region}, "
        "or set AlertEventBusName to an existing bus",
    )


def check_pagerduty(stack: StackFacts, connection: str, state: str | None, reason: str = "") -> Check:
    name, kind = "pagerduty", Kind.DELIVERY
    if not (stack.parameter("PagerDutyRoutingKeySecret") and stack.parameter("AlertEventBusName")):
        return Check(name, kind, Status.SKIPPED, "PagerDutyRoutingKeySecret is empty")
    if not connection:
        return Check(
            name,
            kind,
            Status.SKIPPED,
            "the stack has no PagerDutyConnectionArn output (deployed before 0.2.0)",
            "update the stack to this version",
        )
    if state == "AUTHORIZED":
        return Check(name, kind, Status.OK, f"the connection {connection} is AUTHORIZED")
    found = f"the connection {connection} is {state or 'missing'}" + (f" ({reason})" if reason else "")
    return Check(
        name,
        kind,
        Status.FAIL,
        found + ": pages are not sent",
        "check the routing key in PagerDutyRoutingKeySecret, then redeploy the stack (sam deploy) so "
        "that the "
        "connection reads it again",
    )


@dataclass(frozen=True)
class QueueDepth:
    output: str
    url: str
    visible: int
    in_flight: int

    @property
    def messages(self) -> int:
        return self.visible + self.in_flight


def check_dead_letter_queues(depths: Sequence[QueueDepth]) -> Check:
    name, kind = "dead-letter-queues", Kind.DELIVERY
    full = [d for d in depths if d.messages]
    if not full:
        return Check(name, kind, Status.OK, f"{len(depths)} dead-letter queue(s) empty")
    found = "; ".join(f"{d.output}: {d.messages} message(s)" for d in full)
    return Check(
        name,
        kind,
        Status.FAIL,
        found + ": events or notices that were not processed",
        f"read them (aws sqs receive-message --queue-url {full[0].url} --attribute-names All "
        "--message-attribute-names All), fix their cause (the attributes ERROR_CODE and ERROR_MESSAGE, "
        "or the "
        "function's logs), then replay or delete them (docs/doctor.md)",
    )


# --- silence ---------------------------------------------------------------------------------------------


def check_heartbeats(stack: StackFacts, last: Mapping[str, datetime | None], now: datetime) -> Check:
    """`last`: the newest heartbeat of each path the canary should send (None: none in two intervals)."""
    name, kind = "heartbeats", Kind.SILENCE
    interval = canary_interval(stack)
    if interval is None:
        return Check(
            name,
            kind,
            Status.SKIPPED,
            "the stack has no CanaryIntervalMinutes parameter (no canary)",
            "update the stack to a version with the canary",
        )
    if not interval:
        return Check(
            name,
            kind,
            Status.WARN,
            "the canary is off (CanaryIntervalMinutes=0): a deaf monitor looks quiet",
            "set CanaryIntervalMinutes (e.g. 60) and redeploy the stack",
        )
    window = 2 * interval
    stale = [path for path in canary_paths(stack) if (seen := last.get(path)) is None or now - seen > window]
    if not stale:
        return Check(name, kind, Status.OK, f"a heartbeat on every path within {_minutes(window)}")
    found = ", ".join(
        f"{path} (last {_ago(last[path], now)})" if last.get(path) else f"{path} (none in {_minutes(window)})"
        for path in stale
    )
    return Check(
        name,
        kind,
        Status.FAIL,
        f"no recent heartbeat: {found}",
        "the events of those paths do not reach the recorder: fix any wiring failure above, then read the "
        "recorder's logs and its dead-letter queue",
    )


def canary_interval(stack: StackFacts) -> timedelta | None:
    value = stack.parameters.get("CanaryIntervalMinutes")
    if value is None or not (value or "0").isdigit():
        return None
    return timedelta(minutes=int(value or 0))


def canary_paths(stack: StackFacts) -> tuple[str, ...]:
    return CANARY_PATHS + (("Decrypt",) if stack.is_on("ConfirmWithDecryptFailures") else ())


@dataclass(frozen=True)
class ReconcileRun:
    at: datetime
    errors: int


def check_reconciliation(stack: StackFacts, last: ReconcileRun | None, now: datetime) -> Check:
    name, kind = "reconciliation", Kind.SILENCE
    window = reconcile_window(stack.parameter("ReconcileSchedule", "rate(1 hour)"))
    if last is None or now - last.at > window:
        when = f"last {_ago(last.at, now)}" if last else f"none in {_minutes(window)}"
        return Check(
            name,
            kind,
            Status.FAIL,
            f"no reconciliation run recorded ({when})",
            "read the reconciler's logs and its ReconcilerErrorsAlarm; check its schedule is enabled "
            f"(aws scheduler list-schedules --region {stack.region})",
        )
    if last.errors:
        return Check(
            name,
            kind,
            Status.WARN,
            f"last run {_ago(last.at, now)} left {last.errors} key(s) unreconciled",
            'read the reconciler\'s logs ("keys not reconciled")',
        )
    return Check(name, kind, Status.OK, f"last run {_ago(last.at, now)}, without errors")


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")


def reconcile_period(schedule: str) -> timedelta:
    """The period of a Scheduler expression: a rate's, or a cron's when every minute or hour field is a
    plain step (`*`, `*/N`, `0/N`); else a day."""
    rate = _RATE.match(schedule.strip())
    if rate:
        unit = rate.group(2).rstrip("s") + "s"
        return timedelta(**{unit: int(rate.group(1))})
    fields = schedule.strip().removeprefix("cron(").removesuffix(")").split()
    if len(fields) == 6:
        minute, hour = fields[0], fields[1]
        step = re.fullmatch(r"(?:\*|0)/(\d+)", minute)
        if minute == "*" or step:
            return timedelta(minutes=int(step.group(1)) if step else 1)
        step = re.fullmatch(r"(?:\*|0)/(\d+)", hour)
        if hour == "*" or step:
            return timedelta(hours=int(step.group(1)) if step else 1)
    return DEFAULT_RECONCILE_PERIOD


def reconcile_window(schedule: str) -> timedelta:
    return reconcile_period(schedule) + RECONCILE_SLACK


# --- the whole -------------------------------------------------------------------------------------------

EXIT_ORDER = (Kind.WIRING, Kind.DELIVERY, Kind.SILENCE)  # the first kind failing sets the exit code


@dataclass(frozen=True)
class Diagnosis:
    stack: str
    region: str
    checks: list[Check] = field(default_factory=list)

    def failing_kinds(self) -> list[Kind]:
        failed = {c.kind for c in self.checks if c.status is Status.FAIL}
        return [kind for kind in EXIT_ORDER if kind in failed]

    @property
    def unread(self) -> bool:
        return any(c.status is Status.ERROR for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        counts = {status.value: sum(c.status is status for c in self.checks) for status in Status}
        return {
            "stack": self.stack,
            "region": self.region,
            "checks": [c.as_json() for c in self.checks],
            "summary": counts | {"failing": [k.value for k in self.failing_kinds()]},
        }


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    return f"{_minutes(max(now - then, timedelta(0)))} ago"
