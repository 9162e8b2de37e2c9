"""What breaks if a role, a key or a grant changes: a hypothetical change applied to what grantwatch knows.
Pure: no I/O, nothing is changed anywhere.

For each function it touches, the change is applied to the function's grants (a grant it makes unusable is
ended, hypothetically) and `risk.assess` decides again. A function breaks when it can decrypt now and would
not after the change: its last usable grant ends, its execution role is deleted (re-created under the same
name or not: the grant stays bound to the old role's unique id), or its key is disabled or scheduled for
deletion (then no grant helps). A function that the same change deletes or replaces, or whose key or role
it certainly changes after the role exists again, gets a fresh grant from Lambda and does not break (Lambda
creates one only when an update changes the key or the role). What to do instead is the alerts' documented
reset (domain/fixes.py).

Other services' resources on a key the change disables or deletes are listed by service, with what their
service documents happens to them (domain/services.py) and, where it gives a period, when it becomes
irreversible, counted from now.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.facts import Actor, FactKind, GrantFact, KeyRefStrength
from grantwatch.domain.fixes import (
    Fix,
    FixTarget,
    configured_on_aws_managed_key,
    move_key,
    move_role,
    reset,
)
from grantwatch.domain.functions import FunctionState, function_name, role_name
from grantwatch.domain.hazards import KeyState, KeyStatus, RoleStatus
from grantwatch.domain.lineage import GrantState, fold
from grantwatch.domain.resources import ResourceOnKey, resources_on_key
from grantwatch.domain.risk import Assessment, Verdict, assess
from grantwatch.domain.services import SERVICES, KeyLossEffect, Service, deadline

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$")
_FUNCTION_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:")
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")


class ChangeKind(StrEnum):
    ROLE_DELETED = "role-deleted"
    ROLE_REPLACED = "role-replaced"
    KEY_DISABLED = "key-disabled"
    KEY_PENDING_DELETION = "key-pending-deletion"
    GRANT_RETIRED = "grant-retired"
    GRANT_REVOKED = "grant-revoked"

    @property
    def on_role(self) -> bool:
        return self in (ChangeKind.ROLE_DELETED, ChangeKind.ROLE_REPLACED)

    @property
    def on_key(self) -> bool:
        return self in (ChangeKind.KEY_DISABLED, ChangeKind.KEY_PENDING_DELETION)

    @property
    def on_grant(self) -> bool:
        return self in (ChangeKind.GRANT_RETIRED, ChangeKind.GRANT_REVOKED)


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One change that may happen: to a role (name or ARN), a key (ARN or key id) or a grant (its id)."""

    kind: ChangeKind
    target: str
    source: str | None = None  # where it comes from: a plan's resource address or logical id
    note: str | None = None  # a doubt worth saying (a conditional replacement, an unknown value)


@dataclass(frozen=True, slots=True)
class PlannedFunction:
    """What a plan does to a Lambda function itself, as far as its grant is concerned.

    `regrants`: the function is certainly created or reconfigured after the plan's role changes, so Lambda
    creates a grant for the role as it then exists. `new_role` / `new_key`: a known role or key it moves
    to. `note`: why a change to it does not count (not ordered after the role, a value known only later).
    """

    function: str  # ARN or name
    source: str
    deleted: bool = False
    regrants: bool = False
    new_role: str | None = None
    new_key: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one question asks: the changes, what the same plan does to functions, and notes."""

    hypotheses: tuple[Hypothesis, ...]
    functions: tuple[PlannedFunction, ...] = ()
    notes: tuple[str, ...] = ()


class Outcome(StrEnum):
    BREAKS = "breaks"  # can decrypt now, would not after the change
    REGRANTED = "regranted"  # would break, but the same change gives it a new grant (or deletes it)
    UNHARMED = "unharmed"  # touched, but another usable grant remains
    ALREADY_AT_RISK = "already-at-risk"  # cannot decrypt even now: not this change's doing


@dataclass(frozen=True, slots=True)
class FunctionImpact:
    function_arn: str
    outcome: Outcome
    key_arn: str | None
    role: str | None
    causes: tuple[Hypothesis, ...]
    reasons: tuple[str, ...]
    fix: tuple[Fix, ...] = ()
    grants_lost: tuple[str, ...] = ()
    usable_after: str | None = None

    @property
    def name(self) -> str:
        return function_name(self.function_arn)


@dataclass(frozen=True, slots=True)
class ServiceImpact:
    """A covered service's resources on one key the scenario disables or deletes, and what that does."""

    service: Service
    key_arn: str
    cause: Hypothesis  # the key's deletion where the scenario both disables and deletes it
    resources: tuple[ResourceOnKey, ...]
    effect: KeyLossEffect
    deadline: datetime | None  # when it becomes irreversible, counted from now; None: no documented period


@dataclass(frozen=True, slots=True)
class Impact:
    scenario: Scenario
    functions: tuple[FunctionImpact, ...]
    other_grants: tuple[GrantState, ...] = field(default=())  # other services' grants on a changed key
    resources: tuple[ServiceImpact, ...] = field(default=())  # covered services' resources on a changed key

    @property
    def breaks(self) -> tuple[FunctionImpact, ...]:
        return tuple(f for f in self.functions if f.outcome is Outcome.BREAKS)


@dataclass(frozen=True, slots=True)
class KnownFunction:
    """A function and everything recorded about it: what `analyse` needs to know of it."""

    function_arn: str
    state: FunctionState | None
    grants: tuple[GrantState, ...]
    key: KeyStatus | None = None  # the state of the key and role it depends on, as last recorded
    role: RoleStatus | None = None


class ImpactInputError(ValueError):
    """A role, key or grant given in a form that cannot name one."""


def parse_role(value: str) -> str:
    """A role as a name or an IAM role ARN (any path), checked; returned as given."""
    if _ROLE_ARN.match(value) or _ROLE_NAME.match(value):
        return value
    raise ImpactInputError(f"not a role name or IAM role ARN: {value[:160]!r}")


def parse_key(value: str) -> str:
    """A key as its ARN or its key id. Aliases cannot be resolved without calling KMS."""
    if value.startswith("alias/") or ":alias/" in value:
        raise ImpactInputError(f"{value[:160]!r} is an alias: give the key ARN or key id")
    if re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[\w-]{1,128}", value) or re.fullmatch(
        r"(mrk-)?[0-9a-f-]{1,128}", value
    ):
        return value
    raise ImpactInputError(f"not a KMS key ARN or key id: {value[:160]!r}")


def role_matches(target: str, role: str | None, function_arn: str) -> bool:
    """The role named by `target` (a name, or an ARN: then also its account) is the function's role."""
    if role is None:
        return False
    if match := _ROLE_ARN.match(target):
        account = _FUNCTION_ACCOUNT.match(function_arn)
        return match["name"] == role and (account is None or account["account"] == match["account"])
    return target == role


def key_matches(target: str, key_arn: str | None) -> bool:
    """`target` (a key ARN or a bare key id) names `key_arn`."""
    if not key_arn:
        return False
    return target == key_arn or (not target.startswith("arn:") and key_arn.endswith(f":key/{target}"))


def function_matches(reference: str, function_arn: str) -> bool:
    return reference == function_arn or reference == function_name(function_arn)


def analyse(
    scenario: Scenario, known: Iterable[KnownFunction], *, now: datetime, temporary_role: str | None = None
) -> Impact:
    """Every function the scenario touches, and what happens to it; functions it does not touch are left
    out. `temporary_role` (SelfHealingTemporaryRoleArn) is the one the role switch in a fix names."""
    results = []
    for function in known:
        result = _analyse_one(scenario, function, now, temporary_role)
        if result is not None:
            results.append(result)
    return Impact(scenario, tuple(sorted(results, key=lambda r: (_RANK[r.outcome], r.function_arn))))


def other_grants_on_keys(scenario: Scenario, grants: Iterable[GrantState]) -> tuple[GrantState, ...]:
    """Active grants of other services (not Lambda's) on a key the scenario disables or deletes: also
    affected, but grantwatch cannot tell whether anything still uses them."""
    keys = [h.target for h in scenario.hypotheses if h.kind.on_key]
    found = {
        g.grant_id: g
        for g in grants
        if g.ended is None
        and not (g.terms is not None and g.terms.function_arn)
        and any(key_matches(k, g.key_arn) for k in keys)
    }
    return tuple(found[k] for k in sorted(found))


def resources_on_changed_keys(
    scenario: Scenario,
    grants: Iterable[GrantState],
    *,
    now: datetime,
    key_states: Mapping[str, KeyState] | None = None,
) -> tuple[ServiceImpact, ...]:
    """Every covered service's resources on a key the scenario disables or schedules for deletion, one
    entry per service and key, sorted by service and key; a key both disabled and deleted counts as
    deleted. A key already in the state the change would put it in (as last recorded, `key_states`) is not
    this change's doing. The deadline is the documented period counted from `now` (the key's deletion date
    is not known before it is scheduled)."""
    on_key = [h for h in scenario.hypotheses if h.kind.on_key]
    recorded = [g for g in grants if any(key_matches(h.target, g.key_arn) for h in on_key)]
    found = []
    for key_arn in sorted({g.key_arn for g in recorded}):
        already = (key_states or {}).get(key_arn, KeyState.ENABLED)
        causes = [h for h in on_key if key_matches(h.target, key_arn) and not _already(h.kind, already)]
        if not causes:
            continue
        cause = next((h for h in causes if h.kind is ChangeKind.KEY_PENDING_DELETION), causes[0])
        by_service: dict[Service, list[ResourceOnKey]] = {}
        for resource in resources_on_key(key_arn, recorded):
            by_service.setdefault(resource.service, []).append(resource)
        for service, resources in by_service.items():
            entry = SERVICES[service]
            deleted = cause.kind is ChangeKind.KEY_PENDING_DELETION
            effect = entry.on_key_pending_deletion if deleted else entry.on_key_disabled
            found.append(
                ServiceImpact(service, key_arn, cause, tuple(resources), effect, deadline(effect, now))
            )
    return tuple(sorted(found, key=lambda s: (s.service, s.key_arn)))


def _already(change: ChangeKind, state: KeyState) -> bool:
    """The key is already where the change would put it: disabled or pending deletion for a disable, pending
    deletion for a deletion."""
    if change is ChangeKind.KEY_DISABLED:
        return state is not KeyState.ENABLED
    return state is KeyState.PENDING_DELETION


_RANK = {Outcome.BREAKS: 0, Outcome.REGRANTED: 1, Outcome.UNHARMED: 2, Outcome.ALREADY_AT_RISK: 3}


def _analyse_one(
    scenario: Scenario, function: KnownFunction, now: datetime, temporary_role: str | None
) -> FunctionImpact | None:
    arn = function.function_arn
    before = assess(arn, function.grants, function.state, key=function.key, role=function.role)
    role, key = _name_of_role(before.role), before.key_arn
    live = before.verdict is Verdict.SAFE or (before.verdict is Verdict.NOT_APPLICABLE and bool(key))
    grant_ids = {g.grant_id for g in function.grants}
    causes = tuple(
        h
        for h in scenario.hypotheses
        if (h.kind.on_role and role_matches(h.target, role, arn))
        or (h.kind.on_key and key_matches(h.target, key))
        or (h.kind.on_grant and h.target in grant_ids)
    )
    if not causes:
        return None
    if before.verdict is Verdict.AT_RISK:
        return FunctionImpact(
            arn, Outcome.ALREADY_AT_RISK, key, role, causes, ("it has no usable grant even now",)
        )
    if not live:
        return None

    ended = _hypothetical_ends(function.grants, causes, role, arn, now)
    after = assess(arn, ended, function.state)
    grant_causes = [h for h in causes if h.kind.on_grant]
    after_grants_only = assess(
        arn, _hypothetical_ends(function.grants, grant_causes, role, arn, now), function.state
    )
    lost = tuple(g.grant_id for g in function.grants if g.ended is None and _now_ended(g, ended))
    harmful = tuple(h for h in causes if _harms(h, before, after_grants_only))
    reasons = tuple(_reason(h, before, lost) for h in harmful)
    if not reasons:
        remaining = after.usable.grant_id if after.usable else None
        why = f"grant {remaining} stays usable" if remaining else "nothing it relies on changes"
        return FunctionImpact(arn, Outcome.UNHARMED, key, role, causes, (why,), usable_after=remaining)

    planned = [p for p in scenario.functions if function_matches(p.function, arn)]
    saved = _saved_by_plan(planned, harmful, role, key)
    if saved is not None:
        return FunctionImpact(arn, Outcome.REGRANTED, key, role, harmful, (*reasons, saved), grants_lost=lost)
    notes = tuple(p.note for p in planned if p.note) if not all(h.kind.on_key for h in harmful) else ()
    target = FixTarget(
        arn,
        None if configured_on_aws_managed_key(function.state) else key,
        before.role,
        temporary_role,
    )
    return FunctionImpact(
        arn,
        Outcome.BREAKS,
        key,
        role,
        harmful,
        (*reasons, *notes),
        fix=tuple(dict.fromkeys(fix for h in harmful for fix in _fix(h, target))),
        grants_lost=lost,
    )


def _name_of_role(role: str | None) -> str | None:
    """A role as the assessment names it (a name, or a role or session ARN) as its name."""
    return role_name(role) if role and role.startswith("arn:") else role


def _hypothetical_ends(
    grants: Sequence[GrantState], causes: Sequence[Hypothesis], role: str | None, arn: str, now: datetime
) -> list[GrantState]:
    """The function's grants with every grant the causes make unusable ended (hypothetically)."""
    result = []
    for grant in grants:
        cause = next((h for h in causes if grant.ended is None and _ends(h, grant, role, arn)), None)
        result.append(grant if cause is None else _end(grant, cause, now))
    return result


def _ends(hypothesis: Hypothesis, grant: GrantState, role: str | None, arn: str) -> bool:
    if hypothesis.kind.on_grant:
        return hypothesis.target == grant.grant_id
    if hypothesis.kind.on_key:
        return key_matches(hypothesis.target, grant.key_arn)
    grantee_role = role_name(grant.terms.grantee_principal) if grant.terms else None
    return role_matches(hypothesis.target, grantee_role, arn)


def _end(grant: GrantState, cause: Hypothesis, now: datetime) -> GrantState:
    kind = FactKind.REVOKED if cause.kind is ChangeKind.GRANT_REVOKED else FactKind.RETIRED
    fact = GrantFact(
        kind=kind,
        grant_id=grant.grant_id,
        key_ref=grant.key_arn,
        key_ref_strength=KeyRefStrength.ARN,
        account=grant.account,
        region=grant.region,
        event_id=f"impact:{cause.kind}",
        event_time=now,
        event_name=f"hypothetical {cause.kind}",
        actor=Actor(principal="grantwatch impact", identity_type=None, via=None),
        source="impact",
    )
    return fold((*grant.lineage, fact))


def _now_ended(grant: GrantState, after: Sequence[GrantState]) -> bool:
    return any(g.grant_id == grant.grant_id and g.ended is not None for g in after)


def _harms(hypothesis: Hypothesis, before: Assessment, after: Assessment) -> bool:
    """Key and role changes break a live function whatever its grants; the end of grants only if they
    were its last usable ones (`after` applies the grant changes alone)."""
    if hypothesis.kind.on_grant:
        return before.verdict is Verdict.SAFE and after.verdict is not Verdict.SAFE
    return True


def _reason(hypothesis: Hypothesis, before: Assessment, lost: tuple[str, ...]) -> str:
    grants = ", ".join(lost) if lost else "a grant not recorded by grantwatch"
    role = _name_of_role(before.role)
    match hypothesis.kind:
        case ChangeKind.ROLE_REPLACED:
            return (
                f"its execution role {role} is deleted and re-created: its grant ({grants}) stays "
                "bound to the old role's unique id, and the new role cannot use it"
            )
        case ChangeKind.ROLE_DELETED:
            return (
                f"its execution role {role} is deleted: the function cannot run, and its grant "
                f"({grants}) names a role that no longer exists"
            )
        case ChangeKind.KEY_DISABLED:
            return (
                f"its key {before.key_arn} is disabled: Decrypt fails (KMSDisabledException) whatever "
                "its grants"
            )
        case ChangeKind.KEY_PENDING_DELETION:
            return (
                f"its key {before.key_arn} is scheduled for deletion: Decrypt fails "
                "(KMSInvalidStateException) from the moment it is scheduled"
            )
        case ChangeKind.GRANT_RETIRED | ChangeKind.GRANT_REVOKED:
            how = "retired" if hypothesis.kind is ChangeKind.GRANT_RETIRED else "revoked"
            return f"grant {hypothesis.target} is its last usable grant, and would be {how}"


def _saved_by_plan(
    planned: Sequence[PlannedFunction], harmful: Sequence[Hypothesis], role: str | None, key: str | None
) -> str | None:
    """Why the same plan leaves the function with a usable grant, if it does."""
    for plan in planned:
        if plan.deleted:
            return f"the same change deletes the function ({plan.source})"
    for plan in planned:
        moves_key = plan.new_key is not None and not key_matches(plan.new_key, key)
        moves_role = plan.new_role is not None and plan.new_role != role
        if any(h.kind.on_key for h in harmful) and not moves_key:
            continue
        if any(h.kind.on_role for h in harmful) and not (plan.regrants or moves_role):
            continue
        if any(h.kind.on_grant for h in harmful) and not (plan.regrants or moves_key or moves_role):
            continue
        if moves_key:
            where = f"moves it to key {plan.new_key}" if plan.new_key else "moves it off its key"
        elif moves_role:
            where = f"moves it to role {plan.new_role}"
        else:
            where = "changes its key or role after the role changes"
        return f"the same change {where} ({plan.source}): Lambda creates a new grant then"
    return None


def _fix(hypothesis: Hypothesis, target: FixTarget) -> tuple[Fix, ...]:
    """What to do instead, or right after: the same documented resets as the alerts'."""
    match hypothesis.kind:
        case ChangeKind.ROLE_REPLACED:
            return tuple(replace(f, when="right after the apply") for f in reset(target, role_first=True))
        case ChangeKind.ROLE_DELETED:
            return (replace(move_role(target), when="before deleting the role"),)
        case ChangeKind.KEY_DISABLED | ChangeKind.KEY_PENDING_DELETION:
            return (replace(move_key(target), when="first"),)
        case ChangeKind.GRANT_RETIRED | ChangeKind.GRANT_REVOKED:
            return tuple(replace(f, when="leave the grant, or right after ending it") for f in reset(target))
