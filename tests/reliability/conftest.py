"""The reliability suite: the figures it reports (tests/support/reliability/scale.py holds its size). Every
generated case comes from a fixed seed or a derandomized hypothesis run (the profile every run loads:
tests/support/hypothesis_profile.py), so a run repeats exactly, on one process or spread over pytest-xdist's
workers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.reliability.scale import FIGURES, SCALE, Scale


@pytest.fixture(scope="session")
def scale() -> Scale:
    return SCALE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its figures to the controller, which shows them all."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["reliability_figures"] = FIGURES


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    FIGURES.update(getattr(node, "workeroutput", {}).get("reliability_figures", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures (scale {SCALE.name})")
    for name, figures in sorted(FIGURES.items()):
        shown = ", ".join(f"{k}={v}" for k, v in figures.items())
        terminalreporter.write_line(f"{name}: {shown}")
