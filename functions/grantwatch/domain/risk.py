"""Does a Lambda function still have a usable grant for its environment variables? Pure: no I/O.

Usable: active, allows Decrypt, on the key the function is configured with, for the function's current
execution role. The key and role come from whichever is newer: the function's last configuration event,
or its newest grant (Lambda creates one on every configuration that sets a customer managed key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from grantwatch.domain.functions import FunctionState, role_name
from grantwatch.domain.lineage import GrantState


class Verdict(StrEnum):
    SAFE = "safe"
    AT_RISK = "at-risk"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True, slots=True)
class Assessment:
    function_arn: str
    verdict: Verdict
    reason: str
    key_arn: str | None = None
    role: str | None = None
    usable: GrantState | None = None
    lost: GrantState | None = None


def assess(function_arn: str, grants: Sequence[GrantState], function: FunctionState | None) -> Assessment:
    """The verdict on one function from every grant recorded for it and what is known of its configuration."""
    own = [g for g in grants if g.terms is not None and g.terms.function_arn == function_arn]
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
        key, role = function.kms_key_arn, role_name(function.role)
    elif newest is not None and newest.terms is not None:
        key, role = newest.key_arn, role_name(newest.terms.grantee_principal)
    else:
        return Assessment(function_arn, Verdict.NOT_APPLICABLE, "no grant of this function is known")
    usable = [g for g in own if g.ended is None and _fits(g, key, role)]
    if usable:
        chosen = max(usable, key=_created_at)
        return Assessment(function_arn, Verdict.SAFE, "a usable grant exists", key, role, usable=chosen)
    ended = [g for g in own if g.ended is not None and g.key_arn == key]
    lost = max(ended, key=_ended_at, default=None)
    if lost is None:
        return Assessment(function_arn, Verdict.NOT_APPLICABLE, "no grant on its key has ended", key, role)
    return Assessment(
        function_arn, Verdict.AT_RISK, "no usable grant is left on its key", key, role, lost=lost
    )


def _created_at(grant: GrantState) -> tuple[datetime, str]:
    return (grant.created_at.replace(tzinfo=None) if grant.created_at else datetime.min, grant.grant_id)


def _ended_at(grant: GrantState) -> tuple[datetime, str]:
    return (grant.ended.event_time.replace(tzinfo=None) if grant.ended else datetime.min, grant.grant_id)


def _fits(grant: GrantState, key: str | None, role: str | None) -> bool:
    terms = grant.terms
    if terms is None or "Decrypt" not in terms.operations or grant.key_arn != key:
        return False
    return role is None or role_name(terms.grantee_principal) == role
