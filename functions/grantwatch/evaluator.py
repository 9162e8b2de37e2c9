"""The evaluator's one corridor: re-read a function's grants and configuration once the settle window
has passed, decide (pure), and open or close its incident, publishing one notice for each.

Notices are published after the incident is written. Each is claimed first (a short lease on the incident
item, so concurrent evaluations send it once), then published, then marked sent: a failed publish releases
the claim and raises, the request is retried, and the retry publishes what is still unsent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from grantwatch.adapters.functions import FunctionStore
from grantwatch.adapters.store import GrantStore
from grantwatch.domain.alerts import (
    Incident,
    Notice,
    NoticeKind,
    alert_notice,
    incident_from,
    resolved_notice,
)
from grantwatch.domain.risk import Verdict, assess


class Notifier(Protocol):
    def publish(self, notice: Notice) -> None: ...


def evaluate(
    function_arn: str, *, grants: GrantStore, functions: FunctionStore, notifier: Notifier, now: datetime
) -> list[Notice]:
    """Evaluate one function now; returns the notices published."""
    published: list[Notice] = []

    def publish(incident: Incident, notice: Notice) -> None:
        resolved = notice.kind is NoticeKind.RESOLVED
        if not functions.claim_notice(incident, resolved=resolved, now=now):
            return  # sent already, or being sent by another evaluation
        try:
            notifier.publish(notice)
        except Exception:
            functions.release_notice(incident, resolved=resolved)
            raise
        functions.mark_notified(incident, resolved=resolved, at=now)
        published.append(notice)

    open_id = functions.open_incident_id(function_arn)
    function = functions.get(function_arn)
    if function is None:
        functions.touch(function_arn)  # known from its grants only: list it with the others
    assessment = assess(function_arn, list(grants.grants(function=function_arn)), function)
    current = functions.incident(function_arn, open_id) if open_id else None

    if assessment.verdict is Verdict.AT_RISK:
        if current is None:
            functions.open(incident_from(assessment, now))
            open_id = functions.open_incident_id(function_arn)
            current = functions.incident(function_arn, open_id) if open_id else None
        if current is not None and not current.notified:
            publish(current.incident, alert_notice(current.incident))
    elif current is not None:
        grant_id = assessment.usable.grant_id if assessment.usable else None
        reason = "has a usable grant again" if assessment.verdict is Verdict.SAFE else assessment.reason
        functions.resolve(current.incident, now, reason, grant_id)
    # Last, so that whichever of two racing evaluations resolves or marks an alert sent last also sends the
    # resolved notice; and it picks up one a failed evaluation left unsent.
    for unsent in functions.unsent_resolutions(function_arn):
        reason = unsent.resolved_reason or "resolved"
        resolved_at = unsent.resolved_at or now
        publish(
            unsent.incident, resolved_notice(unsent.incident, reason, resolved_at, unsent.resolved_grant_id)
        )

    return published
