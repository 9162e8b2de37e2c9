"""The IAM contract as a pytest plugin: records every botocore call of the run, fails the run on a call
template.yaml does not allow and lists such calls. Under pytest-xdist each worker records its own calls and
hands them to the controller, which decides and reports for the whole run."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.iam_contract import RECORDING, SESSION


def pytest_configure(config: pytest.Config) -> None:
    RECORDING.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    RECORDING.uninstall()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["iam_contract"] = SESSION.export()
    if SESSION.report() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A pytest-xdist worker finished: what it recorded counts for the run."""
    exported = getattr(node, "workeroutput", {}).get("iam_contract")
    if exported is not None:
        SESSION.absorb(exported)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    violations = SESSION.report()
    checked = sum(SESSION.checker.calls.values())
    if checked:
        functions = sorted({function for function, _ in SESSION.checker.calls})
        terminalreporter.write_line(f"IAM contract: {checked} AWS calls by {', '.join(functions)} checked")
    if violations:
        terminalreporter.section("IAM contract: calls template.yaml does not allow", red=True)
        for line in violations:
            terminalreporter.write_line(line)
    elif checked:
        terminalreporter.write_line("IAM contract: every call allowed by template.yaml")
