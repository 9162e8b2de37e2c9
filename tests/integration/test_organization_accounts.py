"""Where the fan-out takes the organization's accounts from, as AWS answers today: Organizations
ListAccounts, whose `Status` field was retired on 2026-09-09 for `State` (20 accounts a page at most), and
an SSM parameter listing more accounts than a CloudFormation parameter or a Lambda environment holds.
Organizations is botocore's Stubber with answers of the service's own shape; SSM and SQS are moto's server
on loopback."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
import botocore
import pytest
from botocore.stub import Stubber

from grantwatch.adapters.accounts import (
    DynamoCoverageStore,
    OrganizationAccounts,
    ParameterAccounts,
    SqsReconciliationQueue,
)
from grantwatch.domain.coverage import Coverage, Target
from grantwatch.fanout import OrganizationFanOut
from grantwatch.handlers import fanout as handler
from grantwatch.pipeline import CollectingNotifier
from grantwatch.ports import AccountSourceError
from grantwatch.settings import Settings, SettingsError
from grantwatch.wiring import fan_out
from tests.support.iam_contract import PARAMETERS, SESSION, stands_for
from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_server import moto_server

MANAGEMENT = "100000000000"
ORGANIZATION = "o-a1b2c3d4e5"
PAGE = 20  # the most ListAccounts answers at once (MaxResults 1 to 20)
ACCOUNT_LIST = PARAMETERS["AccountIdsParameter"]  # the parameter template.yaml lets the fan-out read
JOINED = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def account(number: int, **state: str) -> dict[str, Any]:
    """One entry of a ListAccounts answer; `state` is State=..., Status=..., both or neither."""
    account_id = str(int(MANAGEMENT) + number)
    return {
        "Id": account_id,
        "Arn": f"arn:aws:organizations::{MANAGEMENT}:account/{ORGANIZATION}/{account_id}",
        "Email": f"aws+{number}@example.com",
        "Name": f"workload-{number}",
        "JoinedMethod": "CREATED" if number else "INVITED",
        "JoinedTimestamp": JOINED,
        **state,
    }


def organizations(*accounts: dict[str, Any]) -> tuple[Any, Stubber]:
    """An Organizations client that answers ListAccounts with `accounts`, 20 a page as AWS does."""
    client = boto3.client(
        "organizations", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stub = Stubber(client)
    pages = [accounts[i : i + PAGE] for i in range(0, len(accounts), PAGE)] or [()]
    for number, page in enumerate(pages):
        answer: dict[str, Any] = {"Accounts": list(page)}
        if number + 1 < len(pages):
            answer["NextToken"] = f"token-{number + 1}"
        stub.add_response("list_accounts", answer, {"NextToken": f"token-{number}"} if number else {})
    stub.activate()
    return client, stub


STATES = ("ACTIVE", "PENDING_ACTIVATION", "SUSPENDED", "PENDING_CLOSURE", "CLOSED")


def test_accounts_are_kept_by_state_as_organizations_answers_since_status_was_retired() -> None:
    listed = [account(i, State=STATES[i % len(STATES)]) for i in range(25)]  # two pages
    client, stub = organizations(*listed)
    kept = OrganizationAccounts(client).active_accounts()
    assert kept == sorted(a["Id"] for a in listed if a["State"] == "ACTIVE")
    assert len(kept) == 5
    stub.assert_no_pending_responses()


def test_an_answer_with_status_only_as_an_older_sdk_reads_it_is_still_understood() -> None:
    listed = [account(i, Status=("ACTIVE", "SUSPENDED", "PENDING_CLOSURE")[i % 3]) for i in range(6)]
    client, _ = organizations(*listed)
    assert OrganizationAccounts(client).active_accounts() == [listed[0]["Id"], listed[3]["Id"]]


def test_an_answer_with_both_fields_is_read_by_state() -> None:
    listed = [
        account(0, Status="ACTIVE", State="ACTIVE"),
        account(1, Status="SUSPENDED", State="CLOSED"),  # closed, in its 90 days of suspension
        account(2, Status="PENDING_CLOSURE", State="PENDING_CLOSURE"),
        account(3, Status="ACTIVE", State="ACTIVE"),
        account(4, Status="SUSPENDED", State="SUSPENDED"),
    ]
    client, _ = organizations(*listed)
    assert OrganizationAccounts(client).active_accounts() == [listed[0]["Id"], listed[3]["Id"]]


@pytest.mark.parametrize(
    ("listed", "states"),
    [
        ([account(i, State=s) for i, s in enumerate(STATES[1:])], "CLOSED 1, PENDING_ACTIVATION 1"),
        ([account(i) for i in range(3)], "none 3"),  # an answer with neither field
    ],
    ids=["none-active", "no-state-field"],
)
def test_a_listing_of_which_no_account_is_kept_is_an_error_logged_and_counted_not_an_empty_run(
    listed: list[dict[str, Any]],
    states: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, _ = organizations(*listed)
    with pytest.raises(AccountSourceError) as refused:
        OrganizationAccounts(client).active_accounts()
    assert refused.value.reason == "none-active" and states in str(refused.value)
    assert refused.value.details["listed"] == len(listed)

    queued: list[Target] = []

    class Queue:
        def send(self, targets: Sequence[Target]) -> list[Target]:
            queued.extend(targets)
            return []

    class NoCoverage:
        def all(self, account: str | None = None) -> list[Coverage]:
            return []

    client, _ = organizations(*listed)
    built = OrganizationFanOut(
        accounts=OrganizationAccounts(client),
        regions=["eu-west-1"],
        queue=Queue(),
        coverage=NoCoverage(),
        notifier=CollectingNotifier(),
        interval=timedelta(hours=1),
        central=MANAGEMENT,
    )
    monkeypatch.setattr(handler, "fan_out", lambda: built)
    log_stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", log_stream)
    answer = handler.lambda_handler({}, FakeLambdaContext("OrganizationFanOutFunction"))
    assert answer["queued"] == 0 and answer["error"] == {"reason": "none-active"} and queued == []
    [logged] = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert logged["level"] == "ERROR" and logged["message"] == "accounts not listed"
    assert logged["reason"] == "none-active" and logged["listed"] == len(listed)
    assert logged["botocore"] == botocore.__version__  # the SDK whose model may predate State
    assert "Traceback" not in log_stream.getvalue()
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [metrics] = [line for line in emitted if "_aws" in line]
    assert metrics["AccountSourceErrors"] in (1, [1])
    # by the function's service: the dimension OrganizationAccountSourceAlarm names
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_server(monkeypatch, "SSM", "SQS"):
        sqs = boto3.client("sqs", region_name="us-east-1")
        yield stands_for("OrganizationQueue", sqs.create_queue(QueueName="reconciliations")["QueueUrl"])


def _queued(queue_url: str) -> int:
    attributes = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_the_fan_out_queues_1000_accounts_listed_20_a_page(aws: str, table_settings: Settings) -> None:
    listed = [account(i, State="ACTIVE") for i in range(1000)]
    client, stub = organizations(*listed)
    scope = SESSION.scope()
    checker = next(scope)
    try:
        result = OrganizationFanOut(
            accounts=OrganizationAccounts(client),
            regions=["eu-west-1"],
            queue=SqsReconciliationQueue(aws, boto3.client("sqs", region_name="us-east-1")),
            coverage=DynamoCoverageStore(table_settings),
            notifier=CollectingNotifier(),
            interval=timedelta(hours=1),
            central=MANAGEMENT,  # listed too: queued once
        ).run(datetime.now(UTC))
    finally:
        next(scope, None)
    stub.assert_no_pending_responses()
    assert result["queued"] == 1000 and result["notQueued"] == [] and _queued(aws) == 1000
    assert checker.calls[("OrganizationFanOutFunction", "organizations:ListAccounts")] == 50
    assert checker.calls[("OrganizationFanOutFunction", "sqs:SendMessageBatch")] == 100  # ten to a batch
    assert checker.violations == {}


def _put(name: str, accounts: list[str], kind: Literal["String", "StringList"] = "StringList") -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Value=",".join(accounts), Type=kind, Tier="Standard"
    )


def test_the_fan_out_reads_1000_accounts_from_a_parameter_and_the_parameters_under_it(
    aws: str, table_settings: Settings
) -> None:
    accounts = [str(200000000000 + i) for i in range(1000)]
    # A standard parameter holds 4 KB, about 300 accounts: the list is split, 250 to a parameter.
    _put(ACCOUNT_LIST, accounts[:250])
    for part in range(1, 4):
        _put(f"{ACCOUNT_LIST}/{part}", accounts[250 * part : 250 * (part + 1)], "String")
    settings = dataclasses.replace(
        table_settings,
        organization_queue_url=aws,
        alert_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        account_ids_parameter=ACCOUNT_LIST,
        central_account_id="123456789012",
        regions="us-east-1",
    )
    built = fan_out(settings)
    assert isinstance(built.accounts, ParameterAccounts)
    built.notifier = CollectingNotifier()
    scope = SESSION.scope()
    checker = next(scope)
    try:
        result = built.run(datetime.now(UTC))
    finally:
        next(scope, None)
    assert result["queued"] == 1001 and _queued(aws) == 1001  # and the central account
    assert checker.calls[("OrganizationFanOutFunction", "ssm:GetParameter")] == 1
    assert checker.calls[("OrganizationFanOutFunction", "ssm:GetParametersByPath")] >= 1
    assert checker.violations == {}, [v.line() for v in checker.violations.values()]

    # The parameters under the name alone (no parameter of that name) are read as well.
    boto3.client("ssm", region_name="us-east-1").delete_parameter(Name=ACCOUNT_LIST)
    assert len(ParameterAccounts(ACCOUNT_LIST).active_accounts()) == 750


@pytest.mark.parametrize(
    ("values", "reason", "says"),
    [
        ({}, "parameter-missing", f"SSM parameter {ACCOUNT_LIST} does not exist"),
        ({ACCOUNT_LIST: "111122223333,arn:aws:iam::x,12345"}, "parameter-invalid", "2 entries are not"),
        ({ACCOUNT_LIST: "111122223333 444455556666\nprod"}, "parameter-invalid", "1 entry is not"),
        ({ACCOUNT_LIST: " , ,"}, "parameter-empty", "lists no account"),
        ({f"{ACCOUNT_LIST}/2": "secure:111122223333"}, "parameter-invalid", "/2 is a SecureString"),
    ],
    ids=["missing", "not-account-ids", "one-bad-line", "empty", "secure-string"],
)
def test_an_account_list_parameter_that_lists_no_usable_account_is_refused_clearly(
    aws: str, values: dict[str, str], reason: str, says: str
) -> None:
    for name, value in values.items():
        kind: Literal["String", "SecureString"] = "SecureString" if value.startswith("secure:") else "String"
        boto3.client("ssm", region_name="us-east-1").put_parameter(Name=name, Value=value, Type=kind)
    with pytest.raises(AccountSourceError) as refused:
        ParameterAccounts(ACCOUNT_LIST).active_accounts()
    assert refused.value.reason == reason and says in str(refused.value)
    assert refused.value.details["parameter"] == ACCOUNT_LIST


def test_a_parameter_with_spaces_and_new_lines_between_accounts_is_read() -> None:
    with moto_server() as endpoint:
        ssm = boto3.client(
            "ssm",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ssm.put_parameter(Name=ACCOUNT_LIST, Value="444455556666\n111122223333, 444455556666", Type="String")
        assert ParameterAccounts(ACCOUNT_LIST, ssm).active_accounts() == ["111122223333", "444455556666"]


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"account_ids": "111122223333,12345"}, "account_ids"),
        (
            {"account_ids": "111122223333", "account_ids_parameter": "/grantwatch/accounts"},
            "account_ids_parameter",
        ),
        ({"account_ids_parameter": "grantwatch-accounts"}, "account_ids_parameter"),
        ({"account_ids_parameter": "/" + "a" * 1011}, "account_ids_parameter"),
        ({"central_account_id": "central"}, "central_account_id"),
        ({"regions": "eu-west-1,Europe"}, "regions"),
    ],
)
def test_an_account_source_that_cannot_be_right_is_refused_by_name(
    settings: dict[str, str], name: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings(**settings)  # type: ignore[arg-type]
    assert refused.value.name == name


def test_the_fan_out_logs_and_answers_a_bounded_summary_of_17000_late_account_regions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    late = [
        {"account": f"{100000000000 + a}", "region": f"xx-region-{r:02d}"}
        for a in range(1000)
        for r in range(17)
    ]

    class Late:
        def run(self, now: datetime) -> dict[str, Any]:
            return {"queued": 17_000, "notQueued": late[:40], "stale": late, "silent": late}

    monkeypatch.setattr(handler, "fan_out", lambda: Late())
    log_stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", log_stream)

    answer = handler.lambda_handler({}, FakeLambdaContext("OrganizationFanOutFunction"))

    assert (answer["staleCount"], answer["notQueuedCount"]) == (17_000, 40)
    assert answer["stale"] == answer["silent"] == late[: handler.LISTED_TARGETS]
    assert answer["silentCount"] == 17_000
    lines = log_stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["reconciliations not queued", "fanned out"]
    # CloudWatch Logs takes at most 256 KB per event
    assert all(len(line.encode()) < 16 * 1024 for line in lines)
