"""The IAM contract holds when pytest-xdist spreads the tests over workers: a disallowed call a worker
records fails the whole run and is listed by the controller, and the allowed calls of every worker count."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.pytest_runs import run_pytest

_CALLS = """
from tests.support.iam_contract import SESSION, Call, stands_for

KEY = {"pk": {"S": "GRANT#1"}, "sk": {"S": "X"}}
stands_for("GrantsTable", "t")


def _recorded(operation: str) -> None:
    SESSION.sink(Call("RecorderFunction", "dynamodb", operation, "us-east-1", None,
                      {"TableName": "t", "Key": KEY}))


def test_allowed_on_one_worker() -> None:
    _recorded("UpdateItem")


def test_disallowed_on_another() -> None:
    _recorded("DeleteItem")
"""


def _run_on_two_workers(tests: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_pytest("tests.support.iam_contract_plugin", tests, *options)


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


_ALLOWED = """
from tests.support.iam_contract import SESSION, Call, stands_for

stands_for("GrantsTable", "t")


def test_only_the_recorder_is_driven() -> None:
    SESSION.sink(Call("RecorderFunction", "dynamodb", "GetItem", "us-east-1", None,
                      {"TableName": "t", "Key": {"pk": {"S": "GRANT#1"}, "sk": {"S": "X"}}}))
"""


def test_a_run_of_the_whole_tests_tree_fails_when_a_function_made_no_checked_call(tmp_path: Path) -> None:
    """A run that collected every test fails when a function of template.yaml was never driven; a run of
    part of the tree (-k, one file) does not."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calls.py").write_text(_ALLOWED, encoding="utf-8")

    whole = _run_on_two_workers(tmp_path / "tests", "-n", "2")
    assert "1 passed" in whole.stdout, whole.stdout + whole.stderr
    assert whole.returncode == 1, whole.stdout
    assert "IAM contract: functions no test drove" in whole.stdout
    for function in ("EvaluatorFunction", "ReconcilerFunction", "RemediationFunction"):
        assert f"{function}: made no call the contract checked" in whole.stdout
    assert "RecorderFunction: made no call" not in whole.stdout

    for part in (["-k", "recorder"], ["-n", "0"]):
        target = tmp_path / "tests" / "test_calls.py" if part == ["-n", "0"] else tmp_path / "tests"
        selected = _run_on_two_workers(target, *part)
        assert selected.returncode == 0, selected.stdout + selected.stderr
        assert "functions no test drove" not in selected.stdout
