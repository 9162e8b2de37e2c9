"""What the CLI's queries answer, as stable JSON rows. Every read is a key or index query: no scan, but
for `grant_rows` asked for no key, function or grantee."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.canary import Heartbeat
from grantwatch.domain.coverage import Coverage
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.functions import FunctionState, function_name
from grantwatch.domain.hazards import KeyFact, RoleFact, role_of
from grantwatch.domain.lineage import GrantState, GrantStatus
from grantwatch.domain.notices import incident_details
from grantwatch.domain.risk import Verdict
from grantwatch.evaluator import assess_known
from grantwatch.ports import IncidentRecord
from grantwatch.views import grant_json, key_event_json, lineage_event_json


def function_rows(
    grants: DynamoGrantStore,
    functions: DynamoFunctionStore,
    hazards: DynamoHazardStore,
    *,
    at_risk: bool,
    account: str | None = None,
    in_region: str | None = None,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Every known function (or those of an account or region, by their ARNs; or those that depend on a
    key, every one of those an alert about the key counts): its key and role, its grants, its verdict
    now, its open incident."""
    rows = []
    known = functions.all_functions() if key is None else _dependents(functions, hazards, key)
    for function, open_incident in known:
        if not placed(function.function_arn, account, in_region):
            continue
        states = list(grants.grants(function=function.function_arn))
        assessment, _ = assess_known(hazards, function.function_arn, states, function)
        if at_risk and not (open_incident or assessment.verdict is Verdict.AT_RISK):
            continue
        rows.append(
            {
                "functionArn": function.function_arn,
                "functionName": function_name(function.function_arn),
                "keyArn": assessment.key_arn or function.kms_key_arn,
                "executionRole": assessment.role,
                "deleted": function.deleted,
                "grants": {status.value: sum(s.status is status for s in states) for status in GrantStatus},
                "usableGrantId": assessment.usable.grant_id if assessment.usable else None,
                "verdict": assessment.verdict.value,
                "reason": assessment.reason,
                "cause": assessment.cause.value if assessment.cause else None,
                "openIncidentId": open_incident,
            }
        )
    return sorted(rows, key=lambda row: row["functionArn"])


def _dependents(
    functions: DynamoFunctionStore, hazards: DynamoHazardStore, key: str
) -> Iterator[tuple[FunctionState, str | None]]:
    """The functions whose last evaluation found them on the key (its dependency items: one query), with
    their open incident's id."""
    for function_arn in hazards.dependents_of_key(key):
        state = functions.get(function_arn)
        if state is not None:
            yield state, functions.open_incident_id(function_arn)


def incident_row(record: IncidentRecord) -> dict[str, Any]:
    """The incident as stored and as its notices state it, with where its notices, confirmation and heal
    stand."""
    incident = record.incident
    return incident_details(incident) | {
        "status": record.status,
        "alertSentAt": utc_iso(record.notified_at) if record.notified_at else None,
        "confirmed": record.confirmed,
        "firstFailureAt": utc_iso(record.first_failure_at) if record.first_failure_at else None,
        "failures": record.failure_count,
        "leadTimeSeconds": int(record.lead_time.total_seconds()) if record.lead_time is not None else None,
        "resolvedAt": utc_iso(record.resolved_at) if record.resolved_at else None,
        "resolvedReason": record.resolved_reason,
        "resolvedByGrantId": record.resolved_grant_id,
        "supersededBy": record.superseded_by,
        "heal": record.heal if record.heal["attempts"] else None,
    }


def incident_rows(functions: DynamoFunctionStore, *, open_only: bool) -> list[dict[str, Any]]:
    rows = [incident_row(r) for r in functions.all_incidents() if not open_only or r.status == "open"]
    return sorted(rows, key=lambda row: (row["detectedAt"], row["incidentId"]), reverse=True)


def lineage_rows(
    grants: DynamoGrantStore,
    functions: DynamoFunctionStore,
    hazards: DynamoHazardStore,
    *,
    function: str | None = None,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The timeline of one function or one key: every grant event, and every alert and resolved notice."""
    states: list[GrantState] = list(grants.grants(function=function, key=key))
    rows = [_grant_row(state, fact) for state in states for fact in state.lineage]
    function_arns = (
        {function} if function else {s.terms.function_arn for s in states if s.terms and s.terms.function_arn}
    )
    for arn in sorted(a for a in function_arns if a):
        for record in functions.incidents_of(arn):
            incident = record.incident
            if key and incident.key_arn != key:
                continue
            base = {
                "functionArn": arn,
                "keyArn": incident.key_arn,
                "grantId": incident.grant_id,
                "incidentId": incident.incident_id,
            }
            rows.append(
                base
                | {"time": utc_iso(incident.detected_at), "what": "alert", "alertType": incident.alert_type}
            )
            if record.resolved_at:
                rows.append(
                    base
                    | {
                        "time": utc_iso(record.resolved_at),
                        "what": "resolved",
                        "reason": record.resolved_reason,
                        "byGrantId": record.resolved_grant_id,
                    }
                )
    keys = {key} if key else {s.key_arn for s in states}
    for key_arn in sorted(keys):
        rows += [key_row(fact) for fact in hazards.key_lineage(key_arn)]
    roles = {role_of(s.terms.grantee_principal) for s in states if s.terms and s.terms.function_arn}
    for ref in sorted(r for r in roles if r):
        rows += [role_row(fact) for fact in hazards.role_lineage(*ref)]
    low, high = (utc_iso(since) if since else None), (utc_iso(until) if until else None)
    kept = [r for r in rows if (low is None or r["time"] >= low) and (high is None or r["time"] <= high)]
    return sorted(kept, key=lambda row: (row["time"], row["what"] != "created", row.get("eventID", "")))


def _grant_row(state: GrantState, fact: Any) -> dict[str, Any]:
    terms = state.terms
    return {
        "time": utc_iso(fact.event_time),
        "what": fact.kind.value,
        "grantId": state.grant_id,
        "keyArn": state.key_arn,
        "functionArn": terms.function_arn if terms else None,
        "service": terms.service if terms else None,
        "eventName": fact.event_name,
        "eventID": fact.event_id,
        "by": fact.actor.principal,
        "via": fact.actor.via,
        "source": fact.source,
    }


def key_row(fact: KeyFact) -> dict[str, Any]:
    """A key-state or key-policy change, as a lineage row."""
    return {
        "time": utc_iso(fact.event_time),
        "what": f"key-{fact.change.value}",
        "keyArn": fact.key_arn,
        "eventName": fact.event_name,
        "eventID": fact.event_id,
        "by": fact.actor.principal,
        "via": fact.actor.via,
        "source": fact.source,
        "deletionDate": utc_iso(fact.deletion_date) if fact.deletion_date else None,
    }


def role_row(fact: RoleFact) -> dict[str, Any]:
    return {
        "time": utc_iso(fact.event_time),
        "what": f"role-{fact.change.value}",
        "role": f"{fact.account}/{fact.role_name}",
        "roleId": fact.role_id,
        "eventName": "CreateRole" if fact.change.value == "created" else "DeleteRole",
        "eventID": fact.event_id,
        "by": fact.actor.principal,
        "via": fact.actor.via,
        "source": "cloudtrail",
    }


def grant_rows(
    grants: DynamoGrantStore,
    *,
    key: str | None = None,
    function: str | None = None,
    grantee: str | None = None,
    status: GrantStatus | None = None,
    account: str | None = None,
    in_region: str | None = None,
) -> list[dict[str, Any]]:
    """Grants, newest first: an index query with a key, function or grantee; with only an account or
    region, the keys-only by-key index (a key ARN carries both); else a scan of the table."""
    if (account or in_region) and not (function or grantee):
        found: Iterable[GrantState] = grants_placed(grants, account, in_region, key=key, status=status)
    else:
        found = (
            grant
            for grant in grants.grants(key=key, function=function, grantee=grantee, status=status)
            if placed(grant.key_arn, account, in_region)
        )
    return sorted(
        (grant_json(s) for s in found), key=lambda g: (g["createdAt"] or "", g["grantId"]), reverse=True
    )


def grant_history(
    grants: DynamoGrantStore, hazards: DynamoHazardStore, grant_id: str
) -> dict[str, Any] | None:
    """A grant and every event that touched it or changed its key's state, in eventTime order."""
    state = grants.get(grant_id)
    if state is None:
        return None
    events = [lineage_event_json(f) for f in state.lineage]
    events += [key_event_json(f) for f in hazards.key_lineage(state.key_arn)]
    events.sort(key=lambda e: (e["eventTime"], e["eventID"]))
    return {"grant": grant_json(state), "lineage": events}


def coverage_rows(
    coverage: Iterable[Coverage], open_incident_functions: Iterable[str], heartbeats: Iterable[Heartbeat] = ()
) -> list[dict[str, Any]]:
    """`grantwatch accounts`: each account-region's coverage with its open incidents, counted from the
    function ARNs of the open incidents (an ARN carries account and region), and its canary's heartbeats:
    the latest of each path, and the latest of all (None: never heard)."""
    counts: dict[tuple[str, str], int] = {}
    for function_arn in open_incident_functions:
        parts = function_arn.split(":")
        if len(parts) > 4:
            counts[(parts[4], parts[3])] = counts.get((parts[4], parts[3]), 0) + 1
    beats: dict[tuple[str, str], dict[str, datetime]] = {}
    for beat in heartbeats:
        beats.setdefault((beat.account, beat.region), {})[beat.path] = beat.at
    return [
        c.as_json()
        | {"openIncidents": counts.get((c.account, c.region), 0)}
        | _heartbeat_fields(beats.get((c.account, c.region), {}))
        for c in sorted(coverage, key=lambda c: (c.account, c.region))
    ]


def _heartbeat_fields(paths: dict[str, datetime]) -> dict[str, Any]:
    return {
        "lastHeartbeatAt": utc_iso(max(paths.values())) if paths else None,
        "heartbeats": {path: utc_iso(at) for path, at in sorted(paths.items())},
    }


def placed(arn: str | None, account: str | None, region: str | None) -> bool:
    """Whether an ARN (a function's, a key's: both carry them) is in the account and region asked for."""
    parts = (arn or "").split(":")
    if len(parts) < 6:
        return account is None and region is None
    return (account is None or parts[4] == account) and (region is None or parts[3] == region)


def grants_placed(
    grants: DynamoGrantStore,
    account: str | None,
    region: str | None,
    *,
    key: str | None = None,
    status: GrantStatus | None = None,
) -> Iterator[GrantState]:
    """The grants on the keys of an account and region: the keys from the keys-only by-key index (a key
    ARN carries its account and region), then each key's grants by the same index. No new index, no scan
    of the table."""
    keys = [key] if key else sorted(grants.key_arns())
    for key_arn in keys:
        if placed(key_arn, account, region):
            yield from grants.grants(key=key_arn, status=status)
