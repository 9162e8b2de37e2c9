"""A stalled table: DynamoDB Local frozen (SIGSTOP) in the middle of a `grantwatch replay`, then thawed.

A stall longer than the client's read timeout and retries ends the command with exit code 3 and one line,
never a traceback; a shorter one is ridden out. Either way, running the same command again leaves the table
exactly as an uninterrupted replay does.

The tests share one DynamoDB Local of their own (each freezes it and thaws it before it ends, on tables of
its own) and one uninterrupted replay to compare with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.workload import mixed_events
from grantwatch import local as local_dynamo
from grantwatch.cli import EXIT_UNAVAILABLE
from grantwatch.settings import Settings
from tests.support.reliability.harness import canonical_table, new_table
from tests.support.samples import ROOT

EVENTS = 160
STALL_SECONDS = 6.0


@pytest.fixture(scope="module")
def frozen_later(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_dynamo.LocalDynamo]:
    """A DynamoDB Local of this module's own, so that freezing it stops no other test."""
    state = tmp_path_factory.mktemp("stalled") / "dynamodb-local"
    running = local_dynamo.start(ROOT, state, port=local_dynamo.free_port(), in_memory=True)
    try:
        yield running
    finally:
        os.kill(running.pid, signal.SIGCONT)
        local_dynamo.stop(state)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stall-events") / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in mixed_events(EVENTS, seed=23)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def uninterrupted(frozen_later: local_dynamo.LocalDynamo, events: Path) -> dict[str, Any]:
    """The table a replay of the events that no stall interrupted leaves."""
    clean = new_table(frozen_later.endpoint_url)
    _completes(clean, events)
    return canonical_table(clean)


def _replay(settings: Settings, events: Path, *, timeout: str, retries: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",  # each line as it is written: the stall comes while events remain
        "GRANTWATCH_DYNAMODB_READ_TIMEOUT_SECONDS": timeout,
        "GRANTWATCH_DYNAMODB_RETRIES": retries,
    }
    command = [sys.executable, "-m", "grantwatch", "replay", str(events), "--settle-seconds", "0", "--json"]
    command += ["--table", settings.table_name, "--endpoint-url", settings.endpoint_url or ""]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stall_mid_replay(
    running: local_dynamo.LocalDynamo, replay: subprocess.Popen[str]
) -> tuple[int, str, str]:
    """Freeze DynamoDB Local once the replay has recorded some events, thaw it STALL_SECONDS later."""
    assert replay.stdout is not None
    seen: list[str] = []
    while sum('"outcome": "recorded"' in line for line in seen) < 10:
        seen.append(replay.stdout.readline())
        assert seen[-1], "the replay ended before the stall"
    os.kill(running.pid, signal.SIGSTOP)
    time.sleep(STALL_SECONDS)
    os.kill(running.pid, signal.SIGCONT)
    stdout, stderr = replay.communicate(timeout=300)
    return replay.returncode, "".join(seen) + stdout, stderr


def _summary(stdout: str) -> dict[str, int]:
    summary: dict[str, int] = json.loads(stdout.splitlines()[-1])["summary"]
    return summary


def _completes(settings: Settings, events: Path) -> None:
    replay = _replay(settings, events, timeout="10", retries="5")
    stdout, stderr = replay.communicate(timeout=300)
    assert replay.returncode == 0, stderr
    assert _summary(stdout)["events"] == EVENTS


def test_a_stall_longer_than_the_retries_exits_3_with_one_line_and_loses_nothing(
    frozen_later: local_dynamo.LocalDynamo, events: Path, uninterrupted: dict[str, Any]
) -> None:
    stalled = new_table(frozen_later.endpoint_url)

    # 1 s to answer and one retry: given up after about 2 s, long before the 6 s stall ends.
    code, _, stderr = _stall_mid_replay(frozen_later, _replay(stalled, events, timeout="1", retries="1"))

    assert code == EXIT_UNAVAILABLE, stderr
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith(f"error: cannot use table {stalled.table_name!r}")
    assert "timeout" in line.lower()

    _completes(stalled, events)  # the same command again
    assert canonical_table(stalled) == uninterrupted


def test_a_stall_shorter_than_the_retries_is_ridden_out(
    frozen_later: local_dynamo.LocalDynamo, events: Path, uninterrupted: dict[str, Any]
) -> None:
    stalled = new_table(frozen_later.endpoint_url)

    # 2 s to answer and eight retries with backoff: more than the 6 s stall.
    code, stdout, stderr = _stall_mid_replay(frozen_later, _replay(stalled, events, timeout="2", retries="8"))

    assert code == 0, stderr
    assert _summary(stdout)["events"] == EVENTS
    assert canonical_table(stalled) == uninterrupted
