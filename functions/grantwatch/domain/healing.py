"""Self-healing: whether grantwatch may reset a function's lost grant, how (the documented reset), and which
incident an alert names. Pure: no I/O.

A heal performs the reset that the alert's fix names (domain/fixes.py): for a function on a customer
managed key, the key switch (to the AWS managed key, then back to its own key); for a re-created role, or a
function on the AWS managed key, the role switch (to the stack's temporary role, then back), only when a
temporary role is configured. Each is two UpdateFunctionConfiguration calls that change nothing else: the
function ends as its owner set it. It is allowed only when every rule below holds; the first that fails is
the reason it is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from grantwatch.domain.alerts import Incident
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
    for rule in (_incident_rule, _function_rule, _key_and_role_rule):
        reason = rule(inputs, policy)
        if reason is not None:
            return _skip(reason)
    assert isinstance(inputs.function, LiveFunction)  # the function rule let only a live one through
    return _reset(inputs.incident, inputs.function, policy)


def _incident_rule(inputs: HealInputs, policy: HealPolicy) -> str | None:
    """Why the incident itself rules a heal out: closed, not healable, healed, or out of attempts."""
    incident = inputs.incident
    if not inputs.incident_open:
        return "the incident is no longer open"
    if incident.cause not in HEALABLE:
        return f"{incident.alert_type} is not a kind self-healing repairs"
    if inputs.state.status is HealStatus.HEALED:
        return "already healed once for this incident"
    if inputs.state.attempts >= policy.max_attempts:
        return f"{inputs.state.attempts} of {policy.max_attempts} attempts used"
    return None


def _function_rule(inputs: HealInputs, policy: HealPolicy) -> str | None:
    """Why the function rules a heal out: not shown, gone, not opted in, moved, or being updated."""
    function = inputs.function
    if isinstance(function, FunctionDenied):
        return (
            f"Lambda denied {function.operation}: the function is not tagged {policy.tag}={TAG_VALUE} "
            "(or it was deleted, or it is in another account)"
        )
    if function is None:
        return "the function no longer exists"
    if not opted_in(function.tags, policy.tag):
        return f"the function is not tagged {policy.tag}={TAG_VALUE}"
    key = inputs.live_key
    on_aws_managed_key = is_aws_managed_key(function.kms_key_arn)
    if on_aws_managed_key and not (key is not None and key.aws_managed):
        return _moved("the AWS managed key", inputs.state)
    if not on_aws_managed_key and function.kms_key_arn != inputs.incident.key_arn:
        return _moved("another key than the incident's", inputs.state)
    if function.last_update_status == "InProgress":
        return "an update of the function is in progress"
    return None


def _key_and_role_rule(inputs: HealInputs, policy: HealPolicy) -> str | None:
    """Why the key or the role rules a heal out: not enabled, or the role unknown or deleted."""
    recorded = inputs.recorded_key
    if recorded is not None and recorded.state is not KeyState.ENABLED:
        return f"the key is {recorded.state.value} (recorded)"
    state = inputs.live_key.state if inputs.live_key is not None else None
    if state != "Enabled":
        return f"the key's state is {state or 'unknown'}, not Enabled"
    function = inputs.function
    ref = role_of(function.role) if isinstance(function, LiveFunction) else None
    if ref is None:
        return "the function's execution role is unknown"
    role = inputs.role
    if role is not None and role.role_name == ref[1] and not role.exists:
        return "the execution role was deleted"
    return None


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


# What remediation reads of an SNS record: the message attributes the alert topic's notifier sets.
_FUNCTION_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[^:]+$")
_ATTRIBUTE_LIMITS = {"incidentId": 256, "functionArn": 2048, "alertType": 64}


@dataclass(frozen=True, slots=True)
class HealRequest:
    """An alert as the remediation function receives it: which incident of which function."""

    function_arn: str
    incident_id: str
    alert_type: str


class BadDelivery(ValueError):
    """An SNS record that is not a grantwatch alert: the invocation fails, and the record goes to the
    remediation dead-letter queue with this message (it names the field, never its value)."""


def heal_request(record: Mapping[str, Any]) -> HealRequest:
    """The incident an SNS-delivered alert names, from its message attributes (`incidentId`,
    `functionArn`, `alertType`); the message text is for people and is not read. Only ids are taken: the
    decision re-reads the incident from the table and the function, key and role from AWS."""
    sns = record.get("Sns") if isinstance(record, Mapping) else None
    if not isinstance(sns, Mapping):
        raise BadDelivery("not a grantwatch alert: the record has no Sns object")
    attributes = sns.get("MessageAttributes")
    if not isinstance(attributes, Mapping):
        raise BadDelivery("not a grantwatch alert: Sns.MessageAttributes is missing")
    found = {name: _attribute(attributes, name, limit) for name, limit in _ATTRIBUTE_LIMITS.items()}
    if not _FUNCTION_ARN.match(found["functionArn"]):
        raise BadDelivery("not a grantwatch alert: invalid Sns.MessageAttributes.functionArn")
    return HealRequest(found["functionArn"], found["incidentId"], found["alertType"])


def _attribute(attributes: Mapping[str, Any], name: str, limit: int) -> str:
    """One string message attribute, as SNS delivers it to Lambda ({"Type": ..., "Value": ...})."""
    attribute = attributes.get(name)
    value = attribute.get("Value") if isinstance(attribute, Mapping) else None
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        state = "missing" if attribute is None else "invalid"
        raise BadDelivery(f"not a grantwatch alert: {state} Sns.MessageAttributes.{name}")
    return value
