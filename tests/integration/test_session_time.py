"""A run of the whole tests/ tree leaves its wall time, workers and tests in build/test-time.json, which the
benchmark reads; a run of part of the tree leaves the file as it was."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from tests.support.pytest_runs import run_pytest

_TESTS = """
import pytest


@pytest.mark.parametrize("n", range(3))
def test_one_of_three(n: int) -> None:
    assert n < 3


def test_another() -> None:
    pass
"""


def test_a_whole_run_writes_its_time_and_a_partial_run_leaves_it(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_some.py").write_text(_TESTS, encoding="utf-8")
    written = tmp_path / "build" / "test-time.json"

    whole = run_pytest("tests.support.session_time", tmp_path / "tests", "-n", "2")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    figures = json.loads(written.read_text(encoding="utf-8"))
    assert set(figures) == {"seconds", "workers", "tests", "when"}
    assert (figures["workers"], figures["tests"]) == (2, 4)
    assert isinstance(figures["seconds"], float) and figures["seconds"] > 0
    assert datetime.fromisoformat(figures["when"]).utcoffset() == timedelta(0)

    part = run_pytest("tests.support.session_time", tmp_path / "tests", "-n", "0", "-k", "another")
    assert part.returncode == 0, part.stdout + part.stderr
    assert "1 passed" in part.stdout
    assert json.loads(written.read_text(encoding="utf-8")) == figures
