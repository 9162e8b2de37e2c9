"""`make bench` prints each figure's budget computed from the floor measured in the same run, and marks a
figure on the wrong side of it MISS (bench/run.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.run import BUDGETS, FLOOR, budget_cell, print_table


def test_a_figure_under_its_floor_based_budget_is_marked_miss() -> None:
    def shown(value: float) -> str:
        return f"{value:.0f}/s"

    assert budget_cell(800, 0.7 * 1000, at_least=True, shown=shown) == ">= 700/s"
    assert budget_cell(600, 0.7 * 1000, at_least=True, shown=shown) == ">= 700/s  MISS"
    assert budget_cell(1.3, 1.25, at_least=False, shown=str) == "<= 1.25  MISS"
    assert budget_cell(1.25, 1.25, at_least=False, shown=str) == "<= 1.25"


def _figures(recorder_rate: float, import_seconds: float) -> dict[str, Any]:
    replay = {
        "events": 10,
        "workers": 2,
        "serial_events_per_second": 900.0,
        "serial_floor_put_item_per_second": 1000.0,
        "serial_ratio": 0.9,
        "parallel_events_per_second": 1800.0,
        "parallel_floor_put_item_per_second": 2000.0,
        "parallel_ratio": 0.9,
        "evaluations": 1,
        "evaluations_coalesced": 0,
    }
    backfill = {
        "archive_events": 100,
        "files": 1,
        "grant_events": 1,
        "scan_events_per_second": 500.0,
        "decompress_events_per_second": 2000.0,
        "scan_ratio": 0.25,
        "workers": 2,
        "end_to_end_events_per_second": 100.0,
        "end_to_end_ratio": 0.05,
    }
    return {
        "events": 10,
        "machine": {"cpus": 2, "python": "3.13"},
        "replay": replay,
        "recorder": {
            "events_per_second": recorder_rate,
            "floor_put_item_per_second": 1000.0,
            "ratio": recorder_rate / 1000.0,
        },
        "import_seconds": {FLOOR: 0.100, "grantwatch.handlers.recorder": import_seconds},
        "import_ratio": {"grantwatch.handlers.recorder": import_seconds / 0.100},
        "cold_start_ratio": {},
        "peak_rss_mb": 50.0,
        "cost_per_million_grant_events_usd": {"total": 2.0, "wru_per_event": 1.0, "rru_per_event": 1.0},
        "capacity_per_event_type": {},
        "backfill": backfill,
        "backfill_peak_rss_mb": {},
    }


def test_the_table_shows_budgets_from_this_runs_floors_and_marks_each_miss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table(_figures(recorder_rate=600.0, import_seconds=0.110))
    printed = capsys.readouterr().out.splitlines()
    lines = {line.split("  ")[0]: line for line in printed}
    recorder = lines["recorder events/s (DynamoDB Local)"]
    assert recorder.endswith(f">= {BUDGETS['recorder_ratio'] * 1000:,.0f}/s  MISS")  # 600 < 0.7 x 1000
    replay = next(line for key, line in lines.items() if key.startswith("replay events/s, 10 events"))
    assert replay.endswith(">= 700/s")  # 900 >= 0.7 x 1000: met, no MISS
    imported = lines["import grantwatch.handlers.recorder"]
    assert imported.endswith("<= 125 ms")  # 110 ms <= 1.25 x 100 ms
    assert lines["cost per million grant events (AWS)"].endswith("<= $1.50  MISS")
    assert lines["peak RSS, 10 events"].endswith("<= 100 MB")
    backfill = next(line for line in printed if "scan and filter" in line)
    assert backfill.endswith("(budget >= 1,000/s  MISS)")

    print_table(_figures(recorder_rate=800.0, import_seconds=0.130))
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["recorder events/s (DynamoDB Local)"].endswith(">= 700/s")
    assert lines["import grantwatch.handlers.recorder"].endswith("<= 125 ms  MISS")
