"""Incidents and the notices people receive about them: an alert before the failure, and a resolved
notice when a usable grant is back. Pure: composing text, no I/O."""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from grantwatch.domain.facts import FactKind, parse_utc_iso, utc_iso
from grantwatch.domain.functions import function_name
from grantwatch.domain.risk import Assessment, Verdict

# SNS takes subjects of fewer than 100 ASCII characters.
MAX_SUBJECT = 99
# What untrusted text may not carry into a notice: control and format characters (line breaks, bidi
# overrides, zero-width characters), unassigned or private ones, and what chat renderers read as markup
# (<link|text>, <!channel>, `code`). None of them occurs in an AWS name or principal.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_MARKUP = frozenset("<>`")
_FUNCTION_ARN_PARTS = re.compile(
    r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
)


class NoticeKind(StrEnum):
    ALERT = "alert"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Incident:
    """A function that has lost its last usable grant, from detection until a usable grant is back."""

    incident_id: str
    function_arn: str
    key_arn: str
    role: str | None
    alert_type: str
    grant_id: str
    ended_how: str
    ended_at: datetime
    ended_by: str
    ended_via: str | None
    ended_from: str | None
    ended_event_id: str
    detected_at: datetime

    @property
    def account(self) -> str:
        match = _FUNCTION_ARN_PARTS.match(self.function_arn)
        return match["account"] if match else "unknown"

    @property
    def region(self) -> str:
        match = _FUNCTION_ARN_PARTS.match(self.function_arn)
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


def incident_from(assessment: Assessment, detected_at: datetime) -> Incident:
    lost = assessment.lost
    if assessment.verdict is not Verdict.AT_RISK or lost is None or lost.ended is None:
        raise ValueError("an incident needs an at-risk assessment with the grant that ended")
    ended = lost.ended
    how = "revoked" if ended.kind is FactKind.REVOKED else "retired"
    return Incident(
        incident_id=f"{detected_at.strftime('%Y%m%dT%H%M%SZ')}-{lost.grant_id[:16]}",
        function_arn=assessment.function_arn,
        key_arn=lost.key_arn,
        role=assessment.role,
        alert_type=f"grant-{how}",
        grant_id=lost.grant_id,
        ended_how=how,
        ended_at=ended.event_time,
        ended_by=ended.actor.principal,
        ended_via=ended.actor.via,
        ended_from=ended.actor.source_ip,
        ended_event_id=ended.event_id,
        detected_at=detected_at,
    )


def clean(text: str | None, limit: int = 512) -> str:
    """Untrusted text (names, principals) as one plain line: no control characters, no line breaks."""
    if text is None:
        return "-"
    flat = "".join("?" if c in _MARKUP or unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _json_block(details: dict[str, Any]) -> str:
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


def fix_command(incident: Incident) -> str:
    return " ".join(
        [
            "aws lambda update-function-configuration",
            f"--region {shlex.quote(incident.region)}",
            f"--function-name {shlex.quote(clean(incident.function_arn))}",
            f"--kms-key-arn {shlex.quote(clean(incident.key_arn))}",
        ]
    )


def incident_record(incident: Incident) -> dict[str, Any]:
    """The incident as JSON: how it is stored, and the core of every notice's details."""
    return {
        "incidentId": incident.incident_id,
        "alertType": incident.alert_type,
        "functionArn": incident.function_arn,
        "keyArn": incident.key_arn,
        "executionRole": incident.role,
        "grantId": incident.grant_id,
        "endedHow": incident.ended_how,
        "endedAt": utc_iso(incident.ended_at),
        "endedBy": incident.ended_by,
        "endedVia": incident.ended_via,
        "endedFrom": incident.ended_from,
        "endedEventId": incident.ended_event_id,
        "detectedAt": utc_iso(incident.detected_at),
    }


def incident_from_record(record: dict[str, Any]) -> Incident:
    return Incident(
        incident_id=record["incidentId"],
        function_arn=record["functionArn"],
        key_arn=record["keyArn"],
        role=record.get("executionRole"),
        alert_type=record["alertType"],
        grant_id=record["grantId"],
        ended_how=record["endedHow"],
        ended_at=parse_utc_iso(record["endedAt"]),
        ended_by=record["endedBy"],
        ended_via=record.get("endedVia"),
        ended_from=record.get("endedFrom"),
        ended_event_id=record["endedEventId"],
        detected_at=parse_utc_iso(record["detectedAt"]),
    )


def alert_details(incident: Incident) -> dict[str, Any]:
    return incident_record(incident) | {
        "severity": "critical",
        "functionName": function_name(incident.function_arn),
        "account": incident.account,
        "region": incident.region,
        "fix": fix_command(incident),
    }


def alert_notice(incident: Incident) -> Notice:
    name = clean(function_name(incident.function_arn), 140)
    details = alert_details(incident)
    via = f" via {clean(incident.ended_via)}" if incident.ended_via else ""
    via += f" from {clean(incident.ended_from)}" if incident.ended_from else ""
    message = "\n".join(
        [
            f"Lambda function {name} has no usable KMS grant left for its environment variables.",
            "",
            "What happened",
            f"  Grant {clean(incident.grant_id)} on key {clean(incident.key_arn)}",
            f"  was {incident.ended_how} at {utc_iso(incident.ended_at)} by {clean(incident.ended_by)}{via}",
            f"  (CloudTrail event {clean(incident.ended_event_id)}).",
            f"  No other grant on that key allows Decrypt for the role {clean(incident.role)}.",
            "",
            "What will happen",
            "  The function's next cold start fails with KMSAccessDeniedException: Lambda will be",
            "  unable to decrypt the environment variables. Warm instances may keep working until",
            "  they are recycled.",
            "",
            "Fix",
            "  Update the function's configuration; Lambda then creates a new grant for its current role:",
            f"    {fix_command(incident)}",
            "",
            "Details (JSON)",
            _json_block(details),
        ]
    )
    return Notice(
        kind=NoticeKind.ALERT,
        incident_id=incident.incident_id,
        subject=_subject("[grantwatch] ", name, f": next cold start will fail (grant {incident.ended_how})"),
        message=message,
        attributes=_attributes(incident, "critical", incident.alert_type),
        details=details,
    )


def resolved_notice(incident: Incident, reason: str, resolved_at: datetime, grant_id: str | None) -> Notice:
    name = clean(function_name(incident.function_arn), 140)
    details = alert_details(incident) | {
        "alertType": "resolved",
        "severity": "info",
        "resolvedAt": utc_iso(resolved_at),
        "resolvedReason": reason,
        "resolvedByGrantId": grant_id,
    }
    del details["fix"]
    lines = [
        f"Resolved: Lambda function {name} {reason}.",
        f"  Incident {clean(incident.incident_id)} (grant {clean(incident.grant_id)} {incident.ended_how} at "
        f"{utc_iso(incident.ended_at)}) is closed.",
    ]
    if grant_id:
        lines.append(f"  Usable grant: {clean(grant_id)} on key {clean(incident.key_arn)}.")
    lines += ["", "Details (JSON)", _json_block(details)]
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
