"""The canary's own events: how the recorder tells them from every other call, and the heartbeat each one is.

A canary (grantwatch.canary) creates a grant on a key its stack owns, retires it, and makes one Decrypt that
fails because the grant is gone. Each of the three calls coming back through CloudTrail, EventBridge and the
recorder proves that path is heard. They are never a function's loss: they touch no function's key.

Recognised by the key (the central stack's canary key, given to the recorder) or, for a member account's
canary, by its role: member/forwarder.yaml names it ``grantwatch-canary-<region>``, so the record's caller
says it with no read of the table. A failed Decrypt whose record names no key is recognised by the
encryption context every canary call carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.catalogue import KMS_EVENT_SOURCE
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.records import CloudTrailRecord

# The encryption context of the canary's grant constraint, Encrypt and Decrypt (grantwatch.canary keeps the
# same pair: a test holds them equal).
CANARY_CONTEXT_KEY = "grantwatch:canary"
CANARY_CONTEXT_VALUE = "heartbeat"
# member/forwarder.yaml's CanaryRole: RoleName grantwatch-canary-${AWS::Region}.
MEMBER_ROLE_PREFIX = "grantwatch-canary-"
_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(?P<account>\d{12}):assumed-role/(?P<role>[\w+=,.@-]+)/")


class CanaryPath(StrEnum):
    """Each call of the canary, and the rule it comes back through."""

    CREATE_GRANT = "CreateGrant"
    RETIRE_GRANT = "RetireGrant"
    DECRYPT = "Decrypt"


_PATHS = {path.value: path for path in CanaryPath}


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The latest canary event of one path heard from one account-region."""

    account: str
    region: str
    path: str
    at: datetime

    def as_json(self) -> dict[str, str]:
        return {"account": self.account, "region": self.region, "path": self.path, "at": utc_iso(self.at)}


def canary_path(record: CloudTrailRecord, canary_key_arn: str | None = None) -> CanaryPath | None:
    """The path of a canary's call, or None for any other record. Only the three calls a canary makes, as
    the rules deliver them: a CreateGrant or RetireGrant that succeeded, a Decrypt that failed."""
    path = _PATHS.get(record.event_name) if record.event_source == KMS_EVENT_SOURCE else None
    if path is None:
        return None
    failed = record.error_code is not None
    if failed != (path is CanaryPath.DECRYPT):
        return None
    keys = keys_named(record)
    if canary_key_arn and canary_key_arn in keys:
        return path
    if _member_canary_role(record):
        return path
    if path is CanaryPath.DECRYPT and not keys and _carries_marker(record):
        return path
    return None


def heartbeat_of(record: CloudTrailRecord, path: CanaryPath) -> Heartbeat:
    """The heartbeat a canary's record is: in the account and region the call was made in."""
    account = record.recipient_account_id or record.user_identity.account_id or _caller_account(record) or ""
    return Heartbeat(account, record.aws_region, path.value, record.event_time)


def keys_named(record: CloudTrailRecord) -> set[str]:
    """Every key ARN the record names: its resources, the key it asked for, the key KMS answered with."""
    found = {r.arn for r in record.resources or () if r.arn}
    for part in (record.request_parameters, record.response_elements):
        key = (part or {}).get("keyId")
        if isinstance(key, str) and key.startswith("arn:"):
            found.add(key)
    return found


def _member_canary_role(record: CloudTrailRecord) -> bool:
    match = _ASSUMED_ROLE.match(record.user_identity.arn or "")
    return match is not None and match["role"] == f"{MEMBER_ROLE_PREFIX}{record.aws_region}"


def _caller_account(record: CloudTrailRecord) -> str | None:
    match = _ASSUMED_ROLE.match(record.user_identity.arn or "")
    return match["account"] if match else None


def _carries_marker(record: CloudTrailRecord) -> bool:
    context = (record.request_parameters or {}).get("encryptionContext")
    return isinstance(context, dict) and context.get(CANARY_CONTEXT_KEY) == CANARY_CONTEXT_VALUE
