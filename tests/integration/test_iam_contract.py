"""The IAM contract sees the calls it must see: pynamodb's and boto3's, attributed to the function whose
corridor made them, however that corridor was driven (here the replay pipeline, as the CLI drives it)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.settings import Settings
from grantwatch.sources import read_events
from grantwatch.wiring import local_pipeline
from tests.support.iam_contract import SESSION, Checker
from tests.support.iam_contract_subprocess import collected, enable
from tests.support.samples import EVENTS, ROOT
from tests.support.tables import _client, _request


@contextmanager
def recorded() -> Iterator[Checker]:
    yield from SESSION.scope()


def test_the_replay_of_every_sample_makes_only_calls_its_functions_may_make(table_settings: Settings) -> None:
    pipeline = local_pipeline(table_settings)
    with recorded() as checker:
        for item in read_events([EVENTS]):
            if item.event is not None:
                pipeline.feed(item.event)
        pipeline.drain()
        # A CLI query, outside every corridor: no Lambda function's call, not checked.
        listed = list(DynamoFunctionStore(table_settings).all_functions())

    assert listed
    assert sorted(checker.violations) == []
    seen = set(checker.calls)
    # pynamodb's own client is seen, attributed through the corridor the pipeline drove.
    assert ("RecorderFunction", "dynamodb:UpdateItem") in seen
    assert ("EvaluatorFunction", "dynamodb:Query") in seen
    assert ("EvaluatorFunction", "dynamodb:TransactWriteItems") in seen
    assert not any(function not in {"RecorderFunction", "EvaluatorFunction"} for function, _ in seen)


def _replay_in_a_subprocess(settings: Settings, table: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    enable(folder, ROOT, env)
    command = [sys.executable, "-m", "grantwatch", "replay", str(EVENTS), "--settle-seconds", "0", "--json"]
    command += ["--table", table, "--endpoint-url", settings.endpoint_url or ""]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_corridors_a_cli_subprocess_drives_are_checked_and_count_for_the_run(
    table_settings: Settings, tmp_path: Path
) -> None:
    """A CLI run in a subprocess used to go unchecked: its recorder and evaluator calls are the functions'
    and are checked in it; a call the template does not allow (here to a table that stands for none of the
    template's) is a violation the run sees."""
    replayed = _replay_in_a_subprocess(table_settings, table_settings.table_name, tmp_path / "registered")
    assert replayed.returncode == 0, replayed.stderr
    [exported] = list(collected(tmp_path / "registered"))
    assert exported["violations"] == []
    seen = {(function, call) for function, call, _ in exported["calls"]}
    assert ("RecorderFunction", "dynamodb:UpdateItem") in seen
    assert ("EvaluatorFunction", "dynamodb:Query") in seen

    unregistered = f"grantwatch-unregistered-{uuid.uuid4().hex[:12]}"
    _client(table_settings.endpoint_url or "").create_table(**(_request() | {"TableName": unregistered}))
    _replay_in_a_subprocess(table_settings, unregistered, tmp_path / "unregistered")
    violations = [line for e in collected(tmp_path / "unregistered") for line in e["violations"]]
    assert (
        f"RecorderFunction: dynamodb UpdateItem: dynamodb resource {unregistered} stands for no"
        in "\n".join(violations)
    )
