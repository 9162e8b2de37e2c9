"""Incidents and the notices people receive about them: an alert before the failure, a resolved notice
when the function can decrypt again, and informational notices. Pure: composing text, no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from grantwatch.domain.facts import Actor, parse_utc_iso, utc_iso
from grantwatch.domain.fixes import (
    Fix,
    FixTarget,
    enable_key,
    fix_lines,
    fixes_json,
    recreate_role_then_reset,
    reset,
)
from grantwatch.domain.functions import function_name
from grantwatch.domain.hazards import KeyFact
from grantwatch.domain.risk import Assessment, Cause, Evidence, Verdict
from grantwatch.domain.text import clean as clean  # re-exported: notices clean untrusted text alike

# SNS takes subjects of fewer than 100 ASCII characters.
MAX_SUBJECT = 99
# An alert names at most this many other functions on the same key; the rest are counted.
MAX_NAMED_FUNCTIONS = 25
_ARN_PARTS = re.compile(r"^arn:aws[a-z-]*:[a-z]+:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):")


class NoticeKind(StrEnum):
    ALERT = "alert"
    RESOLVED = "resolved"
    INFO = "info"


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
    functions_on_key: tuple[str, ...] = ()
    aws_managed_key: bool = False  # the function has no KMSKeyArn: Lambda's key aws/lambda

    @property
    def alert_type(self) -> str:
        return self.cause.value

    @property
    def predicted(self) -> bool:
        return self.cause is not Cause.DECRYPT_FAILED

    @property
    def account(self) -> str:
        match = _ARN_PARTS.match(self.function_arn)
        return match["account"] if match else "unknown"

    @property
    def region(self) -> str:
        match = _ARN_PARTS.match(self.function_arn)
        return match["region"] if match else "unknown"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    incident_id: str
    subject: str
    message: str
    attributes: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "incidentId": self.incident_id,
            "subject": self.subject,
            "message": self.message,
            "attributes": self.attributes,
            "details": self.details,
        }


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
        functions_on_key=_on_key(assessment.cause, assessment.function_arn, functions_on_key),
        aws_managed_key=aws_managed_key,
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


def _on_key(cause: Cause, function_arn: str, functions: Sequence[str]) -> tuple[str, ...]:
    if cause not in (Cause.KEY_DISABLED, Cause.KEY_PENDING_DELETION):
        return ()
    return tuple(sorted({function_arn, *functions}))


def json_block(details: dict[str, Any]) -> str:
    """The details as JSON that no renderer reads as markup: non-ASCII and <, >, ` and & escaped."""
    text = json.dumps(details, indent=2, ensure_ascii=True)
    return text.translate({ord(c): f"\\u{ord(c):04x}" for c in "<>`&"})


def _subject(prefix: str, name: str, suffix: str) -> str:
    """SNS takes printable ASCII subjects only: anything else in the name becomes '?'."""
    name = "".join(c if " " <= c <= "~" else "?" for c in name)
    room = MAX_SUBJECT - len(prefix) - len(suffix)
    shown = name if len(name) <= room else name[: max(room - 3, 0)] + "..."
    return f"{prefix}{shown}{suffix}"


def _attributes(incident: Incident, severity: str, alert_type: str) -> dict[str, str]:
    return {
        "severity": severity,
        "alertType": alert_type,
        "functionArn": clean(incident.function_arn),
        "keyArn": clean(incident.key_arn),
        "account": incident.account,
        "region": incident.region,
    }


def _actor_json(actor: Actor) -> dict[str, Any]:
    return {
        "by": actor.principal,
        "via": actor.via,
        "from": actor.source_ip,
        "identityType": actor.identity_type,
    }


def incident_record(incident: Incident) -> dict[str, Any]:
    """The incident as JSON: how it is stored, and the core of every notice's details."""
    evidence = incident.evidence
    return {
        "incidentId": incident.incident_id,
        "alertType": incident.alert_type,
        "predicted": incident.predicted,
        "functionArn": incident.function_arn,
        "keyArn": incident.key_arn,
        "executionRole": incident.role,
        "grantId": incident.grant_id,
        "evidence": {
            "what": evidence.what,
            "eventName": evidence.event_name,
            "eventId": evidence.event_id,
            "at": utc_iso(evidence.at),
        }
        | _actor_json(evidence.actor),
        "detectedAt": utc_iso(incident.detected_at),
        "deletionDate": utc_iso(incident.deletion_date) if incident.deletion_date else None,
        "functionsOnKey": list(incident.functions_on_key),
        "awsManagedKey": incident.aws_managed_key,
    }


def incident_from_record(record: dict[str, Any]) -> Incident:
    evidence: dict[str, Any] = record["evidence"]
    return Incident(
        incident_id=record["incidentId"],
        function_arn=record["functionArn"],
        key_arn=record["keyArn"],
        role=record.get("executionRole"),
        cause=Cause(record["alertType"]),
        evidence=Evidence(
            what=evidence["what"],
            event_name=evidence["eventName"],
            event_id=evidence["eventId"],
            at=parse_utc_iso(evidence["at"]),
            actor=Actor(
                principal=evidence.get("by") or "unknown",
                identity_type=evidence.get("identityType"),
                via=evidence.get("via"),
                source_ip=evidence.get("from"),
            ),
        ),
        detected_at=parse_utc_iso(record["detectedAt"]),
        grant_id=record.get("grantId"),
        deletion_date=parse_utc_iso(record["deletionDate"]) if record.get("deletionDate") else None,
        functions_on_key=tuple(record.get("functionsOnKey") or ()),
        aws_managed_key=bool(record.get("awsManagedKey")),
    )


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


def _headline(incident: Incident) -> tuple[str, list[str], str]:
    """(subject suffix, what happened, what will happen) for the incident's cause."""
    e = incident.evidence
    actor = f"by {clean(e.actor.principal)}"
    actor += f" via {clean(e.actor.via)}" if e.actor.via else ""
    actor += f" from {clean(e.actor.source_ip)}" if e.actor.source_ip else ""
    found = e.event_id.startswith("reconciliation:")
    when = f"at {utc_iso(e.at)}" if found else f"at {utc_iso(e.at)} {actor}"
    event = "(found by reconciliation)" if found else f"(CloudTrail event {clean(e.event_id)})"
    key = clean(incident.key_arn)
    role = clean(incident.role)
    grant = clean(incident.grant_id)
    exception = {
        Cause.KEY_DISABLED: "KMSDisabledException",
        Cause.KEY_PENDING_DELETION: "KMSInvalidStateException",
    }.get(incident.cause, "KMSAccessDeniedException")
    cold_start = (
        f"Its next cold start fails with {exception}: Lambda cannot decrypt the environment variables."
    )
    match incident.cause:
        case Cause.KEY_DISABLED:
            return (
                ": key disabled, next cold start will fail",
                [
                    f"Key {key}",
                    f"was {clean(e.what)} {when}",
                    f"{event}.",
                ],
                cold_start + " Every function on the key is affected.",
            )
        case Cause.KEY_PENDING_DELETION:
            date = utc_iso(incident.deletion_date) if incident.deletion_date else "(date not recorded)"
            return (
                ": key scheduled for deletion",
                [
                    f"Key {key}",
                    f"was scheduled for deletion {when}",
                    f"{event}.",
                    f"KMS deletes it on {date}.",
                ],
                cold_start + " After the deletion date the environment can never be decrypted again.",
            )
        case Cause.ROLE_DELETED:
            return (
                ": execution role deleted",
                [
                    f"The execution role {role}",
                    f"was deleted {when}",
                    f"{event}.",
                ],
                "Lambda can no longer assume the role: invocations fail now or at the next cold start.",
            )
        case Cause.ROLE_RECREATED:
            return (
                ": grants bound to a deleted role",
                [
                    f"The execution role {role}",
                    f"was {clean(e.what)} {when} {event}.",
                    f"Grant {grant} on key {key} is still listed, but KMS bound it to the unique id of",
                    "the role that was deleted: it no longer applies to the role of that name.",
                ],
                cold_start,
            )
        case Cause.NO_GRANT:
            return (
                ": no KMS grant found",
                [
                    f"Reconciliation at {utc_iso(e.at)} listed the grants of key {key}",
                    f"and found none for this function and its role {role}, though its environment is",
                    "encrypted with that key.",
                ],
                cold_start,
            )
        case Cause.DECRYPT_FAILED:
            return (
                ": Decrypt failed (not predicted)",
                [
                    f"A Decrypt for this function on key {key} failed {when}",
                    f"{event}.",
                    "grantwatch had not predicted it: no grant end, role change or key change was seen that",
                    "explains it. Check the key policy and the function's grant (grantwatch lineage).",
                ],
                "The function is failing now.",
            )
        case _:
            return (
                f": next cold start will fail (grant {'gone' if found else clean(e.what)})",
                [
                    f"Grant {grant} on key {key}",
                    f"was {clean(e.what)} {when}",
                    f"{event}.",
                    f"No other grant on that key allows Decrypt for the role {role}.",
                ],
                cold_start + " Warm instances may keep working until they are recycled.",
            )


def alert_details(incident: Incident, temporary_role: str | None = None) -> dict[str, Any]:
    return incident_record(incident) | {
        "severity": "critical",
        "functionName": function_name(incident.function_arn),
        "account": incident.account,
        "region": incident.region,
        "fix": fixes_json(incident_fixes(incident, temporary_role)),
    }


def alert_notice(incident: Incident, temporary_role: str | None = None) -> Notice:
    """The alert; `temporary_role` is the stack's SelfHealingTemporaryRoleArn, which its fix then uses."""
    name = clean(function_name(incident.function_arn), 140)
    details = alert_details(incident, temporary_role)
    suffix, happened, consequence = _headline(incident)
    lines = [
        f"Lambda function {name} failed to decrypt its environment variables."
        if not incident.predicted
        else f"Lambda function {name} can no longer decrypt its environment variables.",
        "",
        "What happened",
        *(f"  {line}" for line in happened),
        "",
        "What will happen",
        f"  {consequence}",
    ]
    if incident.functions_on_key:
        shown = [clean(function_name(f), 140) for f in incident.functions_on_key[:MAX_NAMED_FUNCTIONS]]
        more = len(incident.functions_on_key) - len(shown)
        lines += ["", "Functions on this key", *(f"  {f}" for f in shown)]
        if more > 0:
            lines.append(f"  … and {more} more (grantwatch functions --json)")
    fixes = incident_fixes(incident, temporary_role)
    lines += ["", "Fix", *(f"  {line}" for line in fix_lines(fixes))]
    lines += ["", "Details (JSON)", json_block(details)]
    return Notice(
        kind=NoticeKind.ALERT,
        incident_id=incident.incident_id,
        subject=_subject("[grantwatch] ", name, suffix),
        message="\n".join(lines),
        attributes=_attributes(incident, "critical", incident.alert_type),
        details=details,
    )


def resolved_notice(incident: Incident, reason: str, resolved_at: datetime, grant_id: str | None) -> Notice:
    name = clean(function_name(incident.function_arn), 140)
    details = alert_details(incident) | {
        "alertType": "resolved",
        "resolvedAlertType": incident.alert_type,
        "severity": "info",
        "resolvedAt": utc_iso(resolved_at),
        "resolvedReason": reason,
        "resolvedByGrantId": grant_id,
    }
    del details["fix"]
    lines = [
        f"Resolved: Lambda function {name} {reason}.",
        f"  Incident {clean(incident.incident_id)} ({incident.alert_type}: "
        f"{clean(incident.evidence.what)} at {utc_iso(incident.evidence.at)}) is closed.",
    ]
    if grant_id:
        lines.append(f"  Usable grant: {clean(grant_id)} on key {clean(incident.key_arn)}.")
    lines += ["", "Details (JSON)", json_block(details)]
    return Notice(
        kind=NoticeKind.RESOLVED,
        incident_id=incident.incident_id,
        subject=_subject(
            "[grantwatch] resolved: ", name, " can decrypt again" if grant_id else ": incident closed"
        ),
        message="\n".join(lines),
        attributes=_attributes(incident, "info", "resolved"),
        details=details,
    )


def policy_notice(fact: KeyFact, functions: Sequence[str]) -> Notice:
    """Informational: a key policy changed on a key that Lambda functions use."""
    key = clean(fact.key_arn)
    names = [clean(function_name(f), 140) for f in sorted(functions)[:MAX_NAMED_FUNCTIONS]]
    more = len(functions) - len(names)
    match = _ARN_PARTS.match(fact.key_arn)
    details = {
        "alertType": "key-policy-changed",
        "severity": "info",
        "keyArn": fact.key_arn,
        "eventId": fact.event_id,
        "at": utc_iso(fact.event_time),
        "functions": sorted(functions),
    } | _actor_json(fact.actor)
    lines = [
        f"The key policy of {key} was changed at {utc_iso(fact.event_time)} by {clean(fact.actor.principal)}",
        f"(CloudTrail event {clean(fact.event_id)}).",
        "",
        "Lambda functions on this key decrypt through grants, which a policy change does not end, unless",
        "the new policy denies them (an explicit Deny in a key policy overrides any grant). Review the",
        "change for the functions on this key:",
        *(f"  {name}" for name in names),
        *([f"  … and {more} more"] if more > 0 else []),
        "",
        "Details (JSON)",
        json_block(details),
    ]
    return Notice(
        kind=NoticeKind.INFO,
        incident_id=f"policy-{fact.event_id}",
        subject=_subject(
            "[grantwatch] key policy changed: ", key.rsplit("/", 1)[-1], f" ({len(functions)} functions)"
        ),
        message="\n".join(lines),
        attributes={
            "severity": "info",
            "alertType": "key-policy-changed",
            "keyArn": key,
            "account": match["account"] if match else "unknown",
            "region": match["region"] if match else "unknown",
        },
        details=details,
    )
