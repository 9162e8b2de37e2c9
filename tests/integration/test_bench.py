"""The benchmark keeps working (a small run: 200 events at CI size, 2,000 at full size): every figure is
there, and the request budgets hold. Times are printed by the benchmark, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.reliability.scale import SCALE
from tests.support.samples import ROOT

EVENTS = SCALE.bench_events


@pytest.mark.size
def test_a_small_benchmark_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--events", str(EVENTS), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "recorder events/s" in run.stdout and "cost per million grant events" in run.stdout
    figures = json.loads(out.read_text())
    assert figures["events"] == EVENTS
    assert (
        figures["recorder"]["events_per_second"] > 0 and figures["recorder"]["floor_put_item_per_second"] > 0
    )
    assert set(figures["import_ratio"]) == {
        f"grantwatch.handlers.{name}" for name in ("recorder", "evaluator", "reconciler", "remediation")
    }
    assert figures["peak_rss_mb"] > 0
    assert figures["cost_per_million_grant_events_usd"]["total"] > 0
    for event_type, measured in figures["capacity_per_event_type"].items():
        if event_type != "evaluation":
            assert measured["writes"] <= 1 and measured["reads"] <= 1, (event_type, measured)
    assert figures["capacity_per_event_type"]["failed-call"]["requests"] == {}
    backfill = figures["backfill"]
    assert (backfill["archive_events"], backfill["grant_events"]) == (EVENTS * 10, EVENTS // 20)
    assert backfill["scan_ratio"] > 0 and backfill["end_to_end_ratio"] > 0
    replay = figures["replay"]
    assert replay["events"] == EVENTS // 2 and replay["workers"] >= 1
    for kind in ("serial", "parallel"):
        assert replay[f"{kind}_events_per_second"] > 0 and replay[f"{kind}_floor_put_item_per_second"] > 0
    assert replay["evaluations"] > 0 and replay["evaluations"] + replay["evaluations_coalesced"] >= 25
    assert set(figures["backfill_peak_rss_mb"]) == {str(EVENTS), str(EVENTS * 10)}
    assert all(peak > 0 for peak in figures["backfill_peak_rss_mb"].values())
    assert "replay events/s" in run.stdout and "backfill peak memory" in run.stdout
