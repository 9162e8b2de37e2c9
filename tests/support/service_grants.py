"""CreateGrant records of other services, written from the shapes AWS documents: DynamoDB's (grantee and
retiring principal dynamodb.REGION.amazonaws.com, context tableName and subscriberId), EBS's (grantee
ACCOUNT:aws:ec2-infrastructure:INSTANCE, context aws:ebs:id) and RDS's (context aws:rds:db-id beside the
volume's aws:ebs:id; its grantee is not documented, the one here is only a placeholder)."""

from __future__ import annotations

import copy
import hashlib
import uuid
from typing import Any

from tests.support.samples import ACCOUNT, KEY_ARN, REGION, load_event


def _ids(event: dict[str, Any], label: str, at: str, key: str) -> dict[str, Any]:
    detail = event["detail"]
    detail["eventID"] = str(uuid.UUID(hashlib.md5(label.encode()).hexdigest()))  # noqa: S324 - an id
    detail["eventTime"] = event["time"] = at
    detail["responseElements"] = {"grantId": service_grant_id(label), "keyId": key}
    detail["requestParameters"]["keyId"] = key
    detail["resources"][0]["ARN"] = key
    return event


def service_grant_id(label: str) -> str:
    return hashlib.sha256(f"service {label}".encode()).hexdigest()


def dynamodb_grant(table: str, at: str, *, key: str = KEY_ARN) -> dict[str, Any]:
    event = copy.deepcopy(load_event("kms-create-grant-dynamodb-service-principal.json"))
    event["detail"]["requestParameters"]["constraints"]["encryptionContextSubset"] = {
        "aws:dynamodb:tableName": table,
        "aws:dynamodb:subscriberId": ACCOUNT,
    }
    return _ids(event, f"dynamodb {table} {key}", at, key)


def ebs_grant(volume: str, instance: str, at: str, *, key: str = KEY_ARN) -> dict[str, Any]:
    event = copy.deepcopy(load_event("kms-create-grant-ebs-volume.json"))
    parameters = event["detail"]["requestParameters"]
    parameters["granteePrincipal"] = f"{ACCOUNT}:aws:ec2-infrastructure:{instance}"
    parameters["constraints"]["encryptionContextSubset"] = {"aws:ebs:id": volume}
    return _ids(event, f"ebs {volume} {instance} {key}", at, key)


def rds_grant(db_resource_id: str, volume: str, at: str, *, key: str = KEY_ARN) -> dict[str, Any]:
    event = copy.deepcopy(load_event("kms-create-grant-ebs-volume.json"))
    detail = event["detail"]
    detail["userIdentity"]["invokedBy"] = detail["sourceIPAddress"] = detail["userAgent"] = (
        "rds.amazonaws.com"
    )
    parameters = detail["requestParameters"]
    parameters["granteePrincipal"] = f"rds.{REGION}.amazonaws.com"
    parameters.pop("retiringPrincipal", None)
    parameters["constraints"]["encryptionContextSubset"] = {
        "aws:rds:db-id": db_resource_id,
        "aws:ebs:id": volume,
    }
    return _ids(event, f"rds {db_resource_id} {key}", at, key)


def retire_service_grant(label: str, at: str, *, service: str = "dynamodb.amazonaws.com") -> dict[str, Any]:
    """The service retiring its own grant (DynamoDB when the table is deleted)."""
    event = load_event("kms-retire-grant-by-lambda-service.json")
    detail = event["detail"]
    detail["userIdentity"]["invokedBy"] = service
    detail["eventID"] = str(uuid.UUID(hashlib.md5(f"retire {label}".encode()).hexdigest()))  # noqa: S324
    detail["eventTime"] = event["time"] = at
    detail["additionalEventData"]["grantId"] = service_grant_id(label)
    return event


def uncovered_grant(at: str, *, key: str = KEY_ARN) -> dict[str, Any]:
    """A grant for a resource of a service the catalogue does not cover (an S3 bucket's)."""
    event = copy.deepcopy(load_event("kms-create-grant-ebs-volume.json"))
    parameters = event["detail"]["requestParameters"]
    parameters["granteePrincipal"] = f"arn:aws:iam::{ACCOUNT}:role/replication"
    parameters.pop("retiringPrincipal", None)
    parameters["constraints"]["encryptionContextSubset"] = {"aws:s3:arn": "arn:aws:s3:::reports"}
    return _ids(event, f"s3 reports {key}", at, key)
