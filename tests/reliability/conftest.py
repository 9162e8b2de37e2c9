"""The reliability suite: its size, its hypothesis profile, and the figures it reports.

GRANTWATCH_RELIABILITY_SCALE=ci (the default, what `make test` and CI run) or full (`make reliability`).
Every generated case comes from a fixed seed or a derandomized hypothesis run, so a run repeats exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.conftest import ROOT

SCALE_VARIABLE = "GRANTWATCH_RELIABILITY_SCALE"


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    property_examples: int  # hypothesis examples per ordering property
    fault_events: int  # events replayed across a DynamoDB Local kill and restart
    fuzz_events: int  # malformed events through the parser and the recorder's handler
    load_events: int  # events recorded at concurrency 8
    alert_incidents: int  # incidents alerted through a failing SNS


SCALES = {
    "ci": Scale(
        "ci",
        property_examples=6,
        fault_events=600,
        fuzz_events=3_000,
        load_events=1_500,
        alert_incidents=30,
    ),
    "full": Scale(
        "full",
        property_examples=300,
        fault_events=10_000,
        fuzz_events=50_000,
        load_events=50_000,
        alert_incidents=300,
    ),
}


def current_scale() -> Scale:
    name = os.environ.get(SCALE_VARIABLE, "ci")
    if name not in SCALES:
        raise pytest.UsageError(f"{SCALE_VARIABLE} must be one of {', '.join(SCALES)}, not {name!r}")
    return SCALES[name]


SCALE = current_scale()

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

FIGURES: dict[str, dict[str, Any]] = {}


def report(name: str, **figures: Any) -> None:
    """Keep a test's figures for the summary at the end of the run, and in build/reliability/ at once (a
    run cut short keeps what it measured)."""
    FIGURES[name] = figures
    out = ROOT / "build" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    body = {"scale": asdict(SCALE), "figures": FIGURES}
    (out / f"figures-{SCALE.name}.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def scale() -> Scale:
    return SCALE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures (scale {SCALE.name})")
    for name, figures in FIGURES.items():
        shown = ", ".join(f"{k}={v}" for k, v in figures.items())
        terminalreporter.write_line(f"{name}: {shown}")
