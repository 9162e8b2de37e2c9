"""`grantwatch doctor`: read what a deployed stack depends on and judge each part (grantwatch.domain.doctor).
A read that AWS refuses or that does not answer makes its check an `error` naming why; the other checks
still run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from grantwatch.domain.doctor import (
    RULE_OUTPUTS,
    Check,
    Diagnosis,
    ForwarderRule,
    Kind,
    QueueDepth,
    ReconcileRun,
    RuleFacts,
    StackFacts,
    Status,
    Subscription,
    TrailFacts,
    canary_interval,
    canary_paths,
    check_alert_bus,
    check_dead_letter_queues,
    check_decrypt_rule,
    check_forwarder,
    check_heartbeats,
    check_pagerduty,
    check_reconciliation,
    check_rules,
    check_security_hub,
    check_subscriptions,
    check_trail,
    reconcile_window,
)
from grantwatch.ports import ServiceError


class DoctorReads(Protocol):
    region: str

    def stack(self, name: str) -> StackFacts: ...
    def trails(self) -> list[TrailFacts]: ...
    def rule(self, rule_arn: str) -> RuleFacts: ...
    def forwarder_rules(self, bus_arn: str) -> list[ForwarderRule]: ...
    def subscriptions(self, topic_arn: str) -> list[Subscription]: ...
    def security_hub_enabled(self) -> bool: ...
    def event_bus_exists(self, name: str) -> bool: ...
    def connection_state(self, connection_arn: str) -> tuple[str | None, str]: ...
    def queue_depth(self, output: str, url: str) -> QueueDepth: ...
    def last_heartbeats(
        self, paths: Iterable[str], since: datetime, now: datetime
    ) -> dict[str, datetime | None]: ...
    def last_reconciliation(self, since: datetime, now: datetime) -> ReconcileRun | None: ...


def diagnose(reads: DoctorReads, stack_name: str, now: datetime) -> Diagnosis:
    """Every check of the stack, in order: wiring, delivery, silence. StackNotFound or ServiceError when
    the stack itself cannot be read."""
    stack = reads.stack(stack_name)
    checks = [_checked(name, kind, judge) for name, kind, judge in _checks(reads, stack, now)]
    return Diagnosis(stack=stack.name, region=stack.region, checks=checks)


Judge = Callable[[], Check]


def _checks(reads: DoctorReads, stack: StackFacts, now: datetime) -> list[tuple[str, Kind, Judge]]:
    def rules() -> Check:
        arns = [stack.outputs[o] for o in RULE_OUTPUTS if o in stack.outputs]
        return check_rules(stack, [reads.rule(arn) for arn in arns])

    def decrypt_rule() -> Check:
        arn = stack.outputs.get("DecryptFailuresRuleArn")
        on = stack.is_on("ConfirmWithDecryptFailures")
        return check_decrypt_rule(stack, reads.rule(arn) if arn and on else None)

    def forwarder() -> Check:
        return check_forwarder(stack, reads.forwarder_rules(stack.bus_arn) if stack.needs_forwarder() else [])

    def subscriptions() -> Check:
        topics = [stack.outputs[o] for o in ("AlertTopicArn", "ChatTopicArn") if stack.outputs.get(o)]
        return check_subscriptions(topics, [s for topic in topics for s in reads.subscriptions(topic)])

    def security_hub() -> Check:
        return check_security_hub(stack, stack.is_on("SecurityHubFindings") and reads.security_hub_enabled())

    def alert_bus() -> Check:
        bus = stack.parameter("AlertEventBusName")
        return check_alert_bus(stack, bool(bus) and reads.event_bus_exists(bus))

    def pagerduty() -> Check:
        arn = stack.outputs.get("PagerDutyConnectionArn", "")
        state, reason = reads.connection_state(arn) if arn else (None, "")
        return check_pagerduty(stack, arn.split(":connection/", 1)[-1].split("/")[0], state, reason)

    def dead_letters() -> Check:
        queues = stack.dead_letter_queues()
        return check_dead_letter_queues([reads.queue_depth(output, url) for output, url in queues.items()])

    def heartbeats() -> Check:
        interval = canary_interval(stack)
        if not interval:
            return check_heartbeats(stack, {}, now)
        return check_heartbeats(
            stack, reads.last_heartbeats(canary_paths(stack), now - 2 * interval, now), now
        )

    def reconciliation() -> Check:
        window = reconcile_window(stack.parameter("ReconcileSchedule", "rate(1 hour)"))
        return check_reconciliation(stack, reads.last_reconciliation(now - window, now), now)

    return [
        ("trail", Kind.WIRING, lambda: check_trail(stack.region, reads.trails())),
        ("rules", Kind.WIRING, rules),
        ("decrypt-rule", Kind.WIRING, decrypt_rule),
        ("iam-forwarder", Kind.WIRING, forwarder),
        ("subscriptions", Kind.DELIVERY, subscriptions),
        ("security-hub", Kind.DELIVERY, security_hub),
        ("alert-bus", Kind.DELIVERY, alert_bus),
        ("pagerduty", Kind.DELIVERY, pagerduty),
        ("dead-letter-queues", Kind.DELIVERY, dead_letters),
        ("heartbeats", Kind.SILENCE, heartbeats),
        ("reconciliation", Kind.SILENCE, reconciliation),
    ]


def _checked(name: str, kind: Kind, judge: Judge) -> Check:
    try:
        return judge()
    except ServiceError as error:
        return Check(
            name,
            kind,
            Status.ERROR,
            f"could not read: {error}",
            "give doctor's credentials the read permissions in docs/doctor.md, or retry if the service did "
            "not answer",
        )
