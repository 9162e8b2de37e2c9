"""How a function gets a usable grant back: the documented resets, as data (ordered steps, their waits, the
value each one sets) and as commands a person can paste. The alerts, `impact` and self-healing all take
their fix from here. Pure: no I/O.

Lambda creates a function's grant when the function is created and when an update *changes* its key or its
role; nothing AWS publishes says that an update which changes nothing creates one. So a reset is two
updates, away and back, each followed by a wait until Lambda has applied it:

- the key switch (Lambda's troubleshooting guide, missing grant: use a different key, then reassign the
  function's key): to the AWS managed key ``aws/lambda``, which every account has (``--kms-key-arn ""``),
  then back to the function's own customer managed key;
- the role switch (the Knowledge Center article on Lambda's KMSAccessDeniedException, for a role deleted
  and re-created under the same name; Terraform's ``aws_lambda_function`` documentation says the same):
  to a temporary role, then back to the function's own role. It is the only reset for a function on the
  AWS managed key, whose grants nobody but Lambda can create.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from grantwatch.domain.functions import FunctionState
from grantwatch.domain.text import clean

# `--kms-key-arn ""`: Lambda's AWS managed key (aws/lambda) encrypts the environment.
AWS_MANAGED_KEY = ""
AWS_MANAGED_KEY_ALIAS = "alias/aws/lambda"
KMS_KEY_SETTING = "KMSKeyArn"
ROLE_SETTING = "Role"
TEMPORARY_ROLE_PLACEHOLDER = "TEMPORARY_ROLE_ARN"
_REGION = re.compile(r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):\d{12}:function:")

KEY_SWITCH_SOURCE = (
    "AWS Lambda Developer Guide, troubleshooting invocation (KMS, missing grant): configure the function "
    "to use a different key, then reassign its key"
)
ROLE_SWITCH_SOURCE = (
    "AWS Knowledge Center, Lambda KMSAccessDeniedException: switch the function to a temporary role, then "
    "back; Terraform aws_lambda_function documentation: switch the role away and back"
)
TEMPORARY_ROLE_NEEDS = (
    "a temporary role whose trust policy lets lambda.amazonaws.com assume it (sts:AssumeRole); "
    "it needs no permissions"
)
WHY_TWO_STEPS = "Lambda creates a grant only when an update changes the key or the role"


class Procedure(StrEnum):
    KEY_SWITCH = "key-switch"
    ROLE_SWITCH = "role-switch"
    RECREATE_ROLE = "re-create-role"
    MOVE_ROLE = "move-to-another-role"
    MOVE_KEY = "move-to-another-key"
    ENABLE_KEY = "enable-key"
    CANCEL_KEY_DELETION = "cancel-key-deletion"


class Action(StrEnum):
    UPDATE = "update-function-configuration"
    WAIT = "wait-function-updated"
    ENABLE_KEY = "enable-key"
    CANCEL_KEY_DELETION = "cancel-key-deletion"
    MANUAL = "manual"  # something only a person decides (which role to re-create or choose)


@dataclass(frozen=True, slots=True)
class Step:
    order: int
    action: Action
    command: str  # shell, every untrusted value quoted; a manual step is a '#' comment
    setting: str | None = None  # KMSKeyArn or Role: what an update sets
    value: str | None = None  # the value it sets ("" is the AWS managed key)
    restores: bool = False  # sets the setting back to the function's own value

    def as_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "action": self.action.value,
            "setting": self.setting,
            "value": self.value,
            "restores": self.restores,
            "command": self.command,
        }


@dataclass(frozen=True, slots=True)
class Fix:
    procedure: Procedure
    summary: str
    steps: tuple[Step, ...]
    source: str | None = None  # where the procedure is documented
    setting: str | None = None  # what a reset switches away and back
    original: str | None = None  # the function's own value, which the last update restores
    needs: str | None = None  # what must exist before the first step
    when: str | None = None  # `impact`: when to run it (right after the apply, before the change)

    @property
    def updates(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action is Action.UPDATE)

    def as_json(self) -> dict[str, Any]:
        return {
            "procedure": self.procedure.value,
            "summary": self.summary,
            "when": self.when,
            "source": self.source,
            "needs": self.needs,
            "setting": self.setting,
            "original": self.original,
            "steps": [s.as_json() for s in self.steps],
        }

    def lines(self) -> list[str]:
        return rendered(self.as_json())


def rendered(fix: Mapping[str, Any]) -> list[str]:
    """A fix (its JSON) for people: when, what and why; what it needs; one command a line; where it is
    documented. A fixed number of lines, whatever the names in it."""
    head = f"{fix['when']}: {fix['summary']}" if fix.get("when") else str(fix["summary"])
    needs = [f"  needs {fix['needs']}"] if fix.get("needs") else []
    source = [f"  ({fix['source']})"] if fix.get("source") else []
    return [head, *needs, *(f"    {step['command']}" for step in fix["steps"]), *source]


@dataclass(frozen=True, slots=True)
class FixTarget:
    """The function a fix is for, as far as the fix needs to know it."""

    function_arn: str
    key_arn: str | None  # its customer managed key; None when it is on the AWS managed key
    role: str | None  # its execution role's ARN
    temporary_role: str | None = None  # the stack's SelfHealingTemporaryRoleArn, when set

    @property
    def region(self) -> str | None:
        match = _REGION.match(self.function_arn)
        return match["region"] if match else None

    @property
    def on_aws_managed_key(self) -> bool:
        return not self.key_arn


def is_aws_managed_key(kms_key_arn: str | None) -> bool:
    """A function's KMSKeyArn that means Lambda's AWS managed key: none, or the aws/lambda alias."""
    return not kms_key_arn or kms_key_arn.endswith(f":{AWS_MANAGED_KEY_ALIAS}")


def configured_on_aws_managed_key(function: FunctionState | None) -> bool:
    """Lambda's events say the function's environment is on the AWS managed key (no KMSKeyArn)."""
    return (
        function is not None
        and function.configured_at is not None
        and is_aws_managed_key(function.kms_key_arn)
    )


class _Commands:
    """The `aws` commands for one function, with every untrusted value quoted."""

    def __init__(self, target: FixTarget) -> None:
        region = f" --region {shlex.quote(clean(target.region))}" if target.region else ""
        self.function = f"{region} --function-name {shlex.quote(clean(target.function_arn))}"
        self.region = region

    def update(self, option: str, value: str) -> str:
        shown = '""' if value == "" else shlex.quote(clean(value))
        return f"aws lambda update-function-configuration{self.function} {option} {shown}"

    def wait(self) -> str:
        return f"aws lambda wait function-updated{self.function}"

    def key(self, verb: str, key_arn: str) -> str:
        return f"aws kms {verb}{self.region} --key-id {shlex.quote(clean(key_arn))}"


def _numbered(*steps: tuple[Action, str, str | None, str | None, bool]) -> tuple[Step, ...]:
    return tuple(
        Step(order, action, command, setting, value, restores)
        for order, (action, command, setting, value, restores) in enumerate(steps, start=1)
    )


def _away_and_back(target: FixTarget, setting: str, option: str, away: str, own: str) -> tuple[Step, ...]:
    aws = _Commands(target)
    return _numbered(
        (Action.UPDATE, aws.update(option, away), setting, away, False),
        (Action.WAIT, aws.wait(), None, None, False),
        (Action.UPDATE, aws.update(option, own), setting, own, True),
        (Action.WAIT, aws.wait(), None, None, False),
    )


def key_switch(target: FixTarget) -> Fix:
    """To the AWS managed key and back to the function's own customer managed key."""
    if not target.key_arn:
        raise ValueError("the key switch is for a function on a customer managed key")
    return Fix(
        Procedure.KEY_SWITCH,
        "switch the function to the AWS managed key and back to its own key "
        f"({WHY_TWO_STEPS}; the second update creates the grant)",
        _away_and_back(target, KMS_KEY_SETTING, "--kms-key-arn", AWS_MANAGED_KEY, target.key_arn),
        source=KEY_SWITCH_SOURCE,
        setting=KMS_KEY_SETTING,
        original=target.key_arn,
    )


def role_switch(target: FixTarget) -> Fix:
    """To a temporary role and back to the function's own role."""
    temporary = target.temporary_role or TEMPORARY_ROLE_PLACEHOLDER
    own = target.role or "ROLE_ARN"
    needs = (
        f"the stack's temporary role (SelfHealingTemporaryRoleArn): {TEMPORARY_ROLE_NEEDS}"
        if target.temporary_role
        else TEMPORARY_ROLE_NEEDS
    )
    return Fix(
        Procedure.ROLE_SWITCH,
        f"switch the function to a temporary role and back to its own role ({WHY_TWO_STEPS}; the second "
        "update creates the grant for its role)",
        _away_and_back(target, ROLE_SETTING, "--role", temporary, own),
        source=ROLE_SWITCH_SOURCE,
        setting=ROLE_SETTING,
        original=own,
        needs=needs,
    )


def reset(target: FixTarget, *, role_first: bool = False) -> tuple[Fix, ...]:
    """The documented resets for the function, the preferred first: on a customer managed key the key
    switch (or the role switch), on the AWS managed key the role switch only."""
    if target.on_aws_managed_key:
        return (role_switch(target),)
    fixes = (key_switch(target), role_switch(target))
    return fixes[::-1] if role_first else fixes


def recreate_role_then_reset(target: FixTarget) -> tuple[Fix, ...]:
    """For a deleted role: re-create it (or choose another) first; a re-created role needs the reset, the
    role switch as for any role re-created under its name."""
    role = clean(target.role)
    preferred = role_switch(target)
    first = Step(1, Action.MANUAL, f"# first re-create the role {role} (the same name), then:")
    later = tuple(replace(step, order=step.order + 1) for step in preferred.steps)
    recreate = replace(
        preferred,
        procedure=Procedure.RECREATE_ROLE,
        summary=f"re-create the role, then reset the grant: {preferred.summary}",
        steps=(first, *later),
    )
    return recreate, move_role(target)


def move_role(target: FixTarget, new_role: str = "NEW_ROLE_ARN") -> Fix:
    """To another existing role: the change of role itself makes Lambda create a grant for it."""
    summary = "move the function to another execution role (a change of role creates its grant)"
    return _move(target, Procedure.MOVE_ROLE, summary, ROLE_SETTING, "--role", new_role)


def move_key(target: FixTarget, new_key: str = "NEW_KEY_ARN") -> Fix:
    summary = "move the function's environment to another key (or keep this key enabled)"
    return _move(target, Procedure.MOVE_KEY, summary, KMS_KEY_SETTING, "--kms-key-arn", new_key)


def _move(
    target: FixTarget, procedure: Procedure, summary: str, setting: str, option: str, value: str
) -> Fix:
    """One update to a new value, and its wait: no way back is needed."""
    aws = _Commands(target)
    steps = _numbered(
        (Action.UPDATE, aws.update(option, value), setting, value, False),
        (Action.WAIT, aws.wait(), None, None, False),
    )
    return Fix(procedure, summary, steps, setting=setting)


def enable_key(target: FixTarget, key_arn: str, *, cancel_deletion: bool) -> Fix:
    aws = _Commands(target)
    enable = (Action.ENABLE_KEY, aws.key("enable-key", key_arn), None, None, False)
    if cancel_deletion:
        return Fix(
            Procedure.CANCEL_KEY_DELETION,
            "cancel the key's deletion and enable it",
            _numbered(
                (Action.CANCEL_KEY_DELETION, aws.key("cancel-key-deletion", key_arn), None, None, False),
                enable,
            ),
        )
    return Fix(Procedure.ENABLE_KEY, "enable the key", _numbered(enable))


def fixes_json(fixes: tuple[Fix, ...]) -> list[dict[str, Any]]:
    return [f.as_json() for f in fixes]


def fix_lines(fixes: tuple[Fix, ...]) -> list[str]:
    """Every fix for people, the preferred first, the others as alternatives."""
    lines: list[str] = []
    for number, fix in enumerate(fixes):
        rendered = fix.lines()
        if number and not rendered[0].startswith("or "):
            rendered[0] = f"or {rendered[0]}"
        lines += rendered
    return lines


_KEY_REGION = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:key/")


def key_fix(key_arn: str, *, cancel_deletion: bool) -> Fix:
    """Enable the key (cancelling its deletion first), whatever uses it: the region is the key's."""
    match = _KEY_REGION.match(key_arn)
    region = f" --region {shlex.quote(clean(match['region']))}" if match else ""
    key = shlex.quote(clean(key_arn))
    enable = (Action.ENABLE_KEY, f"aws kms enable-key{region} --key-id {key}", None, None, False)
    if cancel_deletion:
        cancel = (Action.CANCEL_KEY_DELETION, f"aws kms cancel-key-deletion{region} --key-id {key}")
        return Fix(
            Procedure.CANCEL_KEY_DELETION,
            "cancel the key's deletion and enable it (KMS leaves a key whose deletion is cancelled disabled)",
            _numbered((*cancel, None, None, False), enable),
        )
    return Fix(Procedure.ENABLE_KEY, "enable the key", _numbered(enable))
