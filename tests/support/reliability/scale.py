"""The reliability suite's size, the size tests' (tests marked `size`), and the figures they report.

GRANTWATCH_RELIABILITY_SCALE=ci (the default, what `make test` and CI run) or full (`make reliability`). A
size test's CI size is the smallest that still reaches the limit it exists for: its module says why.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from tests.support.samples import ROOT

SCALE_VARIABLE = "GRANTWATCH_RELIABILITY_SCALE"


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    property_examples: int  # hypothesis examples per ordering property
    fault_events: int  # events replayed across a DynamoDB Local kill and restart
    fuzz_events: int  # malformed events through the parser and the recorder's handler
    load_events: int  # events recorded at concurrency 8
    alert_incidents: int  # incidents alerted through a failing SNS
    functions_on_key: int  # functions sharing one disabled key (tests/integration/test_shared_key_bounds.py)
    role_re_creations: int  # of one role (tests/integration/test_storage_growth.py)
    role_events_recorded: int  # of those re-creations' events, the ones recorded one by one
    backfill_events: int  # archived events backfilled across a crash (tests/integration/test_backfill.py)
    bench_events: int  # the benchmark's run (tests/integration/test_bench.py)


SCALES = {
    "ci": Scale(
        "ci",
        property_examples=6,
        fault_events=600,
        fuzz_events=3_000,
        load_events=1_500,
        alert_incidents=30,
        functions_on_key=5_120,
        role_re_creations=800,
        role_events_recorded=1_500,
        backfill_events=20_000,
        bench_events=200,
    ),
    "full": Scale(
        "full",
        property_examples=300,
        fault_events=10_000,
        fuzz_events=50_000,
        load_events=50_000,
        alert_incidents=300,
        functions_on_key=10_000,
        role_re_creations=5_000,
        role_events_recorded=2_000,
        backfill_events=100_000,
        bench_events=2_000,
    ),
}


def current_scale() -> Scale:
    name = os.environ.get(SCALE_VARIABLE, "ci")
    if name not in SCALES:
        raise pytest.UsageError(f"{SCALE_VARIABLE} must be one of {', '.join(SCALES)}, not {name!r}")
    return SCALES[name]


SCALE = current_scale()

FIGURES: dict[str, dict[str, Any]] = {}
# One run's figures share one file: pytest-xdist's workers of a run share its id, a run without them has its
# own. A file from an earlier run is replaced, not added to.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


def report(name: str, **figures: Any) -> None:
    """Keep a test's figures for the summary at the end of the run, and in build/reliability/ at once (a
    run cut short keeps what it measured)."""
    FIGURES[name] = figures
    out = ROOT / "build" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"figures-{SCALE.name}.json").open("a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # workers running at once each add their own figures
        file.seek(0)
        written = json.loads(file.read() or "{}")
        kept = written.get("figures", {}) if written.get("run") == _RUN else {}
        body = {"scale": asdict(SCALE), "run": _RUN, "figures": kept | {name: figures}}
        file.seek(0)
        file.truncate()
        file.write(json.dumps(body, indent=2) + "\n")
