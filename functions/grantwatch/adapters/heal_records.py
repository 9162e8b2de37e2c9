"""Self-healing's record on the incident item (pk ``FUNCTION#<functionArn>``, sk ``INCIDENT#<id>``).

Only these attributes are written, by UpdateItem, so the incident's own attributes are left as the
evaluator wrote them. An attempt is claimed by one conditional UpdateItem — the incident is open, not
healed, under the attempt limit and not being healed by someone else — which adds one to
``healAttempts``: however many deliveries of an alert, retries and CLI runs race, an incident gets at
most the limit's attempts, one at a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from grantwatch.adapters.functions import function_pk, incident_sk
from grantwatch.adapters.tables import bind, error_code
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.healing import HealOutcome, HealState, HealStatus
from grantwatch.settings import Settings

# Longer than an attempt can take (the update, then the bounded wait for the grant): a process that died
# holding the claim delays the next attempt by this much, and its attempt still counts.
HEAL_LEASE = timedelta(minutes=5)


class IncidentHealItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute(null=True)
    healAttempts = NumberAttribute(null=True)
    healStatus = UnicodeAttribute(null=True)
    healClaimedUntil = UnicodeAttribute(null=True)
    healStartedAt = UnicodeAttribute(null=True)
    healedAt = UnicodeAttribute(null=True)
    healGrantId = UnicodeAttribute(null=True)
    healError = UnicodeAttribute(null=True)
    healSkippedAt = UnicodeAttribute(null=True)
    healSkippedReason = UnicodeAttribute(null=True)
    healLeftOn = UnicodeAttribute(null=True)


class HealRecords(Protocol):
    def state(self, function_arn: str, incident_id: str) -> HealState: ...

    def claim(self, function_arn: str, incident_id: str, max_attempts: int, now: datetime) -> int | None: ...

    def finish(self, function_arn: str, incident_id: str, outcome: HealOutcome) -> None: ...

    def skipped(self, function_arn: str, incident_id: str, reason: str, now: datetime) -> None: ...


class DynamoHealRecords:
    def __init__(self, settings: Settings) -> None:
        self.items = bind(IncidentHealItem, settings)

    def _item(self, function_arn: str, incident_id: str) -> IncidentHealItem:
        return self.items(function_pk(function_arn), incident_sk(incident_id))

    def state(self, function_arn: str, incident_id: str) -> HealState:
        try:
            item = self.items.get(function_pk(function_arn), incident_sk(incident_id), consistent_read=True)
        except self.items.DoesNotExist:
            return HealState()
        return HealState(
            attempts=int(item.healAttempts or 0),
            status=HealStatus(item.healStatus) if item.healStatus else None,
            left_on=item.healLeftOn,
        )

    def claim(self, function_arn: str, incident_id: str, max_attempts: int, now: datetime) -> int | None:
        """Take the next attempt: its number, or None if the incident is closed, healed, out of attempts
        or being healed."""
        i = self.items
        item = self._item(function_arn, incident_id)
        condition = (
            (i.status == "open")
            & (i.healAttempts.does_not_exist() | (i.healAttempts < max_attempts))
            & (i.healStatus.does_not_exist() | (i.healStatus != HealStatus.HEALED.value))
            & (i.healClaimedUntil.does_not_exist() | (i.healClaimedUntil < utc_iso(now)))
        )
        try:
            item.update(
                actions=[
                    i.healAttempts.add(1),
                    i.healStatus.set(HealStatus.IN_PROGRESS.value),
                    i.healClaimedUntil.set(utc_iso(now + HEAL_LEASE)),
                    i.healStartedAt.set(utc_iso(now)),
                ],
                condition=condition,
            )
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return int(item.healAttempts or 0)

    def finish(self, function_arn: str, incident_id: str, outcome: HealOutcome) -> None:
        i = self.items
        status = HealStatus.HEALED if outcome.healed else HealStatus.FAILED
        actions: list[Action] = [
            i.healStatus.set(status.value),
            i.healClaimedUntil.remove(),
            i.healedAt.set(utc_iso(outcome.at)) if outcome.healed else i.healedAt.remove(),
            i.healGrantId.set(outcome.grant_id) if outcome.grant_id else i.healGrantId.remove(),
            i.healError.set(outcome.error) if outcome.error else i.healError.remove(),
            i.healLeftOn.set(outcome.left_on) if outcome.left_on else i.healLeftOn.remove(),
        ]
        self._item(function_arn, incident_id).update(actions=actions, condition=i.pk.exists())

    def skipped(self, function_arn: str, incident_id: str, reason: str, now: datetime) -> None:
        """Why the last request to heal did nothing, for whoever looks at the incident."""
        i = self.items
        self._item(function_arn, incident_id).update(
            actions=[i.healSkippedAt.set(utc_iso(now)), i.healSkippedReason.set(reason[:512])],
            condition=i.pk.exists(),
        )
