"""What the CLI's queries answer, as stable JSON rows. Every read is a key or index query: no scan."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grantwatch.adapters.functions import DynamoFunctionStore, IncidentRecord
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.functions import function_name
from grantwatch.domain.lineage import GrantState
from grantwatch.domain.risk import Verdict, assess


def function_rows(
    grants: DynamoGrantStore, functions: DynamoFunctionStore, *, at_risk: bool
) -> list[dict[str, Any]]:
    """Every known function: its key and role, its grants, its verdict now, its open incident."""
    rows = []
    for function, open_incident in functions.all_functions():
        states = list(grants.grants(function=function.function_arn))
        assessment = assess(function.function_arn, states, function)
        if at_risk and not (open_incident or assessment.verdict is Verdict.AT_RISK):
            continue
        rows.append(
            {
                "functionArn": function.function_arn,
                "functionName": function_name(function.function_arn),
                "keyArn": assessment.key_arn or function.kms_key_arn,
                "executionRole": assessment.role,
                "deleted": function.deleted,
                "grants": {
                    "active": sum(s.ended is None for s in states),
                    "ended": sum(s.ended is not None for s in states),
                },
                "usableGrantId": assessment.usable.grant_id if assessment.usable else None,
                "verdict": assessment.verdict.value,
                "reason": assessment.reason,
                "openIncidentId": open_incident,
            }
        )
    return sorted(rows, key=lambda row: row["functionArn"])


def incident_row(record: IncidentRecord) -> dict[str, Any]:
    incident = record.incident
    return {
        "incidentId": incident.incident_id,
        "status": record.status,
        "functionArn": incident.function_arn,
        "keyArn": incident.key_arn,
        "alertType": incident.alert_type,
        "grantId": incident.grant_id,
        "endedBy": incident.ended_by,
        "endedAt": utc_iso(incident.ended_at),
        "detectedAt": utc_iso(incident.detected_at),
        "alertSentAt": utc_iso(record.notified_at) if record.notified_at else None,
        "resolvedAt": utc_iso(record.resolved_at) if record.resolved_at else None,
        "resolvedReason": record.resolved_reason,
        "resolvedByGrantId": record.resolved_grant_id,
    }


def incident_rows(functions: DynamoFunctionStore, *, open_only: bool) -> list[dict[str, Any]]:
    rows = [incident_row(r) for r in functions.all_incidents() if not open_only or r.status == "open"]
    return sorted(rows, key=lambda row: (row["detectedAt"], row["incidentId"]), reverse=True)


def lineage_rows(
    grants: DynamoGrantStore,
    functions: DynamoFunctionStore,
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
