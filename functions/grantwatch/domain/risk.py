"""Can a Lambda function still decrypt its environment variables? Pure: no I/O.

The function's key and role come from whichever is newer: its last configuration event, or its newest
grant (Lambda creates one on every configuration that sets a customer managed key). A grant is usable when
it is active, allows Decrypt, is on that key, is for that role, and was created after the role's latest
deletion (KMS binds a grant to the role's unique id: a role re-created under the same name is a new
principal). The function can decrypt when its key is enabled, its role exists, and a usable grant exists.
When it cannot, the assessment names one cause, the most fundamental first: a key that is pending
deletion or disabled, a role deleted, a role re-created, a grant that ended, no grant at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from grantwatch.domain.facts import RECONCILIATION_ACTOR, Actor, FactKind, GrantFact
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.hazards import (
    KeyFact,
    KeyState,
    KeyStatus,
    RoleFact,
    RoleStatus,
    as_role_arn,
    role_of,
)
from grantwatch.domain.lineage import GrantState

# Lambda creates the grant while it configures the function; ListGrants may lag by a few minutes.
GRANT_APPEARS_WITHIN = timedelta(minutes=5)


class Verdict(StrEnum):
    SAFE = "safe"
    AT_RISK = "at-risk"
    NOT_APPLICABLE = "not-applicable"


class Cause(StrEnum):
    """Why a function cannot decrypt: the alert type of its incident."""

    KEY_PENDING_DELETION = "key-pending-deletion"
    KEY_DISABLED = "key-disabled"
    ROLE_DELETED = "role-deleted"
    ROLE_RECREATED = "role-recreated"
    GRANT_RETIRED = "grant-retired"
    GRANT_REVOKED = "grant-revoked"
    GRANT_VANISHED = "grant-vanished"
    NO_GRANT = "no-grant"
    DECRYPT_FAILED = "decrypt-failed"  # a failure nothing predicted


@dataclass(frozen=True, slots=True)
class Evidence:
    """The event that shows the cause: what happened, when, who did it, and its CloudTrail id."""

    what: str
    event_name: str
    event_id: str
    at: datetime
    actor: Actor


@dataclass(frozen=True, slots=True)
class Dependency:
    """The key and role a function decrypts with, as far as the records tell."""

    key_arn: str
    role: str | None  # the role's ARN or session ARN, as seen
    own: tuple[GrantState, ...]

    @property
    def role_ref(self) -> tuple[str, str] | None:
        return role_of(self.role)

    @property
    def role_name(self) -> str | None:
        ref = self.role_ref
        return ref[1] if ref else None


@dataclass(frozen=True, slots=True)
class Assessment:
    function_arn: str
    verdict: Verdict
    reason: str
    key_arn: str | None = None
    role: str | None = None
    usable: GrantState | None = None
    lost: GrantState | None = None
    cause: Cause | None = None
    evidence: Evidence | None = None
    deletion_date: datetime | None = None


def locate(
    function_arn: str, grants: Sequence[GrantState], function: FunctionState | None
) -> Dependency | Assessment:
    """The function's key and role, or the NOT_APPLICABLE assessment of a function that has none."""
    own = tuple(g for g in grants if g.terms is not None and g.terms.function_arn == function_arn)
    newest = max((g for g in own if g.created_at), key=_created_at, default=None)
    recreated = (
        newest is not None
        and newest.created_at is not None
        and function is not None
        and function.deleted_at is not None
        and newest.created_at > function.deleted_at
    )
    if function is not None and function.deleted and not recreated:
        return Assessment(function_arn, Verdict.NOT_APPLICABLE, "the function was deleted")
    config_is_newer = (
        function is not None
        and function.configured_at is not None
        and (newest is None or newest.created_at is None or function.configured_at >= newest.created_at)
    )
    if function is not None and config_is_newer:
        if not function.kms_key_arn:
            return Assessment(
                function_arn, Verdict.NOT_APPLICABLE, "no customer managed key encrypts its environment"
            )
        return Dependency(function.kms_key_arn, function.role, own)
    if newest is not None and newest.terms is not None:
        return Dependency(newest.key_arn, newest.terms.grantee_principal, own)
    return Assessment(function_arn, Verdict.NOT_APPLICABLE, "no grant of this function is known")


def assess(
    function_arn: str,
    grants: Sequence[GrantState],
    function: FunctionState | None,
    *,
    key: KeyStatus | None = None,
    role: RoleStatus | None = None,
) -> Assessment:
    """The verdict on one function from its grants, its configuration, its key's state and its role's."""
    located = locate(function_arn, grants, function)
    if isinstance(located, Assessment):
        return located
    key_arn, role_principal = located.key_arn, as_role_arn(located.role)
    role_name = located.role_name

    def at_risk(
        reason: str, cause: Cause, evidence: Evidence | None, lost: GrantState | None = None
    ) -> Assessment:
        deletion = key.deletion_date if key is not None and cause is Cause.KEY_PENDING_DELETION else None
        return Assessment(
            function_arn,
            Verdict.AT_RISK,
            reason,
            key_arn,
            role_principal,
            lost=lost,
            cause=cause,
            evidence=evidence,
            deletion_date=deletion,
        )

    if key is not None and key.key_arn == key_arn and key.state is not KeyState.ENABLED:
        pending = key.state is KeyState.PENDING_DELETION
        return at_risk(
            "its key is scheduled for deletion" if pending else "its key is disabled",
            Cause.KEY_PENDING_DELETION if pending else Cause.KEY_DISABLED,
            _key_evidence(key.changed_by),
        )
    role_known = role is not None and role_name is not None and role.role_name.lower() == role_name.lower()
    if role is not None and role_known and not role.exists:
        return at_risk("its execution role was deleted", Cause.ROLE_DELETED, _role_evidence(role.deleted))
    deleted_at = role.deleted.event_time if role is not None and role_known and role.deleted else None

    fitting = [g for g in located.own if g.ended is None and _fits(g, key_arn, role_name)]
    usable = [
        g for g in fitting if g.invalidated is None and (deleted_at is None or _created_after(g, deleted_at))
    ]
    if usable:
        chosen = max(usable, key=_created_at)
        return Assessment(
            function_arn, Verdict.SAFE, "a usable grant exists", key_arn, role_principal, usable=chosen
        )
    if fitting:  # listed, but bound to the unique id of a role that no longer exists
        dead = max(fitting, key=_created_at)
        evidence = (
            _role_evidence(role.created)
            if role is not None and role_known and role.recreated
            else _grant_evidence(dead.invalidated, "found bound to a deleted role's unique id")
        )
        return at_risk("its grants are bound to a deleted role", Cause.ROLE_RECREATED, evidence, dead)
    ended = [g for g in located.own if g.ended is not None and g.key_arn == key_arn]
    lost = max(ended, key=_ended_at, default=None)
    if lost is not None and lost.ended is not None:
        cause = {
            FactKind.REVOKED: Cause.GRANT_REVOKED,
            FactKind.VANISHED: Cause.GRANT_VANISHED,
        }.get(lost.ended.kind, Cause.GRANT_RETIRED)
        return at_risk("no usable grant is left on its key", cause, _grant_evidence(lost.ended), lost)
    verified = key.grants_verified_at if key is not None and key.key_arn == key_arn else None
    configured = function.configured_at if function is not None else None
    if verified is not None and configured is not None and verified >= configured + GRANT_APPEARS_WITHIN:
        return at_risk(
            "no grant on its key was found for it",
            Cause.NO_GRANT,
            Evidence(
                "no grant listed", "ListGrants", f"reconciliation:{key_arn}", verified, RECONCILIATION_ACTOR
            ),
        )
    return Assessment(
        function_arn, Verdict.NOT_APPLICABLE, "no grant on its key has ended", key_arn, role_principal
    )


def fixed_since(assessment: Assessment, since: datetime, function: FunctionState | None) -> bool:
    """Whether something happened after `since` that can repair an unexplained failure: a usable grant
    created, or the function configured again."""
    usable = assessment.usable
    if usable is not None and usable.created_at is not None and usable.created_at > since:
        return True
    return function is not None and function.configured_at is not None and function.configured_at > since


def _key_evidence(fact: KeyFact | None) -> Evidence | None:
    if fact is None:
        return None
    what = {
        "DisableKey": "disabled",
        "ScheduleKeyDeletion": "scheduled for deletion",
        "CancelKeyDeletion": "left disabled when its deletion was cancelled",
    }.get(fact.event_name, fact.change.value)
    return Evidence(what, fact.event_name, fact.event_id, fact.event_time, fact.actor)


def _role_evidence(fact: RoleFact | None) -> Evidence | None:
    if fact is None:
        return None
    what = "deleted" if fact.change.value == "deleted" else "created again"
    return Evidence(
        what, "DeleteRole" if what == "deleted" else "CreateRole", fact.event_id, fact.event_time, fact.actor
    )


def _grant_evidence(fact: GrantFact | None, what: str | None = None) -> Evidence | None:
    if fact is None:
        return None
    described = what or {
        FactKind.VANISHED: "no longer listed by ListGrants",
    }.get(fact.kind, fact.kind.value)
    return Evidence(described, fact.event_name, fact.event_id, fact.event_time, fact.actor)


def _created_after(grant: GrantState, moment: datetime) -> bool:
    """Created after the role's deletion; in the same second (CloudTrail's resolution) counts as after:
    a replacement recreates the role and Lambda its grant within moments."""
    return grant.created_at is not None and grant.created_at >= moment


def _created_at(grant: GrantState) -> tuple[datetime, str]:
    return (grant.created_at.replace(tzinfo=None) if grant.created_at else datetime.min, grant.grant_id)


def _ended_at(grant: GrantState) -> tuple[datetime, str]:
    return (grant.ended.event_time.replace(tzinfo=None) if grant.ended else datetime.min, grant.grant_id)


def _fits(grant: GrantState, key: str | None, role: str | None) -> bool:
    terms = grant.terms
    if terms is None or "Decrypt" not in terms.operations or grant.key_arn != key:
        return False
    if role is None:
        return True
    ref = role_of(terms.grantee_principal)
    if ref is None:  # listed by a bare unique id: the grant of a role that no longer exists
        return grant.invalidated is not None
    return ref[1].lower() == role.lower()
