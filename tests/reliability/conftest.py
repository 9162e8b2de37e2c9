"""The reliability suite: its hypothesis profile and the figures it reports (tests/support/reliability/
scale.py holds its size). Every generated case comes from a fixed seed or a derandomized hypothesis run, so
a run repeats exactly, on one process or spread over pytest-xdist's workers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.support.reliability.scale import FIGURES, SCALE, Scale

settings.register_profile(
    "reliability",
    max_examples=SCALE.property_examples,
    derandomize=True,  # the same examples every run: the suite never flakes in CI
    deadline=None,  # DynamoDB Local round trips vary with the machine's load
    print_blob=True,
    # No shrinking: each example costs many DynamoDB Local round trips, and shrinking one failure took
    # longer than the whole suite. A failing example is reported as drawn (print_blob reproduces it).
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.load_profile("reliability")


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
