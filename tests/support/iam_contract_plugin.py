"""The IAM contract as a pytest plugin: records every botocore call of the run, fails the run on a call
template.yaml does not allow and lists such calls. Under pytest-xdist each worker records its own calls and
hands them to the controller, which decides and reports for the whole run. A run of the whole tests/ tree
also fails when a function of template.yaml made no checked call. A subprocess the tests start (the CLI)
records and checks its own calls and leaves them for the process that started it
(tests/support/iam_contract_subprocess.py)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import iam_contract_subprocess as subprocesses
from tests.support.iam_contract import RECORDING, REGISTRY_VARIABLE, SESSION, uncovered

_UNCOVERED: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    RECORDING.install()
    folder = Path(tempfile.mkdtemp(prefix="grantwatch-iam-contract-"))
    os.environ[REGISTRY_VARIABLE] = str(folder / "registry.json")
    subprocesses.enable(folder, Path(str(config.rootpath)))


def pytest_unconfigure(config: pytest.Config) -> None:
    RECORDING.uninstall()


def full_run(config: pytest.Config) -> bool:
    """Whether the run collected the whole tests/ tree: every argument a folder holding it, no selection."""
    tests = Path(str(config.rootpath), "tests").resolve()
    for option in ("keyword", "markexpr", "deselect", "lf", "ignore", "ignore_glob"):
        if getattr(config.option, option, None):
            return False
    for argument in config.args:
        if "::" in argument:
            return False
        path = Path(config.invocation_params.dir, argument).resolve()
        if not (path == tests or path in tests.parents):
            return False
    return bool(config.args)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for exported in subprocesses.collected():
        SESSION.absorb(exported)
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["iam_contract"] = SESSION.export()
        return
    _UNCOVERED[:] = uncovered(SESSION.seen()) if full_run(session.config) else []
    if (SESSION.report() or _UNCOVERED) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A pytest-xdist worker finished: what it recorded counts for the run."""
    exported = getattr(node, "workeroutput", {}).get("iam_contract")
    if exported is not None:
        SESSION.absorb(json.loads(json.dumps(exported)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    violations = SESSION.report()
    checked = sum(SESSION.checker.calls.values())
    if checked:
        functions = sorted(SESSION.seen())
        terminalreporter.write_line(f"IAM contract: {checked} AWS calls by {', '.join(functions)} checked")
    if violations:
        terminalreporter.section("IAM contract: calls template.yaml does not allow", red=True)
        for line in violations:
            terminalreporter.write_line(line)
    if _UNCOVERED:
        terminalreporter.section("IAM contract: functions no test drove", red=True)
        for line in _UNCOVERED:
            terminalreporter.write_line(line)
    if checked and not violations and not _UNCOVERED:
        terminalreporter.write_line("IAM contract: every call allowed by template.yaml")
