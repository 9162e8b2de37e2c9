"""Organization reconciliation against moto's server (on loopback) standing in for Organizations, STS
(AssumeRole into other accounts), KMS, Lambda and SQS, and DynamoDB Local: functions and grants in three
member accounts and two regions. A retire CloudTrail never delivered in one member account is found and
alerted; an account whose role cannot be assumed (AWS's AccessDenied) is reported while the others
reconcile, and raises a notice once stale; nothing is written in a member account. The management account,
where the central stack runs and which no service-managed StackSet reaches (so no member role is there, and
STS refuses to assume one), is reconciled in every region with the workers' own role."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from typer.testing import CliRunner

from grantwatch.adapters.accounts import (
    DynamoCoverageStore,
    ListedAccounts,
    MemberRoles,
    OrganizationAccounts,
    SqsReconciliationQueue,
)
from grantwatch.cli import app
from grantwatch.domain.coverage import Target
from grantwatch.fanout import OrganizationFanOut
from grantwatch.handlers.organization import target_of
from grantwatch.organization import OrganizationReconciler
from grantwatch.pipeline import CollectingNotifier, LocalPipeline
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.iam_contract import SESSION, Call, stands_for
from tests.support.moto_server import moto_server

CENTRAL = "123456789012"  # moto's own account: the management account
REGIONS = ("us-east-1", "eu-west-1")
MEMBER_ROLE = "grantwatch-member-reader"
EXTERNAL_ID = "grantwatch-test-external-id"
READS = {"ListKeys", "ListGrants", "DescribeKey", "ListFunctions", "GetFunctionConfiguration", "GetRole"}
runner = CliRunner()


@dataclass
class Member:
    """One member account, reached (for the test's own set-up) as a role in it."""

    account: str
    session: boto3.Session
    functions: dict[str, str] = field(default_factory=dict)  # region -> function ARN
    keys: dict[str, str] = field(default_factory=dict)
    grants: dict[str, str] = field(default_factory=dict)

    def client(self, service: str, region: str) -> Any:
        return self.session.client(service, region_name=region)  # type: ignore[call-overload]


@dataclass
class Organization:
    endpoint: str
    members: list[Member]
    queue_url: str
    central: Member

    def member_roles(self, denied: frozenset[str] = frozenset()) -> MemberRoles:
        """The workers' access, as in AWS: no member role in the management account (the StackSet does not
        deploy there), so STS refuses to assume one there; the workers read it with their own role."""
        sts = boto3.client("sts", region_name="us-east-1")
        sts.meta.events.register("before-call.sts.AssumeRole", _access_denied(denied | {CENTRAL}))
        return MemberRoles(MEMBER_ROLE, EXTERNAL_ID, sts, own_account=CENTRAL)


def _access_denied(accounts: frozenset[str]) -> Any:
    """STS's answer when the role is missing or its trust policy refuses: 403 AccessDenied as AWS sends it."""

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        role = params["body"]["RoleArn"]
        if role.split(":")[4] not in accounts:
            return None
        message = (
            f"User: arn:aws:sts::{CENTRAL}:assumed-role/grantwatch-organization-reconciler/reconcile is not "
            f"authorized to perform: sts:AssumeRole on resource: {role}"
        )
        parsed = {
            "Error": {"Type": "Sender", "Code": "AccessDenied", "Message": message},
            "ResponseMetadata": {"RequestId": "c6104cbe-af31-11e0-8154-cbc7ccf896c7", "HTTPStatusCode": 403},
        }
        return AWSResponse("https://sts.amazonaws.com/", 403, HTTPHeaders(), None), parsed

    return answer


def _member(endpoint: str, account: str) -> Member:
    sts = boto3.client("sts", region_name="us-east-1")
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="setup")[
        "Credentials"
    ]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    member = Member(account, session)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = member.client("iam", "us-east-1").create_role(
        RoleName="app", AssumeRolePolicyDocument=json.dumps(trust)
    )
    for region in REGIONS:
        kms, lambda_ = member.client("kms", region), member.client("lambda", region)
        key = kms.create_key()["KeyMetadata"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return None\n")
        function = lambda_.create_function(
            FunctionName="billing",
            Role=role["Role"]["Arn"],
            Runtime="python3.13",
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": {"STAGE": "prod"}},
            KMSKeyArn=key,
        )["FunctionArn"]
        grantee = f"arn:aws:sts::{account}:assumed-role/app/billing"
        member.grants[region] = kms.create_grant(
            KeyId=key,
            GranteePrincipal=grantee,
            RetiringPrincipal=grantee,
            Operations=["Decrypt", "RetireGrant"],
            Constraints={"EncryptionContextEquals": {"aws:lambda:FunctionArn": function}},
        )["GrantId"]
        member.functions[region], member.keys[region] = function, key
    return member


@pytest.fixture
def organization(monkeypatch: pytest.MonkeyPatch) -> Iterator[Organization]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    services = ("KMS", "LAMBDA", "IAM", "STS", "ORGANIZATIONS", "SQS", "DYNAMODB", "RDS", "EC2")
    with moto_server(monkeypatch, *services) as endpoint:  # DynamoDB: the members' tables, not grantwatch's
        org = boto3.client("organizations", region_name="us-east-1")
        org.create_organization(FeatureSet="ALL")
        accounts = [
            org.create_account(Email=f"member{i}@example.com", AccountName=f"member{i}")[
                "CreateAccountStatus"
            ]["AccountId"]
            for i in range(3)
        ]
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = stands_for("OrganizationQueue", sqs.create_queue(QueueName="reconciliations")["QueueUrl"])
        members = [_member(endpoint, a) for a in sorted(accounts)]
        yield Organization(endpoint, members, queue_url, _member(endpoint, CENTRAL))


def _worker(pipeline: LocalPipeline, settings: Settings, members: MemberRoles) -> OrganizationReconciler:
    return OrganizationReconciler(
        grants=pipeline.grants,  # type: ignore[arg-type]
        functions=pipeline.functions,  # type: ignore[arg-type]
        hazards=pipeline.hazards,  # type: ignore[arg-type]
        scheduler=pipeline.scheduler,
        members=members,
        coverage=DynamoCoverageStore(settings),
    )


def _fan_out(
    organization: Organization, settings: Settings, notifier: CollectingNotifier, listed: bool = False
) -> OrganizationFanOut:
    return OrganizationFanOut(
        accounts=ListedAccounts([m.account for m in organization.members])
        if listed
        else OrganizationAccounts(boto3.client("organizations", region_name="us-east-1")),
        central=CENTRAL,
        regions=REGIONS,
        queue=SqsReconciliationQueue(organization.queue_url, boto3.client("sqs", region_name="us-east-1")),
        coverage=DynamoCoverageStore(settings),
        notifier=notifier,
        interval=timedelta(hours=1),
    )


def _queued(organization: Organization) -> list[Target]:
    """Every message the fan-out queued, as a worker parses it."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    found: list[Target] = []
    while messages := sqs.receive_message(QueueUrl=organization.queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for message in messages:
            target = target_of(message["Body"])
            assert target is not None
            found.append(target)
            sqs.delete_message(QueueUrl=organization.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def _run(
    organization: Organization,
    settings: Settings,
    pipeline: LocalPipeline,
    now: datetime,
    denied: frozenset[str] = frozenset(),
    listed: bool = False,
) -> tuple[dict[Target, Any], list[Any], list[Any]]:
    """One scheduled run: the fan-out, every queued account-region reconciled, the evaluations drained."""
    notifier = CollectingNotifier()
    _fan_out(organization, settings, notifier, listed).run(now)
    worker = _worker(pipeline, settings, organization.member_roles(denied))
    coverage = {c.target: c for c in worker.run_all(_queued(organization), now)}
    pipeline.clock = now
    return coverage, pipeline.drain(), notifier.notices


@dataclass
class MemberCalls:
    """Every call made with credentials STS issued for a member role, seen as the IAM contract sees it."""

    calls: list[Call] = field(default_factory=list)

    def check(self, call: Call) -> None:
        if call.assumed_role:
            self.calls.append(call)


@pytest.fixture
def member_calls() -> Iterator[list[Call]]:
    seen = MemberCalls()
    SESSION.scopes.append(seen)  # type: ignore[arg-type]
    try:
        yield seen.calls
    finally:
        SESSION.scopes.remove(seen)  # type: ignore[arg-type]


def test_a_retire_never_delivered_in_one_member_account_is_found_and_alerted_and_nothing_is_written_there(
    organization: Organization, table_settings: Settings, member_calls: list[Call]
) -> None:
    pipeline = local_pipeline(table_settings)
    scope = SESSION.scope()
    checker = next(scope)
    try:
        first = datetime.now(UTC)
        coverage, notices, stale = _run(organization, table_settings, pipeline, first)
        members = {m.account for m in organization.members}
        assert {t.account for t in coverage} == members | {CENTRAL}  # ListAccounts: the management one too
        for member in organization.members:
            for region in REGIONS:
                entry = coverage[Target(member.account, region)]
                assert entry.reachable and entry.functions == 1 and entry.grants == 1
                assert entry.repairs == {"function-configured": 1, "grant-created": 1}
        assert notices == [] and stale == []

        victim = organization.members[1]
        victim.client("kms", "eu-west-1").retire_grant(
            KeyId=victim.keys["eu-west-1"], GrantId=victim.grants["eu-west-1"]
        )
        coverage, notices, _ = _run(organization, table_settings, pipeline, first + timedelta(hours=1))
        repaired = {t: c.repairs for t, c in coverage.items() if c.repairs}
        assert repaired == {Target(victim.account, "eu-west-1"): {"grant-vanished": 1}}
        [alert] = notices
        assert alert.attributes["alertType"] == "grant-vanished"
        assert alert.attributes["functionArn"] == victim.functions["eu-west-1"]
        assert "(found by reconciliation)" in alert.message
    finally:
        next(scope, None)

    assert checker.violations == {}, [v.line() for v in checker.violations.values()]
    worker = "OrganizationWorkerFunction"
    assert checker.calls[(worker, "sts:AssumeRole")] == 2 * len(organization.members) * len(REGIONS)
    assert checker.calls[("OrganizationFanOutFunction", "organizations:ListAccounts")] == 2
    # Nothing written in a member account: every call made as a member role is a read the role allows.
    assert {c.operation for c in member_calls} >= {"ListGrants", "ListFunctions"}
    assert {c.operation for c in member_calls} <= READS
    assert {c.assumed_role.split(":")[4] for c in member_calls if c.assumed_role} == members
    assert all(c.function == worker for c in member_calls)


@dataclass
class OwnCalls:
    """KMS and Lambda calls a worker made with its own credentials, not a member role's."""

    calls: list[Call] = field(default_factory=list)

    def check(self, call: Call) -> None:
        if call.assumed_role is None and call.service in {"kms", "lambda"}:
            self.calls.append(call)


def test_the_management_account_no_stackset_reaches_is_reconciled_in_every_region_with_the_workers_role(
    organization: Organization, table_settings: Settings
) -> None:
    own = OwnCalls()
    SESSION.scopes.append(own)  # type: ignore[arg-type]
    pipeline = local_pipeline(table_settings)
    central = organization.central
    scope = SESSION.scope()
    checker = next(scope)
    try:
        first = datetime.now(UTC)
        # Accounts listed without the central one (AccountIds): it is covered all the same.
        coverage, _, stale = _run(organization, table_settings, pipeline, first, listed=True)
        for region in REGIONS:
            entry = coverage[Target(CENTRAL, region)]
            assert entry.reachable and entry.errors == ()
            assert (entry.functions, entry.grants) == (1, 1)
            assert entry.repairs == {"function-configured": 1, "grant-created": 1}
        assert stale == []

        # A retire never delivered in the central account, in a region other than the stack's.
        central.client("kms", "eu-west-1").retire_grant(
            KeyId=central.keys["eu-west-1"], GrantId=central.grants["eu-west-1"]
        )
        coverage, notices, _ = _run(organization, table_settings, pipeline, first + timedelta(hours=1))
        repaired = {t: c.repairs for t, c in coverage.items() if c.repairs}
        assert repaired == {Target(CENTRAL, "eu-west-1"): {"grant-vanished": 1}}
        [alert] = notices
        assert alert.attributes["functionArn"] == central.functions["eu-west-1"]
    finally:
        next(scope, None)
        SESSION.scopes.remove(own)  # type: ignore[arg-type]

    assert checker.violations == {}, [v.line() for v in checker.violations.values()]
    worker = "OrganizationWorkerFunction"
    # No member role assumed in the central account: its reads are the worker's own, which its policy allows.
    assert checker.calls[(worker, "sts:AssumeRole")] == 2 * len(organization.members) * len(REGIONS)
    assert {(c.function, c.operation, c.region) for c in own.calls if c.operation == "ListGrants"} == {
        (worker, "ListGrants", region) for region in REGIONS
    }
    assert {str(c.params["KeyId"]).split(":")[4] for c in own.calls if "KeyId" in c.params} == {CENTRAL}


def test_an_unreachable_account_is_reported_while_the_others_reconcile_and_raises_a_notice_once_stale(
    organization: Organization, table_settings: Settings
) -> None:
    pipeline = local_pipeline(table_settings)
    denied = organization.members[2].account
    first = datetime.now(UTC).replace(microsecond=0)
    deny = frozenset({denied})
    coverage, _, _ = _run(organization, table_settings, pipeline, first, deny)
    for target, entry in coverage.items():
        if target.account == denied:
            assert not entry.reachable and entry.last_reconciled_at is None
            [error] = entry.errors
            assert error.startswith("AccessDenied: User: ") and "sts:AssumeRole" in error
        else:
            assert entry.reachable and entry.errors == ()

    coverage, _, stale = _run(organization, table_settings, pipeline, first + timedelta(hours=1))
    assert all(c.reachable for c in coverage.values())  # reached again: nothing stale
    assert stale[0].details["targets"] == [{"account": denied, "region": r} for r in sorted(REGIONS)]

    # Denied again, hour after hour: reported each time, and stale once its last success is two intervals old.
    for hours in (2, 3):
        _, _, stale = _run(organization, table_settings, pipeline, first + timedelta(hours=hours), deny)
        assert stale == []
    _, _, stale = _run(organization, table_settings, pipeline, first + timedelta(hours=4), deny)
    [notice] = stale
    assert notice.attributes["alertType"] == "reconciliation-stale"
    assert notice.details["targets"] == [{"account": denied, "region": r} for r in sorted(REGIONS)]
    assert (
        f"{denied} eu-west-1: last reconciled {(first + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        in notice.message
    )
    assert "AccessDenied" in notice.message


def test_the_cli_reconciles_every_account_and_shows_coverage_and_each_accounts_inventory(
    organization: Organization, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    refused = runner.invoke(app, ["reconcile", "--all-accounts", *where, "--region", "us-east-1"])
    assert refused.exit_code == 2 and "GRANTWATCH_MEMBER_EXTERNAL_ID" in refused.stderr
    monkeypatch.setenv("GRANTWATCH_MEMBER_EXTERNAL_ID", EXTERNAL_ID)
    first = runner.invoke(app, ["reconcile", "--all-accounts", "--json", *where, "--region", "us-east-1"])
    assert first.exit_code == 0, first.output
    covered = json.loads(first.stdout.splitlines()[-1])["accounts"]
    members = [m.account for m in organization.members]
    assert sorted(c["account"] for c in covered) == sorted([*members, CENTRAL])
    assert {c["region"] for c in covered} == {"us-east-1"}

    victim, other = organization.members[0], organization.members[1]
    again = runner.invoke(
        app, ["reconcile", "--all-accounts", "--account", victim.account, *where, "--region", "us-east-1"]
    )
    assert again.exit_code == 0, again.output
    assert again.stdout == f"{victim.account} us-east-1: 1 grant(s), 1 function(s); repairs: none\n"

    rows = json.loads(runner.invoke(app, ["accounts", "--json", *where]).stdout)
    by_account = {r["account"]: r for r in rows}
    assert set(by_account) == {*members, CENTRAL}
    assert by_account[other.account] | {"lastRunAt": None, "lastReconciledAt": None} == {
        "account": other.account,
        "region": "us-east-1",
        "lastRunAt": None,
        "lastReconciledAt": None,
        "keys": 1,
        "grants": 1,
        "functions": 1,
        "evaluationsScheduled": 1,
        "repairs": {"function-configured": 1, "grant-created": 1},
        "errors": [],
        "errorCount": 0,
        "openIncidents": 0,
        "lastHeartbeatAt": None,  # no canary ran in this test's accounts
        "heartbeats": {},
    }
    table = runner.invoke(app, ["accounts", "--account", victim.account, *where])
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0] == "1 account-region(s)" and lines[1].split()[:2] == ["ACCOUNT", "REGION"]
    assert lines[2].split()[:2] == [victim.account, "us-east-1"]
    assert lines[2].split()[-4:] == ["1", "1", "0", "0"]  # grants, functions, open incidents, errors
    assert runner.invoke(app, ["accounts", "--account", "999999999999", *where]).exit_code == 4

    shown = json.loads(runner.invoke(app, ["functions", "--json", "--account", other.account, *where]).stdout)
    assert [f["functionArn"] for f in shown] == [other.functions["us-east-1"]]
    listed = runner.invoke(
        app, ["grants", "--json", "--account", other.account, "--in-region", "us-east-1", *where]
    )
    assert [g["grantId"] for g in json.loads(listed.stdout)] == [other.grants["us-east-1"]]
    elsewhere = runner.invoke(app, ["grants", "--json", "--in-region", "eu-west-1", *where])
    assert json.loads(elsewhere.stdout) == []  # eu-west-1 was not reconciled
