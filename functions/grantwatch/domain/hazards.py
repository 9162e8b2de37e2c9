"""Causes of a lost decrypt that are not grant events: an execution role deleted or re-created, a key
disabled or scheduled for deletion, a key policy changed; and the failed Decrypt that confirms a loss.
Normalised from IAM and KMS CloudTrail records. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from grantwatch.domain.facts import (
    KEY_ARN_PATTERN,
    KMS_EVENT_SOURCE,
    LAMBDA_FUNCTION_CONTEXT_KEY,
    Actor,
    Ignored,
    KeyRefStrength,
    RejectedRecord,
    actor_of,
    resolve_key_ref,
)
from grantwatch.domain.functions import is_function_arn
from grantwatch.domain.records import CloudTrailRecord

IAM_EVENT_SOURCE = "iam.amazonaws.com"
ROLE_EVENT_NAMES = frozenset({"CreateRole", "DeleteRole"})
KEY_EVENT_NAMES = frozenset(
    {"DisableKey", "EnableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy"}
)
DECRYPT_EVENT_NAME = "Decrypt"

# Keys become part of item keys (KEY#<arn>, FUNCTION#<arn>): well within DynamoDB's 2048-byte limit.
MAX_ARN_BYTES = 1800
# The errors of a Decrypt that lost access (not throttling or a service fault): AccessDenied (how CloudTrail
# writes it), and the key disabled, pending deletion, or gone.
_LOST_ACCESS = re.compile(
    r"^(AccessDenied(Exception)?|(KMS)?DisabledException|(KMS)?InvalidStateException|(KMS)?NotFoundException)$"
)
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[\w+=,.@-]{1,64})$")
_ASSUMED_ROLE = re.compile(
    r"^arn:aws[a-z-]*:sts::(?P<account>\d{12}):assumed-role/(?P<name>[\w+=,.@-]{1,64})/(?P<session>.+)$"
)
# ScheduleKeyDeletion's responseElements.deletionDate is written for people ("Dec 7, 2026, 12:00:00 AM"),
# in more than one style; the ISO form is accepted too.
_DELETION_DATE_FORMATS = ("%b %d, %Y, %I:%M:%S %p", "%b %d, %Y %I:%M:%S %p", "%Y-%m-%dT%H:%M:%S%z")


class KeyState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    PENDING_DELETION = "pending-deletion"


class KeyChange(StrEnum):
    DISABLED = "disabled"
    ENABLED = "enabled"
    DELETION_SCHEDULED = "deletion-scheduled"
    DELETION_CANCELLED = "deletion-cancelled"
    POLICY_CHANGED = "policy-changed"

    @property
    def state_after(self) -> KeyState | None:
        """The key state the change leaves. KMS leaves a key whose deletion is cancelled disabled."""
        return _STATE_AFTER.get(self)


_STATE_AFTER = {
    KeyChange.DISABLED: KeyState.DISABLED,
    KeyChange.ENABLED: KeyState.ENABLED,
    KeyChange.DELETION_SCHEDULED: KeyState.PENDING_DELETION,
    KeyChange.DELETION_CANCELLED: KeyState.DISABLED,
}
_KEY_CHANGES = {
    "DisableKey": KeyChange.DISABLED,
    "EnableKey": KeyChange.ENABLED,
    "ScheduleKeyDeletion": KeyChange.DELETION_SCHEDULED,
    "CancelKeyDeletion": KeyChange.DELETION_CANCELLED,
    "PutKeyPolicy": KeyChange.POLICY_CHANGED,
}


class RoleChange(StrEnum):
    CREATED = "created"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class KeyFact:
    """One change to a key, from one KMS record (or found by reconciliation)."""

    change: KeyChange
    key_arn: str
    event_id: str
    event_time: datetime
    event_name: str
    actor: Actor
    deletion_date: datetime | None = None
    source: str = "cloudtrail"


@dataclass(frozen=True, slots=True)
class RoleFact:
    """An IAM role created or deleted. A role is known by account and name: a new role of the same name
    is a new principal, with a new unique id, to which no older grant applies."""

    change: RoleChange
    account: str
    role_name: str
    event_id: str
    event_time: datetime
    actor: Actor
    role_id: str | None = None
    role_arn: str | None = None

    @property
    def role_key(self) -> str:
        return role_key(self.account, self.role_name)


@dataclass(frozen=True, slots=True)
class DecryptFailure:
    """A Decrypt that failed for a Lambda function: the loss a warning was meant to come before."""

    function_arn: str
    key_arn: str | None
    event_id: str
    event_time: datetime
    error_code: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """A key's state as its newest state change left it, with that change as evidence."""

    key_arn: str
    state: KeyState
    changed_by: KeyFact | None
    deletion_date: datetime | None = None
    grants_verified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RoleStatus:
    """The newest creation and the newest deletion seen of a role name."""

    account: str
    role_name: str
    created: RoleFact | None
    deleted: RoleFact | None

    @property
    def exists(self) -> bool:
        return self.deleted is None or (
            self.created is not None and self.created.event_time >= self.deleted.event_time
        )

    @property
    def recreated(self) -> bool:
        return self.deleted is not None and self.exists


def role_key(account: str, name: str) -> str:
    """IAM role names are unique in an account regardless of case."""
    return f"{account}/{name.lower()}"


def role_of(principal: str | None) -> tuple[str, str] | None:
    """(account, role name) of a role ARN (any path) or an assumed-role session ARN."""
    if not principal:
        return None
    match = _ROLE_ARN.match(principal) or _ASSUMED_ROLE.match(principal)
    return (match["account"], match["name"]) if match else None


def as_role_arn(principal: str | None) -> str | None:
    """The IAM role ARN of a role ARN (kept as is) or of an assumed-role session (path unknown: none)."""
    if principal and (match := _ASSUMED_ROLE.match(principal)):
        partition = principal.split(":", 2)[1]
        return f"arn:{partition}:iam::{match['account']}:role/{match['name']}"
    return principal


def is_dead_grantee(principal: str) -> bool:
    """A grantee KMS lists by a bare unique id (AROA…, optionally with a session) instead of an ARN:
    the role it was bound to no longer exists, so the grant applies to no one."""
    return re.fullmatch(r"AROA[A-Z0-9]{12,}(:.+)?", principal) is not None


def is_hazard_event(record: CloudTrailRecord) -> bool:
    if record.event_source == IAM_EVENT_SOURCE:
        return record.event_name in ROLE_EVENT_NAMES
    return record.event_source == KMS_EVENT_SOURCE and (
        record.event_name in KEY_EVENT_NAMES or record.event_name == DECRYPT_EVENT_NAME
    )


def normalise_hazard(record: CloudTrailRecord) -> KeyFact | RoleFact | DecryptFailure | Ignored:
    """The fact an IAM role, KMS key-state or failed-Decrypt record states; `Ignored` or `RejectedRecord`."""
    if record.event_name == DECRYPT_EVENT_NAME:
        return _decrypt_failure(record)
    if record.error_code:
        return Ignored(f"failed call: {record.error_code[:128]}")
    if record.event_source == IAM_EVENT_SOURCE:
        return _role_fact(record)
    return _key_fact(record)


def _role_fact(record: CloudTrailRecord) -> RoleFact:
    request = record.request_parameters or {}
    response = record.response_elements or {}
    role = response.get("role")
    created: dict[str, object] = role if isinstance(role, dict) else {}
    name = _text(created.get("roleName")) or _text(request.get("roleName"))
    if name is None or not _ROLE_NAME.match(name):
        raise RejectedRecord(f"{record.event_name} names no valid roleName", record.event_id)
    account = record.recipient_account_id or record.user_identity.account_id
    if not account:
        raise RejectedRecord(f"{record.event_name} has no account", record.event_id)
    change = RoleChange.CREATED if record.event_name == "CreateRole" else RoleChange.DELETED
    return RoleFact(
        change=change,
        account=account,
        role_name=name,
        event_id=record.event_id,
        event_time=record.event_time,
        actor=actor_of(record),
        role_id=_text(created.get("roleId")),
        role_arn=_text(created.get("arn")),
    )


def _key_fact(record: CloudTrailRecord) -> KeyFact:
    change = _KEY_CHANGES[record.event_name]
    response = record.response_elements or {}
    request = record.request_parameters or {}
    candidates = [
        next((r.arn for r in record.resources or () if r.arn and KEY_ARN_PATTERN.match(r.arn)), None),
        _text(response.get("keyId")),
        _text(request.get("keyId")),
    ]
    reference = next((c for c in candidates if c), None)
    if reference is None:
        raise RejectedRecord(f"{record.event_name} names no key", record.event_id)
    key_arn, strength = resolve_key_ref(reference, record)
    if len(key_arn.encode()) > MAX_ARN_BYTES:
        raise RejectedRecord(
            f"{record.event_name}: the key is longer than {MAX_ARN_BYTES} bytes", record.event_id
        )
    if strength is not KeyRefStrength.ARN:
        raise RejectedRecord(
            f"{record.event_name}: cannot tell which key {reference[:160]!r} is", record.event_id
        )
    deletion_date = None
    if change is KeyChange.DELETION_SCHEDULED:
        deletion_date = parse_deletion_date(response.get("deletionDate")) or _after_window(record, request)
    return KeyFact(
        change=change,
        key_arn=key_arn,
        event_id=record.event_id,
        event_time=record.event_time,
        event_name=record.event_name,
        actor=actor_of(record),
        deletion_date=deletion_date,
    )


def _decrypt_failure(record: CloudTrailRecord) -> DecryptFailure | Ignored:
    if not record.error_code:
        return Ignored("a Decrypt that succeeded")
    if not _LOST_ACCESS.match(record.error_code):
        return Ignored(f"a failed Decrypt that says nothing of access: {record.error_code[:128]}")
    context = (record.request_parameters or {}).get("encryptionContext")
    function_arn = context.get(LAMBDA_FUNCTION_CONTEXT_KEY) if isinstance(context, dict) else None
    if not isinstance(function_arn, str) or not is_function_arn(function_arn):
        return Ignored("a failed Decrypt whose encryption context names no Lambda function")
    if len(function_arn.encode()) > MAX_ARN_BYTES:
        raise RejectedRecord(
            f"Decrypt: the function ARN is longer than {MAX_ARN_BYTES} bytes", record.event_id
        )
    key_arn = next((r.arn for r in record.resources or () if r.arn and KEY_ARN_PATTERN.match(r.arn)), None)
    if key_arn is not None and len(key_arn.encode()) > MAX_ARN_BYTES:
        key_arn = None
    return DecryptFailure(
        function_arn=function_arn,
        key_arn=key_arn,
        event_id=record.event_id,
        event_time=record.event_time,
        error_code=record.error_code[:128],
        actor=actor_of(record),
    )


def parse_deletion_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.replace("\u202f", " ").replace("\u00a0", " ").strip()
    for form in _DELETION_DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, form)
        except ValueError:
            continue
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _after_window(record: CloudTrailRecord, request: dict[str, object]) -> datetime | None:
    """KMS deletes the key after the waiting period; CloudTrail's own date is missing or unreadable."""
    days = request.get("pendingWindowInDays")
    if isinstance(days, int) and 7 <= days <= 30:
        return record.event_time + timedelta(days=days)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= 2048 else None
