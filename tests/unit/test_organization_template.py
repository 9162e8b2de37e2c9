"""The organization's templates: the member read-only role (member/forwarder.yaml) can write nothing and
admits only the central reconciler's role of the same organization with the external id; the central side
(template.yaml) assumes that role and nothing else, one account-region at a time per worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from grantwatch.adapters.accounts import ListedAccounts, OrganizationAccounts
from grantwatch.handlers import fanout, organization
from grantwatch.settings import settings
from tests.support.cloudformation import Stack
from tests.support.iam_contract import (
    MEMBER_PARAMETERS,
    PARAMETERS,
    STACK_ACCOUNT,
    Call,
    Checker,
    Request,
    decide,
    environment,
    role_statements,
    statements,
)
from tests.support.samples import ROOT, TEMPLATE

MEMBER = ROOT / "member" / "forwarder.yaml"
# The central account is the tests' stack account, the one the member template's parameters name.
CENTRAL, MEMBER_ACCOUNT, ORGANIZATION = STACK_ACCOUNT, "111122223333", "o-a1b2c3d4e5"
EXTERNAL_ID = MEMBER_PARAMETERS["ExternalId"]
READ_ACTIONS = {
    "kms:ListKeys",
    "kms:ListGrants",
    "kms:DescribeKey",
    "lambda:ListFunctions",
    "lambda:GetFunctionConfiguration",
    "iam:GetRole",
    # which tables, databases and volumes are on a key
    "dynamodb:ListTables",
    "dynamodb:DescribeTable",
    "rds:DescribeDBInstances",
    "rds:DescribeDBClusters",
    "ec2:DescribeVolumes",
}


def _member(region: str = "us-east-1", **parameters: str) -> Stack:
    return Stack.load(
        MEMBER, parameters={**MEMBER_PARAMETERS, **parameters}, account=MEMBER_ACCOUNT, region=region
    )


def _central(**parameters: str) -> Stack:
    return Stack.load(
        TEMPLATE, parameters={**PARAMETERS, **parameters}, account=CENTRAL, region="eu-central-1"
    )


def _assertions_hold(stack: Stack) -> bool:
    return all(
        stack._truth(assertion["Assert"])
        for rule in stack.template.get("Rules", {}).values()
        if "RuleCondition" not in rule or stack._truth(rule["RuleCondition"])
        for assertion in rule["Assertions"]
    )


def _trust(stack: Stack) -> list[dict[str, Any]]:
    document = stack.resolve(stack.resources["ReadRole"]["Properties"]["AssumeRolePolicyDocument"])
    listed: list[dict[str, Any]] = document["Statement"]
    return listed


def _assume(principal: str, organization: str, external_id: str | None) -> Request:
    context = [("aws:PrincipalArn", (principal,)), ("aws:PrincipalOrgID", (organization,))]
    if external_id is not None:
        context.append(("sts:ExternalId", (external_id,)))
    return Request(
        "sts:AssumeRole", f"arn:aws:iam::{MEMBER_ACCOUNT}:role/grantwatch-member-reader", tuple(context)
    )


def test_the_role_is_created_once_per_account_and_only_with_a_central_account() -> None:
    assert _member("us-east-1").exists("ReadRole")
    assert not _member("eu-west-1").exists("ReadRole")  # IAM is global: one region's instance creates it
    assert _member("eu-west-1", MemberRoleRegion="eu-west-1").exists("ReadRole")
    without = _member("us-east-1", CentralAccountId="", OrganizationId="", ExternalId="")
    assert not without.exists("ReadRole") and _assertions_hold(without)
    assert not _assertions_hold(_member(ExternalId=""))  # a trust policy without an external id
    assert not _assertions_hold(_member(OrganizationId=""))
    assert _assertions_hold(_member())


def test_the_member_role_reads_and_writes_nothing() -> None:
    stack = _member()
    policy = role_statements(stack, "ReadRole")
    actions = {a for s in policy for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert actions == READ_ACTIONS
    assert all(s["Effect"] == "Allow" and "*" not in str(s["Action"]) for s in policy)
    for write in (
        "kms:RetireGrant",
        "kms:RevokeGrant",
        "kms:CreateGrant",
        "lambda:UpdateFunctionConfiguration",
    ):
        assert not decide(policy, Request(write, f"arn:aws:kms:us-east-1:{MEMBER_ACCOUNT}:key/k")).allowed
    key = f"arn:aws:kms:eu-west-1:{MEMBER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert decide(policy, Request("kms:ListGrants", key)).allowed  # every region's keys, this account's
    assert not decide(policy, Request("kms:ListGrants", key.replace(MEMBER_ACCOUNT, CENTRAL))).allowed


def test_the_trust_policy_admits_only_the_central_role_of_the_organization_with_the_external_id() -> None:
    stack = _member()
    [statement] = _trust(stack)
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{CENTRAL}:root"}
    central_role = f"arn:aws:iam::{CENTRAL}:role/grantwatch-organization-reconciler"
    assert decide([statement], _assume(central_role, ORGANIZATION, EXTERNAL_ID)).allowed
    refused = [
        _assume(central_role, ORGANIZATION, "another-external-id-value"),
        _assume(central_role, ORGANIZATION, None),
        _assume(central_role, "o-zzzzzzzzzz", EXTERNAL_ID),
        _assume(f"arn:aws:iam::{CENTRAL}:role/someone-else", ORGANIZATION, EXTERNAL_ID),
        _assume(f"arn:aws:iam::{CENTRAL}:user/admin", ORGANIZATION, EXTERNAL_ID),
    ]
    assert not any(decide([statement], request).allowed for request in refused)


@pytest.mark.parametrize("role_name", ["grantwatch-organization-reconciler", "acme-grant-reconciler"])
def test_the_central_role_is_the_one_member_roles_trust_and_may_assume_them_only(role_name: str) -> None:
    central = _central(CentralRoleName=role_name)
    role = central.resolve(central.resources["OrganizationReconcilerRole"]["Properties"])
    member = _member(CentralRoleName=role_name)
    [trust] = _trust(member)
    assert (
        trust["Condition"]["ArnEquals"]["aws:PrincipalArn"]
        == f"arn:aws:iam::{CENTRAL}:role/{role['RoleName']}"
    )
    policy = statements(central, "OrganizationWorkerFunction")
    member_role = member.resolve(member.resources["ReadRole"]["Properties"]["RoleName"])
    other_account = f"arn:aws:iam::444455556666:role/{member_role}"
    assert decide(
        policy, Request("sts:AssumeRole", f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{member_role}")
    ).allowed
    assert decide(policy, Request("sts:AssumeRole", other_account)).allowed
    assert not decide(policy, Request("sts:AssumeRole", f"arn:aws:iam::{MEMBER_ACCOUNT}:role/Admin")).allowed


def test_workers_take_one_account_region_at_a_time_with_bounded_concurrency_and_a_dead_letter_queue() -> None:
    central = _central(OrganizationConcurrency="25")
    worker = central.resolve(central.resources["OrganizationWorkerFunction"]["Properties"])
    source = worker["Events"]["Reconciliations"]["Properties"]
    assert source["BatchSize"] == 1 and source["ScalingConfig"]["MaximumConcurrency"] == "25"
    queue = central.resolve(central.resources["OrganizationQueue"]["Properties"])
    assert queue["RedrivePolicy"]["deadLetterTargetArn"].endswith("OrganizationDeadLetterQueue-TESTSUFFIX")
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert not _assertions_hold(_central(ExternalId=""))
    off = _central(OrganizationReconciliation="false", ExternalId="")
    assert _assertions_hold(off)
    assert not any(off.exists(n) for n in ("OrganizationWorkerFunction", "OrganizationFanOutFunction"))


def test_the_iam_contract_checks_a_call_made_as_a_member_role_against_the_member_template() -> None:
    role = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/grantwatch-member-reader"
    key = f"arn:aws:kms:eu-west-1:{MEMBER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    checker = Checker()
    worker = "OrganizationWorkerFunction"
    checker.check(Call(worker, "kms", "ListGrants", "eu-west-1", None, {"KeyId": key}, role))
    checker.check(Call(worker, "lambda", "ListFunctions", "eu-west-1", None, {}, role))
    assert checker.violations == {}
    checker.check(Call(worker, "kms", "RetireGrant", "eu-west-1", None, {"KeyId": key, "GrantId": "g"}, role))
    [violation] = checker.violations.values()
    assert violation.request is not None and violation.request.action == "kms:RetireGrant"
    other = Checker()
    other.check(
        Call(worker, "kms", "ListGrants", "eu-west-1", None, {"KeyId": key}, role.replace("reader", "x"))
    )
    assert other.violations  # a role no template creates


def test_the_handlers_build_from_the_environment_the_template_gives_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    central = _central(
        AccountIds="111122223333,444455556666", AccountIdsParameter="", Regions="eu-west-1,us-east-1"
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    for function in ("OrganizationFanOutFunction", "OrganizationWorkerFunction"):
        for name, value in environment(central, function).items():
            monkeypatch.setenv(name, str(value))
    settings.cache_clear()
    organization.organization_reconciler.cache_clear()
    try:
        built = fanout.fan_out()
        assert isinstance(built.accounts, ListedAccounts)
        assert built.accounts.active_accounts() == ["111122223333", "444455556666"]
        assert list(built.regions) == ["eu-west-1", "us-east-1"] and built.interval == timedelta(hours=1)
        worker = organization.organization_reconciler()
        assert worker.members.role_arn("111122223333", "eu-west-1") == (  # type: ignore[attr-defined]
            "arn:aws:iam::111122223333:role/grantwatch-member-reader"
        )
        monkeypatch.setenv("GRANTWATCH_ACCOUNT_IDS", "")
        settings.cache_clear()  # the environment is read once per cold start
        assert isinstance(fanout.fan_out().accounts, OrganizationAccounts)
    finally:
        settings.cache_clear()
        organization.organization_reconciler.cache_clear()


PARAMETER_VALUE_LIMIT = 4096  # bytes, CloudFormation's most for one parameter value


def _longest_account_ids(declared: dict[str, Any]) -> str:
    bound = int(declared["AccountIds"].get("MaxLength", PARAMETER_VALUE_LIMIT))
    return ",".join(str(100000000000 + i) for i in range((bound + 1) // 13))


def test_more_accounts_than_a_parameter_value_holds_are_refused_by_the_template_not_by_lambda() -> None:
    declared = _central().template["Parameters"]
    assert len(_longest_account_ids(declared).split(",")) == 100
    assert "AccountIdsParameter" in declared["AccountIds"]["ConstraintDescription"]
    both = _central(AccountIds="111122223333", AccountIdsParameter="/grantwatch/accounts")
    assert not _assertions_hold(both)
    assert _assertions_hold(_central(AccountIds="111122223333", AccountIdsParameter=""))


def test_the_fan_out_may_read_the_account_list_parameter_and_what_is_under_it_and_no_other() -> None:
    central = _central(AccountIdsParameter="/acme/grantwatch/accounts")
    policy = statements(central, "OrganizationFanOutFunction")
    arn = f"arn:aws:ssm:eu-central-1:{CENTRAL}:parameter/acme/grantwatch/accounts"
    assert decide(policy, Request("ssm:GetParameter", arn)).allowed
    assert decide(policy, Request("ssm:GetParametersByPath", arn)).allowed  # authorized on the path
    for other in (f"{arn}-other", arn.replace("/acme", "/other"), arn.replace(CENTRAL, MEMBER_ACCOUNT)):
        assert not decide(policy, Request("ssm:GetParameter", other)).allowed
    assert not decide(policy, Request("ssm:GetParameters", arn)).allowed
    without = statements(_central(AccountIdsParameter=""), "OrganizationFanOutFunction")
    assert not any(str(s["Action"]).startswith("ssm") or "ssm:" in str(s["Action"]) for s in without)


def test_the_workers_read_the_central_accounts_own_keys_and_functions_in_every_region_and_write_nothing() -> (
    None
):
    central = _central()
    policy = statements(central, "OrganizationWorkerFunction")
    for region in ("eu-central-1", "us-east-1", "ap-southeast-2"):
        key = f"arn:aws:kms:{region}:{CENTRAL}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        function = f"arn:aws:lambda:{region}:{CENTRAL}:function:billing"
        assert decide(policy, Request("kms:ListGrants", key)).allowed
        assert decide(policy, Request("lambda:GetFunctionConfiguration", function)).allowed
        assert not decide(policy, Request("kms:ListGrants", key.replace(CENTRAL, MEMBER_ACCOUNT))).allowed
        for write in ("kms:RetireGrant", "kms:RevokeGrant", "kms:CreateGrant", "kms:Decrypt"):
            assert not decide(policy, Request(write, key)).allowed
        assert not decide(policy, Request("lambda:UpdateFunctionConfiguration", function)).allowed
    assert decide(policy, Request("kms:ListKeys", "*")).allowed
    assert decide(policy, Request("lambda:ListFunctions", "*")).allowed
    assert _reads_resources_of(policy, CENTRAL) and not _reads_resources_of(policy, MEMBER_ACCOUNT)
    for function in ("OrganizationFanOutFunction", "OrganizationWorkerFunction"):
        assert environment(central, function)["GRANTWATCH_CENTRAL_ACCOUNT_ID"] == CENTRAL


def test_the_member_role_reads_which_resources_are_on_its_keys_in_every_region_and_no_others() -> None:
    policy = role_statements(_member(), "ReadRole")
    assert _reads_resources_of(policy, MEMBER_ACCOUNT)
    assert not _reads_resources_of(policy, CENTRAL)
    table = f"arn:aws:dynamodb:eu-west-1:{MEMBER_ACCOUNT}:table/orders"
    for write in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateTable"):
        assert not decide(policy, Request(write, table)).allowed
    assert not decide(policy, Request("ec2:DetachVolume", "*")).allowed
    assert not decide(
        policy, Request("rds:ModifyDBInstance", f"arn:aws:rds:eu-west-1:{MEMBER_ACCOUNT}:db:a")
    ).allowed


def _reads_resources_of(policy: list[dict[str, Any]], account: str) -> bool:
    """DescribeTable, DescribeDBInstances and DescribeDBClusters on the account's resources in any region
    (ListTables and DescribeVolumes have no resource-level permission)."""
    reads = [
        Request("dynamodb:ListTables", "*"),
        Request("ec2:DescribeVolumes", "*"),
        *(
            request
            for region in ("eu-central-1", "us-east-1", "ap-southeast-2")
            for request in (
                Request("dynamodb:DescribeTable", f"arn:aws:dynamodb:{region}:{account}:table/orders"),
                Request("rds:DescribeDBInstances", f"arn:aws:rds:{region}:{account}:db:*"),
                Request("rds:DescribeDBClusters", f"arn:aws:rds:{region}:{account}:cluster:*"),
            )
        ),
    ]
    return all(decide(policy, request).allowed for request in reads)


def test_a_fan_out_with_no_account_to_queue_raises_an_alarm_like_the_stacks_others() -> None:
    central = _central(AlarmTopicArn=f"arn:aws:sns:eu-central-1:{CENTRAL}:ops")
    alarm = central.resolve(central.resources["OrganizationAccountSourceAlarm"]["Properties"])
    fan_out = environment(central, "OrganizationFanOutFunction")
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        fan_out["POWERTOOLS_METRICS_NAMESPACE"],
        "AccountSourceErrors",
    )
    assert alarm["Dimensions"] == [{"Name": "service", "Value": fan_out["POWERTOOLS_SERVICE_NAME"]}]
    errors = central.resolve(central.resources["OrganizationFanOutErrorsAlarm"]["Properties"])
    for same in (
        "AlarmActions",
        "Period",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "Statistic",
    ):
        assert alarm[same] == errors[same], same
    assert alarm["AlarmActions"] == [f"arn:aws:sns:eu-central-1:{CENTRAL}:ops"]
    assert central.resources["OrganizationAccountSourceAlarm"]["Condition"] == "ReconcilesOrganization"
