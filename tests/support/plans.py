"""Terraform plans (`terraform show -json`) and CloudFormation change sets (`describe-change-set`) for the
impact tests, written from the documented shapes: Terraform's JSON output format (plan representation,
change representation) and CloudFormation's DescribeChangeSet output (Change, ResourceChange,
ResourceChangeDetail, ResourceTargetDefinition)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.samples import ACCOUNT, KEY_ARN, REGION
from tests.support.scenarios import function_arn

_ASSUME_LAMBDA = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


ENVIRONMENT_BEFORE = "setting-value-before-7f3a"
ENVIRONMENT_AFTER = "setting-value-after-9c1e"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


# Terraform


def terraform_plan(*changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
        "configuration": {"provider_config": {"aws": {"name": "aws", "full_name": "hashicorp/aws"}}},
        "timestamp": "2026-12-01T09:30:00Z",
        "applyable": True,
        "complete": True,
        "errored": False,
    }


def _resource(kind: str, name: str, change: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    resource = {
        "address": f"{kind}.{name}",
        "mode": "managed",
        "type": kind,
        "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": change,
    }
    if reason:
        resource["action_reason"] = reason
    return resource


def tf_role(
    name: str, actions: list[str], *, new_name: str | None = None, address: str = "exec"
) -> dict[str, Any]:
    """An aws_iam_role: ["delete", "create"] replaces it (here because its path changes), ["delete"]
    deletes it."""
    before = {
        "arn": role_arn(name),
        "assume_role_policy": _ASSUME_LAMBDA,
        "id": name,
        "name": name,
        "path": "/",
        "unique_id": "AROAEXAMPLEUNIQUEID01",
        "max_session_duration": 3600,
        "tags": {},
    }
    change: dict[str, Any] = {"actions": actions, "before": before, "after": None, "after_unknown": {}}
    if "create" in actions:
        change["after"] = {
            "assume_role_policy": _ASSUME_LAMBDA,
            "name": new_name or name,
            "path": "/service/",
            "max_session_duration": 3600,
            "tags": {},
        }
        change["after_unknown"] = {"arn": True, "id": True, "unique_id": True, "create_date": True}
        change["replace_paths"] = [["path"]] if new_name is None else [["name"]]
    return _resource("aws_iam_role", address, change, "replace_because_cannot_update")


def tf_function(
    name: str,
    actions: list[str] | None = None,
    *,
    role: str,
    role_known_after_apply: bool = False,
    new_role: str | None = None,
    new_key: str | None = None,
    new_environment: bool = False,
) -> dict[str, Any]:
    """An aws_lambda_function; with `role_known_after_apply` its role is a reference to a role that the
    plan replaces (Terraform shows it as known after apply)."""
    before = {
        "arn": function_arn(name),
        "function_name": name,
        "role": role_arn(role),
        "kms_key_arn": KEY_ARN,
        "handler": "app.handler",
        "runtime": "python3.13",
        "memory_size": 256,
        "environment": [{"variables": {"SETTING": ENVIRONMENT_BEFORE}}],
    }
    after = dict(before)
    unknown: dict[str, Any] = {}
    if role_known_after_apply:
        del after["role"]
        unknown["role"] = True
    if new_role is not None:
        after["role"] = role_arn(new_role)
    if new_key is not None:
        after["kms_key_arn"] = new_key
    if new_environment:
        after["environment"] = [{"variables": {"SETTING": ENVIRONMENT_AFTER}}]
    change = {
        "actions": actions or ["update"],
        "before": before,
        "after": None if actions == ["delete"] else after,
        "after_unknown": unknown,
        "before_sensitive": {"environment": [{"variables": {"SETTING": True}}]},
        "after_sensitive": {"environment": [{"variables": {"SETTING": True}}]},
    }
    return _resource("aws_lambda_function", name.replace("-", "_"), change)


def tf_key(key_arn: str, actions: list[str], *, enabled_after: bool | None = True) -> dict[str, Any]:
    key_id = key_arn.rsplit("/", 1)[1]
    before = {
        "arn": key_arn,
        "key_id": key_id,
        "id": key_id,
        "is_enabled": True,
        "deletion_window_in_days": 30,
        "enable_key_rotation": True,
    }
    after = None if actions == ["delete"] else dict(before, is_enabled=enabled_after)
    return _resource(
        "aws_kms_key", "env", {"actions": actions, "before": before, "after": after, "after_unknown": {}}
    )


def tf_grant(grant_id: str, *, retire_on_delete: bool) -> dict[str, Any]:
    before = {
        "grant_id": grant_id,
        "key_id": KEY_ARN,
        "grantee_principal": role_arn("batch-role"),
        "operations": ["Decrypt"],
        "retire_on_delete": retire_on_delete,
    }
    return _resource(
        "aws_kms_grant",
        "batch",
        {"actions": ["delete"], "before": before, "after": None, "after_unknown": {}},
    )


def tf_noop_bucket() -> dict[str, Any]:
    values = {"bucket": "reports-archive", "id": "reports-archive"}
    return _resource(
        "aws_s3_bucket",
        "archive",
        {"actions": ["no-op"], "before": values, "after": values, "after_unknown": {}},
    )


# CloudFormation


def change_set(*changes: dict[str, Any]) -> dict[str, Any]:
    base = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}"
    return {
        "Changes": list(changes),
        "ChangeSetName": "release-42",
        "ChangeSetId": f"{base}:changeSet/release-42/7c1d9e2a-0b3f-4d5e-8f6a-9b8c7d6e5f40",
        "StackId": f"{base}:stack/billing-service/2f6b0c10-9a1e-11f0-8c3e-0a1b2c3d4e5f",
        "StackName": "billing-service",
        "Parameters": [{"ParameterKey": "Stage", "ParameterValue": "prod"}],
        "CreationTime": "2026-12-01T09:30:00.123000+00:00",
        "ExecutionStatus": "AVAILABLE",
        "Status": "CREATE_COMPLETE",
        "NotificationARNs": [],
        "RollbackConfiguration": {},
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "IncludeNestedStacks": False,
    }


def cfn_change(
    action: str,
    logical_id: str,
    physical_id: str | None,
    resource_type: str,
    *,
    replacement: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    change: dict[str, Any] = {
        "Action": action,
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
    }
    if physical_id is not None:
        change["PhysicalResourceId"] = physical_id
    if action == "Modify":
        change |= {"Replacement": replacement or "False", "Scope": ["Properties"], "Details": details or []}
    return {"Type": "Resource", "ResourceChange": change}


def cfn_detail(
    name: str,
    *,
    recreation: str = "Never",
    evaluation: str = "Static",
    source: str = "DirectModification",
    causing: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    target: dict[str, Any] = {"Attribute": "Properties", "Name": name, "RequiresRecreation": recreation}
    if after is not None:
        target["AfterValue"] = after
    detail: dict[str, Any] = {"Target": target, "Evaluation": evaluation, "ChangeSource": source}
    if causing is not None:
        detail["CausingEntity"] = causing
    return detail


def cfn_role_replaced(name: str, logical_id: str = "ExecRole") -> dict[str, Any]:
    """A role whose Path changes (Path requires replacement); RoleName is fixed, so it keeps its name."""
    return cfn_change(
        "Modify",
        logical_id,
        name,
        "AWS::IAM::Role",
        replacement="True",
        details=[cfn_detail("Path", recreation="Always")],
    )


def cfn_function_following_role(name: str, role_logical_id: str = "ExecRole") -> dict[str, Any]:
    """A function whose Role is !GetAtt ExecRole.Arn: CloudFormation re-reads it when the role changes."""
    return cfn_change(
        "Modify",
        name.title().replace("-", ""),
        name,
        "AWS::Lambda::Function",
        details=[
            cfn_detail(
                "Role", evaluation="Dynamic", source="ResourceAttribute", causing=f"{role_logical_id}.Arn"
            )
        ],
    )
