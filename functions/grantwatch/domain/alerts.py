"""Incidents: a function that cannot decrypt its environment, from detection until it can again, and the
documented fix for each cause. Pure. How an incident is stored is its adapter's business
(`grantwatch.adapters.functions`); how it is told to people is `grantwatch.domain.notices`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from grantwatch.domain.fixes import (
    Fix,
    FixTarget,
    enable_key,
    recreate_role_then_reset,
    reset,
)
from grantwatch.domain.risk import Assessment, Cause, Evidence, Verdict

ARN_PARTS = re.compile(r"^arn:aws[a-z-]*:[a-z]+:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):")
# An incident names at most this many of the functions on its key, the first in ARN order, and counts all:
# a key that thousands of functions share would otherwise make every notice and incident item about it
# outgrow SNS's 256 KB message, an EventBridge entry and DynamoDB's 400 KB item. `grantwatch functions
# --key KEY` lists every one.
MAX_NAMED_FUNCTIONS = 25


@dataclass(frozen=True, slots=True)
class Incident:
    """A function that cannot decrypt its environment, from detection until it can again."""

    incident_id: str
    function_arn: str
    key_arn: str
    role: str | None
    cause: Cause
    evidence: Evidence
    detected_at: datetime
    grant_id: str | None = None
    deletion_date: datetime | None = None
    functions_on_key: tuple[str, ...] = ()  # the first MAX_NAMED_FUNCTIONS, in ARN order
    aws_managed_key: bool = False  # the function has no KMSKeyArn: Lambda's key aws/lambda
    functions_on_key_count: int = 0  # all of them, named or not

    @property
    def alert_type(self) -> str:
        return self.cause.value

    @property
    def predicted(self) -> bool:
        return self.cause is not Cause.DECRYPT_FAILED

    @property
    def account(self) -> str:
        match = ARN_PARTS.match(self.function_arn)
        return match["account"] if match else "unknown"

    @property
    def region(self) -> str:
        match = ARN_PARTS.match(self.function_arn)
        return match["region"] if match else "unknown"


def incident_from(
    assessment: Assessment,
    detected_at: datetime,
    functions_on_key: Sequence[str] = (),
    *,
    aws_managed_key: bool = False,
) -> Incident:
    if (
        assessment.verdict is not Verdict.AT_RISK
        or assessment.cause is None
        or assessment.evidence is None
        or assessment.key_arn is None
    ):
        raise ValueError("an incident needs an at-risk assessment with its cause and evidence")
    grant_id = assessment.lost.grant_id if assessment.lost else None
    named, count = _on_key(assessment.cause, assessment.function_arn, functions_on_key)
    return Incident(
        incident_id=incident_id(detected_at, grant_id or assessment.evidence.event_id),
        function_arn=assessment.function_arn,
        key_arn=assessment.key_arn,
        role=assessment.role,
        cause=assessment.cause,
        evidence=assessment.evidence,
        detected_at=detected_at,
        grant_id=grant_id,
        deletion_date=assessment.deletion_date,
        functions_on_key=named,
        aws_managed_key=aws_managed_key,
        functions_on_key_count=count,
    )


def unpredicted_incident(
    function_arn: str,
    key_arn: str,
    role: str | None,
    failure: Evidence,
    detected_at: datetime,
    *,
    aws_managed_key: bool = False,
) -> Incident:
    """A failed Decrypt that no alert came before."""
    return Incident(
        incident_id=incident_id(detected_at, failure.event_id),
        function_arn=function_arn,
        key_arn=key_arn,
        role=role,
        cause=Cause.DECRYPT_FAILED,
        evidence=failure,
        detected_at=detected_at,
        aws_managed_key=aws_managed_key,
    )


def incident_id(detected_at: datetime, of: str) -> str:
    return f"{detected_at.strftime('%Y%m%dT%H%M%SZ')}-{re.sub(r'[^A-Za-z0-9]', '', of)[:16]}"


def _on_key(cause: Cause, function_arn: str, functions: Sequence[str]) -> tuple[tuple[str, ...], int]:
    if cause not in (Cause.KEY_DISABLED, Cause.KEY_PENDING_DELETION):
        return (), 0
    return bounded_functions({function_arn, *functions})


def bounded_functions(functions: Iterable[str], count: int = 0) -> tuple[tuple[str, ...], int]:
    """(the first MAX_NAMED_FUNCTIONS of the functions in ARN order, how many there are): what a notice
    names and an incident keeps, however many share the key. `count` is a total known beyond the list."""
    every = sorted(set(functions))
    return tuple(every[:MAX_NAMED_FUNCTIONS]), max(count, len(every))


def fix_target(incident: Incident, temporary_role: str | None = None) -> FixTarget:
    return FixTarget(
        function_arn=incident.function_arn,
        key_arn=None if incident.aws_managed_key else incident.key_arn,
        role=incident.role,
        temporary_role=temporary_role,
    )


def incident_fixes(incident: Incident, temporary_role: str | None = None) -> tuple[Fix, ...]:
    """The documented fix for the incident's cause, the preferred first (see domain/fixes.py)."""
    target = fix_target(incident, temporary_role)
    match incident.cause:
        case Cause.KEY_DISABLED:
            return (enable_key(target, incident.key_arn, cancel_deletion=False),)
        case Cause.KEY_PENDING_DELETION:
            return (enable_key(target, incident.key_arn, cancel_deletion=True),)
        case Cause.ROLE_DELETED:
            return recreate_role_then_reset(target)
        case Cause.ROLE_RECREATED:
            return reset(target, role_first=True)
        case _:
            return reset(target)
