"""The wording of every notice people receive: the alert before a failure, the resolved notice, the
informational key-policy notice, and self-healing's "healed" / "heal failed". Pure: composing text, no I/O.

A notice's text is for people only. What machines act on travels beside it, as the SNS message attributes
(`alertType`, `incidentId`, `functionArn`, ...) and as its details (JSON): so the wording here can change
without touching how incidents are stored or how remediation finds the incident an alert is about.

Each notice has two texts for people: `message`, everything (what the CLI prints), and `email`, the short
one SNS sends to e-mail subscribers: what happened, what will happen, the preferred fix's commands, the
alternative in one line, and `command`, the grantwatch command that shows everything.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from grantwatch.domain.alerts import (
    ARN_PARTS,
    MAX_NAMED_FUNCTIONS,
    Incident,
    bounded_functions,
    incident_fixes,
)
from grantwatch.domain.channels import MEMBER_CANARY_SILENT, RECONCILIATION_STALE, TRIAL
from grantwatch.domain.coverage import STALE_AFTER_INTERVALS, Coverage, Target, Unheard
from grantwatch.domain.facts import Actor, partition_of, utc_iso
from grantwatch.domain.fixes import Fix, fix_lines, fixes_json
from grantwatch.domain.functions import function_name
from grantwatch.domain.hazards import KeyFact
from grantwatch.domain.healing import HEAL_FAILED, HEAL_SUCCEEDED, HealOutcome
from grantwatch.domain.risk import Cause
from grantwatch.domain.text import clean

# SNS takes subjects of fewer than 100 ASCII characters.
MAX_SUBJECT = 99
# The most lines an e-mail has, whatever the notice: it is read on a phone, the rest is one command away.
MAX_EMAIL_LINES = 25
# The functions (and account-regions) an e-mail names; the command at its end lists every one.
MAX_EMAIL_NAMES = 5


class NoticeKind(StrEnum):
    ALERT = "alert"
    RESOLVED = "resolved"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    incident_id: str
    subject: str
    message: str
    attributes: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)
    email: str = ""  # the short text e-mail subscribers receive (at most MAX_EMAIL_LINES lines)
    command: str = ""  # the grantwatch command that shows everything about the notice

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "incidentId": self.incident_id,
            "subject": self.subject,
            "message": self.message,
            "attributes": self.attributes,
            "details": self.details,
            "email": self.email,
            "command": self.command,
        }


def incident_command(incident_id: str) -> str:
    return f"grantwatch incidents {shlex.quote(clean(incident_id))}"


def email_text(lines: Sequence[str], command: str, heading: str = "Everything about this incident:") -> str:
    """The e-mail's lines, then the command that shows everything."""
    more = ["", heading, f"  {command}"] if command else []
    return "\n".join([*lines, *more])


def fix_email(fixes: Sequence[Fix], command: str) -> list[str]:
    """The preferred fix with its commands; each alternative in one line."""
    if not fixes:
        return []
    preferred, *others = fixes
    lines = [f"Fix: {preferred.summary}"]
    lines += [f"  needs {preferred.needs}"] if preferred.needs else []
    lines += [f"    {step.command}" for step in preferred.steps]
    alternatives = "; or ".join(o.summary.split(" (", 1)[0] for o in others)
    lines += [f"Or: {alternatives} (the commands: {command})"] if others else []
    return lines


def json_block(details: dict[str, Any], indent: int | None = 2) -> str:
    """The details as JSON that no renderer reads as markup: non-ASCII and <, >, ` and & escaped."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(details, indent=indent, ensure_ascii=True, separators=separators)
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


def incident_details(incident: Incident) -> dict[str, Any]:
    """The incident as every notice's details show it (and the CLI's incident rows)."""
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
        "functionsOnKeyCount": max(incident.functions_on_key_count, len(incident.functions_on_key)),
        "awsManagedKey": incident.aws_managed_key,
    }


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
    return incident_details(incident) | {
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
    command = incident_command(incident.incident_id)
    fixes = incident_fixes(incident, temporary_role)
    short = list(lines)
    if incident.functions_on_key:
        shown = [clean(function_name(f), 140) for f in incident.functions_on_key[:MAX_NAMED_FUNCTIONS]]
        more = details["functionsOnKeyCount"] - len(shown)
        lines += ["", "Functions on this key", *(f"  {f}" for f in shown)]
        if more > 0:
            lines.append(f"  … and {more} more: grantwatch functions --key {clean(incident.key_arn)}")
        short.append(
            f"  Functions on this key ({details['functionsOnKeyCount']}): {first_names(shown, more)}."
        )
    lines += ["", "Fix", *(f"  {line}" for line in fix_lines(fixes))]
    lines += ["", "Details (JSON)", json_block(details)]
    return Notice(
        kind=NoticeKind.ALERT,
        incident_id=incident.incident_id,
        subject=_subject("[grantwatch] ", name, suffix),
        message="\n".join(lines),
        attributes=_attributes(incident, "critical", incident.alert_type),
        details=details,
        email=email_text([*short, "", *fix_email(fixes, command)], command),
        command=command,
    )


def first_names(names: Sequence[str], more: int = 0) -> str:
    """The first MAX_EMAIL_NAMES names, and how many more there are."""
    hidden = max(len(names) - MAX_EMAIL_NAMES, 0) + max(more, 0)
    return ", ".join(names[:MAX_EMAIL_NAMES]) + (f" and {hidden} more" if hidden else "")


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
    command = incident_command(incident.incident_id)
    done = "the function can decrypt its environment" if grant_id else "the incident is closed"
    email = email_text([*lines, "", f"Nothing to do: {done}."], command)
    lines += ["", "Details (JSON)", json_block(details)]
    return Notice(
        email=email,
        command=command,
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
    named, count = bounded_functions(functions)
    names = [clean(function_name(f), 140) for f in named]
    more = count - len(names)
    match = ARN_PARTS.match(fact.key_arn)
    details = {
        "alertType": "key-policy-changed",
        "severity": "info",
        "keyArn": fact.key_arn,
        "eventId": fact.event_id,
        "at": utc_iso(fact.event_time),
        "functions": list(named),  # the first MAX_NAMED_FUNCTIONS in ARN order
        "functionCount": count,
    } | _actor_json(fact.actor)
    lines = [
        f"The key policy of {key} was changed at {utc_iso(fact.event_time)} by {clean(fact.actor.principal)}",
        f"(CloudTrail event {clean(fact.event_id)}).",
        "",
        "Lambda functions on this key decrypt through grants, which a policy change does not end, unless",
        "the new policy denies them (an explicit Deny in a key policy overrides any grant). Review the",
        "change for the functions on this key:",
        *(f"  {name}" for name in names),
        *([f"  … and {more} more: grantwatch functions --key {key}"] if more > 0 else []),
        "",
        "Details (JSON)",
        json_block(details),
    ]
    command = f"grantwatch functions --key {shlex.quote(key)}"
    email = [
        *lines[:2],
        "",
        "What will happen",
        "  Nothing, unless the new policy denies the functions on this key: an explicit Deny in a key",
        "  policy overrides any grant, and their next cold starts then fail.",
        "",
        f"Review the change for the {count} Lambda function(s) on this key: {first_names(names, more)}.",
    ]
    return Notice(
        email=email_text(email, command, "Every function on this key:"),
        command=command,
        kind=NoticeKind.INFO,
        incident_id=f"policy-{fact.event_id}",
        subject=_subject(
            "[grantwatch] key policy changed: ", key.rsplit("/", 1)[-1], f" ({count} functions)"
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


def heal_notice(incident: Incident, outcome: HealOutcome) -> Notice:
    """ "healed" (info) or "heal failed" (critical: the function still cannot decrypt) for the incident."""
    name = clean(function_name(incident.function_arn), 140)
    alert_type = HEAL_SUCCEEDED if outcome.healed else HEAL_FAILED
    severity = "info" if outcome.healed else "critical"
    fix = outcome.fix
    email: list[str] | None = None  # the full text's lines without the details, unless said otherwise
    details = incident_details(incident) | {
        "alertType": alert_type,
        "healedAlertType": incident.alert_type,
        "severity": severity,
        "functionName": function_name(incident.function_arn),
        "attempt": outcome.attempt,
        "maxAttempts": outcome.max_attempts,
        "at": utc_iso(outcome.at),
        "newGrantId": outcome.grant_id,
        "error": outcome.error,
        "procedure": fix.procedure.value if fix else None,
        "leftOn": outcome.left_on,
        "fix": [fix.as_json()] if fix else [],
    }
    how = fix.summary if fix else "its configuration updated"
    if outcome.healed:
        lines = [
            f"Healed: grantwatch reset the grant of Lambda function {name}: {how}.",
            f"  Lambda created grant {clean(outcome.grant_id)} on key {clean(incident.key_arn)}.",
            f"  Incident {clean(incident.incident_id)} ({incident.alert_type}) closes with a resolved notice",
            "  once the grant's CloudTrail event is recorded.",
        ]
    else:
        left = outcome.max_attempts - outcome.attempt
        lines = [
            f"Heal failed: grantwatch could not reset the grant of Lambda function {name}",
            f"(attempt {outcome.attempt} of {outcome.max_attempts}): {clean(outcome.error)}.",
            f"  Incident {clean(incident.incident_id)} ({incident.alert_type}) stays open: the function",
            "  still cannot decrypt its environment. "
            + ("Another attempt may follow." if left > 0 else "No further attempt will be made."),
        ]
        if outcome.left_on is not None and fix is not None:
            restoring = next(step.order for step in fix.steps if step.restores)
            restore = [step for step in fix.steps if step.order >= restoring]
            lines += [
                f"  THE FUNCTION IS LEFT ON {clean(outcome.left_on)}, NOT ITS OWN {fix.setting}",
                f"  {clean(fix.original)}. Restore it now:",
                *(f"    {step.command}" for step in restore),
            ]
        else:
            by_hand = [f"    {step.command}" for step in fix.steps] if fix else []
            email = [
                *lines,
                "  Fix it by hand:" if by_hand else "  Fix it by hand: the command below shows how.",
                *by_hand,
            ]
            lines.append("  Fix it by hand: the alert's Fix section has the commands.")
    command = incident_command(incident.incident_id)
    lines += ["", "Details (JSON)", json_block(details)]
    suffix = " healed" if outcome.healed else ": heal failed"
    subject = f"[grantwatch] {name}{suffix}"
    if len(subject) > 99:
        room = 99 - len("[grantwatch] ") - len(suffix) - 3
        subject = f"[grantwatch] {name[:room]}...{suffix}"
    return Notice(
        kind=NoticeKind.INFO,
        incident_id=incident.incident_id,
        subject=subject,
        message="\n".join(lines),
        attributes={
            "severity": severity,
            "alertType": alert_type,
            "functionArn": clean(incident.function_arn),
            "keyArn": clean(incident.key_arn),
            "account": incident.account,
            "region": incident.region,
        },
        details=details,
        email=email_text(email or lines[: lines.index("Details (JSON)") - 1], command),
        command=command,
    )


# The account-regions a stale notice names; it counts them all.
MAX_LISTED_TARGETS = 25


def stale_notice(found: Sequence[Target], coverage: Iterable[Coverage], interval: timedelta) -> Notice:
    """Account-regions whose last successful organization reconciliation is too old: the first
    MAX_LISTED_TARGETS of them, in account and region order, and how many there are (an organization of
    thousands of account-regions would pass SNS's 256 KB; `grantwatch accounts` lists every one)."""
    known = {c.target: c for c in coverage}
    late = sorted(found, key=lambda t: (t.account, t.region))
    lines = []
    for target in late[:MAX_LISTED_TARGETS]:
        entry = known[target]
        last = utc_iso(entry.last_reconciled_at) if entry.last_reconciled_at else "never"
        error = f"; last error: {clean(entry.errors[0], 300)}" if entry.errors else ""
        lines.append(f"{target.account} {target.region}: last reconciled {last}{error}")
    hours = interval.total_seconds() / 3600
    return _account_regions_notice(
        RECONCILIATION_STALE,
        late,
        lines,
        [t.as_json() for t in late[:MAX_LISTED_TARGETS]],
        head=f"Reconciliation has not succeeded for more than {STALE_AFTER_INTERVALS} schedule intervals "
        f"({STALE_AFTER_INTERVALS * hours:g} h) in:",
        consequence=(
            "  Until it succeeds, grants that end there without a CloudTrail event reaching grantwatch",
            "  (a missed event) are not found, and their functions are not alerted.",
        ),
        subject=f"grantwatch: {len(late)} account-region(s) not reconciled lately",
        heading="Every account-region and its last error:",
    )


def member_canary_notice(found: Sequence[Unheard], interval: timedelta) -> Notice:
    """Member account-regions whose canary has not been heard (CreateGrant) for two canary intervals: the
    first MAX_LISTED_TARGETS of them, in account and region order, and how many there are."""
    silent = sorted(found, key=lambda u: (u.target.account, u.target.region))
    shown = silent[:MAX_LISTED_TARGETS]
    lines = [
        f"{u.target.account} {u.target.region}: last heartbeat "
        f"{utc_iso(u.last_heard_at) if u.last_heard_at else 'never'}"
        for u in shown
    ]
    minutes = interval.total_seconds() / 60
    return _account_regions_notice(
        MEMBER_CANARY_SILENT,
        [u.target for u in silent],
        lines,
        [u.as_json() for u in shown],
        head=f"No canary heartbeat (CreateGrant) for more than {STALE_AFTER_INTERVALS} canary intervals "
        f"({STALE_AFTER_INTERVALS * minutes:g} min) from these member account-regions:",
        consequence=(
            "  Until it is heard again, grant changes there reach grantwatch only through reconciliation,",
            "  hours late. Check the forwarder stack there: its rules, and its canary's schedule and logs.",
        ),
        subject=f"grantwatch: {len(silent)} member account-region(s) not heard lately",
        heading="Every account-region and its heartbeats:",
    )


def _account_regions_notice(
    alert_type: str,
    targets: Sequence[Target],
    lines: list[str],
    shown: list[dict[str, Any]],
    *,
    head: str,
    consequence: Sequence[str],
    subject: str,
    heading: str,
) -> Notice:
    """A warning about account-regions (`targets`, sorted; `lines` and `shown` about the first
    MAX_LISTED_TARGETS): its id the same for as long as the same account-regions are listed, so a channel
    that deduplicates or threads by incident id (chat, EventBridge rules) sees one story, not a new one each
    run."""
    if len(targets) > MAX_LISTED_TARGETS:
        lines = [*lines, f"... and {len(targets) - MAX_LISTED_TARGETS} more: grantwatch accounts"]
    listed = "\n".join(f"{t.account} {t.region}" for t in targets)
    import hashlib  # here: only the fan-out hashes, and _hashlib costs every other handler's cold start 3 ms

    notice_id = f"{alert_type}-{hashlib.sha256(listed.encode()).hexdigest()[:16]}"
    email = [head, *lines[:MAX_EMAIL_NAMES]]
    if len(targets) > MAX_EMAIL_NAMES:
        email.append(f"... and {len(targets) - MAX_EMAIL_NAMES} more")
    email += ["", "What will happen", *consequence]
    return Notice(
        email=email_text(email, "grantwatch accounts", heading),
        command="grantwatch accounts",
        kind=NoticeKind.INFO,
        incident_id=notice_id,
        subject=subject,
        message=head + "\n" + "\n".join(lines),
        attributes={"severity": "warning", "alertType": alert_type},
        details={
            "incidentId": notice_id,
            "alertType": alert_type,
            "severity": "warning",
            "targets": shown,
            "targetCount": len(targets),
        },
    )


def trial_notice(at: datetime, *, account: str, region: str) -> Notice:
    """A notice marked as a test in every channel, about a function that does not exist: `notify-test`."""
    partition = partition_of(region)
    function_arn = f"arn:{partition}:lambda:{region}:{account}:function:grantwatch-notify-test"
    key_arn = f"arn:{partition}:kms:{region}:{account}:key/00000000-0000-4000-8000-000000000000"
    incident_id = f"test-{at.strftime('%Y%m%dT%H%M%SZ')}"
    when = utc_iso(at)
    details: dict[str, Any] = {
        "incidentId": incident_id,
        "alertType": TRIAL,
        "severity": "info",
        "test": True,
        "functionArn": function_arn,
        "functionName": "grantwatch-notify-test",
        "keyArn": key_arn,
        "account": account,
        "region": region,
        "detectedAt": when,
        "at": when,
        "evidence": {
            "what": "sent by grantwatch notify-test",
            "eventName": "NotifyTest",
            "eventId": incident_id,
        },
    }
    return Notice(
        kind=NoticeKind.INFO,
        incident_id=incident_id,
        subject="[grantwatch] TEST notice: the alert channels work",
        message="TEST: this notice was sent by `grantwatch notify-test` to check the alert channels.\n"
        "No function is affected; there is nothing to do.",
        email="TEST: this notice was sent by `grantwatch notify-test` to check the alert channels.\n"
        "No function is affected; there is nothing to do.",
        attributes={"severity": "info", "alertType": TRIAL, "account": account, "region": region},
        details=details,
    )
