"""`grantwatch impact` against DynamoDB Local: a recorded fleet, and questions about changes to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.cli import EXIT_NOT_FOUND, EXIT_WOULD_BREAK, app
from grantwatch.pipeline import local_pipeline
from grantwatch.settings import Settings
from tests.conftest import load_event
from tests.plans import (
    cfn_function_following_role,
    cfn_role_replaced,
    change_set,
    role_arn,
    terraform_plan,
    tf_function,
    tf_key,
    tf_noop_bucket,
    tf_role,
)
from tests.scenarios import KEY_ARN, create_grant, disable_key, function_arn, grant_id, update_function

runner = CliRunner()
OTHER_KEY = KEY_ARN.replace("5f1e2d3c", "0a0b0c0d")
EBS_GRANT = grant_id("ebs volume attachment")


def on_key(event: dict[str, Any], key: str) -> dict[str, Any]:
    event["detail"]["requestParameters"]["keyId"] = key
    event["detail"]["responseElements"]["keyId"] = key
    return event


@pytest.fixture
def fleet(table_settings: Settings) -> Settings:
    """billing and payroll share a role; reports has its own role and key; ledger has two active grants."""
    pipeline = local_pipeline(table_settings)
    ebs = load_event("kms-create-grant-ebs-volume.json")
    ebs["detail"]["eventID"] = "0f5c8a2e-3b1d-4e6f-9a7b-8c9d0e1f2a3b"
    ebs["detail"]["responseElements"]["grantId"] = EBS_GRANT
    for event in [
        update_function("billing", "2026-11-02T09:00:00Z", role="shared-role"),
        create_grant("billing", "b1", "2026-11-02T09:00:01Z", role="shared-role"),
        update_function("payroll", "2026-11-02T10:00:00Z", role="shared-role"),
        create_grant("payroll", "p1", "2026-11-02T10:00:01Z", role="shared-role"),
        update_function("reports", "2026-11-03T09:00:00Z", key=OTHER_KEY),
        on_key(create_grant("reports", "r1", "2026-11-03T09:00:01Z"), OTHER_KEY),
        create_grant("ledger", "l0", "2026-11-04T09:00:00Z"),
        create_grant("ledger", "l1", "2026-11-05T09:00:00Z"),
        ebs,
    ]:
        pipeline.feed(event)
    assert pipeline.drain() == []
    return table_settings


def impact(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        app,
        [
            "impact",
            *args,
            "--json",
            "--table",
            settings.table_name,
            "--endpoint-url",
            settings.endpoint_url or "",
        ],
    )
    assert result.exit_code in (0, EXIT_WOULD_BREAK), result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def write(tmp_path: Path, name: str, document: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return str(path)


def by_name(report: dict[str, Any]) -> dict[str, str]:
    return {f["functionName"]: f["outcome"] for f in report["functions"]}


def test_a_terraform_role_replacement_that_breaks_two_functions(fleet: Settings, tmp_path: Path) -> None:
    plan = write(
        tmp_path, "plan.json", terraform_plan(tf_role("shared-role", ["delete", "create"]), tf_noop_bucket())
    )
    code, report = impact(fleet, "--plan", plan)
    assert code == EXIT_WOULD_BREAK
    assert by_name(report) == {"billing": "breaks", "payroll": "breaks"}
    assert report["changes"] == [
        {
            "change": "role-replaced",
            "target": role_arn("shared-role"),
            "source": "aws_iam_role.exec",
            "note": None,
        }
    ]
    billing = report["functions"][0]
    assert billing["grantsLost"] == [grant_id("b1")]
    assert billing["executionRole"] == "shared-role"
    assert billing["fix"] == [
        "right after the apply, update the function's configuration so Lambda creates a grant for the new "
        f"role: aws lambda update-function-configuration --region eu-central-1 --function-name "
        f"{function_arn('billing')} --kms-key-arn {KEY_ARN}"
    ]
    assert report["summary"]["breaks"] == 2


def test_a_role_replacement_that_breaks_nothing(fleet: Settings, tmp_path: Path) -> None:
    unused = write(tmp_path, "unused.json", terraform_plan(tf_role("batch-role", ["delete", "create"])))
    code, report = impact(fleet, "--plan", unused)
    assert (code, report["breaks"], report["functions"]) == (0, False, [])
    quiet = write(tmp_path, "quiet.json", terraform_plan(tf_noop_bucket()))
    code, report = impact(fleet, "--plan", quiet)
    assert (code, report["changes"]) == (0, [])
    assert report["notes"] == ["quiet.json deletes or replaces no IAM role, KMS key or KMS grant"]

    followed = terraform_plan(
        tf_role("shared-role", ["delete", "create"]),
        tf_function("billing", role="shared-role", role_known_after_apply=True, new_environment=True),
        tf_function("payroll", ["delete"], role="shared-role"),
    )
    code, report = impact(fleet, "--plan", write(tmp_path, "followed.json", followed))
    assert code == 0
    assert by_name(report) == {"billing": "regranted", "payroll": "regranted"}


def test_a_function_that_only_follows_the_roles_arn_still_breaks(fleet: Settings, tmp_path: Path) -> None:
    plan = terraform_plan(
        tf_role("shared-role", ["delete", "create"]),
        tf_function("billing", role="shared-role", role_known_after_apply=True),
    )
    code, report = impact(fleet, "--plan", write(tmp_path, "plan.json", plan))
    assert code == EXIT_WOULD_BREAK
    billing = next(f for f in report["functions"] if f["functionName"] == "billing")
    assert billing["outcome"] == "breaks"
    assert any("known only after apply" in reason for reason in billing["reasons"])


def test_a_key_disable_breaks_every_function_on_the_key_and_lists_other_grants(
    fleet: Settings, tmp_path: Path
) -> None:
    code, report = impact(fleet, "--disable-key", KEY_ARN)
    assert code == EXIT_WOULD_BREAK
    assert by_name(report) == {"billing": "breaks", "ledger": "breaks", "payroll": "breaks"}
    assert [g["grantId"] for g in report["otherGrants"]] == [EBS_GRANT]
    assert report["otherGrants"][0]["service"] == "ebs"

    plan = write(tmp_path, "plan.json", terraform_plan(tf_key(OTHER_KEY, ["update"], enabled_after=False)))
    code, report = impact(fleet, "--plan", plan)
    assert (code, by_name(report)) == (EXIT_WOULD_BREAK, {"reports": "breaks"})

    code, report = impact(fleet, "--schedule-key-deletion", OTHER_KEY.rsplit("/", 1)[1])
    assert (code, by_name(report)) == (EXIT_WOULD_BREAK, {"reports": "breaks"})


def test_a_key_already_disabled_is_not_this_changes_doing(fleet: Settings) -> None:
    pipeline = local_pipeline(fleet)
    pipeline.feed(disable_key("2026-11-20T09:00:00Z"))
    pipeline.drain()
    code, report = impact(fleet, "--delete-role", "shared-role")
    assert (code, by_name(report)) == (0, {"billing": "already-at-risk", "payroll": "already-at-risk"})


def test_a_cloudformation_change_set_replacing_the_role(fleet: Settings, tmp_path: Path) -> None:
    payroll = cfn_function_following_role("payroll")
    payroll["ResourceChange"]["Details"].append(
        {
            "Target": {"Attribute": "Properties", "Name": "Environment", "RequiresRecreation": "Never"},
            "Evaluation": "Static",
            "ChangeSource": "DirectModification",
        }
    )
    document = change_set(cfn_role_replaced("shared-role"), cfn_function_following_role("billing"), payroll)
    code, report = impact(fleet, "--plan", write(tmp_path, "change-set.json", document))
    assert code == EXIT_WOULD_BREAK
    assert by_name(report) == {"billing": "breaks", "payroll": "regranted"}
    billing = report["functions"][0]
    assert any("with the same RoleName the ARN does not change" in reason for reason in billing["reasons"])


def test_retiring_or_revoking_a_grant(fleet: Settings) -> None:
    code, report = impact(fleet, "--retire-grant", grant_id("l0"))
    assert (code, by_name(report)) == (0, {"ledger": "unharmed"})
    assert report["functions"][0]["usableGrantAfter"] == grant_id("l1")

    code, report = impact(fleet, "--revoke-grant", grant_id("r1"))
    assert (code, by_name(report)) == (EXIT_WOULD_BREAK, {"reports": "breaks"})
    assert report["functions"][0]["causes"] == [
        {"change": "grant-revoked", "target": grant_id("r1"), "source": "--revoke-grant"}
    ]

    code, _ = impact(fleet, "--retire-grant", grant_id("l0"), "--revoke-grant", grant_id("l1"))
    assert code == EXIT_WOULD_BREAK


def test_delete_role_by_arn_and_the_text_output(fleet: Settings) -> None:
    result = runner.invoke(
        app,
        [
            "impact",
            "--delete-role",
            role_arn("shared-role"),
            "--table",
            fleet.table_name,
            "--endpoint-url",
            fleet.endpoint_url or "",
        ],
    )
    assert result.exit_code == EXIT_WOULD_BREAK, result.output
    assert "2 function(s) would lose decrypt" in result.stdout
    assert "billing  BREAKS" in result.stdout and "--role NEW_ROLE_ARN" in result.stdout


def test_questions_that_cannot_be_answered(fleet: Settings, tmp_path: Path) -> None:
    args = ["--table", fleet.table_name, "--endpoint-url", fleet.endpoint_url or ""]
    unknown = runner.invoke(app, ["impact", "--revoke-grant", grant_id("never seen"), *args])
    assert unknown.exit_code == EXIT_NOT_FOUND and "no grant" in unknown.stderr
    binary = tmp_path / "plan.tfplan"
    binary.write_bytes(b"PK\x03\x04 binary plan")
    malformed = runner.invoke(app, ["impact", "--plan", str(binary), *args])
    assert malformed.exit_code == 2 and "terraform show -json" in malformed.stderr
    missing = runner.invoke(app, ["impact", "--plan", str(tmp_path / "absent.json"), *args])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    assert runner.invoke(app, ["impact", *args]).exit_code == 2
    assert runner.invoke(app, ["impact", "--disable-key", "alias/payments", *args]).exit_code == 2
