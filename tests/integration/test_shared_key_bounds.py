"""A key that thousands of functions share (10,000 at full size), disabled, on DynamoDB Local: every notice
about it and every incident it opens stays within what AWS accepts. Each alert used to name every function
on the key, in its text, its details, its event and its incident item: at 3,000 functions of ordinary name
length the SNS message was 267 KB (SNS takes 262,144 bytes) and from 5,109 the incident item passed
DynamoDB's 400 KB.

The key's dependency items (what the evaluator reads to find the functions on a key) are written 25 to a
request through the hazard store's own model; three functions are recorded and evaluated through the
pipeline, as in AWS. Limits checked as AWS documents them: an SNS Message of at most 262,144 bytes and a
Subject of at most 100 characters; a PutEvents entry of at most 256 KB counted as Source + DetailType +
Detail + each of Resources in UTF-8, plus 14 bytes for Time; an ASFF finding of at most 240 KB; an item's
attribute names and values at most 400 KB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from grantwatch.adapters.functions import DynamoFunctionStore, function_pk, incident_sk
from grantwatch.adapters.hazards import DynamoHazardStore, dependent_sk, key_pk
from grantwatch.adapters.notifier import publish_request
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli import app
from grantwatch.domain.alerts import MAX_NAMED_FUNCTIONS
from grantwatch.domain.channels import chat_notification, event_entry, finding
from grantwatch.domain.notices import Notice
from grantwatch.domain.records import EvaluationRequest
from grantwatch.evaluator import FAN_OUT_PAGE, Evaluator
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.dynamodb_size import item_size
from tests.support.reliability.scale import SCALE
from tests.support.samples import ACCOUNT, KEY_ARN, REGION
from tests.support.scenarios import (
    create_grant,
    disable_key,
    function_arn,
    put_key_policy,
    replay,
    update_function,
)

# 10,000 at full size (`make reliability`). At CI size, about the fewest functions whose list, as the old code
# stored it in each incident item, passes DynamoDB's 400 KB (409,600 bytes): a seeded function's ARN is 79
# bytes, 80 as a list element, and the rest of the old item came to about 900 bytes (894 to 909 for the three
# recorded functions), so 80 x N + 894 > 409,600 from N = 5,109. 5,120 keeps a margin of 11 functions, and is
# past the lower limits the old notices broke first (SNS's 262,144 bytes at about 2,900 functions). The test
# checks that the old item would not fit, so a smaller size fails it.
FUNCTIONS_ON_KEY = SCALE.functions_on_key
RECORDED = ["orders-api-prod-handler", "orders-api-prod-worker", "orders-api-prod-zz-reporter"]
SNS_MESSAGE_BYTES = 262_144
SNS_SUBJECT_CHARACTERS = 100
EVENT_ENTRY_BYTES = 256 * 1024
FINDING_BYTES = 240 * 1024
ITEM_BYTES = 400 * 1024
NOW = datetime(2026, 11, 10, 9, 5, tzinfo=UTC)

runner = CliRunner()


class Scheduled:
    def __init__(self) -> None:
        self.requests: list[EvaluationRequest] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


class Sent:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def publish(self, notice: Notice) -> None:
        self.notices.append(notice)


def seeded_name(n: int) -> str:
    """An ordinary function name: a service, a stage and a handler."""
    return f"orders-api-prod-handler-{n:05d}"


def entry_size(entry: dict[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge counts it against 256 KB."""
    counted = [entry["Source"], entry["DetailType"], entry["Detail"], *entry.get("Resources", [])]
    return 14 + sum(len(text.encode()) for text in counted)


def as_the_old_code_wrote_it(stored: Any, every: list[str]) -> Any:
    """An incident item as it was before the list was bounded: every function on the key, no count."""
    if not isinstance(stored, dict):
        return stored
    return {
        name: every if name == "functionsOnKey" else as_the_old_code_wrote_it(value, every)
        for name, value in stored.items()
        if name != "functionsOnKeyCount"
    }


def check_within_limits(notice: Notice) -> None:
    sns = publish_request(f"arn:aws:sns:{REGION}:{ACCOUNT}:grantwatch-alerts", notice)
    assert len(sns["Message"].encode()) <= SNS_MESSAGE_BYTES
    assert len(sns["Subject"]) < SNS_SUBJECT_CHARACTERS and sns["Subject"].isascii()
    chat = json.dumps(chat_notification(notice))
    assert len(chat.encode()) <= SNS_MESSAGE_BYTES
    assert len(chat_notification(notice)["metadata"]["relatedResources"]) <= 3
    entry = event_entry(notice, "ops")
    assert entry_size(entry) <= EVENT_ENTRY_BYTES
    assert len(entry["Resources"]) <= 2
    found = finding(notice, region=REGION, account=ACCOUNT)
    if found is not None:
        assert len(json.dumps(found).encode()) <= FINDING_BYTES
        assert len(found["Resources"]) <= 32


@pytest.mark.size
def test_thousands_of_functions_on_a_disabled_key_keep_every_notice_and_incident_within_limits(
    table_settings: Settings,
) -> None:
    pipeline = local_pipeline(table_settings)
    events = []
    for n, name in enumerate(RECORDED):
        events += [
            update_function(name, f"2026-11-01T10:0{n}:00Z"),
            create_grant(name, f"grant {name}", f"2026-11-01T10:0{n}:01Z"),
        ]
    assert replay(pipeline, events) == []  # evaluated: each is now a dependent of the key

    hazards = DynamoHazardStore(table_settings)
    seeded = [function_arn(seeded_name(n)) for n in range(FUNCTIONS_ON_KEY - len(RECORDED))]
    with hazards.dependencies.batch_write() as batch:
        for arn in seeded:
            batch.save(hazards.dependencies(key_pk(KEY_ARN), dependent_sk(arn), dependent=arn))
    assert len(hazards.dependents_of_key(KEY_ARN)) == FUNCTIONS_ON_KEY

    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    scheduled, sent = Scheduled(), Sent()
    recorder = Recorder(grants, functions, hazards, scheduled)
    evaluator = Evaluator(grants, functions, hazards, sent, scheduled)
    disabled = disable_key("2026-11-10T09:00:00Z")
    assert recorder.record(disabled).outcome is Outcome.RECORDED
    [about_key] = scheduled.requests
    pending, asked = [about_key], []
    while pending:  # a page of functions a request, the last of each asking for the next page
        before = len(scheduled.requests)
        assert evaluator.run(pending.pop(), NOW) == []
        page = scheduled.requests[before:]
        assert len(page) <= FAN_OUT_PAGE + 1
        asked += [r.function_arn for r in page if r.function_arn is not None]
        pending += [r for r in page if r.function_arn is None]
    assert sorted(asked) == sorted(hazards.dependents_of_key(KEY_ARN))  # each function asked for once
    for name in RECORDED:
        evaluator.evaluate(function_arn(name), NOW)

    alerts = sent.notices
    assert [n.attributes["alertType"] for n in alerts] == ["key-disabled"] * len(RECORDED)
    every = sorted([*seeded, *(function_arn(name) for name in RECORDED)])
    for alert in alerts:
        check_within_limits(alert)
        assert alert.details["functionsOnKey"] == every[:MAX_NAMED_FUNCTIONS]
        assert alert.details["functionsOnKeyCount"] == FUNCTIONS_ON_KEY
        more = FUNCTIONS_ON_KEY - MAX_NAMED_FUNCTIONS
        assert f"… and {more} more: grantwatch functions --key {KEY_ARN}" in alert.message

    table = boto3.resource(
        "dynamodb", endpoint_url=table_settings.endpoint_url, region_name=table_settings.region
    ).Table(table_settings.table_name)
    for alert in alerts:
        key = {"pk": function_pk(alert.details["functionArn"]), "sk": incident_sk(alert.incident_id)}
        item = table.get_item(Key=key, ConsistentRead=True)["Item"]
        assert item_size(item) <= ITEM_BYTES
        # the size reaches the limit: the item as the old code wrote it, naming every function, would not fit
        assert item_size(as_the_old_code_wrote_it(item, every)) > ITEM_BYTES
        assert item_size(item) < 16 * 1024  # bounded: it does not grow with the functions on the key
        stored = functions.incident(alert.details["functionArn"], alert.incident_id)
        assert stored is not None
        assert stored.incident.functions_on_key_count == FUNCTIONS_ON_KEY
        assert len(stored.incident.functions_on_key) == MAX_NAMED_FUNCTIONS

    policy = put_key_policy("2026-11-10T09:30:00Z")
    assert recorder.record(policy).outcome is Outcome.RECORDED
    sent.notices.clear()
    evaluator.run(scheduled.requests[-1], NOW)
    [notice] = sent.notices
    assert notice.attributes["alertType"] == "key-policy-changed"
    check_within_limits(notice)
    assert notice.details["functionCount"] == FUNCTIONS_ON_KEY
    assert notice.details["functions"] == every[:MAX_NAMED_FUNCTIONS]
    assert notice.subject.endswith(f"({FUNCTIONS_ON_KEY} functions)")
    assert f"{FUNCTIONS_ON_KEY} Lambda function(s)" in chat_notification(notice)["content"]["description"]


def test_functions_with_key_lists_every_function_on_the_key(table_settings: Settings) -> None:
    """What an alert about a shared key points to: all of its functions, from the store."""
    pipeline = local_pipeline(table_settings)
    names = [f"svc-{n:02d}" for n in range(MAX_NAMED_FUNCTIONS + 5)]
    other_key = KEY_ARN.rsplit("/", 1)[0] + "/00000000-1111-4222-8333-444444444444"
    events = []
    for n, name in enumerate(names):
        events += [
            update_function(name, f"2026-11-01T10:{n:02d}:00Z"),
            create_grant(name, f"grant {name}", f"2026-11-01T10:{n:02d}:01Z"),
        ]
    events += [
        update_function("elsewhere", "2026-11-01T11:00:00Z", key=other_key),
        create_grant("elsewhere", "grant elsewhere", "2026-11-01T11:00:01Z", key=other_key),
    ]
    replay(pipeline, events)
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    result = runner.invoke(app, ["functions", "--key", KEY_ARN, "--json", *where])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["functionArn"] for row in rows] == sorted(function_arn(name) for name in names)
    assert {row["keyArn"] for row in rows} == {KEY_ARN}
    people = runner.invoke(app, ["functions", "--key", other_key, *where])
    assert people.exit_code == 0 and "1 function(s)" in people.stdout and "elsewhere" in people.stdout
