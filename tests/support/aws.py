"""moto's AWS (its server, on loopback) as the reconciliation and self-healing tests use it: roles,
functions and grants made through the APIs, and the event CloudTrail would have delivered for such a grant."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from tests.support.scenarios import create_grant

ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"
# The role the self-healing tests configure as the temporary role of a role switch.
TEMPORARY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/grantwatch-heal-temporary"


@dataclass
class Aws:
    endpoint: str
    kms: Any
    lambda_: Any
    iam: Any

    def role(self, name: str) -> str:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        arn: str = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))["Role"][
            "Arn"
        ]
        return arn

    def function(self, name: str, role_arn: str, key_arn: str | None) -> str:
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return None\n")
        extra: dict[str, Any] = {"KMSKeyArn": key_arn} if key_arn else {}
        created = self.lambda_.create_function(
            FunctionName=name,
            Role=role_arn,
            Runtime="python3.13",
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": {"GREETING": "not-a-secret-but-never-read"}},
            **extra,
        )
        arn: str = created["FunctionArn"]
        return arn

    def lambda_grant(self, key_arn: str, function_arn: str, grantee: str) -> str:
        grant: str = self.kms.create_grant(
            KeyId=key_arn,
            GranteePrincipal=grantee,
            RetiringPrincipal=grantee,
            Operations=["Decrypt", "RetireGrant"],
            Constraints={"EncryptionContextEquals": {"aws:lambda:FunctionArn": function_arn}},
        )["GrantId"]
        return grant


def session(role: str, function: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{function}"


def delivered_create(grant: str, key_arn: str, function_arn: str, grantee: str, at: str) -> dict[str, Any]:
    """The CreateGrant event CloudTrail would have delivered for a grant made through the KMS API."""
    event = create_grant("any", grant, at)
    detail = event["detail"]
    detail |= {"awsRegion": REGION, "recipientAccountId": ACCOUNT}
    detail["requestParameters"] |= {
        "keyId": key_arn,
        "granteePrincipal": grantee,
        "retiringPrincipal": grantee,
        "constraints": {"encryptionContextEquals": {"aws:lambda:FunctionArn": function_arn}},
    }
    detail["responseElements"] = {"grantId": grant, "keyId": key_arn}
    detail["resources"] = [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key_arn}]
    return event
