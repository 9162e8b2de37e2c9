"""`grantwatch` end to end against DynamoDB Local: replay, grants, history, and the local emulator."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.cli import EXIT_NOT_FOUND, EXIT_REJECTED, EXIT_UNAVAILABLE, app
from grantwatch.domain.notices import MAX_EMAIL_LINES
from grantwatch.local import LocalDynamoError, find_jar, free_port
from grantwatch.local import start as start_local
from grantwatch.settings import Settings
from tests.support.iam_contract import stands_for
from tests.support.samples import EVENTS, ROOT, SEED_GRANT, TEMPLATE, load_event, sample_event_files

runner = CliRunner()


def run(settings: Settings, *args: str) -> Any:
    return runner.invoke(
        app, [*args, "--table", settings.table_name, "--endpoint-url", settings.endpoint_url or ""]
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def grants_json(settings: Settings) -> list[dict[str, Any]]:
    result = run(settings, "grants", "--json")
    assert result.exit_code == 0, result.output
    grants: list[dict[str, Any]] = json.loads(result.stdout)
    return grants


def test_replay_reports_each_event_and_a_summary(table_settings: Settings) -> None:
    result = run(table_settings, "replay", str(EVENTS), "--json")
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    outcomes = {line["eventID"]: line for line in lines if "eventID" in line}
    assert len(outcomes) == len(sample_event_files())
    dry_run = load_event("kms-create-grant-dry-run.json")["detail"]["eventID"]
    assert outcomes[dry_run] == {
        "eventID": dry_run,
        "eventName": "CreateGrant",
        "outcome": "ignored",
        "reason": "dry run",
    }
    assert lines[-1] == {
        "summary": {
            "events": 25,
            "recorded": 23,
            "duplicate": 0,
            "ignored": 2,
            "rejected": 0,
            "alerts": 5,
            "resolved": 1,
            "info": 1,
        }
    }
    # Read in file order, the samples end with the key's deletion cancelled, which leaves it disabled: its
    # functions alert, and so do the table and the volume on it, once per service (and the table on the
    # other key the last sample disables); the volume's incident
    # resolves when EC2 retires its grant (the volume detached no longer needs the key).
    notices = [line["alert"] for line in lines if "alert" in line]
    assert sorted(
        (
            n["kind"],
            n["attributes"]["alertType"],
            n["details"].get("functionName") or n["details"].get("service"),
        )
        for n in notices
    ) == [
        ("alert", "key-disabled", "invoice-renderer"),
        ("alert", "key-disabled", "report-mailer"),
        ("alert", "resource-key-disabled", "dynamodb"),
        ("alert", "resource-key-disabled", "dynamodb"),  # the demo's table, on a key of its own
        ("alert", "resource-key-disabled", "ebs"),
        ("info", "key-policy-changed", None),
        ("resolved", "resolved", "ebs"),
    ]


def test_replaying_twice_in_reverse_order_gives_the_same_grants(
    table_settings: Settings, dynamodb_local: Any
) -> None:
    files = [str(p) for p in sample_event_files()]
    assert run(table_settings, "replay", *files).exit_code == 0
    once = grants_json(table_settings)

    twice = dataclasses.replace(table_settings, table_name=table_settings.table_name + "-twice")
    stands_for("GrantsTable", twice.table_name)  # created from template.yaml's table below
    from grantwatch.local import ensure_table

    ensure_table(dynamodb_local.endpoint_url, twice.table_name, TEMPLATE)
    assert run(twice, "replay", *files).exit_code == 0
    second = run(twice, "replay", *reversed(files), "--json")
    assert json_lines(second.stdout)[-1]["summary"]["duplicate"] == 23
    assert grants_json(twice) == once
    assert len(once) == 7
    seed = next(g for g in once if g["grantId"] == SEED_GRANT)
    assert {k: seed[k] for k in ("state", "endedHow", "createdAt", "endedAt")} == {
        "state": "ended",
        "endedHow": "retired",
        "createdAt": "2026-11-02T09:14:05Z",
        "endedAt": "2026-11-20T16:42:31Z",
    }
    assert set(seed) >= {
        "grantId",
        "keyArn",
        "granteePrincipal",
        "retiringPrincipal",
        "operations",
        "constraints",
        "functionArn",
        "service",
        "state",
        "createdAt",
        "createdBy",
        "endedAt",
        "endedBy",
        "endedHow",
    }


def test_a_malformed_event_among_good_ones(table_settings: Settings, tmp_path: Path) -> None:
    good_create = load_event("kms-create-grant-lambda.json")
    no_grant_id = load_event("kms-create-grant-ebs-volume.json")
    del no_grant_id["detail"]["responseElements"]["grantId"]
    good_retire = load_event("kms-retire-grant-by-admin.json")
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join([json.dumps(good_create), "{truncated", json.dumps(no_grant_id), json.dumps(good_retire)])
    )

    result = run(table_settings, "replay", str(path), "--json")
    assert result.exit_code == EXIT_REJECTED
    lines = json_lines(result.stdout)
    assert [line["outcome"] for line in lines if "outcome" in line] == [
        "recorded",
        "rejected",
        "rejected",
        "recorded",
    ]
    assert [line["alert"]["kind"] for line in lines if "alert" in line] == ["alert"]
    assert lines[1]["eventID"] is None and "mixed.jsonl:2" in lines[1]["error"]
    assert lines[2]["eventID"] == no_grant_id["detail"]["eventID"] and "grantId" in lines[2]["error"]
    assert lines[-1]["summary"]["rejected"] == 2
    [grant] = grants_json(table_settings)
    assert grant["grantId"] == SEED_GRANT and grant["state"] == "ended"


def test_grants_filters(table_settings: Settings) -> None:
    run(table_settings, "replay", str(EVENTS))
    function = "arn:aws:lambda:eu-central-1:210987654321:function:invoice-renderer"
    result = run(table_settings, "grants", "--function", function, "--json")
    assert [g["grantId"] for g in json.loads(result.stdout)] == [SEED_GRANT]
    active = json.loads(run(table_settings, "grants", "--state", "active", "--json").stdout)
    assert sorted((g["service"] or "", g["name"] or "") for g in active) == [
        ("", "batch-worker-data"),
        ("dynamodb", ""),
        ("dynamodb", ""),
        ("lambda", ""),
    ]
    assert all(g["state"] == "active" and g["endedAt"] is None for g in active)
    people = run(table_settings, "grants", "--state", "ended")
    assert people.exit_code == 0 and "3 grant(s)" in people.stdout


def test_history_lists_the_lineage_in_order(table_settings: Settings) -> None:
    run(
        table_settings,
        "replay",
        str(EVENTS / "kms-retire-grant-by-admin.json"),
        str(EVENTS / "kms-create-grant-lambda.json"),
    )
    result = run(table_settings, "history", SEED_GRANT, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [e["eventName"] for e in document["lineage"]] == ["CreateGrant", "RetireGrant"]
    assert document["lineage"][1]["by"] == "arn:aws:sts::210987654321:assumed-role/kms-administrators/dana"
    assert document["grant"]["state"] == "ended"
    assert run(table_settings, "history", SEED_GRANT).exit_code == 0
    missing = run(table_settings, "history", "f" * 64)
    assert missing.exit_code == EXIT_NOT_FOUND


def test_a_missing_table_is_a_clear_error(table_settings: Settings) -> None:
    settings = dataclasses.replace(table_settings, table_name="no-such-table")
    result = run(settings, "grants")
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "no-such-table" in result.stderr and "grantwatch local start" in result.stderr


def test_an_unreachable_endpoint_is_a_clear_error() -> None:
    result = runner.invoke(app, ["grants", "--endpoint-url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "cannot use table 'grantwatch'" in result.stderr


def _checkout(tmp_path: Path, env: dict[str, str]) -> Any:
    """`grantwatch …` run as a command in a checkout of its own (tmp_path, with a copy of the template)."""
    shutil.copy(TEMPLATE, tmp_path / "template.yaml")
    env["GRANTWATCH_DYNAMODB_LOCAL_JAR"] = str(find_jar(ROOT))

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "grantwatch", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return command


def test_local_start_status_stop(tmp_path: Path) -> None:
    """The real command, in a checkout of its own: start creates the table and prints the endpoint; start,
    status and stop given another port than the running one's say which and exit 3. (One emulator for both:
    each start of one costs seconds.)"""
    env = dict(os.environ)
    command = _checkout(tmp_path, env)
    port, other = str(free_port()), str(free_port())

    assert command("local", "status").returncode == EXIT_UNAVAILABLE
    started = command("local", "start", "--port", port, "--in-memory")
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:{port}"
        assert "table 'grantwatch' created" in started.stderr
        again = command("local", "start", "--port", port)
        assert "table 'grantwatch' present" in again.stderr
        assert command("local", "status").stdout.strip() == started.stdout.strip()

        for action in ("start", "status", "stop"):
            refused = command("local", action, "--port", other)
            assert refused.returncode == EXIT_UNAVAILABLE, (action, refused.stderr)
            assert refused.stdout == ""  # no endpoint to export by mistake
            [line] = refused.stderr.strip().splitlines()
            assert f"runs on port {port}, not {other}" in line, action
        assert command("local", "status", "--port", port).stdout.strip() == started.stdout.strip()
        assert command("local", "start").stdout.strip() == started.stdout.strip()  # no port: the running one

        env["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{port}"
        stands_for("GrantsTable", "grantwatch")  # the table `local start` created from template.yaml's
        assert command("replay", str(EVENTS / "kms-create-grant-lambda.json")).returncode == 0
        assert SEED_GRANT in command("grants", "--json").stdout
    finally:
        stopped = command("local", "stop", "--port", port)
    assert stopped.returncode == 0 and "stopped pid" in stopped.stderr
    assert command("local", "status").returncode == EXIT_UNAVAILABLE


def test_local_start_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(LocalDynamoError, match="already in use"):
            start_local(ROOT, tmp_path, port=taken.getsockname()[1], in_memory=True)
    assert not (tmp_path / "state.json").exists()


def test_the_demo_alerts_for_the_seed_story_and_not_for_the_benign_update() -> None:
    env = {
        **os.environ,
        "GRANTWATCH": str(Path(sys.executable).with_name("grantwatch")),
        "PYTHON": sys.executable,
        "GRANTWATCH_DEMO_PORT": str(free_port()),
        # The demo's table, standing for template.yaml's as the IAM contract checks its replay's calls.
        "GRANTWATCH_DEMO_TABLE": stands_for("GrantsTable", f"grantwatch-demo-{uuid.uuid4().hex[:12]}"),
    }
    demo = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    benign, seed = demo.stdout.split("== 2.", 1)
    assert "4 recorded, 0 duplicate, 0 ignored, 0 rejected, 0 alerts" in benign
    assert "1 recorded, 0 duplicate, 0 ignored, 0 rejected, 1 alerts" in seed
    assert "2 duplicate, 0 ignored, 0 rejected, 0 alerts" in seed
    assert "Subject: [grantwatch] invoice-renderer: next cold start will fail (grant retired)" in seed
    seed, table = seed.split("\x1b[1m== 7.", 1)  # the step's heading, in bold
    email, programs = seed.split("== 5.", 1)[1].split("-- SQS, Lambda, HTTP(S)", 1)
    lines = int(email.split("-- e-mail (", 1)[1].split(" lines", 1)[0])
    assert lines <= MAX_EMAIL_LINES and "Details (JSON)" not in email
    assert email.rstrip().endswith("grantwatch incidents 20261120T164431Z-abfc6dbbc686122c")
    assert '"alertType": "grant-retired"' in programs.split("== 6.", 1)[0]
    assert seed.rstrip().endswith("}")  # the alert's JSON block closes the seed story
    # then a DynamoDB table on another key, disabled: one alert for the table, and its archival date
    assert "2 recorded, 0 duplicate, 0 ignored, 0 rejected, 1 alerts" in table
    [row] = [line for line in table.splitlines() if line.startswith("dynamodb  table  payments")]
    assert row.endswith("since 2026-12-01T08:30:00Z; irreversible after 2026-12-08T08:30:00Z")
