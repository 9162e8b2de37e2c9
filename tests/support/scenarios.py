"""Scenario events built from the samples in events/: the same record shapes, other ids and times."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from grantwatch.domain.notices import Notice
from grantwatch.pipeline import LocalPipeline
from tests.support.samples import ACCOUNT, KEY_ARN, REGION, load_event


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def grant_id(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _event_id(label: str) -> str:
    return str(uuid.UUID(hashlib.md5(label.encode()).hexdigest()))  # noqa: S324 - an id, not a secret


# The AWS managed key aws/lambda of the account: a function with environment variables and no KMSKeyArn.
AWS_LAMBDA_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/9c8b7a69-5e4d-4c3b-8a29-1f0e9d8c7b6a"


def create_grant(
    function: str, grant: str, at: str, *, role: str | None = None, key: str | None = None
) -> dict[str, Any]:
    event = load_event("kms-create-grant-lambda.json")
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role or function + '-role'}/{function}"
    detail = event["detail"]
    detail |= {"eventTime": at, "eventID": _event_id(f"create {grant} {at}")}
    if key is not None:
        detail["requestParameters"]["keyId"] = detail["responseElements"]["keyId"] = key
    detail["requestParameters"] |= {
        "granteePrincipal": session,
        "retiringPrincipal": session,
        "constraints": {"encryptionContextEquals": {"aws:lambda:FunctionArn": function_arn(function)}},
    }
    detail["responseElements"]["grantId"] = grant_id(grant)
    return event


def retire_grant(grant: str, at: str, *, by_lambda: bool = False) -> dict[str, Any]:
    sample = "kms-retire-grant-by-lambda-service.json" if by_lambda else "kms-retire-grant-by-admin.json"
    event = load_event(sample)
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"retire {grant} {at}")}
    event["detail"]["additionalEventData"]["grantId"] = grant_id(grant)
    return event


def revoke_grant(grant: str, at: str) -> dict[str, Any]:
    event = load_event("kms-revoke-grant-bare-key-id.json")
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"revoke {grant} {at}")}
    event["detail"]["requestParameters"]["grantId"] = grant_id(grant)
    return event


def update_function(
    function: str, at: str, *, role: str | None = None, key: str | None = KEY_ARN
) -> dict[str, Any]:
    event = load_event("lambda-update-function-configuration.json")
    detail = event["detail"]
    detail |= {"eventTime": at, "eventID": _event_id(f"update {function} {at}")}
    detail["requestParameters"]["functionName"] = function
    response = detail["responseElements"]
    response |= {
        "functionName": function,
        "functionArn": function_arn(function),
        "role": f"arn:aws:iam::{ACCOUNT}:role/{role or function + '-role'}",
    }
    if key is None:
        del response["kMSKeyArn"]
    else:
        response["kMSKeyArn"] = key
    return event


def delete_function(function: str, at: str) -> dict[str, Any]:
    event = load_event("lambda-delete-function.json")
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"delete {function} {at}")}
    event["detail"]["requestParameters"]["functionName"] = function
    return event


def _key_event(sample: str, at: str, label: str) -> dict[str, Any]:
    event = load_event(sample)
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"{label} {at}")}
    return event


def disable_key(at: str) -> dict[str, Any]:
    return _key_event("kms-disable-key.json", at, "disable")


def enable_key(at: str) -> dict[str, Any]:
    return _key_event("kms-enable-key.json", at, "enable")


def schedule_key_deletion(at: str) -> dict[str, Any]:
    return _key_event("kms-schedule-key-deletion.json", at, "schedule-deletion")


def cancel_key_deletion(at: str) -> dict[str, Any]:
    return _key_event("kms-cancel-key-deletion.json", at, "cancel-deletion")


def put_key_policy(at: str) -> dict[str, Any]:
    return _key_event("kms-put-key-policy.json", at, "put-policy")


def delete_role(role: str, at: str) -> dict[str, Any]:
    event = load_event("iam-delete-role.json")
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"delete-role {role} {at}")}
    event["detail"]["requestParameters"]["roleName"] = role
    return event


def create_role(role: str, at: str) -> dict[str, Any]:
    event = load_event("iam-create-role.json")
    event["detail"] |= {"eventTime": at, "eventID": _event_id(f"create-role {role} {at}")}
    event["detail"]["requestParameters"]["roleName"] = role
    created = event["detail"]["responseElements"]["role"]
    created |= {
        "roleName": role,
        "roleId": "AROA" + hashlib.sha256(f"{role} {at}".encode()).hexdigest()[:17].upper(),
        "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
    }
    return event


def decrypt_failed(function: str, at: str, *, role: str | None = None) -> dict[str, Any]:
    event = load_event("kms-decrypt-access-denied-lambda.json")
    detail = event["detail"]
    detail |= {"eventTime": at, "eventID": _event_id(f"decrypt {function} {at}")}
    detail["requestParameters"]["encryptionContext"]["aws:lambda:FunctionArn"] = function_arn(function)
    detail["userIdentity"]["arn"] = (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{role or function + '-role'}/{function}"
    )
    return event


def replay(pipeline: LocalPipeline, events: list[dict[str, Any]]) -> list[Notice]:
    """Feed every event (each must be recorded, or a duplicate), then let the clock run out."""
    notices: list[Notice] = []
    for event in events:
        fired, outcome = pipeline.feed(event)
        assert outcome.outcome in {"recorded", "duplicate"}, outcome
        notices += fired
    return notices + pipeline.drain()


def decrypt_failed_by_session(
    function: str, at: str, *, role: str | None = None, key: str | None = AWS_LAMBDA_KEY_ARN
) -> dict[str, Any]:
    """A failed Decrypt as CloudTrail records it for a function on aws/lambda whose role was re-created: no
    request parameters, no resources; the function only as its role's session, the key only in the message."""
    event = load_event("kms-decrypt-access-denied-no-context.json")
    detail = event["detail"]
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role or function + '-role'}/{function}"
    detail |= {"eventTime": at, "eventID": _event_id(f"decrypt by session {function} {at}")}
    detail["userIdentity"]["arn"] = session
    detail["errorMessage"] = f"User: {session} is not authorized to perform: kms:Decrypt" + (
        f" on resource: {key} because no resource-based policy allows the kms:Decrypt action" if key else ""
    )
    return event


def four_functions_story() -> list[dict[str, Any]]:
    """billing (a grant retired, then another), payroll (configured, one grant), reports (its only grant
    retired: at risk) and legacy (deleted, its grant retired by Lambda): the query tests' table."""
    return [
        create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
        retire_grant("b1", "2026-11-03T10:00:00Z"),
        create_grant("billing", "b2", "2026-11-05T10:00:00Z"),
        update_function("payroll", "2026-11-02T09:00:00Z"),
        create_grant("payroll", "p1", "2026-11-02T09:00:01Z"),
        create_grant("reports", "r1", "2026-11-04T08:00:00Z"),
        retire_grant("r1", "2026-11-06T08:00:00Z"),
        create_grant("legacy", "l1", "2026-10-01T08:00:00Z"),
        delete_function("legacy", "2026-11-07T08:00:00Z"),
        retire_grant("l1", "2026-11-07T08:00:05Z", by_lambda=True),
    ]
