"""AWS's documented limits as a pytest plugin: checks every botocore request of the run against them
(tests/support/limits_contract.py), fails the run on a request over a limit and lists such requests. Under
pytest-xdist each worker records its own and hands them to the controller, which decides for the whole run.

A test that exceeds a limit on purpose (scaffolding that writes an oversized item to reach an error path)
says so with `@pytest.mark.exceeds_aws_limits("reason")`: its requests over a limit are listed with the
reason and do not fail the run; a marked test that exceeds no limit does (the mark would hide nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.limits_contract import RECORDING, SESSION

MARK = "exceeds_aws_limits"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARK}(reason): the test makes requests over AWS's documented limits on purpose; they are listed "
        "with the reason instead of failing the run",
    )
    RECORDING.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    RECORDING.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    marker = item.get_closest_marker(MARK)
    if marker is None:
        return (yield None)
    reason = str(marker.args[0]) if marker.args else ""
    if not reason:
        raise pytest.UsageError(f"{item.nodeid}: {MARK} needs a reason")
    SESSION.allowance, SESSION.exceeded_under_allowance = reason, 0
    try:
        return (yield None)
    finally:
        exceeded = SESSION.exceeded_under_allowance
        SESSION.allowance = None
        if not exceeded:
            line = f"{item.nodeid}: marked {MARK} ({reason}) but made no request over a limit"
            SESSION.elsewhere.add(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["limits_contract"] = SESSION.export()
    if SESSION.report() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A pytest-xdist worker finished: what it recorded counts for the run."""
    exported = getattr(node, "workeroutput", {}).get("limits_contract")
    if exported is not None:
        SESSION.absorb(exported)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    violations = SESSION.report()
    checked = sum(SESSION.requests.values())
    if checked:
        terminalreporter.write_line(f"AWS limits contract: {checked} AWS requests checked")
    declared = SESSION.declared_report()
    if declared:
        terminalreporter.section(f"AWS limits contract: requests over a limit on purpose ({MARK})")
        for line, reason in sorted(declared.items()):
            terminalreporter.write_line(f"{line} -- declared: {reason}")
    if violations:
        terminalreporter.section("AWS limits contract: requests over AWS's documented limits", red=True)
        for line in violations:
            terminalreporter.write_line(line)
    elif checked:
        terminalreporter.write_line("AWS limits contract: every request within AWS's documented limits")
