"""Turn one CloudTrail record into one grant fact, or say why it is not one. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from grantwatch.domain.catalogue import GRANT_CALLS, KMS_EVENT_SOURCE
from grantwatch.domain.records import (
    CloudTrailRecord,
    CreateGrantParameters,
    FieldError,
    GrantConstraints,
    RetireGrantParameters,
    RevokeGrantParameters,
)

GRANT_EVENT_NAMES = frozenset(GRANT_CALLS.names)
LAMBDA_FUNCTION_CONTEXT_KEY = "aws:lambda:FunctionArn"

_KEY_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/.+$"
)
KEY_ARN_PATTERN = _KEY_ARN
_ALIAS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:alias/.+$")
_SERVICE_CONTEXT_KEY = re.compile(r"^aws:(?P<service>[a-z0-9-]+):")
_SERVICE_PRINCIPAL = re.compile(r"^(?P<service>[a-z0-9-]+)(\.[a-z0-9-]+)*\.amazonaws\.com$")
_INFRASTRUCTURE_PRINCIPAL = re.compile(r"^\d{12}:aws:(?P<service>[a-z0-9]+)-infrastructure:")

# Context keys that name the owner rather than the resource: used only when nothing better is there.
_NOT_THE_RESOURCE = frozenset({"subscriberId", "clusterAccount", "accountId"})
# The context key of the storage other services build on: their grants name it beside their own key.
_UNDERLYING = "aws:ebs:"
# Context keys that name the resource a service's grant protects, where the key does not say it itself.
_RESOURCE_CONTEXT_KEYS = {
    "SecretARN": "secretsmanager",
    "PARAMETER_ARN": "ssm",
}


# DynamoDB refuses a partition key over 2,048 bytes and a sort key over 1,024 (UTF-8), in the table and in
# every index, and `pk` is the sort key of every index. So each value that becomes part of a table or index
# key is bounded here, at the edge, by AWS's own limit for that value, far below what its key can hold
# with the longest prefix the store puts before it: a record that would break a write is rejected once.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_KEY_PREFIX_BYTES = 32  # FUNCTION#, INCIDENT#, GRANT#, KEY#, ROLE# and what a store adds
KEY_VALUE_LIMITS = {
    "grant id": 128,  # KMS GrantId: 1 to 128 characters (KMS writes 64 hex digits)
    "key": 512,  # a key ARN is under 100 bytes; an alias ARN (alias names: 256 at most) about 300
    "grantee principal": 256,  # KMS GranteePrincipal: 1 to 256 characters
    "function ARN": 140,  # Lambda: a function ARN is 140 characters at most
}


class FactKind(StrEnum):
    CREATED = "created"
    RETIRED = "retired"
    REVOKED = "revoked"
    # Found by reconciliation against ListGrants: recorded active, no longer listed (how it ended is unknown).
    VANISHED = "vanished"
    # Found by reconciliation: still listed, but its grantee is a bare unique id (the role was deleted).
    INVALIDATED = "invalidated"

    @property
    def ends(self) -> bool:
        return self in (FactKind.RETIRED, FactKind.REVOKED, FactKind.VANISHED)


class KeyRefStrength(StrEnum):
    """How sure a record is of the key: a key ARN is the key; an alias is only what the caller typed."""

    ARN = "arn"
    AS_SEEN = "as-seen"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a call: a principal ARN where there is one, and the service it came through."""

    principal: str
    identity_type: str | None
    via: str | None
    source_ip: str | None = None


RECONCILIATION_ACTOR = Actor(principal="grantwatch reconciliation", identity_type=None, via=None)


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """What a CreateGrant granted, and what it was for."""

    grantee_principal: str
    retiring_principal: str | None
    operations: tuple[str, ...]
    constraints: dict[str, dict[str, str] | str]
    name: str | None
    service: str | None
    resource: str | None
    function_arn: str | None


@dataclass(frozen=True, slots=True)
class GrantFact:
    """One thing that happened to one grant, normalised from one CloudTrail record."""

    kind: FactKind
    grant_id: str
    key_ref: str
    key_ref_strength: KeyRefStrength
    account: str
    region: str
    event_id: str
    event_time: datetime
    event_name: str
    actor: Actor
    source: str = "cloudtrail"
    shared_event_id: str | None = None
    terms: GrantTerms | None = field(default=None)

    @property
    def dedup_keys(self) -> tuple[str, ...]:
        """The ids that make a later record the same call: its event id, and the id two accounts share."""
        if self.shared_event_id and self.shared_event_id != self.event_id:
            return (self.event_id, f"shared:{self.shared_event_id}")
        return (self.event_id,)


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


class RejectedRecord(ValueError):
    """A record that claims to be a grant event but cannot be read as one."""

    def __init__(self, message: str, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id


def normalise(record: CloudTrailRecord) -> GrantFact | Ignored:
    """The grant fact a record states, `Ignored` for records that change no grant, or `RejectedRecord`."""
    if record.event_source != KMS_EVENT_SOURCE or record.event_name not in GRANT_EVENT_NAMES:
        return Ignored(f"not a grant event: {record.event_source[:128]} {record.event_name[:128]}")
    if (record.request_parameters or {}).get("dryRun") is True:
        return Ignored("dry run")
    if record.error_code:
        return Ignored(f"failed call: {record.error_code[:128]}")
    match record.event_name:
        case "CreateGrant":
            return _created(record)
        case "RetireGrant":
            return _ended(record, FactKind.RETIRED)
        case _:
            return _ended(record, FactKind.REVOKED)


def _created(record: CloudTrailRecord) -> GrantFact:
    params = _parameters(record, CreateGrantParameters.parse)
    response = record.response_elements or {}
    grant_id = response.get("grantId")
    if not isinstance(grant_id, str) or not grant_id:
        raise RejectedRecord("CreateGrant succeeded but responseElements.grantId is missing", record.event_id)
    grantee = params.grantee_principal or params.grantee_service_principal
    if grantee is None:
        raise RejectedRecord("CreateGrant has no granteePrincipal", record.event_id)
    response_key = response.get("keyId")
    key_ref, strength = resolve_key_ref(
        response_key if isinstance(response_key, str) and response_key else params.key_id, record
    )
    constraints = _constraints(params.constraints)
    service, resource, function_arn = dependent_resource(
        constraints, grantee, record.user_identity.invoked_by or record.source_ip_address
    )
    terms = GrantTerms(
        grantee_principal=grantee,
        retiring_principal=params.retiring_principal or params.retiring_service_principal,
        operations=tuple(sorted(set(params.operations))),
        constraints=constraints,
        name=params.name,
        service=service,
        resource=resource,
        function_arn=function_arn,
    )
    return _fact(record, FactKind.CREATED, grant_id, key_ref, strength, terms)


def _ended(record: CloudTrailRecord, kind: FactKind) -> GrantFact:
    grant_id: str | None
    typed_key: str | None
    if kind is FactKind.REVOKED:
        revoke = _parameters(record, RevokeGrantParameters.parse)
        grant_id, typed_key = revoke.grant_id, revoke.key_id
    else:
        retire = _parameters(record, RetireGrantParameters.parse)
        extra_id = (record.additional_event_data or {}).get("grantId")
        grant_id = extra_id if isinstance(extra_id, str) and extra_id else retire.grant_id
        typed_key = retire.key_id
    if not grant_id:
        raise RejectedRecord(f"{record.event_name} names no grant id", record.event_id)
    resource_key = next(
        (r.arn for r in record.resources or () if r.arn and _KEY_ARN.match(r.arn)),
        None,
    )
    response_key = (record.response_elements or {}).get("keyId")
    candidates = [resource_key, response_key if isinstance(response_key, str) else None, typed_key]
    key_source = next((c for c in candidates if c), None)
    if key_source is None:
        raise RejectedRecord(f"{record.event_name} names no key (resources, keyId)", record.event_id)
    key_ref, strength = resolve_key_ref(key_source, record)
    return _fact(record, kind, grant_id, key_ref, strength, None)


def _fact(
    record: CloudTrailRecord,
    kind: FactKind,
    grant_id: str,
    key_ref: str,
    strength: KeyRefStrength,
    terms: GrantTerms | None,
) -> GrantFact:
    bounded("grant id", grant_id, record)
    bounded("key", key_ref, record)
    if terms is not None:
        bounded("grantee principal", terms.grantee_principal, record)
        bounded("function ARN", terms.function_arn, record)
    key_match = _KEY_ARN.match(key_ref)
    account = key_match["account"] if key_match else (record.recipient_account_id or _unknown_account(record))
    return GrantFact(
        kind=kind,
        grant_id=grant_id,
        key_ref=key_ref,
        key_ref_strength=strength,
        account=account,
        region=key_match["region"] if key_match else record.aws_region,
        event_id=record.event_id,
        event_time=record.event_time.astimezone(UTC),
        event_name=record.event_name,
        actor=actor_of(record),
        shared_event_id=record.shared_event_id,
        terms=terms,
    )


def bounded(what: str, value: str | None, record: CloudTrailRecord) -> None:
    """`RejectedRecord` naming the field (never the value) if a value that becomes part of a key is longer
    than KEY_VALUE_LIMITS allows."""
    if value is not None and not fits(what, value):
        limit = KEY_VALUE_LIMITS[what]
        raise RejectedRecord(f"{record.event_name}: the {what} is longer than {limit} bytes", record.event_id)


def fits(what: str, value: str) -> bool:
    return len(value.encode("utf-8", "surrogatepass")) <= KEY_VALUE_LIMITS[what]


def _unknown_account(record: CloudTrailRecord) -> str:
    return record.user_identity.account_id or "unknown"


def _parameters[P](record: CloudTrailRecord, parse: Callable[[object, str], P]) -> P:
    try:
        return parse(record.request_parameters or {}, "requestParameters")
    except FieldError as error:
        raise RejectedRecord(f"{record.event_name}: {error}", record.event_id) from None


def _constraints(constraints: GrantConstraints | None) -> dict[str, dict[str, str] | str]:
    if constraints is None:
        return {}
    kept: dict[str, dict[str, str] | str] = {}
    if constraints.encryption_context_equals:
        kept["encryptionContextEquals"] = dict(constraints.encryption_context_equals)
    if constraints.encryption_context_subset:
        kept["encryptionContextSubset"] = dict(constraints.encryption_context_subset)
    for name, value in constraints.extra.items():
        if isinstance(value, str):
            kept[name] = value
        elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            kept[name] = {str(k): v for k, v in value.items()}
    return kept


def resolve_key_ref(ref: str, record: CloudTrailRecord) -> tuple[str, KeyRefStrength]:
    """A key as an ARN where the record allows it; an alias is kept as seen, since only KMS can resolve it."""
    if _KEY_ARN.match(ref):
        return ref, KeyRefStrength.ARN
    if ref.startswith("alias/") or _ALIAS_ARN.match(ref):
        return ref, KeyRefStrength.AS_SEEN
    account = record.recipient_account_id or record.user_identity.account_id
    if account and re.fullmatch(r"(mrk-)?[0-9a-fA-F-]{32,40}", ref):
        region = record.aws_region
        return f"arn:{partition_of(region)}:kms:{region}:{account}:key/{ref}", KeyRefStrength.ARN
    return ref, KeyRefStrength.AS_SEEN


def key_arn_prefix(account: str, region: str) -> str:
    """What every key ARN of an account and region starts with."""
    return f"arn:{partition_of(region)}:kms:{region}:{account}:key/"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def actor_of(record: CloudTrailRecord) -> Actor:
    identity = record.user_identity
    principal = (
        identity.arn
        or identity.invoked_by
        or identity.principal_id
        or (f"{identity.type}:{identity.account_id}" if identity.type else None)
        or "unknown"
    )
    via = identity.invoked_by
    if via is None and record.source_ip_address and not _looks_like_ip(record.source_ip_address):
        via = record.source_ip_address
    source_ip = (
        record.source_ip_address
        if record.source_ip_address and _looks_like_ip(record.source_ip_address)
        else None
    )
    return Actor(principal=principal, identity_type=identity.type, via=via, source_ip=source_ip)


def _looks_like_ip(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", value))


def dependent_resource(
    constraints: dict[str, dict[str, str] | str], grantee: str, via: str | None
) -> tuple[str | None, str | None, str | None]:
    """(service, resource, function ARN) that a grant exists for, read from its encryption context first."""
    context: dict[str, str] = {}
    for name in ("encryptionContextEquals", "encryptionContextSubset"):
        value = constraints.get(name)
        if isinstance(value, dict):
            context.update(value)
    function_arn = context.get(LAMBDA_FUNCTION_CONTEXT_KEY)
    if function_arn:
        return "lambda", function_arn, function_arn
    for key in sorted(context, key=_resource_first):
        if match := _SERVICE_CONTEXT_KEY.match(key):
            return match["service"], context[key], None
        if key in _RESOURCE_CONTEXT_KEYS:
            return _RESOURCE_CONTEXT_KEYS[key], context[key], None
    return _service_of(grantee) or (_service_of(via) if via else None), None, None


def _resource_first(context_key: str) -> tuple[bool, bool, str]:
    """The order context keys are tried in: keys naming the owner last; EBS's volume key after another
    service's key, since RDS and WorkSpaces keep their data on EBS volumes and name the volume too."""
    return (
        context_key.rsplit(":", 1)[-1] in _NOT_THE_RESOURCE,
        context_key.startswith(_UNDERLYING),
        context_key,
    )


def _service_of(principal: str) -> str | None:
    if match := _SERVICE_PRINCIPAL.match(principal):
        return match["service"]
    if match := _INFRASTRUCTURE_PRINCIPAL.match(principal):
        return match["service"]
    return None


def parse_utc_iso(text: str) -> datetime:
    """The inverse of `utc_iso`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def utc_iso(moment: datetime) -> str:
    """UTC, second precision, Z-suffixed: the form CloudTrail writes and that sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
