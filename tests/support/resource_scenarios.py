"""CloudTrail records of other services' grants on a key, written from the documented shapes: the KMS
developer guide's CreateGrant and RetireGrant examples, DynamoDB's grant (grantee and retiring principal
the Regional service principal, `encryptionContextSubset` with the table's name and the account) and
EBS's (grantee the instance's EC2 infrastructure principal, `encryptionContextSubset` with the volume's
id, retired by EC2 when the volume is detached). Other services' grants follow the same shape, with the
catalogue's context key and the service's own principal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grantwatch.domain.hazards import KeyChange, KeyFact, KeyState, KeyStatus
from grantwatch.domain.resource_alerts import ResourceIncident, decide
from grantwatch.domain.resources import SEEN_BY_READ_API, SEEN_IN_LINEAGE, ResourceOnKey
from grantwatch.domain.services import Service
from tests.support.incidents import ADMIN, T0
from tests.support.samples import ACCOUNT, KEY_ARN, REGION, load_event
from tests.support.scenarios import _event_id, grant_id


def service_grant(
    service: str,
    resource: str,
    at: str,
    *,
    context_key: str | None = None,
    key: str = KEY_ARN,
    label: str = "",
) -> dict[str, Any]:
    """The CreateGrant a service makes for one of its resources (the resource and `label` name the grant)."""
    if service == "ebs":
        event = load_event("kms-create-grant-ebs-volume.json")
        parameters = event["detail"]["requestParameters"]
        parameters["constraints"] = {"encryptionContextSubset": {"aws:ebs:id": resource}}
        parameters["granteePrincipal"] = f"{ACCOUNT}:aws:ec2-infrastructure:i-0{grant_id(resource)[:16]}"
    else:
        event = load_event("kms-create-grant-dynamodb-service-principal.json")
        principal = f"{service}.{REGION}.amazonaws.com"
        detail = event["detail"]
        detail["userIdentity"]["invokedBy"] = detail["sourceIPAddress"] = f"{service}.amazonaws.com"
        detail["userAgent"] = f"{service}.amazonaws.com"
        context = (
            {"aws:dynamodb:tableName": resource, "aws:dynamodb:subscriberId": ACCOUNT}
            if service == "dynamodb"
            else {context_key or f"aws:{service}:id": resource}
        )
        detail["requestParameters"] |= {
            "granteePrincipal": principal,
            "retiringPrincipal": principal,
            "constraints": {"encryptionContextSubset": context},
        }
    detail = event["detail"]
    detail |= {"eventTime": at, "eventID": _event_id(f"create {service} {resource} {at}")}
    detail["requestParameters"]["keyId"] = key
    detail["resources"][0]["ARN"] = key
    detail["responseElements"] = {"grantId": grant_id(f"{service} {resource}{label}"), "keyId": key}
    return event


def retired_by_service(service: str, resource: str, at: str, *, key: str = KEY_ARN) -> dict[str, Any]:
    """The service retires its own grant (a table deleted, a volume detached, a backup taken): the KMS
    guide's RetireGrant record, made by the service (`AWSService`, invoked by its principal)."""
    event = load_event("kms-retire-grant-by-lambda-service.json")
    acting = "ec2" if service == "ebs" else service
    detail = event["detail"]
    detail |= {"eventTime": at, "eventID": _event_id(f"retire {service} {resource} {at}")}
    detail["userIdentity"] = {"type": "AWSService", "invokedBy": f"{acting}.amazonaws.com"}
    detail["additionalEventData"]["grantId"] = grant_id(f"{service} {resource}")
    detail["resources"][0]["ARN"] = key
    detail["responseElements"] = {"keyId": key}
    return event


def revoked_by_person(service: str, resource: str, at: str) -> dict[str, Any]:
    """A person revokes the service's grant (the KMS guide's RevokeGrant record: the key as typed)."""
    event = load_event("kms-revoke-grant-bare-key-id.json")
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"revoke {service} {resource} {at}")}
    event["detail"]["requestParameters"]["grantId"] = grant_id(f"{service} {resource}")
    return event


def revoked_by_service(service: str, resource: str, at: str) -> dict[str, Any]:
    """The service revokes its own grant: its churn, whatever the call."""
    event = revoked_by_person(service, resource, at)
    acting = "ec2" if service == "ebs" else service
    event["detail"]["userIdentity"] = {"type": "AWSService", "invokedBy": f"{acting}.amazonaws.com"}
    event["detail"]["sourceIPAddress"] = f"{acting}.amazonaws.com"
    event["detail"]["eventID"] = _event_id(f"service-revoke {service} {resource} {at}")
    return event


def with_deletion_date(event: dict[str, Any], date: str, days: int) -> dict[str, Any]:
    """A ScheduleKeyDeletion with its own deletion date, written as CloudTrail writes it."""
    response = event["detail"]["responseElements"]
    response["deletionDate"] = date
    response["pendingWindowInDays"] = event["detail"]["requestParameters"]["pendingWindowInDays"] = days
    return event


def on_key(service: str, *names: str, usable: int = 1, state: str | None = None) -> list[ResourceOnKey]:
    """Resources of one service on the sample key, as `resources_on_key` gives them."""
    seen = frozenset({SEEN_IN_LINEAGE} if usable else set()) | (
        frozenset({SEEN_BY_READ_API}) if state else frozenset()
    )
    return [
        ResourceOnKey(Service(service), name, KEY_ARN, ACCOUNT, REGION, usable, seen, state, None)
        for name in names
    ]


def key_status(state: KeyState, at: datetime, *, deletion: datetime | None = None) -> KeyStatus:
    change = {
        KeyState.DISABLED: (KeyChange.DISABLED, "DisableKey"),
        KeyState.PENDING_DELETION: (KeyChange.DELETION_SCHEDULED, "ScheduleKeyDeletion"),
        KeyState.ENABLED: (KeyChange.ENABLED, "EnableKey"),
    }[state]
    fact = KeyFact(change[0], KEY_ARN, f"e-{change[1]}-{at:%H%M%S}", at, change[1], ADMIN, deletion)
    return KeyStatus(KEY_ARN, state, fact, deletion)


def resource_incident(
    service: str = "dynamodb",
    state: KeyState = KeyState.DISABLED,
    *,
    names: tuple[str, ...] = ("orders",),
    at: datetime = T0,
    deletion: datetime | None = None,
) -> ResourceIncident:
    """The incident a key loss opens for one service's resources (through the pure decision)."""
    [decision] = decide(KEY_ARN, key_status(state, at, deletion=deletion), on_key(service, *names), {}, at)
    assert decision.incident is not None
    return decision.incident
