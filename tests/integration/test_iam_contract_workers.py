"""The IAM contract holds when pytest-xdist spreads the tests over workers: a disallowed call a worker
records fails the whole run and is listed by the controller, and the allowed calls of every worker count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.samples import ROOT

_CALLS = """
from tests.support.iam_contract import SESSION, Call

KEY = {"pk": {"S": "GRANT#1"}, "sk": {"S": "X"}}


def _recorded(operation: str) -> None:
    SESSION.sink(Call("RecorderFunction", "dynamodb", operation, "eu-central-1", None,
                      {"TableName": "t", "Key": KEY}))


def test_allowed_on_one_worker() -> None:
    _recorded("UpdateItem")


def test_disallowed_on_another() -> None:
    _recorded("DeleteItem")
"""


def _run_on_two_workers(tests: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tests.support.iam_contract_plugin",
        "-p",
        "no:cacheprovider",
    ]
    return subprocess.run(
        [*command, "--rootdir", str(tests.parent), *options, str(tests)],
        capture_output=True,
        text=True,
        cwd=tests.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def test_a_disallowed_call_on_a_worker_fails_the_run_and_every_workers_calls_count(tmp_path: Path) -> None:
    tests = tmp_path / "test_calls.py"
    tests.write_text(_CALLS, encoding="utf-8")

    spread = _run_on_two_workers(tests, "-n", "2", "--dist", "load")

    assert "2 passed" in spread.stdout, spread.stdout + spread.stderr
    assert spread.returncode == 1, spread.stdout
    assert "IAM contract: 2 AWS calls by RecorderFunction checked" in spread.stdout
    assert "IAM contract: calls template.yaml does not allow" in spread.stdout
    assert "RecorderFunction: dynamodb DeleteItem: dynamodb:DeleteItem on arn:aws:dynamodb:" in spread.stdout
    assert "every call allowed" not in spread.stdout
