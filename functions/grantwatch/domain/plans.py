"""Read a Terraform plan (`terraform show -json PLANFILE`) or a CloudFormation change set
(`aws cloudformation describe-change-set`) into the changes `impact` asks about. Pure: no I/O.

Found: IAM roles deleted or replaced, KMS keys disabled or deleted (deleting a key schedules its deletion),
Terraform's `aws_kms_grant` deleted (retired or revoked), and what the same plan does to Lambda functions.
A function change counts as giving the function a new grant only when it is certain to run after the role
change and to change the function's key or role (or to replace the function): Lambda creates a grant only
then, and a change of its environment alone creates none. Environment values are never read.
"""

from __future__ import annotations

import codecs
import json
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grantwatch.domain.functions import role_name
from grantwatch.domain.impact import ChangeKind, Hypothesis, PlannedFunction, Scenario

_LENIENT = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)
SUPPORTED_TERRAFORM_MAJOR = "1"


class PlanError(ValueError):
    """A plan file that cannot be read as either format."""


# Terraform: https://developer.hashicorp.com/terraform/internals/json-format (plan representation)


class TerraformChange(BaseModel):
    model_config = _LENIENT

    actions: list[str] = Field(min_length=1)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    after_unknown: dict[str, Any] | bool | None = None


class TerraformResourceChange(BaseModel):
    model_config = _LENIENT

    address: str
    mode: str = "managed"
    type: str
    change: TerraformChange


class TerraformPlan(BaseModel):
    model_config = _LENIENT

    format_version: str
    resource_changes: list[TerraformResourceChange] = Field(default_factory=list)


# CloudFormation: the DescribeChangeSet output (Changes[].ResourceChange), as the AWS CLI prints it.


class ResourceTarget(BaseModel):
    model_config = _LENIENT

    attribute: str | None = Field(default=None, alias="Attribute")
    name: str | None = Field(default=None, alias="Name")
    requires_recreation: str | None = Field(default=None, alias="RequiresRecreation")
    before_value: str | None = Field(default=None, alias="BeforeValue")
    after_value: str | None = Field(default=None, alias="AfterValue")


class ResourceChangeDetail(BaseModel):
    model_config = _LENIENT

    target: ResourceTarget | None = Field(default=None, alias="Target")
    evaluation: str | None = Field(default=None, alias="Evaluation")
    change_source: str | None = Field(default=None, alias="ChangeSource")
    causing_entity: str | None = Field(default=None, alias="CausingEntity")


class ResourceChange(BaseModel):
    model_config = _LENIENT

    action: str = Field(alias="Action")
    logical_id: str = Field(alias="LogicalResourceId")
    physical_id: str | None = Field(default=None, alias="PhysicalResourceId")
    resource_type: str = Field(alias="ResourceType")
    replacement: str | None = Field(default=None, alias="Replacement")
    details: list[ResourceChangeDetail] = Field(default_factory=list, alias="Details")
    after_context: str | None = Field(default=None, alias="AfterContext")


class ChangeSetChange(BaseModel):
    model_config = _LENIENT

    type: str | None = Field(default=None, alias="Type")
    resource_change: ResourceChange | None = Field(default=None, alias="ResourceChange")


class ChangeSet(BaseModel):
    model_config = _LENIENT

    changes: list[ChangeSetChange] = Field(alias="Changes")
    stack_name: str | None = Field(default=None, alias="StackName")
    next_token: str | None = Field(default=None, alias="NextToken")


# `terraform plan -out FILE` writes a zip archive; `terraform show -json FILE` is what impact reads.
_ZIP = b"PK\x03\x04"
# Windows PowerShell's `>` writes UTF-16 LE with a byte-order mark; Out-File -Encoding utf8 a UTF-8 one.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def plan_text(data: bytes, name: str) -> str:
    """A plan file's text: UTF-8, or UTF-8 or UTF-16 with a byte-order mark. A binary Terraform plan is
    refused with the command that turns it into JSON."""
    if data.startswith(_ZIP):
        raise PlanError(
            f"{name} is a binary Terraform plan (terraform plan -out): give its JSON, "
            f"`terraform show -json {shlex.quote(name)} > plan.json`, then --plan plan.json"
        )
    encoding = next((enc for bom, enc in _BYTE_ORDER_MARKS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise PlanError(
            f"{name} is not text in UTF-8 (or UTF-8/UTF-16 with a byte-order mark): byte {error.start} "
            "cannot be decoded; give `terraform show -json PLANFILE` or `aws cloudformation "
            "describe-change-set` output"
        ) from None


def read_plan(text: str) -> Scenario:
    """The scenario a plan file describes; PlanError says what is wrong with one that cannot be read."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PlanError(
            f"not JSON ({error.__class__.__name__} at {getattr(error, 'pos', '?')}): give the output of "
            "`terraform show -json PLANFILE` or `aws cloudformation describe-change-set`, not a binary plan"
        ) from None
    if not isinstance(document, dict):
        raise PlanError("the plan must be a JSON object")
    try:
        if "format_version" in document and not {"resource_changes", "planned_values"} & document.keys():
            raise PlanError("this is Terraform state, not a plan: give `terraform show -json PLANFILE`")
        if "resource_changes" in document or "format_version" in document:
            return terraform_scenario(TerraformPlan.model_validate(document))
        if "Changes" in document:
            return change_set_scenario(ChangeSet.model_validate(document))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PlanError(f"malformed plan: {where}: {first['msg']}") from None
    raise PlanError(
        "neither a Terraform plan in JSON (no resource_changes) nor a CloudFormation change set (no Changes)"
    )


def terraform_scenario(plan: TerraformPlan) -> Scenario:
    major = plan.format_version.split(".", 1)[0]
    if major != SUPPORTED_TERRAFORM_MAJOR:
        raise PlanError(f"Terraform JSON format_version {plan.format_version} is not supported (1.x is)")
    hypotheses: list[Hypothesis] = []
    notes: list[str] = []
    for change in plan.resource_changes:
        if change.mode != "managed":
            continue
        found = _terraform_resource(change, notes)
        if found is not None:
            hypotheses.append(found)
    same_name = any(h.kind is ChangeKind.ROLE_REPLACED for h in hypotheses)
    functions = tuple(
        f
        for change in plan.resource_changes
        if change.mode == "managed" and change.type == "aws_lambda_function"
        for f in [_terraform_function(change, same_name_replacement=same_name)]
        if f is not None
    )
    return Scenario(tuple(hypotheses), functions, tuple(notes))


def _terraform_resource(change: TerraformResourceChange, notes: list[str]) -> Hypothesis | None:
    deleting = "delete" in change.change.actions
    match change.type:
        case "aws_iam_role" if deleting:
            return _terraform_role_deletion(change, notes)
        case "aws_kms_key":
            return _terraform_key_change(change)
        case "aws_kms_grant" if deleting:
            before = change.change.before or {}
            grant = _text(before.get("grant_id"))
            if grant is None:
                return None
            kind = ChangeKind.GRANT_RETIRED if before.get("retire_on_delete") else ChangeKind.GRANT_REVOKED
            return Hypothesis(kind, grant, change.address)
    return None


def _terraform_role_deletion(change: TerraformResourceChange, notes: list[str]) -> Hypothesis | None:
    before, after = change.change.before or {}, change.change.after or {}
    name = _text(before.get("name")) or role_name(_text(before.get("arn")))
    if name is None:
        notes.append(f"{change.address}: the role is deleted, but the plan does not name it")
        return None
    target = _text(before.get("arn")) or name
    creating = "create" in change.change.actions
    if creating and _text(after.get("name")) == name:
        return Hypothesis(ChangeKind.ROLE_REPLACED, target, change.address)
    if creating and _unknown(change.change).get("name") is True:
        return Hypothesis(
            ChangeKind.ROLE_REPLACED,
            target,
            change.address,
            "the new role's name is known only later",
        )
    return Hypothesis(ChangeKind.ROLE_DELETED, target, change.address)


def _terraform_key_change(change: TerraformResourceChange) -> Hypothesis | None:
    actions = set(change.change.actions)
    before, after = change.change.before or {}, change.change.after or {}
    key = _text(before.get("arn")) or _text(before.get("key_id"))
    if key is None:
        return None
    if "delete" in actions:
        return Hypothesis(ChangeKind.KEY_PENDING_DELETION, key, change.address)
    if "update" in actions and before.get("is_enabled") is not False:
        if after.get("is_enabled") is False:
            return Hypothesis(ChangeKind.KEY_DISABLED, key, change.address)
        if _unknown(change.change).get("is_enabled") is True:
            return Hypothesis(
                ChangeKind.KEY_DISABLED, key, change.address, "is_enabled is known only after apply"
            )
    return None


def _terraform_function(
    change: TerraformResourceChange, *, same_name_replacement: bool
) -> PlannedFunction | None:
    actions = set(change.change.actions)
    before, after = change.change.before or {}, change.change.after or {}
    unknown = _unknown(change.change)
    function = _text(before.get("arn")) or _text(before.get("function_name"))
    if function is None or not actions & {"update", "delete"}:
        return None
    replaced = {"delete", "create"} <= actions
    if "delete" in actions and not replaced:
        return PlannedFunction(function, change.address, deleted=True)
    role_pending = unknown.get("role") is True
    new_role = None if role_pending else role_name(_text(after.get("role")))
    moves_role = new_role is not None and new_role != role_name(_text(before.get("role")))
    key_pending = unknown.get("kms_key_arn") is True
    after_key = None if key_pending else (_text(after.get("kms_key_arn")) or "")
    new_key = (
        after_key if after_key is not None and after_key != (_text(before.get("kms_key_arn")) or "") else None
    )
    # Lambda creates a grant when an update changes the key or the role: a role re-created under the same
    # name keeps its ARN, so only a new key or a replacement of the function certainly calls for one.
    changes_key_or_role = replaced or new_key is not None or not same_name_replacement
    regrants = role_pending and changes_key_or_role
    note = None
    if not regrants and not moves_role and new_key is None:
        note = (
            f"{change.address} changes the function after the role, but neither its key nor its role: "
            "with the same role ARN, an update that changes neither creates no grant"
            if role_pending
            else f"{change.address} changes the function, but not after the role is re-created (its role "
            "is not a reference to the role), so Lambda's new grant may name the old role"
        )
    return PlannedFunction(
        function,
        change.address,
        regrants=regrants,
        new_role=new_role if moves_role else None,
        new_key=new_key,
        note=note,
    )


def _unknown(change: TerraformChange) -> dict[str, Any]:
    return change.after_unknown if isinstance(change.after_unknown, dict) else {}


def change_set_scenario(change_set: ChangeSet) -> Scenario:
    hypotheses: list[Hypothesis] = []
    notes: list[str] = []
    if change_set.next_token:
        notes.append("the change set has more pages (NextToken): only this page was read")
    changes = [c.resource_change for c in change_set.changes if c.resource_change is not None]
    roles: dict[str, Hypothesis] = {}
    for change in changes:
        if change.resource_type == "AWS::CloudFormation::Stack":
            notes.append(
                f"nested stack {change.logical_id}: describe its change set too "
                "(create the change set with --include-nested-stacks)"
            )
            continue
        if change.action == "Dynamic":
            notes.append(f"{change.logical_id}: CloudFormation cannot tell yet what happens to it (Dynamic)")
            continue
        found = _change_set_resource(change, notes)
        if found is not None:
            hypotheses.append(found)
            if found.kind.on_role:
                roles[change.logical_id] = found
    functions = tuple(
        f
        for change in changes
        if change.resource_type == "AWS::Lambda::Function"
        for f in [_change_set_function(change, roles)]
        if f is not None
    )
    return Scenario(tuple(hypotheses), functions, tuple(notes))


def _change_set_resource(change: ResourceChange, notes: list[str]) -> Hypothesis | None:
    physical = change.physical_id
    source = f"{change.logical_id} ({change.resource_type})"
    replaced = change.action == "Modify" and change.replacement in ("True", "Conditional")
    doubt = "CloudFormation replaces it only under conditions (Replacement: Conditional)"
    conditional = doubt if change.replacement == "Conditional" else None
    if physical is None:
        if change.action in ("Remove", "Modify") and change.resource_type in (
            "AWS::IAM::Role",
            "AWS::KMS::Key",
        ):
            notes.append(f"{source}: no PhysicalResourceId, so grantwatch cannot tell which one it is")
        return None
    match change.resource_type:
        case "AWS::IAM::Role":
            if change.action == "Remove":
                return Hypothesis(ChangeKind.ROLE_DELETED, physical, source)
            if replaced:
                kind = ChangeKind.ROLE_DELETED if _renamed(change) else ChangeKind.ROLE_REPLACED
                return Hypothesis(kind, physical, source, conditional)
        case "AWS::KMS::Key":
            if change.action == "Remove" or replaced:
                return Hypothesis(ChangeKind.KEY_PENDING_DELETION, physical, source, conditional)
            enabled = _detail(change, "Enabled")
            if change.action == "Modify" and enabled is not None:
                value = enabled.target.after_value if enabled.target else None
                if value is None:
                    return Hypothesis(
                        ChangeKind.KEY_DISABLED,
                        physical,
                        source,
                        "Enabled changes; the change set does not say to what "
                        "(describe it with --include-property-values)",
                    )
                if value.lower() == "false":
                    return Hypothesis(ChangeKind.KEY_DISABLED, physical, source)
    return None


def _renamed(change: ResourceChange) -> bool:
    """A role replacement that also changes its name: the old name is simply deleted. Known from a
    RoleName detail, or from the after context (with --include-property-values) having no RoleName, which
    makes CloudFormation generate a new one."""
    detail = _detail(change, "RoleName")
    if detail is not None and detail.target is not None and detail.target.requires_recreation == "Always":
        return True
    if change.after_context:
        try:
            context = json.loads(change.after_context)
        except json.JSONDecodeError:
            return False
        properties = context.get("Properties") if isinstance(context, dict) else None
        return isinstance(properties, dict) and "RoleName" not in properties
    return False


def _change_set_function(change: ResourceChange, roles: dict[str, Hypothesis]) -> PlannedFunction | None:
    if change.physical_id is None or change.action not in ("Remove", "Modify"):
        return None
    source = f"{change.logical_id} (AWS::Lambda::Function)"
    if change.action == "Remove":
        return PlannedFunction(change.physical_id, source, deleted=True)
    replaced = change.replacement == "True"
    role = _detail(change, "Role")
    static_role = (
        role is not None and role.evaluation == "Static" and role.change_source == "DirectModification"
    )
    depends_on = None
    if role is not None and role.change_source == "ResourceAttribute" and role.causing_entity:
        depends_on = roles.get(role.causing_entity.split(".", 1)[0])
    key = _detail(change, "KmsKeyArn")
    static_key = key is not None and key.evaluation == "Static"
    changes_key_or_role = (
        replaced or static_key or (depends_on is not None and depends_on.kind is ChangeKind.ROLE_DELETED)
    )
    regrants = depends_on is not None and changes_key_or_role
    new_role = None
    if static_role and role is not None:
        new_role = role_name(role.target.after_value if role.target else None) or "(another role)"
    new_key = None
    if static_key and key is not None:
        new_key = (key.target.after_value if key.target else None) or "(another key)"
    note = None
    if not regrants and new_role is None and new_key is None:
        note = (
            f"{source} is updated after {depends_on.source}, but neither its KmsKeyArn nor its Role "
            "changes (with the same RoleName the ARN does not): an update that changes neither creates "
            "no grant"
            if depends_on is not None
            else f"{source} is updated, but not after the role is re-created, so Lambda's new grant may "
            "name the old role"
        )
    return PlannedFunction(
        change.physical_id, source, regrants=regrants, new_role=new_role, new_key=new_key, note=note
    )


def _detail(change: ResourceChange, name: str) -> ResourceChangeDetail | None:
    return next(
        (
            d
            for d in change.details
            if d.target is not None and d.target.attribute == "Properties" and d.target.name == name
        ),
        None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
