"""Every way the docs deploy a template passes the capabilities that template needs: samconfig.toml for
`sam deploy`, and each documented `sam deploy`, `aws cloudformation deploy|create-stack|create-stack-set` and
Serverless Application Repository change set. A named IAM role (OrganizationReconcilerRole's RoleName)
needs CAPABILITY_NAMED_IAM, which CAPABILITY_IAM alone does not grant."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.capabilities import (
    AUTO_EXPAND,
    IAM,
    NAMED_IAM,
    RESOURCE_POLICY,
    Command,
    cloudformation_capabilities,
    documented_commands,
    missing,
    repository_capabilities,
    samconfig_capabilities,
)
from tests.support.samples import ROOT

SAMCONFIG = ROOT / "samconfig.toml"
COMMANDS = documented_commands(ROOT)


def _needed(command: Command) -> set[str]:
    path = ROOT / command.template
    if command.kind == "serverlessrepo":
        return repository_capabilities(path)
    return cloudformation_capabilities(path, change_set=command.change_set)


def test_the_rules_read_the_templates_as_cloudformation_does(tmp_path: Path) -> None:
    # The central stack names the organization reconciler's role; the IAM forwarder's role is unnamed.
    assert cloudformation_capabilities(ROOT / "template.yaml", change_set=True) == {IAM, NAMED_IAM}
    assert cloudformation_capabilities(ROOT / "forwarders/iam-role-events.yaml", change_set=True) == {IAM}
    assert AUTO_EXPAND in cloudformation_capabilities(ROOT / "template.yaml", change_set=False)
    assert repository_capabilities(ROOT / "template.yaml") == {IAM, NAMED_IAM, RESOURCE_POLICY}
    assert missing({IAM, NAMED_IAM}, {IAM}) == {NAMED_IAM}
    assert missing({IAM, NAMED_IAM}, {NAMED_IAM}) == set()
    unnamed = tmp_path / "unnamed.yaml"
    unnamed.write_text("Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties: {}\n")
    assert cloudformation_capabilities(unnamed, change_set=False) == {IAM}


def test_samconfig_passes_what_template_yaml_needs() -> None:
    needed = cloudformation_capabilities(ROOT / "template.yaml", change_set=True)
    assert missing(needed, samconfig_capabilities(SAMCONFIG)) == set()


def test_the_docs_show_every_kind_of_deploy_command() -> None:
    # The parser must see the commands, or the next test passes for want of any.
    kinds = {command.kind for command in COMMANDS}
    assert {"sam deploy", "cloudformation deploy", "create-stack-set", "serverlessrepo"} <= kinds


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.doc}:{c.kind}:{c.template}")
def test_every_documented_deploy_command_passes_the_capabilities_its_template_needs(command: Command) -> None:
    given = command.capabilities
    if given is None:
        assert command.kind == "sam deploy", f"{command.doc}: `{command.text}` passes no --capabilities"
        given = frozenset(samconfig_capabilities(SAMCONFIG))  # sam deploy (--guided too) takes samconfig's
    assert missing(_needed(command), set(given)) == set(), f"{command.doc}: `{command.text}`"
