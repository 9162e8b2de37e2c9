"""Causes of a lost decrypt that are not grant events: an execution role deleted or re-created, a key
disabled or scheduled for deletion, a key policy changed; and the failed Decrypt that confirms a loss.
Normalised from IAM and KMS CloudTrail records. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from grantwatch.domain.catalogue import (
    ACCESS_LOSS_ERROR_CODES,
    DECRYPT_FAILURES,
    IAM_EVENT_SOURCE,
)
from grantwatch.domain.facts import (
    KEY_ARN_PATTERN,
    LAMBDA_FUNCTION_CONTEXT_KEY,
    Actor,
    Ignored,
    KeyRefStrength,
    RejectedRecord,
    actor_of,
    bounded,
    fits,
    partition_of,
    resolve_key_ref,
)
from grantwatch.domain.functions import FunctionState, is_function_arn, role_name
from grantwatch.domain.records import CloudTrailRecord

DECRYPT_EVENT_NAME = DECRYPT_FAILURES.names[0]

# A key ARN as KMS writes one in an error message: a key id (a UUID, or mrk- and 32 hex digits for a
# multi-Region key) and nothing around it that could make it another string.
_KEY_ARN_IN_TEXT = re.compile(
    r"(?<![\w:/-])arn:aws(?:-[a-z]+)*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:key/"
    r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![\w-])",
    re.ASCII,
)
# Lambda names its execution role's session after the function; function names are at most 64 of these.
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ACCOUNT = re.compile(r"^\d{12}$")
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
class SessionDecryptFailure:
    """A Decrypt that lost access and names no function in an encryption context, by an assumed role's
    session: Lambda names a function's session after it, so the session may be the function `function_arn`
    (in the caller's account and the record's region) running as `role_name`. Only the function's recorded
    configuration can tell (`attribute_failure`)."""

    function_arn: str
    account: str
    role_name: str
    key_arn: str | None  # from `resources`, else from the error message, validated as a key ARN
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


def normalise_hazard(
    record: CloudTrailRecord,
) -> KeyFact | RoleFact | DecryptFailure | SessionDecryptFailure | Ignored:
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
    if not account or not _ACCOUNT.match(account):
        raise RejectedRecord(f"{record.event_name} has no 12-digit account id", record.event_id)
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
    bounded("key", key_arn, record)
    if strength is not KeyRefStrength.ARN:
        raise RejectedRecord(
            f"{record.event_name}: cannot tell which key it names (not a key ARN or key id)", record.event_id
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


def _decrypt_failure(record: CloudTrailRecord) -> DecryptFailure | SessionDecryptFailure | Ignored:
    """A Decrypt that lost access, named by its encryption context (the function's ARN), or else by its
    caller's session; `Ignored` for any other Decrypt, never rejected (it says nothing grantwatch acts on),
    unless it names a function too long to store."""
    if not record.error_code:
        return Ignored("a Decrypt that succeeded")
    if record.error_code not in ACCESS_LOSS_ERROR_CODES:
        return Ignored(f"a failed Decrypt that says nothing of access: {record.error_code[:128]}")
    request = record.request_parameters or {}
    if "encryptionContext" in request:
        return _failure_in_context(record, request.get("encryptionContext"))
    return _failure_by_session(record)


def _failure_in_context(record: CloudTrailRecord, context: object) -> DecryptFailure | Ignored:
    function_arn = context.get(LAMBDA_FUNCTION_CONTEXT_KEY) if isinstance(context, dict) else None
    if not isinstance(function_arn, str) or not is_function_arn(function_arn):
        return Ignored("a failed Decrypt whose encryption context names no Lambda function")
    bounded("function ARN", function_arn, record)
    return DecryptFailure(
        function_arn=function_arn,
        key_arn=_resource_key(record),
        event_id=record.event_id,
        event_time=record.event_time,
        error_code=record.error_code or "",
        actor=actor_of(record),
    )


def _failure_by_session(record: CloudTrailRecord) -> SessionDecryptFailure | Ignored:
    caller = _ASSUMED_ROLE.match(record.user_identity.arn or "")
    if record.user_identity.type != "AssumedRole" or caller is None:
        return Ignored("a failed Decrypt by a caller that is not an assumed role's session")
    session, region = caller["session"], record.aws_region
    if not _FUNCTION_NAME.match(session) or not _REGION.match(region):
        return Ignored("a failed Decrypt by a session that cannot be a Lambda function's")
    account = caller["account"]
    return SessionDecryptFailure(
        function_arn=f"arn:{partition_of(region)}:lambda:{region}:{account}:function:{session}",
        account=account,
        role_name=caller["name"],
        key_arn=_resource_key(record) or key_in_message(record.error_message),
        event_id=record.event_id,
        event_time=record.event_time,
        error_code=record.error_code or "",
        actor=actor_of(record),
    )


def attribute_failure(
    failure: SessionDecryptFailure, function: FunctionState | None
) -> DecryptFailure | Ignored:
    """The failed Decrypt of the function the session names, if that function is known and runs as the
    session's role; its key is the record's, else the function's recorded key. Pure: the function's
    configuration, as recorded, is read by the caller."""
    if function is None or function.deleted:
        return Ignored("a failed Decrypt by a session that is not a known Lambda function")
    if not _runs_as(function, failure.account, failure.role_name):
        return Ignored("a failed Decrypt by a session named like a function that runs as another role")
    key_arn = failure.key_arn or function.kms_key_arn or function.depends_on_key
    return DecryptFailure(
        function_arn=function.function_arn,
        key_arn=key_arn if key_arn and fits("key", key_arn) else None,
        event_id=failure.event_id,
        event_time=failure.event_time,
        error_code=failure.error_code,
        actor=failure.actor,
    )


def _runs_as(function: FunctionState, account: str, role: str) -> bool:
    """The function's execution role, from its configuration or from the link its evaluation made."""
    configured = role_name(function.role) if function.role else None
    if configured is not None:
        return configured.lower() == role.lower()
    return function.depends_on_role == role_key(account, role)


def key_in_message(message: str | None) -> str | None:
    """The key ARN an access-denied message names ("... on resource: arn:aws:kms:..."), checked for the
    form of one; the message is CloudTrail's, its length already bounded at the edge."""
    match = _KEY_ARN_IN_TEXT.search(message) if message else None
    return match.group(0) if match else None


def _resource_key(record: CloudTrailRecord) -> str | None:
    keys = (r.arn for r in record.resources or () if r.arn and KEY_ARN_PATTERN.match(r.arn))
    return next((key for key in keys if fits("key", key)), None)


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
