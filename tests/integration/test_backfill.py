"""Backfill from CloudTrail archives the tests write, on disk and in S3 (moto's server on loopback), and
from LookupEvents (botocore's Stubber), against DynamoDB Local."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from bench.workload import write_archive
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.backfill import Checkpoint, LocalArchive, backfill_archive, lookup_events, relevant_records
from grantwatch.cli import app
from grantwatch.local import free_port
from grantwatch.pipeline import local_pipeline
from grantwatch.settings import Settings
from tests.scenarios import create_grant, retire_grant

runner = CliRunner()


def recorded(settings: Settings) -> set[str]:
    return {g.grant_id for g in DynamoGrantStore(settings).grants()}


def test_a_hundred_thousand_events_record_exactly_the_grant_events_and_resume_after_a_crash(
    table_settings: Settings, tmp_path: Path
) -> None:
    archive = write_archive(tmp_path / "trail", events=100_000, relevant_share=0.005)
    assert len(archive.relevant_event_ids) == 500
    pipeline = local_pipeline(table_settings)
    outcomes: Counter[str] = Counter()
    seen: list[str] = []

    def feed(record: Any) -> None:
        if len(seen) == 260:
            raise KeyboardInterrupt  # the operator stops it, or the machine goes away
        seen.append(record["eventID"])
        outcomes[pipeline.feed(record)[1].outcome] += 1

    checkpoint = Checkpoint.load(tmp_path / "checkpoint.json", "trail")
    with pytest.raises(KeyboardInterrupt):
        backfill_archive(LocalArchive(tmp_path / "trail"), feed, checkpoint=checkpoint)
    stopped_at = checkpoint.last_key
    assert stopped_at is not None

    def resumed_feed(record: Any) -> None:
        seen.append(record["eventID"])
        outcomes[pipeline.feed(record)[1].outcome] += 1

    resumed = backfill_archive(
        LocalArchive(tmp_path / "trail"),
        resumed_feed,
        checkpoint=Checkpoint.load(tmp_path / "checkpoint.json", "trail"),
    )
    assert resumed.files_skipped == sum(
        1 for p in archive.files if p.relative_to(tmp_path / "trail").as_posix() <= stopped_at
    )
    assert resumed.files + resumed.files_skipped == len(archive.files)
    assert set(seen) == archive.relevant_event_ids  # every grant event, and nothing else
    # only the file being read at the crash was read twice, and its events were duplicates, not new records
    assert outcomes["recorded"] == 500
    assert outcomes["duplicate"] == len(seen) - 500 < 10
    assert recorded(table_settings) == archive.grant_ids
    assert all(g.status.value == "ended" for g in DynamoGrantStore(table_settings).grants())


def test_files_without_a_grant_event_are_counted_but_never_parsed() -> None:
    other = json.dumps(
        {"Records": [{"eventID": "a", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt"}]}
    )
    assert relevant_records(other.encode()) == (1, [])
    assert relevant_records(b'{"Records": [{"eventID": "x"}], "broken') == (
        1,
        [],
    )  # no marker: not even parsed
    with pytest.raises(json.JSONDecodeError):
        relevant_records(b'{"Records": [{"eventID": "x", "eventName": "CreateGrant"}], "broken')


def test_the_cli_backfills_a_window_of_one_region(table_settings: Settings, tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    write_archive(trail, events=2_000, relevant_share=0.02, start=datetime(2026, 11, 1, tzinfo=UTC))
    other_region = write_archive(trail, events=500, relevant_share=0.04, seed=9, region="us-west-2")
    args = [
        "backfill",
        str(trail),
        "--json",
        "--table",
        table_settings.table_name,
        "--endpoint-url",
        table_settings.endpoint_url or "",
        "--checkpoint",
        str(tmp_path / "cp.json"),
    ]
    result = runner.invoke(app, [*args, "--region", "eu-central-1", "--until", "2026-11-01"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["events_read"] == 2_000 and summary["events_matched"] == 40 and summary["recorded"] == 40
    assert not recorded(table_settings) & other_region.grant_ids

    again = runner.invoke(app, [*args, "--region", "eu-central-1", "--until", "2026-11-01"])
    assert json.loads(again.stdout.splitlines()[-1])["summary"]["files_skipped"] == 20
    other_selection = runner.invoke(app, [*args, "--region", "us-west-2"])
    assert other_selection.exit_code == 3 and "use another --checkpoint" in other_selection.stderr


def test_until_a_day_reads_the_next_days_folder_for_events_delivered_after_midnight(
    table_settings: Settings, tmp_path: Path
) -> None:
    late = retire_grant("g1", "2026-11-01T23:58:00Z")["detail"]
    folder = (
        tmp_path / "trail" / "AWSLogs" / "210987654321" / "CloudTrail" / "eu-central-1" / "2026" / "11" / "02"
    )
    folder.mkdir(parents=True)
    next_day = retire_grant("g2", "2026-11-02T00:03:00Z")["detail"]
    (folder / "delivered.json").write_text(json.dumps({"Records": [late, next_day]}))
    result = runner.invoke(
        app,
        [
            "backfill",
            str(tmp_path / "trail"),
            "--until",
            "2026-11-01",
            "--json",
            "--table",
            table_settings.table_name,
            "--endpoint-url",
            table_settings.endpoint_url or "",
            "--checkpoint",
            str(tmp_path / "cp.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["events_matched"] == 1


def test_a_folder_that_does_not_exist_and_a_checkpoint_of_another_source(tmp_path: Path) -> None:
    assert runner.invoke(app, ["backfill", str(tmp_path / "missing")]).exit_code == 4
    (tmp_path / "trail").mkdir()
    (tmp_path / "cp.json").write_text(json.dumps({"source": "s3://elsewhere/", "lastKey": "x"}))
    result = runner.invoke(
        app, ["backfill", str(tmp_path / "trail"), "--checkpoint", str(tmp_path / "cp.json")]
    )
    assert result.exit_code == 3 and "use another --checkpoint" in result.stderr


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    try:
        yield endpoint
    finally:
        server.stop()


def test_backfill_from_s3(table_settings: Settings, tmp_path: Path, s3_server: str) -> None:
    archive = write_archive(tmp_path / "trail", events=1_000, relevant_share=0.02)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_server)
    s3.create_bucket(Bucket="org-trail")
    for path in archive.files:
        s3.put_object(
            Bucket="org-trail", Key=path.relative_to(tmp_path / "trail").as_posix(), Body=path.read_bytes()
        )
    result = runner.invoke(
        app,
        [
            "backfill",
            "s3://org-trail/AWSLogs/",
            "--json",
            "--table",
            table_settings.table_name,
            "--endpoint-url",
            table_settings.endpoint_url or "",
            "--checkpoint",
            str(tmp_path / "cp.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert (summary["files"], summary["events_read"], summary["recorded"]) == (10, 1_000, 20)
    assert recorded(table_settings) == archive.grant_ids


def test_lookup_events_reads_each_event_name_at_two_requests_a_second() -> None:
    client = boto3.client("cloudtrail", region_name="eu-central-1")
    create = create_grant("billing", "g1", "2026-11-01T10:00:00Z")["detail"]
    retire = retire_grant("g1", "2026-11-02T10:00:00Z")["detail"]
    since = datetime(2026, 11, 1, tzinfo=UTC)
    pauses: list[float] = []
    with Stubber(client) as stub:
        for name in (
            "CreateGrant",
            "RetireGrant",
            "RevokeGrant",
            "CreateFunction20150331",
            "UpdateFunctionConfiguration20150331v2",
            "DeleteFunction20150331",
        ):
            page: dict[str, Any] = {"Events": []}
            if name == "CreateGrant":
                page = {"Events": [{"CloudTrailEvent": json.dumps(create)}], "NextToken": "more"}
            if name == "RetireGrant":
                page = {"Events": [{"CloudTrailEvent": json.dumps(retire)}]}
            expected = {
                "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
                "MaxResults": 50,
                "StartTime": since,
            }
            stub.add_response("lookup_events", page, expected)
            if name == "CreateGrant":
                stub.add_response("lookup_events", {"Events": []}, expected | {"NextToken": "more"})
        records = list(lookup_events(client, since=since, until=None, sleep=pauses.append))
        stub.assert_no_pending_responses()
    assert [r["eventName"] for r in records] == ["CreateGrant", "RetireGrant"]
    assert pauses == [0.5] * 6


def test_only_the_records_around_a_marker_are_parsed_and_odd_layouts_fall_back_to_the_whole_file() -> None:
    grant = create_grant("billing", "g1", "2026-11-01T10:00:00Z")["detail"]
    mention = {
        "eventVersion": "1.10",
        "eventID": "m",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutObject",
        "requestParameters": {"key": '"CreateGrant" in a file name'},
    }
    quiet = {
        "eventVersion": "1.10",
        "eventID": "q",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
    }
    for records in ([quiet, grant, mention, quiet], [quiet, grant | {"userAgent": "naïve-client"}]):
        data = json.dumps({"Records": records}, ensure_ascii=False).encode()
        events, kept = relevant_records(data)
        assert events == len(records)
        assert [r["eventID"] for r in kept] == [grant["eventID"]]
    no_version_first = {k: v for k, v in grant.items() if k != "eventVersion"} | {"eventVersion": "1.11"}
    assert relevant_records(json.dumps({"Records": [no_version_first]}).encode())[1] == [no_version_first]
