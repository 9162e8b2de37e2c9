"""`grantwatch impact` against DynamoDB Local: a recorded fleet, and questions about changes to it."""

from __future__ import annotations

import codecs
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.cli import EXIT_NOT_FOUND, EXIT_WOULD_BREAK, app
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.plans import (
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
from tests.support.samples import KEY_ARN, load_event
from tests.support.scenarios import create_grant, disable_key, function_arn, grant_id, update_function

runner = CliRunner()
OTHER_KEY = KEY_ARN.replace("5f1e2d3c", "0a0b0c0d")
EBS_GRANT = grant_id("ebs volume attachment")
BILLING = function_arn("billing")


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
    role_switch, key_switch = billing["fix"]
    command = f"aws lambda update-function-configuration --region eu-central-1 --function-name {BILLING}"
    wait = f"aws lambda wait function-updated --region eu-central-1 --function-name {BILLING}"
    assert (role_switch["procedure"], role_switch["when"]) == ("role-switch", "right after the apply")
    assert [s["command"] for s in role_switch["steps"]] == [
        f"{command} --role TEMPORARY_ROLE_ARN",
        wait,
        f"{command} --role {role_arn('shared-role')}",
        wait,
    ]
    assert "lambda.amazonaws.com" in role_switch["needs"]
    assert [s["command"] for s in key_switch["steps"]] == [
        f'{command} --kms-key-arn ""',
        wait,
        f"{command} --kms-key-arn {KEY_ARN}",
        wait,
    ]
    assert key_switch["original"] == KEY_ARN == key_switch["steps"][2]["value"]
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
        tf_function("billing", role="shared-role", role_known_after_apply=True, new_key=OTHER_KEY),
        tf_function("payroll", ["delete"], role="shared-role"),
    )
    code, report = impact(fleet, "--plan", write(tmp_path, "followed.json", followed))
    assert code == 0
    assert by_name(report) == {"billing": "regranted", "payroll": "regranted"}

    replaced = terraform_plan(
        tf_role("shared-role", ["delete", "create"]),
        tf_function("billing", ["delete", "create"], role="shared-role", role_known_after_apply=True),
        tf_function("payroll", ["delete"], role="shared-role"),
    )
    code, report = impact(fleet, "--plan", write(tmp_path, "replaced.json", replaced))
    assert (code, by_name(report)) == (0, {"billing": "regranted", "payroll": "regranted"})


@pytest.mark.parametrize("new_environment", [False, True])
def test_a_function_that_follows_the_role_without_changing_key_or_role_still_breaks(
    fleet: Settings, tmp_path: Path, new_environment: bool
) -> None:
    """Lambda creates a grant when an update changes the key or the role: a new environment alone, or the
    same role ARN read again, creates none."""
    plan = terraform_plan(
        tf_role("shared-role", ["delete", "create"]),
        tf_function(
            "billing", role="shared-role", role_known_after_apply=True, new_environment=new_environment
        ),
    )
    code, report = impact(fleet, "--plan", write(tmp_path, "plan.json", plan))
    assert code == EXIT_WOULD_BREAK
    billing = next(f for f in report["functions"] if f["functionName"] == "billing")
    assert billing["outcome"] == "breaks"
    assert any("neither its key nor its role" in reason for reason in billing["reasons"])
    assert [f["procedure"] for f in billing["fix"]] == ["role-switch", "key-switch"]


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
    def static(name: str) -> dict[str, Any]:
        return {
            "Target": {"Attribute": "Properties", "Name": name, "RequiresRecreation": "Never"},
            "Evaluation": "Static",
            "ChangeSource": "DirectModification",
        }

    billing, payroll = cfn_function_following_role("billing"), cfn_function_following_role("payroll")
    billing["ResourceChange"]["Details"].append(static("Environment"))  # its environment alone: no grant
    payroll["ResourceChange"]["Details"].append(static("KmsKeyArn"))
    document = change_set(cfn_role_replaced("shared-role"), billing, payroll)
    code, report = impact(fleet, "--plan", write(tmp_path, "change-set.json", document))
    assert code == EXIT_WOULD_BREAK
    assert by_name(report) == {"billing": "breaks", "payroll": "regranted"}
    billing_report = report["functions"][0]
    assert any("neither its KmsKeyArn nor its Role" in reason for reason in billing_report["reasons"])


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
    assert "billing  BREAKS" in result.stdout
    lines = result.stdout.splitlines()
    first = lines.index(
        "  do        before deleting the role: move the function to another execution role (a change of "
        "role creates its grant)"
    )
    assert lines[first + 1 : first + 3] == [
        f"              aws lambda update-function-configuration --region eu-central-1 --function-name "
        f"{BILLING} --role NEW_ROLE_ARN",
        f"              aws lambda wait function-updated --region eu-central-1 --function-name {BILLING}",
    ]


def test_questions_that_cannot_be_answered(fleet: Settings, tmp_path: Path) -> None:
    args = ["--table", fleet.table_name, "--endpoint-url", fleet.endpoint_url or ""]
    unknown = runner.invoke(app, ["impact", "--revoke-grant", grant_id("never seen"), *args])
    assert unknown.exit_code == EXIT_NOT_FOUND and "no grant" in unknown.stderr
    missing = runner.invoke(app, ["impact", "--plan", str(tmp_path / "absent.json"), *args])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    assert runner.invoke(app, ["impact", *args]).exit_code == 2
    assert runner.invoke(app, ["impact", "--disable-key", "alias/payments", *args]).exit_code == 2


def test_a_binary_terraform_plan_says_how_to_get_its_json(fleet: Settings, tmp_path: Path) -> None:
    """`terraform plan -out` writes a zip archive (compressed bytes that are not UTF-8): say so, and give
    the command that turns it into the JSON impact reads."""
    binary = tmp_path / "plan.tfplan"
    with zipfile.ZipFile(binary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tfplan", bytes(range(256)) * 64)
        archive.writestr("tfconfig/m-/main.tf", 'resource "aws_iam_role" "exec" {}')
    assert binary.read_bytes().startswith(b"PK\x03\x04")
    args = ["--table", fleet.table_name, "--endpoint-url", fleet.endpoint_url or ""]
    result = runner.invoke(app, ["impact", "--plan", str(binary), *args])
    assert result.exit_code == 2
    assert "plan.tfplan is a binary Terraform plan" in result.stderr
    assert "terraform show -json plan.tfplan > plan.json" in result.stderr
    assert "codec" not in result.stderr


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-8", codecs.BOM_UTF8)],
)
def test_a_plan_redirected_by_windows_powershell_is_read(
    fleet: Settings, tmp_path: Path, encoding: str, bom: bytes
) -> None:
    """Windows PowerShell's `>` writes UTF-16 LE with a byte-order mark; Out-File -Encoding
    BigEndianUnicode UTF-16 BE, and -Encoding utf8 UTF-8 with one."""
    document = terraform_plan(tf_role("shared-role", ["delete", "create"]), tf_noop_bucket())
    path = tmp_path / "plan.json"
    path.write_bytes(bom + json.dumps(document, indent=2).replace("\n", "\r\n").encode(encoding))
    code, report = impact(fleet, "--plan", str(path))
    assert (code, by_name(report)) == (EXIT_WOULD_BREAK, {"billing": "breaks", "payroll": "breaks"})
