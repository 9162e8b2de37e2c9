"""Reading Terraform plans and CloudFormation change sets into impact questions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from grantwatch.domain.impact import ChangeKind, Hypothesis, PlannedFunction, Scenario
from grantwatch.domain.plans import PlanError, read_plan
from tests.support.plans import (
    ENVIRONMENT_AFTER,
    ENVIRONMENT_BEFORE,
    cfn_change,
    cfn_detail,
    cfn_function_following_role,
    cfn_role_replaced,
    change_set,
    role_arn,
    terraform_plan,
    tf_function,
    tf_grant,
    tf_key,
    tf_noop_bucket,
    tf_role,
)
from tests.support.samples import KEY_ARN
from tests.support.scenarios import function_arn

KEY_ID = KEY_ARN.rsplit("/", 1)[1]


def read(document: Any) -> Scenario:
    return read_plan(json.dumps(document))


def kinds(document: Any) -> list[tuple[ChangeKind, str]]:
    return [(h.kind, h.target) for h in read(document).hypotheses]


# Terraform


def test_a_role_replaced_under_its_name() -> None:
    [found] = read(terraform_plan(tf_role("shared-role", ["delete", "create"]))).hypotheses
    assert found == Hypothesis(ChangeKind.ROLE_REPLACED, role_arn("shared-role"), "aws_iam_role.exec")


def test_create_before_destroy_is_a_replacement_too() -> None:
    assert kinds(terraform_plan(tf_role("shared-role", ["create", "delete"]))) == [
        (ChangeKind.ROLE_REPLACED, role_arn("shared-role"))
    ]


@pytest.mark.parametrize(
    "change",
    [tf_role("shared-role", ["delete"]), tf_role("shared-role", ["delete", "create"], new_name="next")],
)
def test_a_role_deleted_or_renamed_is_gone(change: dict[str, Any]) -> None:
    assert kinds(terraform_plan(change)) == [(ChangeKind.ROLE_DELETED, role_arn("shared-role"))]


def test_updates_and_no_ops_are_not_changes_that_break() -> None:
    tagged = tf_role("shared-role", ["update"])
    tagged["change"]["after"] = dict(tagged["change"]["before"], tags={"team": "billing"})
    enabled = tf_key(KEY_ARN, ["update"], enabled_after=True)
    data = tf_noop_bucket() | {"mode": "data", "change": {"actions": ["read"], "before": None, "after": {}}}
    scenario = read(terraform_plan(tagged, enabled, tf_noop_bucket(), data))
    assert (scenario.hypotheses, scenario.functions) == ((), ())


def test_key_disabled_and_key_destroyed() -> None:
    assert kinds(terraform_plan(tf_key(KEY_ARN, ["update"], enabled_after=False))) == [
        (ChangeKind.KEY_DISABLED, KEY_ARN)
    ]
    for actions in (["delete"], ["delete", "create"]):
        assert kinds(terraform_plan(tf_key(KEY_ARN, actions))) == [(ChangeKind.KEY_PENDING_DELETION, KEY_ARN)]


def test_a_grant_resource_deleted_is_retired_or_revoked() -> None:
    assert kinds(terraform_plan(tf_grant("g1", retire_on_delete=True))) == [(ChangeKind.GRANT_RETIRED, "g1")]
    assert kinds(terraform_plan(tf_grant("g1", retire_on_delete=False))) == [(ChangeKind.GRANT_REVOKED, "g1")]


def planned(*changes: dict[str, Any]) -> PlannedFunction:
    [function] = read(terraform_plan(tf_role("shared-role", ["delete", "create"]), *changes)).functions
    return function


def test_a_function_whose_role_is_only_known_after_apply_is_not_certain_to_get_a_grant() -> None:
    function = planned(tf_function("billing", role="shared-role", role_known_after_apply=True))
    assert (function.function, function.regrants) == (function_arn("billing"), False)
    assert function.note is not None and "neither its key nor its role" in function.note


def test_a_function_following_the_role_whose_environment_alone_changes_gets_no_grant() -> None:
    """Lambda creates a grant when an update changes the key or the role: a new environment is neither."""
    function = planned(
        tf_function("billing", role="shared-role", role_known_after_apply=True, new_environment=True)
    )
    assert function.regrants is False
    assert function.note is not None and "an update that changes neither creates no grant" in function.note


def test_a_function_following_the_role_with_a_new_key_or_replaced_gets_a_grant() -> None:
    new_key = KEY_ARN.replace("5f1e", "0000")
    for change in (
        tf_function("billing", role="shared-role", role_known_after_apply=True, new_key=new_key),
        tf_function("billing", ["delete", "create"], role="shared-role", role_known_after_apply=True),
    ):
        function = planned(change)
        assert (function.regrants, function.note) == (True, None)


def test_a_function_following_a_renamed_role_gets_a_grant_its_arn_changes() -> None:
    plan = terraform_plan(
        tf_role("shared-role", ["delete", "create"], new_name="shared-role-v2"),
        tf_function("billing", role="shared-role", role_known_after_apply=True),
    )
    assert read(plan).functions[0].regrants is True


def test_a_function_changed_without_following_the_role_is_not_ordered_after_it() -> None:
    function = planned(tf_function("billing", role="shared-role", new_environment=True))
    assert function.regrants is False
    assert function.note is not None and "not after the role is re-created" in function.note


def test_a_function_moving_role_or_key_or_deleted() -> None:
    moved = planned(tf_function("billing", role="shared-role", new_role="billing-role"))
    assert (moved.new_role, moved.note) == ("billing-role", None)
    other_key = KEY_ARN.replace("5f1e", "0a0b")
    assert planned(tf_function("billing", role="shared-role", new_key=other_key)).new_key == other_key
    assert planned(tf_function("billing", ["delete"], role="shared-role")).deleted is True


def test_environment_values_never_leave_the_parser() -> None:
    plan = terraform_plan(
        tf_role("shared-role", ["delete", "create"]),
        tf_function("billing", role="shared-role", new_environment=True),
    )
    shown = repr(read(plan))
    assert ENVIRONMENT_BEFORE not in shown and ENVIRONMENT_AFTER not in shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\x00\x01binary plan", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"hello": "world"}', "neither a Terraform plan"),
        (json.dumps(terraform_plan() | {"format_version": "2.0"}), "format_version 2.0"),
        (
            json.dumps(terraform_plan({"address": "aws_iam_role.x", "type": "aws_iam_role", "change": {}})),
            "resource_changes.0.change.actions",
        ),
        (json.dumps({"format_version": "1.0", "values": {"root_module": {}}}), "state, not a plan"),
        (
            json.dumps({"Changes": [{"ResourceChange": {"LogicalResourceId": "X"}}]}),
            "Changes.0.ResourceChange",
        ),
        (json.dumps({"Changes": "none"}), "Changes"),
    ],
)
def test_malformed_plans_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        read_plan(text)


# CloudFormation


def test_a_change_set_replacing_a_role_under_its_name() -> None:
    [found] = read(change_set(cfn_role_replaced("shared-role"))).hypotheses
    assert found == Hypothesis(ChangeKind.ROLE_REPLACED, "shared-role", "ExecRole (AWS::IAM::Role)")


def test_a_conditional_replacement_is_reported_with_its_doubt() -> None:
    change = cfn_role_replaced("shared-role")
    change["ResourceChange"]["Replacement"] = "Conditional"
    [found] = read(change_set(change)).hypotheses
    assert found.kind is ChangeKind.ROLE_REPLACED and "Conditional" in (found.note or "")


def test_a_role_renamed_or_removed_is_gone() -> None:
    renamed = cfn_change(
        "Modify",
        "ExecRole",
        "shared-role",
        "AWS::IAM::Role",
        replacement="True",
        details=[cfn_detail("RoleName", recreation="Always")],
    )
    generated = cfn_role_replaced("shared-role")
    generated["ResourceChange"]["AfterContext"] = json.dumps({"Properties": {"Path": "/service/"}})
    removed = cfn_change("Remove", "ExecRole", "shared-role", "AWS::IAM::Role")
    for change in (renamed, generated, removed):
        assert kinds(change_set(change)) == [(ChangeKind.ROLE_DELETED, "shared-role")]


def test_a_role_modified_in_place_is_not_a_change_that_breaks() -> None:
    policy = cfn_change(
        "Modify", "ExecRole", "shared-role", "AWS::IAM::Role", details=[cfn_detail("Policies")]
    )
    assert kinds(change_set(policy)) == []


def test_change_set_keys_removed_disabled_or_maybe_disabled() -> None:
    removed = cfn_change("Remove", "EnvKey", KEY_ID, "AWS::KMS::Key")
    assert kinds(change_set(removed)) == [(ChangeKind.KEY_PENDING_DELETION, KEY_ID)]
    disabled = cfn_change(
        "Modify", "EnvKey", KEY_ID, "AWS::KMS::Key", details=[cfn_detail("Enabled", after="false")]
    )
    assert kinds(change_set(disabled)) == [(ChangeKind.KEY_DISABLED, KEY_ID)]
    enabled = cfn_change(
        "Modify", "EnvKey", KEY_ID, "AWS::KMS::Key", details=[cfn_detail("Enabled", after="true")]
    )
    assert kinds(change_set(enabled)) == []
    unknown = cfn_change("Modify", "EnvKey", KEY_ID, "AWS::KMS::Key", details=[cfn_detail("Enabled")])
    [maybe] = read(change_set(unknown)).hypotheses
    assert maybe.kind is ChangeKind.KEY_DISABLED and "--include-property-values" in (maybe.note or "")


def test_a_function_that_only_re_reads_the_replaced_roles_arn_is_not_certain_to_get_a_grant() -> None:
    scenario = read(change_set(cfn_role_replaced("shared-role"), cfn_function_following_role("billing")))
    [function] = scenario.functions
    assert (function.function, function.regrants) == ("billing", False)
    assert function.note is not None and "ExecRole" in function.note


def test_a_function_following_the_role_whose_environment_alone_changes_gets_no_grant_in_cfn() -> None:
    function = cfn_function_following_role("billing")
    function["ResourceChange"]["Details"].append(cfn_detail("Environment"))
    [planned_function] = read(change_set(cfn_role_replaced("shared-role"), function)).functions
    assert planned_function.regrants is False
    assert planned_function.note is not None and "neither its KmsKeyArn nor its Role" in planned_function.note


def test_a_function_following_the_role_with_a_static_key_change_gets_a_grant() -> None:
    function = cfn_function_following_role("billing")
    function["ResourceChange"]["Details"].append(cfn_detail("KmsKeyArn"))
    [planned_function] = read(change_set(cfn_role_replaced("shared-role"), function)).functions
    assert planned_function.regrants is True


def test_a_function_removed_and_a_nested_stack_noted() -> None:
    scenario = read(
        change_set(
            cfn_change("Remove", "Billing", "billing", "AWS::Lambda::Function"),
            cfn_change("Modify", "Workers", "arn:aws:cloudformation:...", "AWS::CloudFormation::Stack"),
        )
    )
    assert scenario.functions == (
        PlannedFunction("billing", "Billing (AWS::Lambda::Function)", deleted=True),
    )
    assert any("nested stack Workers" in note for note in scenario.notes)
