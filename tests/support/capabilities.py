"""The capabilities a template needs, as CloudFormation and the Serverless Application Repository document
them, and the deploy commands the docs show, read as the tools read them.

CloudFormation (CreateStack/CreateChangeSet `Capabilities`): an IAM resource (AWS::IAM::AccessKey, Group,
InstanceProfile, ManagedPolicy, Policy, Role, User, UserToGroupAddition) needs CAPABILITY_IAM, or
CAPABILITY_NAMED_IAM when one has a custom name (RoleName, ...); CAPABILITY_NAMED_IAM covers unnamed ones too.
A SAM function without a Role gets a role SAM creates, unnamed. A template with a Transform (a macro, the
AWS::Serverless transform included) needs CAPABILITY_AUTO_EXPAND when a stack or stack set is created from it
directly (create-stack, create-stack-set), not through a change set (sam deploy, cloudformation deploy).

The Serverless Application Repository (acknowledging-application-capabilities): the same IAM rule;
CAPABILITY_RESOURCE_POLICY for the resource policies it lists; CAPABILITY_AUTO_EXPAND for nested applications
(AWS::Serverless::Application).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.templates import load_template

IAM_TYPES = {
    "AWS::IAM::AccessKey",
    "AWS::IAM::Group",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::IAM::User",
    "AWS::IAM::UserToGroupAddition",
}
NAME_PROPERTIES = {
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
}
# SAM resources that create an IAM role unless given one (Role).
SAM_ROLE_CREATORS = {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}
# The Serverless Application Repository's resource policies (CAPABILITY_RESOURCE_POLICY).
RESOURCE_POLICY_TYPES = {
    "AWS::Lambda::LayerVersionPermission",
    "AWS::Lambda::Permission",
    "AWS::Events::EventBusPolicy",
    "AWS::IAM::Policy",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
}
# SAM adds a Lambda permission for these function events (EventBridge, SNS and S3 invoke the function).
SAM_PERMISSION_EVENTS = {"SNS", "EventBridgeRule", "CloudWatchEvent", "S3", "Api", "HttpApi", "Schedule"}

IAM, NAMED_IAM, AUTO_EXPAND, RESOURCE_POLICY = (
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
    "CAPABILITY_RESOURCE_POLICY",
)


def _iam(template: dict[str, Any]) -> set[str]:
    needed: set[str] = set()
    for resource in template.get("Resources", {}).values():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind in IAM_TYPES:
            needed.add(NAMED_IAM if NAME_PROPERTIES.get(kind, "") in properties else IAM)
        elif kind in SAM_ROLE_CREATORS and "Role" not in properties:
            needed.add(IAM)
    return needed


def cloudformation_capabilities(path: Path, *, change_set: bool) -> set[str]:
    """What CloudFormation needs to deploy the template, whatever its parameters (every conditional resource
    counts: a parameter override may create it)."""
    template = load_template(path)
    needed = _iam(template)
    if template.get("Transform") and not change_set:
        needed.add(AUTO_EXPAND)
    return needed


def repository_capabilities(path: Path) -> set[str]:
    """What whoever deploys the template from the Serverless Application Repository acknowledges."""
    template = load_template(path)
    needed = _iam(template)
    for resource in template.get("Resources", {}).values():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind in RESOURCE_POLICY_TYPES:
            needed.add(RESOURCE_POLICY)
        if kind == "AWS::Serverless::Application":
            needed.add(AUTO_EXPAND)
        if kind == "AWS::Serverless::Function":
            events = properties.get("Events", {}).values()
            if any(event["Type"] in SAM_PERMISSION_EVENTS for event in events):
                needed.add(RESOURCE_POLICY)
    return needed


def missing(needed: set[str], given: set[str]) -> set[str]:
    """The needed capabilities the given ones do not grant (CAPABILITY_NAMED_IAM grants CAPABILITY_IAM)."""
    granted = set(given) | ({IAM} if NAMED_IAM in given else set())
    return needed - granted


def samconfig_capabilities(path: Path, environment: str = "default") -> set[str]:
    config = tomllib.loads(path.read_text())
    value = config[environment]["deploy"]["parameters"].get("capabilities", "")
    return set(value.split() if isinstance(value, str) else value)


@dataclass(frozen=True)
class Command:
    """One documented deploy command: the template it deploys, the capabilities it passes (None: none on
    the command line), and whether CloudFormation deploys it through a change set."""

    doc: str
    text: str
    kind: str
    template: str
    capabilities: frozenset[str] | None

    @property
    def change_set(self) -> bool:
        return self.kind in {"sam deploy", "cloudformation deploy"}


DEPLOY_COMMANDS = {
    ("sam", "deploy"): "sam deploy",
    ("cloudformation", "deploy"): "cloudformation deploy",
    ("cloudformation", "create-stack"): "create-stack",
    ("cloudformation", "update-stack"): "update-stack",
    ("cloudformation", "create-stack-set"): "create-stack-set",
    ("cloudformation", "update-stack-set"): "update-stack-set",
    ("serverlessrepo", "create-cloud-formation-change-set"): "serverlessrepo",
    ("serverlessrepo", "create-cloud-formation-template"): "serverlessrepo",
}


def _logical_lines(lines: list[str]) -> Iterator[str]:
    current = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        yield current + line
        current = ""
    if current:
        yield current


def _option(words: list[str], *names: str) -> list[str] | None:
    """The values after an option (up to the next option), or None when it is absent."""
    for index, word in enumerate(words):
        name, _, inline = word.partition("=")
        if name in names:
            if inline:
                return [inline]
            values = []
            for value in words[index + 1 :]:
                if value.startswith("-"):
                    break
                values.append(value)
            return values
    return None


def code_blocks(text: str) -> Iterator[list[str]]:
    """A Markdown text's fenced code blocks, each as its lines."""
    block: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            if block is None:
                block = []
            else:
                yield block
                block = None
        elif block is not None:
            block.append(line)


def documented_commands(root: Path) -> list[Command]:
    """Every deploy command in the code blocks of README.md and docs/."""
    paths = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [
        command
        for path in paths
        for command in commands_in(str(path.relative_to(root)), code_blocks(path.read_text(encoding="utf-8")))
    ]


def commands_in(doc: str, blocks: Iterator[list[str]]) -> Iterator[Command]:
    for block in blocks:
        for line in _logical_lines(block):
            text = line.split(" # ", 1)[0].strip()
            try:
                words = shlex.split(text)
            except ValueError:
                continue
            for index in range(len(words) - 1):
                tool = Path(words[index]).name
                kind = DEPLOY_COMMANDS.get((tool, words[index + 1]))
                if kind is None:
                    continue
                rest = words[index + 2 :]
                if kind == "serverlessrepo":
                    template = "template.yaml"  # the application published from template.yaml
                else:
                    named = _option(rest, "--template-file", "--template", "-t", "--template-body")
                    template = re.sub(r"^file://", "", named[0]) if named else "template.yaml"
                given = _option(rest, "--capabilities")
                yield Command(doc, text, kind, template, None if given is None else frozenset(given))
