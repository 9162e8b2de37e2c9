"""Stable JSON shapes of grants and their lineage, for `--json` and for anything that reads them."""

from __future__ import annotations

from typing import Any

from grantwatch.domain.facts import FactKind, GrantFact, utc_iso
from grantwatch.domain.hazards import KeyFact
from grantwatch.domain.lineage import GrantState


def grant_json(state: GrantState) -> dict[str, Any]:
    terms = state.terms
    ended = state.ended
    created = state.created
    return {
        "grantId": state.grant_id,
        "keyArn": state.key_arn,
        "account": state.account,
        "region": state.region,
        "granteePrincipal": terms.grantee_principal if terms else None,
        "retiringPrincipal": terms.retiring_principal if terms else None,
        "operations": list(terms.operations) if terms else [],
        "constraints": terms.constraints if terms else {},
        "name": terms.name if terms else None,
        "functionArn": terms.function_arn if terms else None,
        "service": terms.service if terms else None,
        "resource": terms.resource if terms else None,
        "state": state.status.value,
        "createdAt": utc_iso(created.event_time) if created else None,
        "createdBy": created.actor.principal if created else None,
        "createdVia": created.actor.via if created else None,
        "endedAt": utc_iso(ended.event_time) if ended else None,
        "endedBy": ended.actor.principal if ended else None,
        "endedVia": ended.actor.via if ended else None,
        "endedHow": ended.kind.value if ended else None,
    }


def lineage_event_json(fact: GrantFact) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventTime": utc_iso(fact.event_time),
        "eventName": fact.event_name,
        "eventID": fact.event_id,
        "what": fact.kind.value,
        "by": fact.actor.principal,
        "identityType": fact.actor.identity_type,
        "via": fact.actor.via,
        "sourceIp": fact.actor.source_ip,
        "keyRef": fact.key_ref,
        "source": fact.source,
    }
    if fact.kind is FactKind.CREATED and fact.terms is not None:
        body |= {
            "granteePrincipal": fact.terms.grantee_principal,
            "retiringPrincipal": fact.terms.retiring_principal,
            "operations": list(fact.terms.operations),
            "constraints": fact.terms.constraints,
        }
    return body


def key_event_json(fact: KeyFact) -> dict[str, Any]:
    """A change to the grant's key, in the same shape as the grant's own lineage events."""
    return {
        "eventTime": utc_iso(fact.event_time),
        "eventName": fact.event_name,
        "eventID": fact.event_id,
        "what": f"key-{fact.change.value}",
        "by": fact.actor.principal,
        "identityType": fact.actor.identity_type,
        "via": fact.actor.via,
        "sourceIp": fact.actor.source_ip,
        "keyRef": fact.key_arn,
        "source": fact.source,
        "deletionDate": utc_iso(fact.deletion_date) if fact.deletion_date else None,
    }
