"""The wording of a resource incident's notices: the alert (what happened, what happens to the resources
and by when, the fix) and the resolved notice. Pure: composing text, no I/O. They travel as every other
`Notice` does, so every channel takes them (grantwatch.domain.channels builds each payload from the
details here)."""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any

from grantwatch.domain.channels import RESOLVED
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.fixes import Fix, fix_lines, fixes_json, key_fix
from grantwatch.domain.notices import Notice, NoticeKind, email_text, first_names, fix_email, json_block
from grantwatch.domain.resource_alerts import (
    AFTER_DEADLINE,
    MAX_NAMED_RESOURCES,
    ResourceCause,
    ResourceIncident,
)
from grantwatch.domain.text import clean

MAX_SUBJECT = 99  # SNS: fewer than 100 printable ASCII characters
MAX_NAME = 140  # a resource name as a notice shows it (a DynamoDB table name is at most 255)


def resource_fixes(incident: ResourceIncident) -> tuple[Fix, ...]:
    """Enable the key (cancelling its deletion first); a revoked grant has no command: its recovery."""
    match incident.cause:
        case ResourceCause.KEY_PENDING_DELETION:
            return (key_fix(incident.key_arn, cancel_deletion=True),)
        case ResourceCause.KEY_DISABLED:
            return (key_fix(incident.key_arn, cancel_deletion=False),)
        case _:
            return ()


def resource_details(incident: ResourceIncident) -> dict[str, Any]:
    """The incident as every notice's details show it."""
    e = incident.evidence
    return {
        "incidentId": incident.incident_id,
        "alertType": incident.alert_type,
        "severity": "critical",
        "service": incident.service,
        "resourceKind": incident.resource_kind,
        "keyArn": incident.key_arn,
        "account": incident.account,
        "region": incident.region,
        "resources": list(incident.resources),  # the first MAX_NAMED_RESOURCES, in name order
        "resourceCount": max(incident.resource_count, len(incident.resources)),
        "grantId": incident.grant_id,
        "evidence": {
            "what": e.what,
            "eventName": e.event_name,
            "eventId": e.event_id,
            "at": utc_iso(e.at),
            "by": e.actor.principal,
            "via": e.actor.via,
            "from": e.actor.source_ip,
            "identityType": e.actor.identity_type,
        },
        "detectedAt": utc_iso(incident.detected_at),
        "lossStartedAt": utc_iso(incident.loss_started),
        "deadline": utc_iso(incident.deadline) if incident.deadline else None,
        "deletionDate": utc_iso(incident.deletion_date) if incident.deletion_date else None,
        "whatHappens": incident.what_happens,
        "takesEffect": incident.takes_effect,
        "resourceState": incident.resource_state,
        "irreversible": incident.irreversible,
        "recovery": incident.recovery,
        "sources": [{"title": title, "url": url} for title, url in incident.sources],
    }


def _subject(prefix: str, middle: str, suffix: str) -> str:
    text = "".join(c if " " <= c <= "~" else "?" for c in f"{prefix}{middle}{suffix}")
    if len(text) <= MAX_SUBJECT:
        return text
    room = max(MAX_SUBJECT - len(prefix) - len(suffix) - 3, 0)
    return "".join(c if " " <= c <= "~" else "?" for c in f"{prefix}{middle[:room]}...{suffix}")


def plural(kind: str, count: int) -> str:
    """ "table" / "tables"; "WorkSpace (user and directory)" / "WorkSpaces (user and directory)"."""
    if count == 1:
        return kind
    head, space, rest = kind.partition(" (")
    return f"{head}s{space}{rest}"


def _kind(incident: ResourceIncident, count: int) -> str:
    return f"{incident.service} {plural(incident.resource_kind, count)}"


def _names(incident: ResourceIncident) -> str:
    """`a`, `b` and N more: the clock's sentence names the first three."""
    shown = [f"`{clean(name, MAX_NAME)}`" for name in incident.resources[:3]]
    more = max(incident.resource_count, len(incident.resources)) - len(shown)
    if more > 0:
        return ", ".join(shown) + f" and {more} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f" and {shown[-1]}"


def clock_lines(incident: ResourceIncident) -> list[str]:
    """What happens and when: the documented effect, the deadline from the loss, the deletion date."""
    key = clean(incident.key_arn)
    count = max(incident.resource_count, len(incident.resources))
    kind = plural(incident.resource_kind, count)
    unless = {
        ResourceCause.KEY_PENDING_DELETION: f"unless the deletion of key {key} is cancelled and the key "
        "enabled before",
        ResourceCause.KEY_DISABLED: f"unless key {key} is enabled before",
    }.get(incident.cause, "unless its grant is back before")
    lines = [clean(incident.what_happens, 1024), f"When: {clean(incident.takes_effect, 512)}."]
    if incident.resource_state:
        lines.append(
            f"Meanwhile the {kind} {'shows' if count == 1 else 'show'} the state "
            f"{clean(incident.resource_state)}."
        )
    if incident.deadline is not None:
        lost = clean(incident.irreversible or "the loss becomes final", 1024)
        lines.append(
            f"{kind} {_names(incident)}: after {utc_iso(incident.deadline)}, {lost}, {unless} "
            f"(the key was lost at {utc_iso(incident.loss_started)})."
        )
    if incident.deletion_date is not None:
        lines.append(
            f"KMS deletes key {key} on {utc_iso(incident.deletion_date)}: after that the {kind}' data can "
            "never be decrypted again."
        )
    elif incident.deadline is None and incident.irreversible:
        lines.append(f"Cannot be undone: {clean(incident.irreversible, 1024)}.")
    return lines


def resource_alert_notice(incident: ResourceIncident) -> Notice:
    details = resource_details(incident)
    count = details["resourceCount"]
    fixes = resource_fixes(incident)
    details["fix"] = fixes_json(fixes)
    e = incident.evidence
    actor = f"by {clean(e.actor.principal)}" + (f" via {clean(e.actor.via)}" if e.actor.via else "")
    actor += f" from {clean(e.actor.source_ip)}" if e.actor.source_ip else ""
    key = clean(incident.key_arn)
    what = {
        ResourceCause.KEY_DISABLED: f"Key {key}",
        ResourceCause.KEY_PENDING_DELETION: f"Key {key}",
        ResourceCause.GRANT_REVOKED: f"The {incident.service} grant {clean(incident.grant_id)} on key {key}",
    }[incident.cause]
    shown = [clean(name, MAX_NAME) for name in incident.resources[:MAX_NAMED_RESOURCES]]
    more = count - len(shown)
    lines = [
        f"{count} {_kind(incident, count)} on key {key} can no longer use it.",
        "",
        "What happened",
        f"  {what}",
        f"  was {clean(e.what)} at {utc_iso(e.at)} {actor}",
        f"  (CloudTrail event {clean(e.event_id)}).",
        "",
        "What will happen",
        *(f"  {line}" for line in clock_lines(incident)),
        "",
        f"{plural(incident.resource_kind[:1].upper() + incident.resource_kind[1:], 2)} on this key ({count})",
        *(f"  {name}" for name in shown),
        *([f"  … and {more} more: grantwatch resources --key {key}"] if more > 0 else []),
        "",
        "Fix",
        *(f"  {line}" for line in fix_lines(fixes)),
        f"  Recovery, as documented: {clean(incident.recovery, 1024)}",
        "",
        "Documented in",
        *(f"  {clean(title, 200)}: {clean(url, 300)}" for title, url in incident.sources),
        "",
        "Details (JSON)",
        json_block(details),
    ]
    suffix = {
        ResourceCause.KEY_DISABLED: ": key disabled",
        ResourceCause.KEY_PENDING_DELETION: ": key scheduled for deletion",
        ResourceCause.GRANT_REVOKED: ": grant revoked",
    }[incident.cause]
    deadline = incident.hard_deadline
    suffix += f", deadline {utc_iso(deadline)}" if deadline else ""
    command = resources_command(incident.key_arn)
    short = [
        *lines[:8],
        *(f"  {line}" for line in clock_lines(incident)),
        f"  {plural(incident.resource_kind, count).capitalize()} ({count}): {first_names(shown, more)}.",
        "",
        *fix_email(fixes, command),
        f"Recovery, as documented: {clean(incident.recovery, 1024)}",
    ]
    return Notice(
        kind=NoticeKind.ALERT,
        incident_id=incident.incident_id,
        subject=_subject("[grantwatch] ", f"{count} {_kind(incident, count)}", suffix),
        message="\n".join(lines),
        attributes=_attributes(incident, "critical", incident.alert_type),
        details=details,
        email=email_text(short, command, heading="Every resource on this key, with its clock:"),
        command=command,
    )


def resources_command(key_arn: str) -> str:
    """The command that shows every resource on the key and its clock."""
    return f"grantwatch resources --key {shlex.quote(clean(key_arn))}"


def resource_resolved_notice(incident: ResourceIncident, reason: str, resolved_at: datetime) -> Notice:
    """Closed: the key is back (before the deadline, or after it: then the resources may be lost), or
    the resources no longer need it."""
    late = AFTER_DEADLINE in reason
    severity = "warning" if late else "info"
    details = resource_details(incident) | {
        "alertType": RESOLVED,
        "resolvedAlertType": incident.alert_type,
        "severity": severity,
        "resolvedAt": utc_iso(resolved_at),
        "resolvedReason": reason,
        "afterDeadline": late,
    }
    count = details["resourceCount"]
    lines = [
        f"Resolved: {count} {_kind(incident, count)} on key {clean(incident.key_arn)}: "
        f"{clean(reason, 1024)}.",
        f"  Incident {clean(incident.incident_id)} ({incident.alert_type}: {clean(incident.evidence.what)} "
        f"at {utc_iso(incident.evidence.at)}) is closed.",
        "",
        "Details (JSON)",
        json_block(details),
    ]
    suffix = ": key back AFTER the deadline" if late else ": key back"
    if incident.cause is ResourceCause.GRANT_REVOKED:
        suffix = ": grant back"
    command = resources_command(incident.key_arn)
    return Notice(
        kind=NoticeKind.RESOLVED,
        incident_id=incident.incident_id,
        subject=_subject("[grantwatch] resolved: ", f"{count} {_kind(incident, count)}", suffix),
        message="\n".join(lines),
        attributes=_attributes(incident, severity, RESOLVED),
        details=details,
        email=email_text(lines[:2], command, heading="Every resource on this key, with its clock:"),
        command=command,
    )


def _attributes(incident: ResourceIncident, severity: str, alert_type: str) -> dict[str, str]:
    return {
        "severity": severity,
        "alertType": alert_type,
        "keyArn": clean(incident.key_arn),
        "service": clean(incident.service),
        "account": incident.account,
        "region": incident.region,
    }
