"""Backfill from CloudTrail archives the tests write, on disk and in S3 (moto's server on loopback), and
from LookupEvents (botocore's Stubber), against DynamoDB Local."""

from __future__ import annotations

import gc
import gzip
import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from bench.workload import write_archive
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.backfill import Checkpoint, LocalArchive, backfill_archive, lookup_events, relevant_records
from grantwatch.cli import app
from grantwatch.cli.output import report_notice
from grantwatch.domain.notices import Notice
from grantwatch.parallel import ParallelPipeline, Recorded
from grantwatch.settings import Settings
from grantwatch.wiring import dynamo_stores, local_pipeline
from tests.support.moto_server import moto_server
from tests.support.reliability.scale import SCALE
from tests.support.samples import ACCOUNT
from tests.support.scenarios import (
    AWS_LAMBDA_KEY_ARN,
    create_grant,
    create_role,
    decrypt_failed_by_session,
    delete_role,
    disable_key,
    grant_id,
    retire_grant,
    update_function,
)

runner = CliRunner()


def recorded(settings: Settings) -> set[str]:
    return {g.grant_id for g in DynamoGrantStore(settings).grants()}


# 100,000 archived events at full size (`make reliability`), 20,000 at CI size: one grant event in 200, in
# files of 100 events, so the file read at the crash holds at most a few of them whatever the size.
ARCHIVED = SCALE.backfill_events
GRANT_EVENTS = ARCHIVED // 200
CRASH_AFTER = GRANT_EVENTS * 52 // 100  # grant events fed before the crash: about half of them


@pytest.mark.size
def test_a_large_archive_records_exactly_the_grant_events_and_resumes_after_a_crash(
    table_settings: Settings, tmp_path: Path
) -> None:
    archive = write_archive(tmp_path / "trail", events=ARCHIVED, relevant_share=0.005)
    assert len(archive.relevant_event_ids) == GRANT_EVENTS
    pipeline = local_pipeline(table_settings)
    outcomes: Counter[str] = Counter()
    seen: list[str] = []

    def feed(record: Any) -> None:
        if len(seen) == CRASH_AFTER:
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
    assert outcomes["recorded"] == GRANT_EVENTS
    assert outcomes["duplicate"] == len(seen) - GRANT_EVENTS < 10
    assert recorded(table_settings) == archive.grant_ids
    assert all(g.status.value == "ended" for g in DynamoGrantStore(table_settings).grants())


def live_notices() -> int:
    gc.collect()
    return sum(isinstance(o, Notice) for o in gc.get_objects())


def test_a_parallel_backfill_keeps_no_notice_once_it_has_handed_it_over(
    table_settings: Settings, tmp_path: Path
) -> None:
    """What a backfill holds may not grow with the archive: each alert is the caller's to keep or drop,
    so once handed over none stays behind, whether the archive raised ten alerts or a million."""
    archive = write_archive(tmp_path / "trail", events=4_000, relevant_share=0.02)
    before = live_notices()
    handed: Counter[str] = Counter()
    with ParallelPipeline[None](dynamo_stores(table_settings), workers=4) as pipeline:

        def count(steps: list[Any]) -> None:
            handed.update("recorded" if isinstance(s, Recorded) else "notice" for s in steps)

        progress = backfill_archive(
            LocalArchive(tmp_path / "trail"),
            lambda record: count(pipeline.feed(record, None)),
            before_checkpoint=lambda: count(pipeline.flush()),
        )
        count(pipeline.drain())
        assert progress.events_matched == handed["recorded"] == len(archive.relevant_event_ids)
        assert handed["notice"] >= 10  # the retired Lambda grants' alerts
        assert live_notices() == before  # the pipeline, still open, kept none of them


def test_the_cli_prints_and_writes_a_backfills_notices_once_it_is_done(
    table_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI keeps the notices aside (on disk, not in memory) until the progress line is gone: then each
    prints, and --alerts-out holds the same, one JSON line each, as a subscriber receives them."""
    write_archive(tmp_path / "trail", events=4_000, relevant_share=0.02)
    alive_when_printed: list[int] = []

    def reporting(notice: Notice, as_json: bool) -> None:
        alive_when_printed.append(live_notices())
        report_notice(notice, as_json)

    monkeypatch.setattr("grantwatch.cli.ingest.report_notice", reporting)
    before = live_notices()
    result = runner.invoke(
        app,
        [
            "backfill",
            str(tmp_path / "trail"),
            "--json",
            "--alerts-out",
            str(tmp_path / "alerts.jsonl"),
            "--table",
            table_settings.table_name,
            "--endpoint-url",
            table_settings.endpoint_url or "",
            "--checkpoint",
            str(tmp_path / "cp.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    alerts = [line["alert"] for line in printed if "alert" in line]
    written = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert written == alerts and len(alerts) >= 10
    assert {a["kind"] for a in alerts} == {"alert"} and all(a["subject"] and a["message"] for a in alerts)
    assert printed[-1]["summary"]["alerts"] == len(alerts)
    assert printed.index({"summary": printed[-1]["summary"]}) == len(alerts)  # the notices, then the summary
    assert max(alive_when_printed) - before <= 2  # the one printed, not all of them at once


def test_an_archives_keys_come_in_sorted_order_one_folder_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys of a folder archive are found as they are read, never all listed first (a year of a
    busy trail is hundreds of thousands of files), in the order a checkpoint compares them: `sorted`'s,
    where "a-b/..." and "a.json" come before "a/...", since "-" and "." sort before "/"."""
    names = [
        "AWSLogs/1/CloudTrail/eu-central-1/2026/11/01/x_0000.json.gz",
        "AWSLogs/1/CloudTrail/eu-central-1/2026/11/01/x_0005.json.gz",
        "AWSLogs/1/CloudTrail/eu-central-1/2026/11/02/x_0000.json",
        "AWSLogs/1/CloudTrail/eu-central-1-b/2026/11/01/x.json",
        "AWSLogs/1/CloudTrail/eu-central-1.json",
        "AWSLogs/1/CloudTrail/us-east-1/2026/11/01/x.json.gz",
        "AWSLogs/1/CloudTrail/us-east-1/2026/11/01/notes.txt",
        "a-b/c.json",
        "a.json",
        "a/b.json",
        "top.json",
    ]
    for day in range(3, 31):  # more day folders, each listed only once the backfill gets to it
        names.append(f"AWSLogs/1/CloudTrail/eu-central-1/2026/11/{day:02d}/x.json.gz")
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    (tmp_path / "AWSLogs" / "1" / "linked").symlink_to(tmp_path / "a", target_is_directory=True)
    wanted = sorted(n for n in names if n.endswith((".json", ".json.gz")))
    listed: list[str] = []
    scandir = os.scandir

    def listing(path: Any) -> Any:
        listed.append(str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", listing)
    keys = LocalArchive(tmp_path).file_keys()
    assert next(keys) == wanted[0]
    folders = {folder for name in names for folder in Path(name).parents}
    assert len(listed) <= 8 < len(folders)  # the folders on the way to the first file only
    assert [wanted[0], *keys] == wanted  # and not into the link to a folder
    assert sorted(listed) == sorted(str(tmp_path / folder) for folder in folders)  # each once


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
    with moto_server(monkeypatch, "S3") as endpoint:
        yield endpoint


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


def _expect_lookups(stub: Stubber, pages: dict[str, list[dict[str, Any]]], since: datetime) -> None:
    for name, records in pages.items():
        expected = {
            "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
            "MaxResults": 50,
            "StartTime": since,
        }
        events = [{"CloudTrailEvent": json.dumps(r)} for r in records]
        if name == "CreateGrant":  # a second page
            stub.add_response("lookup_events", {"Events": events, "NextToken": "more"}, expected)
            stub.add_response("lookup_events", {"Events": []}, expected | {"NextToken": "more"})
        else:
            stub.add_response("lookup_events", {"Events": events}, expected)


def test_lookup_events_reads_every_name_of_the_catalogue_and_iams_in_us_east_1() -> None:
    """LookupEvents answers for one region; IAM's calls are recorded in us-east-1 only."""
    regional = boto3.client("cloudtrail", region_name="eu-central-1")
    global_ = boto3.client("cloudtrail", region_name="us-east-1")
    since = datetime(2026, 11, 1, tzinfo=UTC)
    create = create_grant("orders", "g1", "2026-11-01T10:00:00Z")["detail"]
    retire = retire_grant("g1", "2026-11-02T10:00:00Z")["detail"]
    disabled = disable_key("2026-11-03T10:00:00Z")["detail"]
    deleted, created = (
        delete_role("orders-role", "2026-11-04T10:00:00Z")["detail"],
        create_role("orders-role", "2026-11-04T10:00:20Z")["detail"],
    )
    failure = decrypt_failed_by_session("orders", "2026-11-05T10:00:00Z")["detail"]
    succeeded = {k: v for k, v in failure.items() if k not in ("errorCode", "errorMessage")}
    succeeded["eventID"] = "0b1c2d3e-0000-4000-8000-00000000000d"
    pauses: list[float] = []
    with Stubber(regional) as here, Stubber(global_) as iam:
        _expect_lookups(
            here,
            {
                "CreateGrant": [create],
                "RetireGrant": [retire],
                "RevokeGrant": [],
                "DisableKey": [disabled],
                "EnableKey": [],
                "ScheduleKeyDeletion": [],
                "CancelKeyDeletion": [],
                "PutKeyPolicy": [],
            },
            since,
        )
        _expect_lookups(iam, {"CreateRole": [created], "DeleteRole": [deleted]}, since)
        _expect_lookups(
            here,
            {
                "CreateFunction20150331": [],
                "UpdateFunctionConfiguration20150331v2": [],
                "DeleteFunction20150331": [],
                "Decrypt": [succeeded, failure],
            },
            since,
        )
        records = list(
            lookup_events(
                regional,
                global_client=global_,
                since=since,
                until=None,
                sleep=pauses.append,
                decrypt_failures=True,
            )
        )
        here.assert_no_pending_responses()
        iam.assert_no_pending_responses()
    assert [r["eventName"] for r in records] == [
        "CreateGrant",
        "RetireGrant",
        "DisableKey",
        "CreateRole",
        "DeleteRole",
        "Decrypt",  # the failed one only
    ]
    assert records[-1]["eventID"] == failure["eventID"]
    assert pauses == [0.5] * 14  # 15 requests, at most two a second


def _trail_file(root: Path, region: str, at: str, records: list[dict[str, Any]]) -> None:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    folder = root / "AWSLogs" / ACCOUNT / "CloudTrail" / region / moment.strftime("%Y/%m/%d")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{ACCOUNT}_CloudTrail_{region}_{moment.strftime('%Y%m%dT%H%MZ')}_x.json.gz"
    # as CloudTrail writes them: compact JSON, every record starting with eventVersion
    body = json.dumps({"Records": records}, separators=(",", ":")).encode()
    (folder / name).write_bytes(gzip.compress(body))


def _noise(at: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.10",
        "eventTime": at,
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": "us-east-1",
        "eventID": f"noise-{at}",
        "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/w"},
    }


def _in(region: str, record: dict[str, Any]) -> dict[str, Any]:
    return record | {"awsRegion": region}


def test_a_backfilled_history_shows_the_role_re_creation_in_us_east_1s_files_that_broke_a_function(
    table_settings: Settings, tmp_path: Path
) -> None:
    """The function and its grant in eu-central-1's files; its role deleted and re-created in us-east-1's
    (IAM is global); a key disabled, and the failed Decrypt that confirms the loss (when asked for)."""
    trail = tmp_path / "trail"
    _trail_file(
        trail,
        "eu-central-1",
        "2026-11-01T10:05:00Z",
        [
            update_function("orders", "2026-11-01T09:59:00Z", key=None)["detail"],
            create_grant("orders", "o1", "2026-11-01T10:00:00Z", key=AWS_LAMBDA_KEY_ARN)["detail"],
            create_grant("billing", "b1", "2026-11-01T10:01:00Z")["detail"],
            _noise("2026-11-01T10:02:00Z") | {"awsRegion": "eu-central-1"},
        ],
    )
    _trail_file(
        trail,
        "us-east-1",
        "2026-11-10T09:05:00Z",
        [
            _noise("2026-11-10T08:59:00Z"),
            delete_role("orders-role", "2026-11-10T09:00:00Z")["detail"],
            create_role("orders-role", "2026-11-10T09:00:20Z")["detail"],
            # a grant of us-east-1 itself: not the region watched
            _in("us-east-1", create_grant("elsewhere", "e1", "2026-11-10T09:01:00Z")["detail"]),
        ],
    )
    _trail_file(
        trail,
        "eu-central-1",
        "2026-11-10T13:05:00Z",
        [
            disable_key("2026-11-10T12:00:00Z")["detail"],
            decrypt_failed_by_session("orders", "2026-11-10T13:00:20Z")["detail"],
        ],
    )
    _trail_file(
        trail,
        "eu-west-1",
        "2026-11-10T09:05:00Z",
        [_in("eu-west-1", create_grant("x", "x1", "2026-11-10T09:00:00Z")["detail"])],
    )
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    args = ["backfill", str(trail), "--region", "eu-central-1", "--decrypt-failures", "--json"]
    result = runner.invoke(app, [*args, "--checkpoint", str(tmp_path / "cp.json"), *where])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    alerts = sorted(
        (a["alert"]["attributes"]["alertType"], a["alert"]["details"]["functionName"])
        for a in lines
        if "alert" in a
    )
    assert alerts == [("key-disabled", "billing"), ("role-recreated", "orders")]
    summary = lines[-1]["summary"]
    assert (summary["events_matched"], summary["recorded"], summary["rejected"]) == (7, 7, 0)
    assert recorded(table_settings) == {grant_id("o1"), grant_id("b1")}

    shown = runner.invoke(app, ["incidents", "--json", *where])
    [incident] = [i for i in json.loads(shown.stdout) if i["alertType"] == "role-recreated"]
    assert incident["confirmed"] and incident["firstFailureAt"] == "2026-11-10T13:00:20Z"
    assert incident["evidence"]["eventName"] == "CreateRole"


def test_failed_decrypts_are_taken_only_when_asked_for_and_only_those_that_lost_access() -> None:
    failure = decrypt_failed_by_session("orders", "2026-11-10T13:00:20Z")["detail"]
    throttled = failure | {"errorCode": "ThrottlingException", "eventID": "t"}
    succeeded = {k: v for k, v in failure.items() if k not in ("errorCode", "errorMessage")} | {
        "eventID": "s"
    }
    data = json.dumps({"Records": [succeeded, throttled, failure]}, separators=(",", ":")).encode()
    assert relevant_records(data) == (3, [])
    assert relevant_records(data, decrypt_failures=True) == (3, [failure])


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
