"""A notice as each alert channel takes it: the Amazon Q Developer in chat applications custom notification
(Slack, Microsoft Teams), the EventBridge event, the Security Hub finding (ASFF) and the PagerDuty Events
API v2 body. Built from a notice's structured fields only (never its text, which may change freely). Each
payload's JSON Schema is in schemas/. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from grantwatch.domain.text import clean

EVENT_SOURCE = "grantwatch"
# The version of the EventBridge detail: a new field keeps it, a renamed or removed field changes it.
DETAIL_SCHEMA_VERSION = "1.0"
ASFF_SCHEMA_VERSION = "2018-10-08"
GENERATOR_ID = "grantwatch"


class NoticeType(StrEnum):
    """Every notice there is, as the channels tell them apart (`notice_type`)."""

    ALERT = "alert"
    RESOLVED = "resolved"
    HEAL_SUCCEEDED = "heal-succeeded"
    HEAL_FAILED = "heal-failed"
    # A notice that is not about one function's incident (a key policy change, account-regions not
    # reconciled lately) has no finding and no page.
    KEY_POLICY_CHANGED = "key-policy-changed"
    RECONCILIATION_STALE = "reconciliation-stale"
    MEMBER_CANARY_SILENT = "member-canary-silent"
    TRIAL = "test"  # `grantwatch notify-test`: checks the wiring, archived at once, never paged


KEY_POLICY_CHANGED = NoticeType.KEY_POLICY_CHANGED.value
RECONCILIATION_STALE = NoticeType.RECONCILIATION_STALE.value
MEMBER_CANARY_SILENT = NoticeType.MEMBER_CANARY_SILENT.value
HEAL_SUCCEEDED = NoticeType.HEAL_SUCCEEDED.value
HEAL_FAILED = NoticeType.HEAL_FAILED.value
RESOLVED = NoticeType.RESOLVED.value
TRIAL = NoticeType.TRIAL.value
# Amazon Q Developer shows at most this many characters of a description.
MAX_DESCRIPTION = 8000

DETAIL_TYPES = {
    NoticeType.ALERT.value: "GrantWatch Alert",
    RESOLVED: "GrantWatch Incident Resolved",
    HEAL_SUCCEEDED: "GrantWatch Heal Succeeded",
    HEAL_FAILED: "GrantWatch Heal Failed",
    KEY_POLICY_CHANGED: "GrantWatch Key Policy Changed",
    RECONCILIATION_STALE: "GrantWatch Reconciliation Stale",
    MEMBER_CANARY_SILENT: "GrantWatch Member Canary Silent",
    TRIAL: "GrantWatch Test Notice",
}
_ASFF_SEVERITY = {"critical": "CRITICAL", "info": "INFORMATIONAL"}


class NoticeFields(Protocol):
    """What a channel reads of a notice."""

    @property
    def kind(self) -> str: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


def notice_type(notice: NoticeFields) -> str:
    """alert, resolved, heal-succeeded, heal-failed or key-policy-changed."""
    return "alert" if notice.kind == "alert" else str(notice.details.get("alertType") or notice.kind)


def detail_type(notice: NoticeFields) -> str:
    return DETAIL_TYPES.get(notice_type(notice), "GrantWatch Notice")


def is_incident(notice: NoticeFields) -> bool:
    """A notice about one incident: a function's, or a key's resources of one service (not a key policy
    change)."""
    about = notice.details.get("functionArn") or is_resource_notice(notice)
    return bool(about) and notice_type(notice) != KEY_POLICY_CHANGED


def is_resource_notice(notice: NoticeFields) -> bool:
    """A notice about the resources of one service on a key (grantwatch.domain.resource_notices)."""
    return bool(notice.details.get("resourceKind")) and bool(notice.details.get("keyArn"))


# The Security Hub resource type of each service's resources (ASFF's list), and their ARN's form; the rest
# are Other, named by their id as the encryption context gives it.
_ASFF_RESOURCE_TYPES = {
    "dynamodb": ("AwsDynamoDbTable", "dynamodb", "table/"),
    "ebs": ("AwsEc2Volume", "ec2", "volume/"),
    "elasticfilesystem": ("AwsEfsFileSystem", "elasticfilesystem", "file-system/"),
}
MAX_FINDING_RESOURCES = 10  # of ASFF's 32: the key and the first few resources; the notice counts all


def fix_commands(details: Mapping[str, Any]) -> list[str]:
    """The exact commands of the notice's preferred fix, in order (the text notice also has the others)."""
    fixes = details.get("fix") or []
    return [str(step["command"]) for step in fixes[0].get("steps") or ()] if fixes else []


def notice_source(details: Mapping[str, Any]) -> str:
    """What the notice is about, as one ARN: the function's, else the key's (a resource notice, a key
    policy change), else grantwatch itself."""
    return str(details.get("functionArn") or details.get("keyArn") or EVENT_SOURCE)


def notice_component(details: Mapping[str, Any]) -> str:
    """The part affected: the function's name, else the service and its kind of resource."""
    if details.get("functionName"):
        return str(details["functionName"])
    if details.get("service") and details.get("resourceKind"):
        return f"{details['service']} {details['resourceKind']}"
    return EVENT_SOURCE


def event_detail(notice: NoticeFields) -> dict[str, Any]:
    """The EventBridge detail: the notice's structured fields, versioned. `source` and `component` are
    on every notice, so a rule's input transformer can read them whatever the notice is about (a path
    that is missing from the event drops its variable)."""
    details = dict(notice.details)
    return {
        "schemaVersion": DETAIL_SCHEMA_VERSION,
        "kind": str(notice.kind),
        "type": notice_type(notice),
        "incidentId": notice.incident_id,
        "subject": notice.subject,
        "severity": details.get("severity", "info"),
        "source": notice_source(details),
        "component": notice_component(details),
        "details": details,
    }


def event_entry(notice: NoticeFields, bus_name: str) -> dict[str, Any]:
    """One PutEvents entry."""
    resources = [r for r in (notice.details.get("functionArn"), notice.details.get("keyArn")) if r]
    return {
        "Source": EVENT_SOURCE,
        "DetailType": detail_type(notice),
        "Detail": json.dumps(event_detail(notice), separators=(",", ":")),
        "EventBusName": bus_name,
        "Resources": resources,
    }


def _code(value: Any) -> str:
    """Untrusted text as a markdown code span: one line, no backticks, no markup."""
    return f"`{clean(None if value is None else str(value), 256)}`"


def _description(notice: NoticeFields) -> str:
    d = notice.details
    kind = notice_type(notice)
    evidence = d.get("evidence") or {}
    where = f"account {_code(d.get('account') or _account(d))}"
    if kind == TRIAL:
        lines = [
            "*TEST*: a test notice from `grantwatch notify-test`. No function is affected; nothing to do."
        ]
    elif kind == KEY_POLICY_CHANGED:
        lines = [
            f"*Key policy changed* on {_code(d.get('keyArn'))} at {_code(d.get('at'))}",
            f"by {_code(d.get('by'))}.",
            f"Review it for the {d.get('functionCount') or len(d.get('functions') or [])} Lambda "
            "function(s) on this key.",
        ]
    elif kind == RECONCILIATION_STALE:
        late = [f"{_code(t.get('account'))} {_code(t.get('region'))}" for t in d.get("targets") or []]
        count = d.get("targetCount") or len(late)
        more = f" and {count - len(late)} more" if count > len(late) else ""
        lines = [
            f"*Reconciliation stale*: {count} account-region(s) not reconciled lately:",
            ", ".join(late) + more + ".",
            "Check the member role there (`grantwatch accounts`).",
        ]
    elif kind == MEMBER_CANARY_SILENT:
        silent = [f"{_code(t.get('account'))} {_code(t.get('region'))}" for t in d.get("targets") or []]
        count = d.get("targetCount") or len(silent)
        more = f" and {count - len(silent)} more" if count > len(silent) else ""
        lines = [
            f"*Member canary silent*: no heartbeat lately from {count} member account-region(s):",
            ", ".join(silent) + more + ".",
            "Check the forwarder stack there (`grantwatch accounts`).",
        ]
    elif is_resource_notice(notice):
        count = d.get("resourceCount") or len(d.get("resources") or [])
        named = ", ".join(_code(r) for r in (d.get("resources") or [])[:5])
        more = f" and {count - min(5, len(d.get('resources') or []))} more" if count > 5 else ""
        head = "*Resolved*" if kind == RESOLVED else f"*{clean(d.get('alertType'))}*"
        lines = [
            f"{head}: {count} {clean(d.get('service'))} {clean(d.get('resourceKind'))}(s) on key "
            f"{_code(d.get('keyArn'))} ({where}): {named}{more}.",
            clean(d.get("resolvedReason"), 1024)
            if kind == RESOLVED
            else f"{clean(d.get('whatHappens'))}; deadline {_code(d.get('deadline'))}, "
            f"key deletion {_code(d.get('deletionDate'))}.",
        ]
    elif kind == RESOLVED:
        lines = [
            f"*Resolved*: function {_code(d.get('functionName'))} ({where})",
            f"{clean(d.get('resolvedReason'))}.",
            f"Incident {_code(notice.incident_id)} ({_code(d.get('resolvedAlertType'))}) is closed.",
        ]
    elif kind == HEAL_SUCCEEDED:
        lines = [
            f"*Healed*: grantwatch reset the grant of {_code(d.get('functionName'))} ({where}).",
            f"New grant {_code(d.get('newGrantId'))}:",
            "the resolved notice follows when its event is recorded.",
        ]
    elif kind == HEAL_FAILED:
        lines = [
            f"*Heal failed* for {_code(d.get('functionName'))} ({where}), attempt {d.get('attempt')} of "
            f"{d.get('maxAttempts')}: {_code(d.get('error'))}.",
            "The function still cannot decrypt its environment."
            + (f" It is left on {_code(d.get('leftOn'))}: restore it now." if d.get("leftOn") else ""),
        ]
    else:
        lines = [
            f"*{clean(d.get('alertType'))}*: Lambda function {_code(d.get('functionName'))} ({where}) "
            + (
                "can no longer decrypt its environment variables."
                if d.get("predicted")
                else "failed to decrypt."
            ),
            f"{clean(evidence.get('what'))} at {_code(evidence.get('at'))} by {_code(evidence.get('by'))} "
            f"(event {_code(evidence.get('eventId'))}).",
            f"Key {_code(d.get('keyArn'))}, role {_code(d.get('executionRole'))}.",
        ]
    text = "\n".join(lines)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _plain(markdown: str) -> str:
    """The description for a console that shows text as it is (Security Hub): no markdown marks."""
    return markdown.replace("`", "").replace("*", "")


def _account(details: Mapping[str, Any]) -> str:
    arn = str(details.get("functionArn") or details.get("keyArn") or "")
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else "unknown"


def chat_notification(notice: NoticeFields) -> dict[str, Any]:
    """The custom notification Amazon Q Developer in chat applications shows as a card; the resolved
    notice threads under its alert (same threadId)."""
    d = notice.details
    kind = notice_type(notice)
    related = [r for r in (d.get("functionArn"), d.get("keyArn"), d.get("executionRole")) if r]
    return {
        "version": "1.0",
        "source": "custom",
        "id": f"{notice.incident_id}:{kind}",
        "content": {
            "textType": "client-markdown",
            "title": clean(notice.subject, 250),
            "description": _description(notice),
            "nextSteps": fix_commands(d),
            "keywords": [k for k in (kind, str(d.get("severity", "info")), d.get("region")) if k],
        },
        "metadata": {
            "threadId": notice.incident_id,
            "summary": clean(notice.subject, 250),
            "eventType": kind,
            "relatedResources": [clean(str(r), 2048) for r in related],
            "additionalContext": {
                "incidentId": notice.incident_id,
                "severity": str(d.get("severity", "info")),
            },
        },
    }


def _updated_at(notice: NoticeFields) -> str:
    d = notice.details
    return str(d.get("resolvedAt") or (d.get("at") if notice.kind != "alert" else None) or d["detectedAt"])


def finding_id(incident_id: str, region: str, account: str, partition: str = "aws") -> str:
    """One finding per incident: every notice of the incident re-imports it (an update, never a copy)."""
    return f"arn:{partition}:securityhub:{region}:{account}:grantwatch/incident/{incident_id}"


def product_arn(region: str, account: str, partition: str = "aws") -> str:
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def arn_partition(arn: str, default: str = "aws") -> str:
    """The partition an ARN names (aws, aws-cn, aws-us-gov, ...), or `default` for what is not an ARN."""
    parts = arn.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "arn" and parts[1].startswith("aws") else default


def _resource(kind: str, arn: str, partition: str, region: str) -> dict[str, Any]:
    """A finding's resource in its own ARN's partition (the hub's when the ARN names none)."""
    return {"Type": kind, "Id": arn, "Partition": arn_partition(arn, partition), "Region": region}


def _service_resource(details: Mapping[str, Any], name: str, partition: str, region: str) -> dict[str, Any]:
    """A resource of a resource notice: its ARN where its form is known, else its id as Other."""
    known = _ASFF_RESOURCE_TYPES.get(str(details.get("service")))
    if known is None:
        return {"Type": "Other", "Id": clean(name, 512), "Partition": partition, "Region": region}
    kind, service, prefix = known
    account = str(details.get("account") or _account(details))
    where = str(details.get("region") or region)
    arn = f"arn:{arn_partition(str(details.get('keyArn') or ''), partition)}:{service}:{where}:{account}:"
    return _resource(kind, arn + prefix + clean(name, 255), partition, str(details.get("region") or region))


def finding(
    notice: NoticeFields, *, region: str, account: str, partition: str = "aws"
) -> dict[str, Any] | None:
    """The ASFF finding of the notice's incident, imported with the default product of `account` (the
    account importing it: Security Hub takes findings about the calling account only) in `partition`, the
    one the product ARN names (aws-us-gov in GovCloud, aws-cn in China). None for a notice that is about
    no incident. Workflow is never set: it belongs to the people triaging the finding."""
    if not is_incident(notice):
        return None
    d = notice.details
    kind = notice_type(notice)
    cause = str(d.get("resolvedAlertType") or d.get("healedAlertType") or d.get("alertType"))
    closed = kind in (RESOLVED, TRIAL)
    label = "INFORMATIONAL" if closed else _ASFF_SEVERITY.get(str(d.get("severity")), "HIGH")
    types = [f"Effects/Denial of Service/{cause}"]
    commands = fix_commands(d)
    if is_resource_notice(notice):
        named = (d.get("resources") or [])[: MAX_FINDING_RESOURCES - 1]
        resources = [_service_resource(d, str(r), partition, region) for r in named]
    else:
        resources = [_resource("AwsLambdaFunction", str(d["functionArn"]), partition, region)]
    if d.get("keyArn"):
        resources.append(_resource("AwsKmsKey", str(d["keyArn"]), partition, region))
    found: dict[str, Any] = {
        "SchemaVersion": ASFF_SCHEMA_VERSION,
        "Id": finding_id(notice.incident_id, region, account, partition),
        "ProductArn": product_arn(region, account, partition),
        "GeneratorId": f"{GENERATOR_ID}/{cause}",
        "AwsAccountId": account,
        "Types": types,
        "CreatedAt": str(d["detectedAt"]),
        "UpdatedAt": _updated_at(notice),
        "Severity": {"Label": label},
        "FindingProviderFields": {"Severity": {"Label": label}, "Types": types},
        "Title": clean(notice.subject, 256),
        "Description": _plain(_description(notice))[:1024],
        "Resources": resources,
        "RecordState": "ARCHIVED" if closed else "ACTIVE",
        "ProductFields": {"grantwatch/incidentId": notice.incident_id, "grantwatch/noticeType": kind},
    }
    if commands:
        found["Remediation"] = {"Recommendation": {"Text": clean(" ; ".join(commands), 512)}}
    return found


def pagerduty_event(notice: NoticeFields) -> dict[str, Any] | None:
    """The Events API v2 body (without routing_key, which the connection adds): trigger on an alert,
    resolve on its resolved notice, both deduplicated by the incident id. None for other notices."""
    kind = notice_type(notice)
    if kind not in ("alert", RESOLVED):
        return None
    if kind == RESOLVED:
        return {"event_action": "resolve", "dedup_key": notice.incident_id}
    d = notice.details
    return {
        "event_action": "trigger",
        "dedup_key": notice.incident_id,
        "payload": {
            "summary": clean(notice.subject, 1024),
            "source": notice_source(d),
            "severity": str(d.get("severity") or "critical"),
            "component": notice_component(d),
            "class": kind,
            "custom_details": event_detail(notice),
        },
    }
