"""The wall time of a run of the whole tests/ tree, kept in build/test-time.json for the benchmark, which
shows the last `make test` against its budget:

    {"seconds": 212.4, "workers": 2, "tests": 1064, "when": "2026-12-07T23:10:00+00:00"}

`workers` is the number of pytest-xdist workers (0: the tests ran in pytest's own process), `tests` the
number of tests that reported, `when` the run's end. A run of part of the tree (one file, -k, -m) or one
stopped by Ctrl-C leaves the file as it was: its time says nothing about the suite's."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.iam_contract_plugin import full_run

OUTPUT = Path("build", "test-time.json")


class SessionTime:
    def __init__(self, output: Path) -> None:
        self.output = output
        self.started = time.monotonic()
        self.workers = 0
        self.tests: set[str] = set()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        self.workers += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests.add(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.INTERRUPTED or not full_run(session.config):
            return
        figures = {
            "seconds": round(time.monotonic() - self.started, 2),
            "workers": self.workers,
            "tests": len(self.tests),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(figures) + "\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the controller times the run and sees every worker's reports
    config.pluginmanager.register(SessionTime(config.rootpath / OUTPUT), "grantwatch-session-time")
