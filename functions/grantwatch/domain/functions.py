"""What grantwatch knows of a Lambda function: its key, role and whether it exists, from Lambda's own
CloudTrail events (CreateFunction*, UpdateFunctionConfiguration*, DeleteFunction*). Pure: no I/O.

Environment-variable values are never read: only whether the function has an environment at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.catalogue import FUNCTION_CALLS, LAMBDA_EVENT_SOURCE
from grantwatch.domain.facts import Ignored, RejectedRecord, actor_of, bounded, partition_of
from grantwatch.domain.records import CloudTrailRecord

_FUNCTION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<name>[^:]+)"
)


class FunctionChange(StrEnum):
    CONFIGURED = "configured"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class FunctionFact:
    """One change to a function, normalised from one Lambda CloudTrail record."""

    change: FunctionChange
    function_arn: str
    event_id: str
    event_time: datetime
    event_name: str
    actor: str
    role: str | None = None
    kms_key_arn: str | None = None
    has_environment: bool = False


@dataclass(frozen=True, slots=True)
class FunctionState:
    """The latest configuration seen, and the latest deletion seen; whichever is newer says if it exists."""

    function_arn: str
    role: str | None
    kms_key_arn: str | None
    has_environment: bool
    configured_at: datetime | None
    deleted_at: datetime | None
    depends_on_key: str | None = None  # the key and role (account/name) its last evaluation linked it to
    depends_on_role: str | None = None
    failed_at: datetime | None = None  # the newest failed Decrypt seen
    failure_event_id: str | None = None
    failure_error: str | None = None
    failure_key_arn: str | None = None  # the key the newest failure named (resources or error message)
    failure_incident_id: str | None = None  # the incident that accounts for it, if one does

    @property
    def deleted(self) -> bool:
        if self.deleted_at is None:
            return False
        return self.configured_at is None or self.deleted_at > self.configured_at

    @property
    def name(self) -> str:
        return function_name(self.function_arn)


def is_function_event_name(event_name: str) -> bool:
    """The API name and its version suffix (UpdateFunctionConfiguration20150331v2), and nothing else:
    DeleteFunctionConcurrency or CreateFunctionUrlConfig tell nothing of key, role or existence."""
    return FUNCTION_CALLS.takes_name(event_name)


def is_lambda_function_event(record: CloudTrailRecord) -> bool:
    return record.event_source == LAMBDA_EVENT_SOURCE and is_function_event_name(record.event_name)


def normalise_function_event(record: CloudTrailRecord) -> FunctionFact | Ignored:
    """The change a Lambda record states (its API-version suffix ignored), `Ignored`, or `RejectedRecord`."""
    if record.error_code:
        return Ignored(f"failed call: {record.error_code[:128]}")
    request = record.request_parameters or {}
    response = record.response_elements or {}
    reference = _text(response.get("functionArn")) or _text(request.get("functionName"))
    if reference is None:
        raise RejectedRecord(f"{record.event_name} names no function", record.event_id)
    function_arn = unqualified_function_arn(reference, record)
    bounded("function ARN", function_arn, record)
    actor = actor_of(record).principal
    if record.event_name.startswith("DeleteFunction"):
        if _text(request.get("qualifier")) or _is_qualified(reference):
            return Ignored("deletes one version, not the function")
        return FunctionFact(
            FunctionChange.DELETED, function_arn, record.event_id, record.event_time, record.event_name, actor
        )
    environment = response.get("environment", request.get("environment"))
    kms_key_arn = _kms_key(response) or _kms_key(request)
    bounded("key", kms_key_arn, record)
    return FunctionFact(
        FunctionChange.CONFIGURED,
        function_arn,
        record.event_id,
        record.event_time,
        record.event_name,
        actor,
        role=_text(response.get("role")) or _text(request.get("role")),
        kms_key_arn=kms_key_arn,
        has_environment=bool(environment),
    )


def _is_qualified(reference: str) -> bool:
    """NAME:QUALIFIER, ACCOUNT:function:NAME:QUALIFIER, or an ARN ending in :QUALIFIER."""
    parts = reference.split(":")
    if reference.startswith("arn:"):
        return len(parts) > 7
    return len(parts) == 2 or len(parts) == 4


def _kms_key(fields: dict[str, object]) -> str | None:
    return _text(fields.get("kMSKeyArn")) or _text(fields.get("KMSKeyArn")) or _text(fields.get("kmsKeyArn"))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= 2048 else None


def unqualified_function_arn(reference: str, record: CloudTrailRecord) -> str:
    """A function name, partial or full ARN (qualified or not) as the unqualified function ARN."""
    if match := _FUNCTION_ARN.match(reference):
        return match.group(0)
    parts = reference.split(":")
    account = record.recipient_account_id or record.user_identity.account_id
    if len(parts) >= 3 and parts[1] == "function":  # ACCOUNT:function:NAME[:QUALIFIER]
        account, name = parts[0], parts[2]
    else:
        name = parts[0]
    if not account or not re.fullmatch(r"[A-Za-z0-9_-]{1,140}", name):
        raise RejectedRecord(
            f"{record.event_name}: cannot make a function ARN of the function it names", record.event_id
        )
    region = record.aws_region
    return f"arn:{partition_of(region)}:lambda:{region}:{account}:function:{name}"


def is_function_arn(value: str) -> bool:
    """An unqualified Lambda function ARN (no version or alias), as an encryption context names it."""
    match = _FUNCTION_ARN.match(value)
    return match is not None and match.end() == len(value)


def function_arn_prefix(account: str, region: str) -> str:
    """What every function ARN of an account and region starts with."""
    return f"arn:{partition_of(region)}:lambda:{region}:{account}:function:"


def function_place(function_arn: str) -> tuple[str, str] | None:
    """(account, region) of a function ARN."""
    match = _FUNCTION_ARN.match(function_arn)
    return (match["account"], match["region"]) if match else None


def function_name(function_arn: str) -> str:
    match = _FUNCTION_ARN.match(function_arn)
    return match["name"] if match else function_arn


def role_name(principal: str | None) -> str | None:
    """The role name of an IAM role ARN (any path) or of an assumed-role session ARN."""
    if not principal:
        return None
    if match := re.match(r"^arn:aws[a-z-]*:sts::\d{12}:assumed-role/(?P<role>[^/]+)/", principal):
        return match["role"]
    if match := re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:.*/)?(?P<role>[^/]+)$", principal):
        return match["role"]
    return None
