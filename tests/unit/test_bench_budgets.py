"""`make bench` prints every figure with its budget, computed from the floor measured in the same run where
it is a ratio, and marks a figure on the wrong side of it MISS; figures another command measures (a
backfill's memory, the test suite's time) are printed from its last results, or as not measured
(bench/run.py). The cost model is computed from the run's figures, not guessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.run import (
    BUDGETS,
    COST_PARTS,
    FLOOR,
    PRICES,
    SQS_REQUESTS_PER_MESSAGE,
    budget_cell,
    cost_per_million,
    last_memory_figures,
    last_test_time,
    print_table,
)


def test_a_figure_under_its_floor_based_budget_is_marked_miss() -> None:
    def shown(value: float) -> str:
        return f"{value:.0f}/s"

    assert budget_cell(800, 0.7 * 1000, at_least=True, shown=shown) == ">= 700/s"
    assert budget_cell(600, 0.7 * 1000, at_least=True, shown=shown) == ">= 700/s  MISS"
    assert budget_cell(1.3, 1.25, at_least=False, shown=str) == "<= 1.25  MISS"
    assert budget_cell(1.25, 1.25, at_least=False, shown=str) == "<= 1.25"


def _metered(requests_per_event: float) -> dict[str, Any]:
    return {
        "requests": {"UpdateItem": 10},
        "requests_per_event": requests_per_event,
        "sent_per_event": requests_per_event,
        "dynamodb_clients": 3,
    }


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
        "serial_dynamodb": _metered(requests_per_event=1.6)
        | {
            "by_part": {
                "recorder": {"requests": {"UpdateItem": 10}, "wru": 20.0, "rru": 0.0},
                "evaluator": {"requests": {"GetItem": 6}, "wru": 0.0, "rru": 3.0},
            }
        },
        "parallel_dynamodb": _metered(requests_per_event=1.4),
        "serial_evaluator": {
            "messages_scheduled": 2,
            "evaluations": 2,
            "notices": 1,
            "seconds_per_evaluation": 0.0121,
            "requests_per_evaluation": 3.0,
            "wru_per_evaluation": 0.0,
            "rru_per_evaluation": 1.5,
        },
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
        "cold_start_ratio": {"grantwatch.handlers.recorder": 1.3, "grantwatch.handlers.evaluator": 1.2},
        "peak_rss_mb": 50.0,
        "cost_per_million_grant_events_usd": cost_per_million(0.0042, replay) | {"total": 2.0},
        "sqs_requests_per_message": SQS_REQUESTS_PER_MESSAGE,
        "capacity_per_event_type": {},
        "backfill": backfill,
        "backfill_peak_rss_mb": {},
        "backfill_memory": {
            "when": "2026-12-01T10:00:00+00:00",
            "peak_mb": {"10000": 110.0, "1000000": 118.0},
        },
        "test_time": {"seconds": 120.4, "workers": 2, "tests": 900, "when": "2026-12-02T10:00:00+00:00"},
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
    assert lines["cost per million grant events (AWS)"].endswith("<= $1.00  MISS")
    assert lines["peak RSS, 10 events"].endswith("<= 100 MB")
    backfill = next(line for line in printed if "scan and filter" in line)
    assert backfill.endswith("(budget >= 1,000/s  MISS)")

    print_table(_figures(recorder_rate=800.0, import_seconds=0.130))
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["recorder events/s (DynamoDB Local)"].endswith(">= 700/s")
    assert lines["import grantwatch.handlers.recorder"].endswith("<= 125 ms  MISS")


def test_every_budget_is_printed_beside_its_figure(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(_figures(recorder_rate=800.0, import_seconds=0.110))
    printed = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in printed.splitlines()}

    def line(prefix: str) -> str:
        found = [text for key, text in lines.items() if key.startswith(prefix)]
        assert len(found) == 1, (prefix, found)
        return found[0]

    assert line("DynamoDB requests per replayed event, serial").endswith("<= 1.50  MISS")  # 1.6
    assert line("DynamoDB requests per replayed event, 2 workers").endswith("<= 1.50")  # 1.4
    assert line("cold start recorder").endswith("<= 1.25  MISS")  # 1.3
    assert line("cold start evaluator").endswith("<= 1.25")  # 1.2
    memory = line("backfill peak memory, 1,000,000 over 10,000 (measured 2026-12-01)")
    assert "+8.0 MB" in memory and memory.endswith("<= 5 MB  MISS")
    tests = line("make test, 900 tests, 2 workers (measured 2026-12-02)")
    assert "120 s" in tests and tests.endswith("<= 150 s")
    assert line("cost per million grant events (AWS)").endswith("<= $1.00  MISS")
    for budget in BUDGETS:  # each budget named here is checked above or in the test before
        assert budget in {
            "replay_ratio",
            "replay_requests_per_event",
            "recorder_ratio",
            "backfill_scan_ratio",
            "import_ratio",
            "cold_start_ratio",
            "peak_rss_mb",
            "backfill_memory_growth_mb",
            "test_seconds",
            "cost_per_million",
        }, f"{budget}: a budget the table's tests do not check"
    breakdown = next(text for text in printed.splitlines() if text.startswith("  of which: "))
    assert all(f"{part} $" in breakdown for part in COST_PARTS), breakdown


def test_figures_measured_elsewhere_are_not_measured_until_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert last_memory_figures(tmp_path / "memory.json") is None
    assert last_test_time(tmp_path / "test-time.json") is None
    (tmp_path / "memory.json").write_text(json.dumps({"when": "x", "backfill_peak_rss_mb": {"10000": 100.0}}))
    assert last_memory_figures(tmp_path / "memory.json") is None  # no figure at 1,000,000 yet
    (tmp_path / "memory.json").write_text(
        json.dumps({"when": "2026-12-01", "backfill_peak_rss_mb": {"10000": 100.0, "1000000": 104.5}})
    )
    assert last_memory_figures(tmp_path / "memory.json") == {
        "when": "2026-12-01",
        "peak_mb": {"10000": 100.0, "1000000": 104.5},
    }
    (tmp_path / "test-time.json").write_text(
        json.dumps({"seconds": 99, "workers": 2, "tests": 10, "when": "2026-12-02"})
    )
    assert last_test_time(tmp_path / "test-time.json") == {
        "seconds": 99.0,
        "workers": 2,
        "tests": 10,
        "when": "2026-12-02",
    }

    figures = _figures(recorder_rate=800.0, import_seconds=0.110) | {
        "backfill_memory": None,
        "test_time": None,
    }
    print_table(figures)
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    memory = lines["backfill peak memory, 1,000,000 over 10,000 (bench-memory)"]
    assert "not measured" in memory and memory.endswith("<= 5 MB")
    tests = lines["make test, pytest"]
    assert "not measured" in tests and tests.endswith("<= 150 s on 2 cores")


def test_the_cost_is_computed_from_the_runs_figures() -> None:
    replay = _figures(recorder_rate=800.0, import_seconds=0.110)["replay"]
    cost = cost_per_million(0.0042, replay)
    lambda_seconds = PRICES["lambda_arm64_gb_second"] / 4  # 256 MB
    # 10 events: 10 recorder invocations of 4.2 ms, billed 5 ms each, and 20 WRU
    assert cost["recorder_lambda"] == pytest.approx(1e6 * (PRICES["lambda_request"] + 0.005 * lambda_seconds))
    assert cost["recorder_dynamodb"] == pytest.approx(1e6 * 2.0 * PRICES["dynamodb_wru"])
    # 2 messages and evaluations of 12.1 ms (billed 13 ms), 3 RRU and 1 notice
    assert cost["sqs"] == pytest.approx(1e6 * 0.2 * SQS_REQUESTS_PER_MESSAGE * PRICES["sqs_request"])
    assert cost["evaluator_lambda"] == pytest.approx(
        1e6 * 0.2 * (PRICES["lambda_request"] + 0.013 * lambda_seconds)
    )
    assert cost["evaluator_dynamodb"] == pytest.approx(1e6 * 0.3 * PRICES["dynamodb_rru"])
    assert cost["sns"] == pytest.approx(1e6 * 0.1 * PRICES["sns_publish"])
    assert cost["total"] == pytest.approx(sum(cost[part] for part in COST_PARTS))
    slower = replay | {"serial_evaluator": replay["serial_evaluator"] | {"seconds_per_evaluation": 0.1}}
    assert cost_per_million(0.0042, slower)["evaluator_lambda"] > cost["evaluator_lambda"]
