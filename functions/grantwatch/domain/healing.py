"""Self-healing: whether grantwatch may re-create a function's lost grant, and the notices that report
how it went. Pure: no I/O.

A heal is an UpdateFunctionConfiguration that re-applies the function's own KMSKeyArn: Lambda then
creates a new grant for the function's current execution role, as it does on every configuration update
with a customer managed key. It changes nothing the owner set. It is allowed only when every rule below
holds; the first that fails is the reason it is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grantwatch.domain.alerts import Incident, Notice, NoticeKind, clean, incident_record, json_block
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.functions import function_name
from grantwatch.domain.hazards import KeyState, KeyStatus, RoleStatus, role_of
from grantwatch.domain.reconcile import ListedGrant
from grantwatch.domain.risk import Cause

DEFAULT_TAG = "grantwatch:self-heal"
DEFAULT_MAX_ATTEMPTS = 2
TAG_VALUE = "true"  # compared without regard to case; any other value (e.g. "false") opts out
# What a heal can repair: a grant that is gone or bound to a role that no longer exists, while the key is
# enabled and the function and its role exist. Not a disabled key, a key pending deletion, a deleted
# role, or a failure nothing explained.
HEALABLE = frozenset(
    {Cause.GRANT_RETIRED, Cause.GRANT_REVOKED, Cause.GRANT_VANISHED, Cause.ROLE_RECREATED, Cause.NO_GRANT}
)
HEAL_SUCCEEDED = "heal-succeeded"
HEAL_FAILED = "heal-failed"
LAMBDA_CONTEXT_KEY = "aws:lambda:FunctionArn"


class HealStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    HEALED = "healed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LiveFunction:
    """The function as Lambda describes it now (GetFunctionConfiguration and ListTags)."""

    function_arn: str
    role: str | None
    kms_key_arn: str | None
    tags: Mapping[str, str]
    revision_id: str | None = None
    last_update_status: str | None = None


@dataclass(frozen=True, slots=True)
class HealState:
    """What earlier attempts on the incident left."""

    attempts: int = 0
    status: HealStatus | None = None


@dataclass(frozen=True, slots=True)
class HealPolicy:
    tag: str = DEFAULT_TAG
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True, slots=True)
class HealInputs:
    incident: Incident
    incident_open: bool
    function: LiveFunction | None  # None: Lambda says it does not exist
    live_key_state: str | None  # DescribeKey's KeyState; None when the key could not be described
    recorded_key: KeyStatus | None
    role: RoleStatus | None
    state: HealState


@dataclass(frozen=True, slots=True)
class Decision:
    heal: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"decision": "heal" if self.heal else "skip", "reason": self.reason}


def opted_in(tags: Mapping[str, str], tag: str) -> bool:
    return tags.get(tag, "").strip().lower() == TAG_VALUE


def decide(inputs: HealInputs, policy: HealPolicy) -> Decision:
    """HEAL only if every safety rule holds; otherwise SKIP with the first rule that does not."""
    incident, function = inputs.incident, inputs.function
    if not inputs.incident_open:
        return _skip("the incident is no longer open")
    if incident.cause not in HEALABLE:
        return _skip(f"{incident.alert_type} is not a kind self-healing repairs")
    if inputs.state.status is HealStatus.HEALED:
        return _skip("already healed once for this incident")
    if inputs.state.attempts >= policy.max_attempts:
        return _skip(f"{inputs.state.attempts} of {policy.max_attempts} attempts used")
    if function is None:
        return _skip("the function no longer exists")
    if not opted_in(function.tags, policy.tag):
        return _skip(f"the function is not tagged {policy.tag}={TAG_VALUE}")
    if not function.kms_key_arn:
        return _skip("the function has no customer managed key")
    if function.kms_key_arn != incident.key_arn:
        return _skip("the function is on another key than the incident's")
    if function.last_update_status == "InProgress":
        return _skip("an update of the function is in progress")
    recorded = inputs.recorded_key
    if recorded is not None and recorded.state is not KeyState.ENABLED:
        return _skip(f"the key is {recorded.state.value} (recorded)")
    if inputs.live_key_state != "Enabled":
        return _skip(f"the key's state is {inputs.live_key_state or 'unknown'}, not Enabled")
    ref = role_of(function.role)
    if ref is None:
        return _skip("the function's execution role is unknown")
    role = inputs.role
    if role is not None and role.role_name == ref[1] and not role.exists:
        return _skip("the execution role was deleted")
    return Decision(True, "tagged, key enabled, function and role exist, attempts left")


def _skip(reason: str) -> Decision:
    return Decision(False, reason)


def expected_grantee(function: LiveFunction) -> str | None:
    """The principal Lambda's grant names: the role's session named after the function."""
    ref = role_of(function.role)
    if ref is None:
        return None
    account, name = ref
    partition = function.function_arn.split(":")[1]
    return f"arn:{partition}:sts::{account}:assumed-role/{name}/{function_name(function.function_arn)}"


def new_grant(
    function: LiveFunction, listed: Iterable[ListedGrant], before: frozenset[str]
) -> ListedGrant | None:
    """A grant not listed before the heal that lets the function's current role decrypt its environment."""
    grantee = expected_grantee(function)
    for grant in listed:
        context = grant.constraints.get("encryptionContextEquals")
        if (
            grant.grant_id not in before
            and grant.grantee == grantee
            and "Decrypt" in grant.operations
            and isinstance(context, dict)
            and context.get(LAMBDA_CONTEXT_KEY) == function.function_arn
        ):
            return grant
    return None


@dataclass(frozen=True, slots=True)
class HealOutcome:
    healed: bool
    at: datetime
    attempt: int
    max_attempts: int
    grant_id: str | None = None
    error: str | None = None


def heal_notice(incident: Incident, outcome: HealOutcome) -> Notice:
    """ "healed" (info) or "heal failed" (critical: the function still cannot decrypt) for the incident."""
    name = clean(function_name(incident.function_arn), 140)
    alert_type = HEAL_SUCCEEDED if outcome.healed else HEAL_FAILED
    severity = "info" if outcome.healed else "critical"
    details = incident_record(incident) | {
        "alertType": alert_type,
        "healedAlertType": incident.alert_type,
        "severity": severity,
        "functionName": function_name(incident.function_arn),
        "attempt": outcome.attempt,
        "maxAttempts": outcome.max_attempts,
        "at": utc_iso(outcome.at),
        "newGrantId": outcome.grant_id,
        "error": outcome.error,
    }
    if outcome.healed:
        lines = [
            f"Healed: grantwatch updated the configuration of Lambda function {name}, re-applying its own",
            f"KMS key {clean(incident.key_arn)}, and Lambda created grant {clean(outcome.grant_id)}.",
            f"  Incident {clean(incident.incident_id)} ({incident.alert_type}) closes with a resolved notice",
            "  once the grant's CloudTrail event is recorded.",
        ]
    else:
        left = outcome.max_attempts - outcome.attempt
        lines = [
            f"Heal failed: grantwatch could not re-create the grant of Lambda function {name}",
            f"(attempt {outcome.attempt} of {outcome.max_attempts}): {clean(outcome.error)}.",
            f"  Incident {clean(incident.incident_id)} ({incident.alert_type}) stays open: the function",
            "  still cannot decrypt its environment. "
            + ("Another attempt may follow." if left > 0 else "No further attempt will be made."),
            "  Fix it by hand: the alert's Fix section has the command.",
        ]
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
    )


DETAILS_MARKER = "Details (JSON)\n"


class _Attribute(BaseModel):
    value: str = Field(alias="Value", max_length=2048)


class _SnsMessage(BaseModel):
    message: str = Field(alias="Message", max_length=262144)
    attributes: dict[str, _Attribute] = Field(default_factory=dict, alias="MessageAttributes")


class _SnsRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sns: _SnsMessage = Field(alias="Sns")


class _AlertDetails(BaseModel):
    incident_id: str = Field(alias="incidentId", min_length=1, max_length=256)
    function_arn: str = Field(
        alias="functionArn", pattern=r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[^:]+$"
    )
    alert_type: str = Field(alias="alertType", max_length=64)


@dataclass(frozen=True, slots=True)
class HealRequest:
    """An alert as the remediation function receives it: which incident of which function."""

    function_arn: str
    incident_id: str
    alert_type: str


class BadDelivery(ValueError):
    """An SNS record that is not a grantwatch alert: the invocation fails, and the record goes to the
    remediation dead-letter queue with this message."""


def heal_request(record: Mapping[str, Any]) -> HealRequest:
    """The incident an SNS-delivered alert names. Only ids are taken from it: the decision re-reads
    the incident from the table and the function, key and role from AWS."""
    try:
        message = _SnsRecord.model_validate(record).sns
        _, marker, tail = message.message.partition(DETAILS_MARKER)
        if not marker:
            raise BadDelivery("the message has no 'Details (JSON)' section")
        details = _AlertDetails.model_validate_json(tail)
    except ValidationError as error:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "record" for e in error.errors())
        raise BadDelivery(f"not a grantwatch alert: invalid {fields}") from None
    attributed = message.attributes.get("functionArn")
    if attributed is not None and attributed.value != details.function_arn:
        raise BadDelivery("the functionArn attribute and the details name different functions")
    return HealRequest(details.function_arn, details.incident_id, details.alert_type)
