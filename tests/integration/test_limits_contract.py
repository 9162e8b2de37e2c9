"""The limits contract sees the requests it must see: a boto3 client's (against moto's server) and pynamodb's
(against DynamoDB Local), whatever the stand-in answers; and over pytest-xdist's workers a request over a
limit fails the whole run and is listed, while a test that declares its excess is listed with its reason."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import PutError

from grantwatch.settings import Settings
from tests.support.limits_contract import SESSION
from tests.support.moto_server import moto_server
from tests.support.pytest_runs import run_pytest

NODE = "tests/integration/test_limits_contract.py::"


def test_a_boto3_request_over_a_limit_is_recorded_whatever_the_stand_in_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with moto_server(monkeypatch, "SNS"):
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        with SESSION.taken() as taken, contextlib.suppress(ClientError):
            sns.publish(
                TopicArn=topic,
                Message="a grant was retired",
                MessageAttributes={"incidentId": {"DataType": "String", "StringValue": ""}},
            )

    (violation,) = taken
    assert (
        violation.where
        == f"{NODE}test_a_boto3_request_over_a_limit_is_recorded_whatever_the_stand_in_answers"
    )
    assert violation.call == "sns Publish"
    assert violation.breach is not None
    assert violation.breach.limit == "sns.attribute-value"
    assert "sns-message-attributes.html" in violation.line()


def test_a_pynamodb_request_over_a_limit_is_recorded(table_settings: Settings) -> None:
    connection = Connection(host=table_settings.endpoint_url, region=table_settings.region)
    connection.describe_table(table_settings.table_name)  # pynamodb reads the key schema first
    oversized = {"pk": {"S": "G" * 2049}, "sk": {"S": "GRANT"}}

    with SESSION.taken() as taken, contextlib.suppress(PutError):
        connection.put_item(table_settings.table_name, "G" * 2049, "GRANT", attributes=oversized)

    assert [(v.call, v.breach.limit if v.breach else v.error) for v in taken] == [
        ("dynamodb PutItem", "dynamodb.partition-key")
    ]
    line = taken[0].line()
    assert "a partition key value 1 to 2,048 bytes" in line
    assert "measured pk 2,049 bytes (GrantsTable)" in line
    assert "amazondynamodb/latest/developerguide/ServiceQuotas.html" in line


_REQUESTS = """
import pytest

from tests.support.limits_contract import SESSION

OVER = {"TopicArn": "t", "Message": "m", "Subject": "s" * 101}


def test_within_on_one_worker() -> None:
    SESSION.sink("within", "sns", "Publish", {"TopicArn": "t", "Message": "m"})


def test_over_on_another() -> None:
    SESSION.sink("over", "sns", "Publish", OVER)


@pytest.mark.exceeds_aws_limits("reaches the error path of an oversized subject")
def test_marked_on_purpose() -> None:
    SESSION.sink("on purpose", "sns", "Publish", OVER)


@pytest.mark.exceeds_aws_limits("a stale declaration")
def test_marked_for_nothing() -> None:
    SESSION.sink("marked", "sns", "Publish", {"TopicArn": "t", "Message": "m"})
"""


def _run(tests: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_pytest("tests.support.limits_contract_plugin", tests, *options)


def test_a_request_over_a_limit_on_a_worker_fails_the_run_and_is_listed(tmp_path: Path) -> None:
    tests = tmp_path / "test_requests.py"
    tests.write_text(_REQUESTS, encoding="utf-8")

    spread = _run(tests, "-n", "2", "--dist", "load")

    output = spread.stdout
    assert "4 passed" in output, output + spread.stderr
    assert spread.returncode == 1, output
    assert "AWS limits contract: 4 AWS requests checked" in output
    assert "AWS limits contract: requests over AWS's documented limits" in output
    assert "over: sns Publish: sns.subject: subject 1 to 100 printable ASCII characters" in output
    assert "marked exceeds_aws_limits (a stale declaration) but made no request over a limit" in output
    assert "on purpose: sns Publish: sns.subject" in output
    assert "-- declared: reaches the error path of an oversized subject" in output
    declared = output.split("requests over a limit on purpose")[1].split("requests over AWS's")[0]
    assert "on purpose: sns Publish" in declared
    assert "over: sns Publish" not in declared


def test_a_declared_excess_alone_does_not_fail_the_run(tmp_path: Path) -> None:
    tests = tmp_path / "test_requests.py"
    tests.write_text(_REQUESTS, encoding="utf-8")

    alone = _run(tests, "-n", "0", "-k", "marked_on_purpose or within")

    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "-- declared: reaches the error path of an oversized subject" in alone.stdout
    assert "every request within AWS's documented limits" in alone.stdout
