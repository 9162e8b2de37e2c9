"""CloudTrail Insights records, wherever they arrive, are ignored with a reason and never rejected: from
EventBridge (as an Insights event, or inside an API-call envelope), through the recorder's Lambda handler,
and in a trail's bucket, where they sit under CloudTrail-Insight/ beside the calls under CloudTrail/ (a
replay of a copy of the bucket, a backfill of the bucket itself: moto's S3 on loopback, DynamoDB Local)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import app
from grantwatch.domain.catalogue import CLOUDTRAIL_DETAIL_TYPE
from grantwatch.handlers import recorder as handler
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings
from tests.support.insights import insights_records, on_event_bridge
from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_server import moto_server
from tests.support.samples import ACCOUNT, REGION
from tests.support.scenarios import create_grant, grant_id

runner = CliRunner()
GRANTS = ["i1", "i2", "i3"]
CALLS = (
    f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2026/11/10/"
    f"{ACCOUNT}_CloudTrail_{REGION}_20261110T0905Z_a1.json.gz"
)
INSIGHTS = [
    f"AWSLogs/{ACCOUNT}/CloudTrail-Insight/{REGION}/2026/11/10/"
    f"{ACCOUNT}_CloudTrail-Insight_{REGION}_20261110T09{minute}Z_b{n}.json.gz"
    for n, minute in enumerate(("15", "35"))
]


def arrivals() -> list[tuple[str, dict[str, Any]]]:
    """Each Insights record bare (as in a log file), as EventBridge's Insights event, and inside an API-call
    envelope (no rule delivers one so, but nothing in the record may make it a rejection)."""
    found = []
    for record in insights_records():
        state = f"{record['insightDetails']['insightType']} {record['insightDetails']['state']}"
        found += [
            (f"{state} record", record),
            (f"{state} Insights event", on_event_bridge(record)),
            (f"{state} in an API call envelope", on_event_bridge(record, CLOUDTRAIL_DETAIL_TYPE)),
        ]
    return found


@pytest.mark.parametrize(("name", "event"), arrivals(), ids=[name for name, _ in arrivals()])
def test_an_insights_record_is_ignored_with_a_reason(name: str, event: dict[str, Any]) -> None:
    result = Recorder(None, None, None, None).record(event)  # type: ignore[arg-type]
    assert result.outcome is Outcome.IGNORED, result
    assert result.reason and ("Insight" in result.reason), result.reason
    assert result.error is None


class Sink:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, event: object, *, event_id: str | None, error: str) -> None:
        self.sent.append(event)


def test_the_recorder_function_counts_an_insights_event_as_ignored_and_dead_letters_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = Sink()
    monkeypatch.setattr(handler, "recorder", lambda: Recorder(None, None, None, None))  # type: ignore[arg-type]
    monkeypatch.setattr(handler, "rejected_sink", lambda: sink)
    outcomes = [
        handler.lambda_handler(event, FakeLambdaContext("grantwatch-recorder"))["outcome"]
        for _, event in arrivals()
    ]
    assert outcomes == ["ignored"] * len(arrivals())
    assert sink.sent == []


def _log_file(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(json.dumps({"Records": records}, separators=(",", ":")).encode())


def bucket_files() -> dict[str, bytes]:
    """A trail's bucket: one file of calls (three grants), two of Insights records."""
    calls = [create_grant(f"fn-{g}", g, f"2026-11-10T09:0{n}:00Z")["detail"] for n, g in enumerate(GRANTS)]
    insights = insights_records()
    return {
        CALLS: _log_file(calls),
        INSIGHTS[0]: _log_file(insights[:2]),
        INSIGHTS[1]: _log_file(insights[2:]),
    }


def _table(settings: Settings) -> list[str]:
    return ["--table", settings.table_name, "--endpoint-url", settings.endpoint_url or ""]


def test_a_replay_of_a_copy_of_the_bucket_ignores_the_insights_records(
    table_settings: Settings, tmp_path: Path
) -> None:
    for key, body in bucket_files().items():
        path = tmp_path / "bucket" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    result = runner.invoke(app, ["replay", str(tmp_path / "bucket"), "--json", *_table(table_settings)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert (summary["recorded"], summary["ignored"], summary["rejected"]) == (3, len(insights_records()), 0)
    ignored = [line for line in lines if line.get("outcome") == "ignored"]
    assert ignored and all("CloudTrail Insights record" in line["reason"] for line in ignored)


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server(monkeypatch, "S3") as endpoint:
        yield endpoint


def test_a_backfill_of_a_bucket_with_insights_files_records_the_calls_and_skips_the_insights(
    table_settings: Settings, tmp_path: Path, s3_server: str
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_server)
    s3.create_bucket(Bucket="org-trail")
    for key, body in bucket_files().items():
        s3.put_object(Bucket="org-trail", Key=key, Body=body)
    args = ["backfill", "s3://org-trail/AWSLogs/", "--json", "--checkpoint", str(tmp_path / "cp.json")]
    for extra in ([], ["--decrypt-failures", "--region", REGION, "--since", "2026-11-10"]):
        result = runner.invoke(app, [*args, *extra, *_table(table_settings)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.splitlines()[-1])["summary"]
        assert summary["rejected"] == 0
        assert summary["insights_files"] == len(INSIGHTS)
        assert summary["files"] == 1 and summary["events_read"] == len(GRANTS)
        (tmp_path / "cp.json").unlink()
    grants = {g.grant_id for g in DynamoGrantStore(table_settings).grants()}
    assert grants == {grant_id(g) for g in GRANTS}
