"""Self-healing's one corridor, for the remediation function and `grantwatch heal`: read the function's
open incident and what AWS says now, decide (pure), claim an attempt, perform the documented reset (two
updates, away and back, each guarded by the RevisionId just read and followed by a wait until Lambda has
applied it), wait a bounded time for the new grant to be listed, record the outcome on the incident and
publish "healed" or "heal failed".

If the update that restores the function's own key or role fails, it is retried; if it still fails, the
outcome says loudly where the function was left, on the incident and in the heal-failed notice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from grantwatch.domain.delivery import PRIMARY, settle
from grantwatch.domain.fixes import Fix, Step
from grantwatch.domain.hazards import role_of
from grantwatch.domain.healing import (
    Decision,
    FunctionDenied,
    HealInputs,
    HealOutcome,
    HealPolicy,
    LiveFunction,
    decide,
    holds,
    left_on_text,
    new_grant,
)
from grantwatch.domain.notices import Notice, heal_notice
from grantwatch.domain.reconcile import ListedGrant
from grantwatch.outbox import attempt, channel_names, report
from grantwatch.ports import (
    DeliveryMonitor,
    HealRecords,
    HealTarget,
    IncidentRecord,
    Incidents,
    KeysAndRoles,
    NotDelivered,
    Notifier,
    ServiceError,
)

DEFAULT_VERIFY = timedelta(seconds=60)
VERIFY_INTERVAL = timedelta(seconds=5)
# How long one update may take to apply (LastUpdateStatus InProgress -> Successful), polled this often.
UPDATE_WAIT = timedelta(seconds=30)
UPDATE_POLL = timedelta(seconds=2)
# Tries of the update that restores the function's own key or role.
RESTORE_TRIES = 3


class UpdateNotApplied(RuntimeError):
    """Lambda reported the update Failed, or did not finish it within the wait."""


@dataclass
class HealReport:
    function_arn: str
    incident_id: str | None
    decision: Decision
    dry_run: bool = False
    outcome: HealOutcome | None = None
    notice: Notice | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.incident_id is not None

    @property
    def healed(self) -> bool:
        return self.outcome is not None and self.outcome.healed

    def as_json(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "functionArn": self.function_arn,
            "incidentId": self.incident_id,
            "dryRun": self.dry_run,
            **self.decision.as_json(),
            "facts": self.facts,
            "outcome": None
            if outcome is None
            else {
                "healed": outcome.healed,
                "attempt": outcome.attempt,
                "maxAttempts": outcome.max_attempts,
                "newGrantId": outcome.grant_id,
                "error": outcome.error,
                "leftOn": outcome.left_on,
            },
        }


@dataclass
class Healer:
    incidents: Incidents
    hazards: KeysAndRoles
    records: HealRecords
    aws: HealTarget
    notifier: Notifier | None
    monitor: DeliveryMonitor | None = None  # counts the channels that fail (the handler's metrics)
    policy: HealPolicy = field(default_factory=HealPolicy)
    verify_for: timedelta = DEFAULT_VERIFY
    verify_every: timedelta = VERIFY_INTERVAL
    update_wait: timedelta = UPDATE_WAIT
    update_poll: timedelta = UPDATE_POLL
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def heal(self, function_arn: str, *, incident_id: str | None = None, dry_run: bool = False) -> HealReport:
        """Heal the function's open incident (or the one named) if every safety rule allows it."""
        incident_id = incident_id or self.incidents.open_incident_id(function_arn)
        record = self.incidents.incident(function_arn, incident_id) if incident_id else None
        if record is None:
            return HealReport(function_arn, None, Decision(False, "no such incident"), dry_run)
        inputs = self._inputs(record)
        decision = decide(inputs, self.policy)
        report = HealReport(
            function_arn, incident_id, decision, dry_run, facts=_facts(inputs, self.policy.tag)
        )
        if dry_run:
            return report
        now = self.clock()
        if not decision.heal:
            self.records.skipped(function_arn, record.incident.incident_id, decision.reason, now)
            return report
        attempt = self.records.claim(function_arn, record.incident.incident_id, self.policy.max_attempts, now)
        if attempt is None:
            report.decision = Decision(False, "another attempt is under way, or none is left")
            return report
        assert isinstance(inputs.function, LiveFunction)  # decide() heals only a function it could read
        assert decision.fix is not None
        key_arn = inputs.live_key.arn if inputs.live_key else record.incident.key_arn
        report.outcome = self._attempt(inputs.function, decision.fix, key_arn, attempt)
        self.records.finish(function_arn, record.incident.incident_id, report.outcome)
        report.notice = heal_notice(record.incident, report.outcome)
        if self.notifier is not None:
            self._notify(report.notice)
        return report

    def _notify(self, notice: Notice) -> None:
        """Send the outcome once to each channel. A retry of the heal would heal again, not resend: so an
        optional channel that fails is given up on at once (logged and counted), and only the SNS topic's
        failure is raised (its retry then sends a new outcome, or nothing once healed)."""
        assert self.notifier is not None
        delivery = attempt(self.notifier, notice, {})
        outcome = settle(channel_names(self.notifier), {}, delivery, self.clock(), max_attempts=1)
        report(notice, delivery, outcome, self.monitor)
        if not outcome.complete:
            raise NotDelivered(
                f"notice {notice.incident_id} not delivered to {PRIMARY}: {delivery.failed[PRIMARY]}"
            )

    def _inputs(self, record: IncidentRecord) -> HealInputs:
        incident = record.incident
        function = self.aws.function(incident.function_arn)
        live = function if isinstance(function, LiveFunction) else None
        ref = role_of(live.role) if live is not None else None
        return HealInputs(
            incident=incident,
            incident_open=record.status == "open",
            function=function,
            # a function Lambda does not show is left alone: nothing more is asked of AWS about it
            live_key=self.aws.key(incident.key_arn) if live is not None else None,
            recorded_key=self.hazards.key(incident.key_arn),
            role=self.hazards.role(*ref) if ref else None,
            state=self.records.state(incident.function_arn, incident.incident_id),
        )

    def _attempt(self, function: LiveFunction, fix: Fix, key_arn: str, attempt: int) -> HealOutcome:
        def outcome(grant: ListedGrant | None, error: str | None, left_on: str | None = None) -> HealOutcome:
            return HealOutcome(
                grant is not None,
                self.clock(),
                attempt,
                self.policy.max_attempts,
                grant.grant_id if grant else None,
                error,
                fix,
                left_on,
            )

        away, back = fix.updates
        arn = function.function_arn
        try:
            before = frozenset(g.grant_id for g in self.aws.grants(key_arn))
        except ServiceError as error:
            return outcome(None, f"the grants could not be listed, nothing changed: {error}")
        refused = self._update_away(function, away, fix)
        if refused is not None:
            return outcome(None, *refused)
        failure = self._restore(arn, back)
        if failure is not None:
            where = left_on_text(fix, away.value)
            return outcome(
                None, f"the function is left on {where}: restoring its own failed: {failure}", where
            )
        deadline = time.monotonic() + self.verify_for.total_seconds()
        while True:
            try:
                found = new_grant(function, self.aws.grants(key_arn), before)
            except ServiceError as error:
                return outcome(None, f"the function was reset, but its grants could not be listed: {error}")
            if found is not None:
                return outcome(found, None)
            if time.monotonic() >= deadline:
                seconds = int(self.verify_for.total_seconds())
                return outcome(
                    None, f"the function was reset, but no new grant was listed within {seconds} s"
                )
            self.sleep(self.verify_every.total_seconds())

    def _update_away(self, function: LiveFunction, away: Step, fix: Fix) -> tuple[str, str | None] | None:
        """The first update: None once it is applied, else the error and where the function may be left.
        An answer that leaves it open whether the update was applied (none at all, a server error, or a
        refusal of a retry, which may follow an attempt that was applied) is settled by reading the
        configuration back."""
        arn = function.function_arn
        try:
            self.aws.update(arn, away.setting or "", away.value or "", function.revision_id)
            return None
        except ServiceError as error:
            if not error.uncertain:
                return f"the first update was refused, nothing changed: {error}", None
            answer = str(error)
        try:
            current = self.aws.configuration(arn)
        except ServiceError as error:
            where = left_on_text(fix, away.value)
            return (
                f"the function may be left on {where}: the first update got no clear answer ({answer}) "
                f"and its configuration could not be read back: {error}",
                where,
            )
        if holds(current, away):
            return None
        return f"the first update was not applied, nothing changed: {answer}", None

    def _restore(self, function_arn: str, back: Step) -> str | None:
        """Wait for the first update, then restore the function's own value, retried: None when it is
        restored and applied, else what went wrong the last time."""
        failure = None
        for _ in range(RESTORE_TRIES):
            try:
                settled = self._settled(function_arn, failed_ok=True)  # the previous update has finished
                self.aws.update(function_arn, back.setting or "", back.value or "", settled.revision_id)
                self._settled(function_arn)
                return None
            except (ServiceError, UpdateNotApplied) as error:
                failure = str(error)
        return failure

    def _settled(self, function_arn: str, *, failed_ok: bool = False) -> LiveFunction:
        """The configuration once LastUpdateStatus is no longer InProgress (bounded): Successful (or
        Failed, if `failed_ok`), else UpdateNotApplied."""
        deadline = time.monotonic() + self.update_wait.total_seconds()
        while True:
            current = self.aws.configuration(function_arn)
            if current.last_update_status in (None, "Successful"):
                return current
            if current.last_update_status == "Failed" and failed_ok:
                return current
            if current.last_update_status == "Failed":
                raise UpdateNotApplied(
                    f"the update failed: {current.last_update_reason or 'no reason given'}"
                )
            if time.monotonic() >= deadline:
                raise UpdateNotApplied(
                    f"the update was still in progress after {int(self.update_wait.total_seconds())} s"
                )
            self.sleep(self.update_poll.total_seconds())


def _facts(inputs: HealInputs, tag: str) -> dict[str, Any]:
    """What the decision was made on, for the CLI and the logs (no environment values, no tokens)."""
    function = inputs.function
    live = function if isinstance(function, LiveFunction) else None
    return {
        "alertType": inputs.incident.alert_type,
        "incidentOpen": inputs.incident_open,
        "functionExists": function is not None,
        "functionDenied": function.operation if isinstance(function, FunctionDenied) else None,
        "tag": {tag: live.tags.get(tag)} if live else {},
        "kmsKeyArn": live.kms_key_arn if live else None,
        "role": live.role if live else None,
        "keyState": inputs.live_key.state if inputs.live_key else None,
        "awsManagedKey": inputs.live_key.aws_managed if inputs.live_key else None,
        "recordedKeyState": inputs.recorded_key.state.value if inputs.recorded_key else None,
        "roleExists": inputs.role.exists if inputs.role else None,
        "attempts": inputs.state.attempts,
        "healStatus": inputs.state.status.value if inputs.state.status else None,
    }
