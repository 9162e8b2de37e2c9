"""`grantwatch impact`: read what a what-if question needs from the table, and let the pure analysis
(`domain/impact.py`) answer it. Reads only: functions through the by-entity index, their grants through
by-function, a key's other grants through by-key, a grant by its key. Nothing is written. Other services'
resources on a changed key come from the same by-key reads; a key given by its id that no function names is
found among the keys of the by-key index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from grantwatch.domain.facts import utc_iso
from grantwatch.domain.fixes import fixes_json, rendered
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.hazards import KeyState
from grantwatch.domain.impact import (
    ChangeKind,
    Hypothesis,
    Impact,
    ImpactInputError,
    KnownFunction,
    Outcome,
    Scenario,
    ServiceImpact,
    analyse,
    key_matches,
    other_grants_on_keys,
    parse_key,
    parse_role,
    resources_on_changed_keys,
)
from grantwatch.domain.lineage import GrantState
from grantwatch.domain.plans import PlanError, plan_text, read_plan
from grantwatch.domain.risk import Dependency, locate
from grantwatch.domain.services import KEY_DELETED, SERVICES
from grantwatch.ports import FunctionReader, GrantStore, HazardReader

MAX_PLAN_BYTES = 256 * 1024 * 1024
MAX_NAMED_RESOURCES = 25  # per service and key: the rest are counted, not named


class UnknownGrant(LookupError):
    """A grant to retire or revoke that grantwatch has never seen."""

    def __init__(self, grant_id: str) -> None:
        super().__init__(f"no grant {grant_id} is recorded: grantwatch cannot say what depends on it")
        self.grant_id = grant_id


def scenario_of(
    *,
    delete_roles: Sequence[str] = (),
    replace_roles: Sequence[str] = (),
    disable_keys: Sequence[str] = (),
    delete_keys: Sequence[str] = (),
    retire_grants: Sequence[str] = (),
    revoke_grants: Sequence[str] = (),
    plan: Path | None = None,
) -> Scenario:
    """The question the command line asks. ImpactInputError or PlanError: a usage error."""
    asked = [
        *(Hypothesis(ChangeKind.ROLE_DELETED, parse_role(r), "--delete-role") for r in delete_roles),
        *(Hypothesis(ChangeKind.ROLE_REPLACED, parse_role(r), "--replace-role") for r in replace_roles),
        *(Hypothesis(ChangeKind.KEY_DISABLED, parse_key(k), "--disable-key") for k in disable_keys),
        *(
            Hypothesis(ChangeKind.KEY_PENDING_DELETION, parse_key(k), "--schedule-key-deletion")
            for k in delete_keys
        ),
        *(Hypothesis(ChangeKind.GRANT_RETIRED, _grant_id(g), "--retire-grant") for g in retire_grants),
        *(Hypothesis(ChangeKind.GRANT_REVOKED, _grant_id(g), "--revoke-grant") for g in revoke_grants),
    ]
    from_plan = Scenario(())
    if plan is not None:
        try:
            if plan.stat().st_size > MAX_PLAN_BYTES:
                raise PlanError(f"{plan} is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MB")
            data = plan.read_bytes()
        except OSError as error:
            raise PlanError(f"cannot read {plan}: {error}") from None
        from_plan = read_plan(plan_text(data, plan.name))
    if not asked and plan is None:
        raise ImpactInputError(
            "ask about something: --delete-role, --replace-role, --disable-key, --schedule-key-deletion, "
            "--retire-grant, --revoke-grant or --plan"
        )
    notes = from_plan.notes
    if plan is not None and not from_plan.hypotheses:
        notes = (*notes, f"{plan.name} deletes or replaces no IAM role, KMS key or KMS grant")
    return Scenario((*asked, *from_plan.hypotheses), from_plan.functions, notes)


def _grant_id(value: str) -> str:
    if 1 <= len(value) <= 128 and value.isascii() and value.isalnum():
        return value
    raise ImpactInputError(f"not a grant id: {value[:160]!r}")


def assess_impact(
    scenario: Scenario,
    grants: GrantStore,
    functions: FunctionReader,
    hazards: HazardReader,
    *,
    now: datetime,
    temporary_role: str | None = None,
) -> Impact:
    """What the scenario would break, from what the table knows now."""
    states: dict[str, FunctionState | None] = {}
    for hypothesis in scenario.hypotheses:
        if hypothesis.kind.on_grant:
            grant = grants.get(hypothesis.target)
            if grant is None:
                raise UnknownGrant(hypothesis.target)
            if grant.terms is not None and grant.terms.function_arn:
                states.setdefault(grant.terms.function_arn, functions.get(grant.terms.function_arn))
    if any(h.kind.on_role or h.kind.on_key for h in scenario.hypotheses):
        for state, _ in functions.all_functions():
            states[state.function_arn] = state
    known = [
        KnownFunction(arn, state, tuple(grants.grants(function=arn))) for arn, state in sorted(states.items())
    ]
    key_grants = _grants_on_keys(scenario, known, grants)
    for arn in sorted({g.terms.function_arn for g in key_grants if g.terms and g.terms.function_arn}):
        if arn not in states:  # a function known only from a grant it has not been evaluated for yet
            known.append(KnownFunction(arn, None, tuple(grants.grants(function=arn))))
    impact = analyse(
        scenario,
        [_with_hazards(function, hazards) for function in known],
        now=now,
        temporary_role=temporary_role,
    )
    return Impact(
        impact.scenario,
        impact.functions,
        other_grants_on_keys(scenario, key_grants),
        resources_on_changed_keys(scenario, key_grants, now=now, key_states=_key_states(key_grants, hazards)),
    )


def _key_states(grants: list[GrantState], hazards: HazardReader) -> dict[str, KeyState]:
    """The recorded state of each key the grants are on (a key never seen changing is left out)."""
    found = {arn: hazards.key(arn) for arn in sorted({g.key_arn for g in grants})}
    return {arn: status.state for arn, status in found.items() if status is not None}


def _with_hazards(function: KnownFunction, hazards: HazardReader) -> KnownFunction:
    """The function with the recorded state of its key and role: one already cut off is not news."""
    located = locate(function.function_arn, function.grants, function.state)
    if not isinstance(located, Dependency):
        return function
    ref = located.role_ref
    return replace(function, key=hazards.key(located.key_arn), role=hazards.role(*ref) if ref else None)


def _grants_on_keys(scenario: Scenario, known: list[KnownFunction], grants: GrantStore) -> list[GrantState]:
    """Every grant on the scenario's keys. A bare key id is matched to the key ARNs already seen, else to
    every key with a recorded grant (a scan of the keys-only by-key index)."""
    seen = {g.key_arn for f in known for g in f.grants} | {
        f.state.kms_key_arn for f in known if f.state and f.state.kms_key_arn
    }
    arns: set[str] = set()
    every_key: set[str] | None = None
    for hypothesis in scenario.hypotheses:
        if hypothesis.kind.on_key:
            if hypothesis.target.startswith("arn:"):
                arns.add(hypothesis.target)
                continue
            found = {arn for arn in seen if key_matches(hypothesis.target, arn)}
            key_arns = getattr(grants, "key_arns", None)  # KnownGrants: every key with a grant
            if not found and key_arns is not None:  # a key only other services use
                every_key = set(key_arns()) if every_key is None else every_key
                found = {arn for arn in every_key if key_matches(hypothesis.target, arn)}
            arns |= found
    return [g for arn in sorted(arns) for g in grants.grants(key=arn)]


def affects_anything(impact: Impact) -> bool:
    """A function would lose decrypt, or a covered service's resource would lose its key."""
    return bool(impact.breaks or impact.resources)


def _service_json(hit: ServiceImpact) -> dict[str, Any]:
    entry, effect = SERVICES[hit.service], hit.effect
    named = hit.resources[:MAX_NAMED_RESOURCES]
    return {
        "service": hit.service.value,
        "title": entry.title,
        "resourceKind": entry.resource_kind,
        "keyArn": hit.key_arn,
        "change": hit.cause.kind.value,
        "source": hit.cause.source,
        "count": len(hit.resources),
        "resources": [
            {
                "resourceId": r.resource_id,
                "account": r.account,
                "region": r.region,
                "usableGrants": r.usable_grants,
            }
            for r in named
        ],
        "unnamed": len(hit.resources) - len(named),
        "effect": {
            "whatHappens": effect.what_happens,
            "takesEffect": effect.takes_effect,
            "resourceState": effect.resource_state,
            "irreversible": effect.irreversible,
            "irreversibleAfterSeconds": (
                int(effect.irreversible_after.total_seconds()) if effect.irreversible_after else None
            ),
            "endsWithKeyDeletion": effect.ends_with_key_deletion,
            "recovery": effect.recovery,
            "sources": [{"title": s.title, "url": s.url} for s in effect.sources],
        },
        "deadline": utc_iso(hit.deadline) if hit.deadline else None,
    }


def _covered(impact: Impact) -> set[tuple[str, str, str]]:
    """(key, service, resource) of every resource counted under a covered service."""
    return {(h.key_arn, h.service.value, r.resource_id) for h in impact.resources for r in h.resources}


def impact_json(impact: Impact) -> dict[str, Any]:
    """The answer as stable JSON, for pipelines."""
    scenario = impact.scenario
    counts = {outcome: sum(f.outcome is outcome for f in impact.functions) for outcome in Outcome}
    covered = _covered(impact)
    return {
        "breaks": bool(impact.breaks),
        "changes": [
            {"change": h.kind.value, "target": h.target, "source": h.source, "note": h.note}
            for h in scenario.hypotheses
        ],
        "functions": [
            {
                "functionArn": f.function_arn,
                "functionName": f.name,
                "outcome": f.outcome.value,
                "keyArn": f.key_arn,
                "executionRole": f.role,
                "causes": [
                    {"change": h.kind.value, "target": h.target, "source": h.source} for h in f.causes
                ],
                "reasons": list(f.reasons),
                "fix": fixes_json(f.fix),
                "grantsLost": list(f.grants_lost),
                "usableGrantAfter": f.usable_after,
            }
            for f in impact.functions
        ],
        "otherGrants": [
            {
                "grantId": g.grant_id,
                "keyArn": g.key_arn,
                "service": g.terms.service if g.terms else None,
                "resource": g.terms.resource if g.terms else None,
                "granteePrincipal": g.terms.grantee_principal if g.terms else None,
                "createdAt": utc_iso(g.created_at) if g.created_at else None,
                "coveredResource": g.terms is not None
                and (g.key_arn, g.terms.service or "", g.terms.resource or "") in covered,
            }
            for g in impact.other_grants
        ],
        "resources": [_service_json(hit) for hit in impact.resources],
        "notes": list(scenario.notes),
        "summary": {
            "breaks": counts[Outcome.BREAKS],
            "regranted": counts[Outcome.REGRANTED],
            "unharmed": counts[Outcome.UNHARMED],
            "alreadyAtRisk": counts[Outcome.ALREADY_AT_RISK],
            "otherGrants": len(impact.other_grants),
            "resources": sum(len(hit.resources) for hit in impact.resources),
        },
    }


def _do_lines(fix: dict[str, Any]) -> list[str]:
    """One fix of the JSON report as "do" lines, rendered as the alerts render it."""
    head, *rest = rendered(fix)
    return [f"  do        {head}", *(f"          {line}" for line in rest)]


def impact_lines(report: dict[str, Any]) -> list[tuple[str, bool]]:
    """The answer for people: (line, is a heading) pairs."""
    lines: list[tuple[str, bool]] = []
    summary = report["summary"]
    verdict = (
        f"{summary['breaks']} function(s) would lose decrypt"
        if report["breaks"]
        else "no function would lose decrypt"
    )
    lines.append((verdict, True))
    for change in report["changes"]:
        note = f" ({change['note']})" if change["note"] else ""
        lines.append((f"  change  {change['change']} {change['target']}  [{change['source']}]{note}", False))
    for function in report["functions"]:
        lines.append(("", False))
        lines.append((f"{function['functionName']}  {function['outcome'].upper()}", True))
        lines.append((f"  function  {function['functionArn']}", False))
        lines.append((f"  key       {function['keyArn'] or '-'}", False))
        lines.append((f"  role      {function['executionRole'] or '-'}", False))
        lines += [(f"  why       {reason}", False) for reason in function["reasons"]]
        lines += [(line, False) for fix in function["fix"] for line in _do_lines(fix)]
    lines += _resource_lines(report["resources"])
    uncovered = [g for g in report["otherGrants"] if not g["coveredResource"]]
    if uncovered:
        lines.append(("", False))
        lines.append(
            (
                f"{len(uncovered)} grant(s) of other services on the key(s), also affected "
                "(what their service does is not in the catalogue):",
                True,
            )
        )
        for grant in uncovered:
            what = " ".join(filter(None, (grant["service"], grant["resource"]))) or "unknown"
            lines.append(
                (f"  grant {grant['grantId']}  for {what}  grantee {grant['granteePrincipal']}", False)
            )
    for note in report["notes"]:
        lines.append((f"note: {note}", False))
    return lines


def _resource_lines(services: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Each covered service's resources on a changed key: what happens to them, and by when."""
    if not services:
        return []
    total = sum(s["count"] for s in services)
    lines: list[tuple[str, bool]] = [
        ("", False),
        (f"{total} resource(s) of other services would lose their key:", True),
    ]
    for service in services:
        effect = service["effect"]
        names = ", ".join(r["resourceId"] for r in service["resources"])
        more = f" and {service['unnamed']} more" if service["unnamed"] else ""
        lines.append(("", False))
        lines.append(
            (
                f"{service['title']}: {service['count']} {service['resourceKind']}(s)  "
                f"{service['change'].upper()}",
                True,
            )
        )
        lines.append((f"  key       {service['keyArn']}  [{service['source']}]", False))
        lines.append((f"  on it     {names}{more}", False))
        lines.append((f"  what      {effect['whatHappens']}", False))
        lines.append((f"  when      {effect['takesEffect']}", False))
        if effect["resourceState"]:
            lines.append((f"  state     {effect['resourceState']}", False))
        if service["deadline"]:
            lines.append(
                (
                    f"  deadline  {service['deadline']}: {effect['irreversible']}, unless the key is enabled "
                    "before then",
                    False,
                )
            )
        if effect["endsWithKeyDeletion"]:
            lines.append((f"  deleted   at the end of the key's waiting period: {KEY_DELETED}", False))
        lines.append((f"  back      {effect['recovery']}", False))
        lines += [(f"  source    {s['title']}  {s['url']}", False) for s in effect["sources"]]
    return lines
