"""Self-healing: whether grantwatch may reset a function's lost grant, how (the documented reset), and the
notices that report how it went. Pure: no I/O.

A heal performs the reset that the alert's fix names (domain/fixes.py): for a function on a customer
managed key, the key switch (to the AWS managed key, then back to its own key); for a re-created role, or a
function on the AWS managed key, the role switch (to the stack's temporary role, then back), only when a
temporary role is configured. Each is two UpdateFunctionConfiguration calls that change nothing else: the
function ends as its owner set it. It is allowed only when every rule below holds; the first that fails is
the reason it is skipped.
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
from grantwatch.domain.fixes import (
    KMS_KEY_SETTING,
    ROLE_SETTING,
    Fix,
    FixTarget,
    Step,
    is_aws_managed_key,
    key_switch,
    role_switch,
)
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
    last_update_reason: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionDenied:
    """Lambda answered AccessDeniedException: the policy allows only functions tagged for self-healing, so
    the function is not opted in (untagged, tagged otherwise, deleted, or in another account)."""

    operation: str


@dataclass(frozen=True, slots=True)
class LiveKey:
    """The key as DescribeKey describes it now."""

    arn: str
    state: str | None
    aws_managed: bool  # KeyManager AWS: Lambda's aws/lambda key, whose grants only Lambda creates


@dataclass(frozen=True, slots=True)
class HealState:
    """What earlier attempts on the incident left."""

    attempts: int = 0
    status: HealStatus | None = None
    left_on: str | None = None  # a failed restore left the function on this key or role


@dataclass(frozen=True, slots=True)
class HealPolicy:
    tag: str = DEFAULT_TAG
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    temporary_role: str | None = None  # SelfHealingTemporaryRoleArn: what the role switch moves to


@dataclass(frozen=True, slots=True)
class HealInputs:
    incident: Incident
    incident_open: bool
    function: LiveFunction | FunctionDenied | None  # None: Lambda says it does not exist
    live_key: LiveKey | None  # None when the key could not be described
    recorded_key: KeyStatus | None
    role: RoleStatus | None
    state: HealState


@dataclass(frozen=True, slots=True)
class Decision:
    heal: bool
    reason: str
    fix: Fix | None = None  # the reset a heal performs

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": "heal" if self.heal else "skip",
            "reason": self.reason,
            "procedure": self.fix.procedure.value if self.fix else None,
        }


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
    if isinstance(function, FunctionDenied):
        return _skip(
            f"Lambda denied {function.operation}: the function is not tagged {policy.tag}={TAG_VALUE} "
            "(or it was deleted, or it is in another account)"
        )
    if function is None:
        return _skip("the function no longer exists")
    if not opted_in(function.tags, policy.tag):
        return _skip(f"the function is not tagged {policy.tag}={TAG_VALUE}")
    key = inputs.live_key
    on_aws_managed_key = is_aws_managed_key(function.kms_key_arn)
    if on_aws_managed_key and not (key is not None and key.aws_managed):
        return _skip(_moved("the AWS managed key", inputs.state))
    if not on_aws_managed_key and function.kms_key_arn != incident.key_arn:
        return _skip(_moved("another key than the incident's", inputs.state))
    if function.last_update_status == "InProgress":
        return _skip("an update of the function is in progress")
    recorded = inputs.recorded_key
    if recorded is not None and recorded.state is not KeyState.ENABLED:
        return _skip(f"the key is {recorded.state.value} (recorded)")
    state = key.state if key is not None else None
    if state != "Enabled":
        return _skip(f"the key's state is {state or 'unknown'}, not Enabled")
    ref = role_of(function.role)
    if ref is None:
        return _skip("the function's execution role is unknown")
    role = inputs.role
    if role is not None and role.role_name == ref[1] and not role.exists:
        return _skip("the execution role was deleted")
    return _reset(incident, function, policy)


def _reset(incident: Incident, function: LiveFunction, policy: HealPolicy) -> Decision:
    """The documented reset for the incident: the key switch for a lost grant on a customer managed key;
    the role switch for a re-created role or the AWS managed key, which needs a temporary role."""
    own_key = None if is_aws_managed_key(function.kms_key_arn) else function.kms_key_arn
    target = FixTarget(function.function_arn, own_key, function.role, policy.temporary_role)
    recreated = incident.cause is Cause.ROLE_RECREATED
    if not recreated and own_key:
        return Decision(
            True, "tagged, key enabled, function and role exist: the key switch", key_switch(target)
        )
    why = "its role was re-created" if recreated else "it is on the AWS managed key"
    if not policy.temporary_role:
        return _skip(
            f"{why}: only the role switch resets its grant, and no temporary role is configured "
            "(SelfHealingTemporaryRoleArn)"
        )
    if role_of(policy.temporary_role) == role_of(function.role):
        return _skip("the temporary role is the function's own role")
    return Decision(True, f"tagged, key enabled, role exists; {why}: the role switch", role_switch(target))


def _moved(where: str, state: HealState) -> str:
    if state.left_on is not None:
        return (
            f"an earlier heal left the function on {state.left_on}: restore it by hand (the heal-failed "
            "notice has the commands)"
        )
    return f"the function is on {where}"


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
    fix: Fix | None = None  # the reset performed (or attempted)
    left_on: str | None = None  # the restore failed: the key or role the function was left on


def holds(function: LiveFunction, step: Step) -> bool:
    """Whether the function already has the value the update step sets ("" is the AWS managed key)."""
    current = function.kms_key_arn if step.setting == KMS_KEY_SETTING else function.role
    return (current or "") == (step.value or "")


def left_on_text(fix: Fix, away: str | None) -> str:
    """Where a failed restore left the function, for people: the other key or the temporary role."""
    if fix.setting == KMS_KEY_SETTING and not away:
        return "the AWS managed key (aws/lambda)"
    return f"{'the role' if fix.setting == ROLE_SETTING else 'the key'} {away}"


def heal_notice(incident: Incident, outcome: HealOutcome) -> Notice:
    """ "healed" (info) or "heal failed" (critical: the function still cannot decrypt) for the incident."""
    name = clean(function_name(incident.function_arn), 140)
    alert_type = HEAL_SUCCEEDED if outcome.healed else HEAL_FAILED
    severity = "info" if outcome.healed else "critical"
    fix = outcome.fix
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
            lines.append("  Fix it by hand: the alert's Fix section has the commands.")
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
