"""`grantwatch impact` against DynamoDB Local for other services' resources: DynamoDB tables, EBS volumes and
an RDS instance recorded from their services' CreateGrant records, and a key disabled or deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.cli import EXIT_WOULD_BREAK, app
from grantwatch.domain.facts import parse_utc_iso
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.plans import cfn_change, change_set, terraform_plan, tf_key
from tests.support.samples import KEY_ARN, KEY_ID
from tests.support.scenarios import create_grant, update_function
from tests.support.service_grants import (
    dynamodb_grant,
    ebs_grant,
    rds_grant,
    retire_service_grant,
    uncovered_grant,
)

runner = CliRunner()
OTHER_KEY = KEY_ARN.replace("5f1e2d3c", "0a0b0c0d")
TABLES = [f"orders-{n:02d}" for n in range(27)]  # more than the 25 the answer names
DB = "db-ABCDEFGHIJKLMNOPQRSTUVWXY"


@pytest.fixture
def estate(table_settings: Settings) -> Settings:
    """billing (Lambda) and 27 tables, a volume, a DB instance and an S3 bucket (not in the catalogue) on the
    key; a deleted table whose grant DynamoDB retired; a table on another key."""
    pipeline = local_pipeline(table_settings)
    events = [
        update_function("billing", "2026-11-02T09:00:00Z"),
        create_grant("billing", "b1", "2026-11-02T09:00:01Z"),
        *(dynamodb_grant(t, f"2026-11-03T09:{n:02d}:00Z") for n, t in enumerate(TABLES)),
        dynamodb_grant("drafts", "2026-11-03T10:00:00Z"),
        retire_service_grant(f"dynamodb drafts {KEY_ARN}", "2026-11-04T10:00:00Z"),
        dynamodb_grant("elsewhere", "2026-11-03T11:00:00Z", key=OTHER_KEY),
        ebs_grant("vol-0123456789abcdef0", "i-0a1b2c3d4e5f60718", "2026-11-05T09:00:00Z"),
        rds_grant(DB, "vol-0fedcba987654321f", "2026-11-06T09:00:00Z"),
        uncovered_grant("2026-11-07T09:00:00Z"),
    ]
    for event in events:
        pipeline.feed(event)
    assert pipeline.drain() == []
    return table_settings


def run(settings: Settings, *args: str) -> Any:
    return runner.invoke(
        app,
        ["impact", *args, "--table", settings.table_name, "--endpoint-url", settings.endpoint_url or ""],
    )


def report_of(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    result = run(settings, *args, "--json")
    assert result.exit_code in (0, EXIT_WOULD_BREAK), result.output
    return result.exit_code, json.loads(result.stdout)


def by_service(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["service"]: s for s in report["resources"]}


def test_disabling_the_key_lists_every_resource_by_service_with_its_clock(estate: Settings) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    code, report = report_of(estate, "--disable-key", KEY_ARN)
    after = datetime.now(UTC)
    assert code == EXIT_WOULD_BREAK
    assert [(f["functionName"], f["outcome"]) for f in report["functions"]] == [("billing", "breaks")]
    services = by_service(report)
    assert list(services) == ["dynamodb", "ebs", "rds"]

    dynamodb = services["dynamodb"]
    assert (dynamodb["count"], dynamodb["unnamed"]) == (27, 2)
    assert [r["resourceId"] for r in dynamodb["resources"]] == TABLES[:25]
    assert "drafts" not in json.dumps(report["resources"]) and "elsewhere" not in json.dumps(report)
    assert (dynamodb["change"], dynamodb["source"], dynamodb["keyArn"]) == (
        "key-disabled",
        "--disable-key",
        KEY_ARN,
    )
    effect = dynamodb["effect"]
    assert effect["resourceState"] == "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
    assert effect["irreversibleAfterSeconds"] == 7 * 24 * 3600
    assert all(s["url"].startswith("https://docs.aws.amazon.com/") for s in effect["sources"])
    deadline = parse_utc_iso(dynamodb["deadline"])
    assert before + timedelta(days=7) <= deadline <= after + timedelta(days=7)

    assert services["ebs"]["resources"] == [
        {
            "resourceId": "vol-0123456789abcdef0",
            "account": "210987654321",
            "region": "eu-central-1",
            "usableGrants": 1,
        }
    ]
    assert services["ebs"]["deadline"] is None
    assert [r["resourceId"] for r in services["rds"]["resources"]] == [DB]
    assert services["rds"]["effect"]["resourceState"] == "inaccessible-encryption-credentials-recoverable"
    assert report["summary"]["resources"] == 29
    # the grants stay listed as before, each marked as counted under its service or not
    covered = {g["service"]: g["coveredResource"] for g in report["otherGrants"]}
    assert len(report["otherGrants"]) == 30
    assert covered == {"dynamodb": True, "ebs": True, "rds": True, "s3": False}


def test_the_text_answer_names_the_first_resources_and_says_by_when(estate: Settings) -> None:
    result = run(estate, "--disable-key", KEY_ARN)
    assert result.exit_code == EXIT_WOULD_BREAK, result.output
    lines = result.stdout.splitlines()
    assert "billing  BREAKS" in lines  # the functions' part as before
    assert "29 resource(s) of other services would lose their key:" in lines
    heading = lines.index("Amazon DynamoDB: 27 table(s)  KEY-DISABLED")
    assert lines[heading + 2] == f"  on it     {', '.join(TABLES[:25])} and 2 more"
    deadline = next(line for line in lines[heading:] if line.startswith("  deadline  "))
    assert "the table is archived" in deadline and deadline.endswith("unless the key is enabled before then")
    assert any(
        line.startswith("  source    TableDescription - Amazon DynamoDB")
        and line.endswith("API_TableDescription.html")
        for line in lines[heading:]
    )
    uncovered = lines.index(
        "1 grant(s) of other services on the key(s), also affected (what their service does is not in the "
        "catalogue):"
    )
    assert lines[uncovered + 1].endswith(
        "for s3 arn:aws:s3:::reports  grantee arn:aws:iam::210987654321:role/replication"
    )


def test_a_plan_that_disables_the_key(estate: Settings, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(terraform_plan(tf_key(KEY_ARN, ["update"], enabled_after=False))))
    code, report = report_of(estate, "--plan", str(plan))
    assert code == EXIT_WOULD_BREAK
    services = by_service(report)
    assert {s["source"] for s in services.values()} == {"aws_kms_key.env"}
    assert (services["dynamodb"]["count"], services["ebs"]["count"], services["rds"]["count"]) == (27, 1, 1)


def test_scheduling_the_deletion_ends_with_the_key(estate: Settings) -> None:
    code, report = report_of(estate, "--schedule-key-deletion", KEY_ARN.rsplit("/", 1)[1])
    assert code == EXIT_WOULD_BREAK
    ebs = by_service(report)["ebs"]
    assert (ebs["change"], ebs["deadline"], ebs["effect"]["endsWithKeyDeletion"]) == (
        "key-pending-deletion",
        None,
        True,
    )
    result = run(estate, "--schedule-key-deletion", KEY_ARN)
    assert any(
        line == "  deleted   at the end of the key's waiting period: once the key is deleted, the data "
        "encrypted under it can't be decrypted"
        for line in result.stdout.splitlines()
    )


def test_a_key_with_only_other_services_resources_still_exits_would_break(estate: Settings) -> None:
    for key in (OTHER_KEY, OTHER_KEY.rsplit("/", 1)[1]):  # a bare key id no function names either
        code, report = report_of(estate, "--disable-key", key)
        assert (code, report["functions"], report["breaks"]) == (EXIT_WOULD_BREAK, [], False)
        assert [r["resourceId"] for r in by_service(report)["dynamodb"]["resources"]] == ["elsewhere"]
        assert by_service(report)["dynamodb"]["keyArn"] == OTHER_KEY


def test_a_change_set_that_removes_the_key(estate: Settings, tmp_path: Path) -> None:
    document = change_set(cfn_change("Remove", "EnvKey", KEY_ID, "AWS::KMS::Key"))
    plan = tmp_path / "change-set.json"
    plan.write_text(json.dumps(document))
    code, report = report_of(estate, "--plan", str(plan))
    assert code == EXIT_WOULD_BREAK
    services = by_service(report)
    assert {(s["change"], s["source"]) for s in services.values()} == {
        ("key-pending-deletion", "EnvKey (AWS::KMS::Key)")
    }
    assert services["dynamodb"]["deadline"] is not None and services["ebs"]["deadline"] is None
    assert services["rds"]["effect"]["endsWithKeyDeletion"] is True
