"""Replay reads every documented input form and reports unreadable parts without stopping."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from grantwatch.sources import read_events
from tests.support.samples import load_event


def test_an_eventbridge_event_file_a_bare_record_and_a_list(tmp_path: Path) -> None:
    event = load_event("kms-create-grant-lambda.json")
    (tmp_path / "a.json").write_text(json.dumps(event))
    (tmp_path / "b.json").write_text(json.dumps(event["detail"]))
    (tmp_path / "c.json").write_text(json.dumps([event, event["detail"]]))
    (tmp_path / "notes.txt").write_text("not an event file")
    items = list(read_events([tmp_path]))
    assert [i.event for i in items] == [event, event["detail"], event, event["detail"]]
    assert all(i.error is None for i in items)


def test_a_gzipped_cloudtrail_log_file(tmp_path: Path) -> None:
    records = [
        load_event("kms-create-grant-lambda.json")["detail"],
        load_event("kms-retire-grant-by-admin.json")["detail"],
    ]
    path = tmp_path / "111122223333_CloudTrail_eu-central-1_20261120T1645Z_abc.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    items = list(read_events([path]))
    assert [i.event for i in items] == records
    assert items[1].origin.endswith("#Records[1]")


def test_json_lines_with_a_broken_line_keeps_the_others(tmp_path: Path) -> None:
    event = load_event("kms-create-grant-lambda.json")
    path = tmp_path / "events.jsonl"
    path.write_text(f"{json.dumps(event)}\n{{not json\n\n{json.dumps({'Records': [event['detail']]})}\n")
    items = list(read_events([path]))
    assert [i.error is None for i in items] == [True, False, True]
    assert items[1].error is not None and f"{path}:2" in items[1].error
    assert items[2].event == event["detail"]


def test_a_corrupt_gzip_file_is_an_error_item(tmp_path: Path) -> None:
    path = tmp_path / "broken.json.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00broken")
    [item] = list(read_events([path]))
    assert item.event is None and item.error is not None and "cannot read" in item.error


def test_a_missing_path_is_an_error() -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        list(read_events([Path("/nonexistent/grantwatch-events")]))
