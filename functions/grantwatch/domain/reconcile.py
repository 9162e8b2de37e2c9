"""Reconciliation: compare what KMS and Lambda list now with what the events recorded, and state each
difference as a fact with `source: reconciliation`. CloudTrail delivery to EventBridge is best effort: a
grant event or a function event can be missing, and this is how the table catches up. Pure: no I/O.

Each repair has a deterministic event id (``reconciliation:<what>:<id>``), so running reconciliation
again, or twice at once, records it once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from grantwatch.domain.facts import (
    KEY_ARN_PATTERN,
    RECONCILIATION_ACTOR,
    FactKind,
    GrantFact,
    GrantTerms,
    KeyRefStrength,
    dependent_resource,
)
from grantwatch.domain.functions import (
    FunctionChange,
    FunctionFact,
    FunctionState,
    function_place,
    is_function_arn,
)
from grantwatch.domain.hazards import is_dead_grantee
from grantwatch.domain.lineage import GrantState

SOURCE = "reconciliation"
# ListGrants and ListFunctions are eventually consistent: what changed this recently is left alone.
SETTLING = timedelta(minutes=5)
_LAST_MODIFIED = re.compile(
    r"^(?P<seconds>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:?\d\d)$"
)


@dataclass(frozen=True, slots=True)
class ListedGrant:
    """A grant as ListGrants returns it (PascalCase in the API)."""

    grant_id: str
    key_arn: str
    grantee: str
    retiring: str | None
    operations: tuple[str, ...]
    constraints: dict[str, dict[str, str] | str]
    name: str | None
    created_at: datetime | None

    @classmethod
    def from_api(cls, key_arn: str, grant: Mapping[str, Any]) -> ListedGrant:
        constraints: dict[str, dict[str, str] | str] = {}
        for api_name, name in (
            ("EncryptionContextEquals", "encryptionContextEquals"),
            ("EncryptionContextSubset", "encryptionContextSubset"),
        ):
            value = (grant.get("Constraints") or {}).get(api_name)
            if isinstance(value, dict):
                constraints[name] = {str(k): str(v) for k, v in value.items()}
        created = grant.get("CreationDate")
        listed_key = grant.get("KeyId")
        return cls(
            grant_id=str(grant["GrantId"]),
            key_arn=listed_key
            if isinstance(listed_key, str) and KEY_ARN_PATTERN.match(listed_key)
            else key_arn,
            grantee=str(grant.get("GranteePrincipal") or "unknown"),
            retiring=grant.get("RetiringPrincipal"),
            operations=tuple(sorted(set(grant.get("Operations") or ()))),
            constraints=constraints,
            name=grant.get("Name") or None,
            created_at=created.astimezone(UTC) if isinstance(created, datetime) else None,
        )

    def terms(self) -> GrantTerms:
        service, resource, function_arn = dependent_resource(self.constraints, self.grantee, None)
        return GrantTerms(
            grantee_principal=self.grantee,
            retiring_principal=self.retiring,
            operations=self.operations,
            constraints=self.constraints,
            name=self.name,
            service=service,
            resource=resource,
            function_arn=function_arn,
        )


@dataclass(frozen=True, slots=True)
class ListedFunction:
    """A function as ListFunctions or GetFunctionConfiguration returns it; no environment values."""

    function_arn: str
    role: str | None
    kms_key_arn: str | None
    has_environment: bool
    last_modified: datetime | None

    @classmethod
    def from_api(cls, configuration: Mapping[str, Any]) -> ListedFunction:
        modified = configuration.get("LastModified")
        return cls(
            function_arn=str(configuration["FunctionArn"]),
            role=configuration.get("Role"),
            kms_key_arn=configuration.get("KMSKeyArn") or None,
            has_environment=bool((configuration.get("Environment") or {}).get("Variables")),
            last_modified=parse_last_modified(modified) if isinstance(modified, str) else None,
        )


def parse_last_modified(text: str) -> datetime | None:
    """Lambda writes LastModified as 2026-11-02T10:11:12.123+0000; other writers use Z and more digits."""
    match = _LAST_MODIFIED.match(text)
    if match is None:
        return None
    offset = "+0000" if match["zone"] == "Z" else match["zone"].replace(":", "")
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    try:
        parsed = datetime.strptime(f"{match['seconds']}.{fraction}{offset}", "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def grant_repairs(
    key_arn: str, recorded: Iterable[GrantState], listed: Iterable[ListedGrant], now: datetime
) -> list[GrantFact]:
    """The facts that bring the key's recorded grants in line with what ListGrants shows now."""
    known = {state.grant_id: state for state in recorded}
    seen: set[str] = set()
    repairs: list[GrantFact] = []
    for grant in listed:
        seen.add(grant.grant_id)
        state = known.get(grant.grant_id)
        if state is None or state.created is None:
            at = grant.created_at or now
            repairs.append(_fact(FactKind.CREATED, grant.grant_id, key_arn, at, terms=grant.terms()))
        if is_dead_grantee(grant.grantee) and (state is None or state.invalidated is None):
            repairs.append(_fact(FactKind.INVALIDATED, grant.grant_id, key_arn, now))
    for grant_id, state in known.items():
        if grant_id in seen or state.ended is not None or state.key_arn != key_arn:
            continue
        if state.created_at is not None and state.created_at > now - SETTLING:
            continue
        repairs.append(_fact(FactKind.VANISHED, grant_id, key_arn, now))
    return repairs


def function_repairs(
    recorded: Mapping[str, FunctionState],
    listed: Sequence[ListedFunction],
    gone: Iterable[str],
    now: datetime,
) -> list[FunctionFact]:
    """Configurations that differ from what was recorded, and functions that no longer exist (`gone`:
    recorded, not listed, and confirmed missing by GetFunctionConfiguration)."""
    repairs: list[FunctionFact] = []
    for function in listed:
        state = recorded.get(function.function_arn)
        same = (
            state is not None
            and not state.deleted
            and state.role == function.role
            and state.kms_key_arn == function.kms_key_arn
        )
        if same:
            continue
        at = function.last_modified or now
        repairs.append(
            FunctionFact(
                change=FunctionChange.CONFIGURED,
                function_arn=function.function_arn,
                event_id=f"{SOURCE}:configured:{function.function_arn}:{at.isoformat()}",
                event_time=at,
                event_name="ListFunctions",
                actor=RECONCILIATION_ACTOR.principal,
                role=function.role,
                kms_key_arn=function.kms_key_arn,
                has_environment=function.has_environment,
            )
        )
    for function_arn in gone:
        state = recorded.get(function_arn)
        if state is None or state.deleted:
            continue
        if state.configured_at is not None and state.configured_at > now - SETTLING:
            continue
        repairs.append(
            FunctionFact(
                change=FunctionChange.DELETED,
                function_arn=function_arn,
                event_id=f"{SOURCE}:deleted:{function_arn}:{now.isoformat()}",
                event_time=now,
                event_name="GetFunctionConfiguration",
                actor=RECONCILIATION_ACTOR.principal,
            )
        )
    return repairs


def in_scope(function_arn: str, account: str, region: str) -> bool:
    """Whether a function is one this account's and region's ListFunctions would list."""
    return is_function_arn(function_arn) and function_place(function_arn) == (account, region)


def _fact(
    kind: FactKind, grant_id: str, key_arn: str, at: datetime, terms: GrantTerms | None = None
) -> GrantFact:
    match = KEY_ARN_PATTERN.match(key_arn)
    return GrantFact(
        kind=kind,
        grant_id=grant_id,
        key_ref=key_arn,
        key_ref_strength=KeyRefStrength.ARN,
        account=match["account"] if match else "unknown",
        region=match["region"] if match else "unknown",
        event_id=f"{SOURCE}:{kind.value}:{grant_id}",
        event_time=at,
        event_name="ListGrants",
        actor=RECONCILIATION_ACTOR,
        source=SOURCE,
        terms=terms,
    )
