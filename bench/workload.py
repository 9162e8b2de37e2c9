"""Generated CloudTrail events for the benchmarks and the tests, built from the record shapes in events/:
grant event streams, and whole CloudTrail archives in the layout a trail writes to S3
(AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz)."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, overload

EVENTS = Path(__file__).resolve().parents[1] / "events"
ACCOUNT = "210987654321"
REGION = "eu-central-1"
START = datetime(2026, 11, 1, tzinfo=UTC)

EVENT_TYPES = (
    "create-lambda",
    "create-ebs",
    "retire-known",
    "revoke-known",
    "retire-unseen",
    "duplicate-create",
    "duplicate-retire",
    "lambda-configuration",
    "failed-call",
)


@cache
def _sample(name: str) -> str:
    return (EVENTS / name).read_text(encoding="utf-8")


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(_sample(name))
    return event


def _id(label: str) -> str:
    return str(uuid.UUID(hashlib.md5(label.encode()).hexdigest()))  # noqa: S324 - an id, not a secret


def _grant(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _when(at: int | datetime) -> str:
    moment = at if isinstance(at, datetime) else START + timedelta(seconds=at)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def create(
    label: str, at: int | datetime, *, lambda_grant: bool, function: str | None = None
) -> dict[str, Any]:
    """The creation of grant `label`: for function `fn-<function>` (by default `fn-<label>`), or for an EBS
    volume."""
    event = _event("kms-create-grant-lambda.json" if lambda_grant else "kms-create-grant-ebs-volume.json")
    detail = event["detail"]
    detail |= {"eventID": _id(f"create {label}"), "eventTime": _when(at)}
    detail["responseElements"]["grantId"] = _grant(label)
    if lambda_grant:
        name = f"fn-{function or label}"
        session = f"arn:aws:sts::210987654321:assumed-role/{name}-role/{name}"
        detail["requestParameters"] |= {"granteePrincipal": session, "retiringPrincipal": session}
        detail["requestParameters"]["constraints"] = {
            "encryptionContextEquals": {"aws:lambda:FunctionArn": function_arn(function or label)}
        }
    else:
        detail["requestParameters"]["constraints"] = {
            "encryptionContextSubset": {"aws:ebs:id": f"vol-{label}"}
        }
    return event


def function_arn(label: str) -> str:
    """The ARN of the function a Lambda grant of `create(label, ...)` is for."""
    return f"arn:aws:lambda:eu-central-1:210987654321:function:fn-{label}"


def end(label: str, at: int | datetime, *, revoke: bool) -> dict[str, Any]:
    event = _event("kms-revoke-grant-bare-key-id.json" if revoke else "kms-retire-grant-by-admin.json")
    detail = event["detail"]
    detail |= {"eventID": _id(f"end {label}"), "eventTime": _when(at)}
    if revoke:
        detail["requestParameters"]["grantId"] = _grant(label)
    else:
        detail["additionalEventData"]["grantId"] = _grant(label)
    return event


@overload
def mixed_events(count: int, seed: int, with_kind: Literal[False] = False) -> Iterator[dict[str, Any]]: ...
@overload
def mixed_events(count: int, seed: int, with_kind: Literal[True]) -> Iterator[tuple[str, dict[str, Any]]]: ...
def mixed_events(count: int, seed: int, with_kind: bool = False) -> Iterator[Any]:
    """`count` events: half creations, half ends (70 % retire, 30 % revoke), of Lambda and EBS grants."""
    rng = random.Random(seed)
    for index in range(count // 2 + count % 2):
        label = f"{seed}-{index}"
        lambda_grant = index % 2 == 0
        revoke = rng.random() < 0.3
        pair = [
            (
                "create-lambda" if lambda_grant else "create-ebs",
                create(label, index * 10, lambda_grant=lambda_grant),
            ),
            ("revoke-known" if revoke else "retire-known", end(label, index * 10 + 5, revoke=revoke)),
        ]
        for kind, event in pair[: count - 2 * index]:
            yield (kind, event) if with_kind else event


def typed_event(name: str) -> dict[str, Any]:
    """One event of each type, in EVENT_TYPES order: each builds on the ones before it."""
    match name:
        case "create-lambda" | "duplicate-create":
            return create("typed-lambda", 0, lambda_grant=True)
        case "create-ebs":
            return create("typed-ebs", 1, lambda_grant=False)
        case "retire-known" | "duplicate-retire":
            return end("typed-lambda", 2, revoke=False)
        case "revoke-known":
            return end("typed-ebs", 3, revoke=True)
        case "retire-unseen":
            return end("typed-unseen", 4, revoke=False)
        case "lambda-configuration":
            event = _event("lambda-update-function-configuration.json")
            event["detail"]["eventID"] = _id("typed-configuration")
            return event
        case "failed-call":
            return copy.deepcopy(_event("kms-create-grant-access-denied.json"))
    raise ValueError(name)


_OTHER_CALLS = [
    ("kms.amazonaws.com", "Decrypt"),
    ("kms.amazonaws.com", "GenerateDataKey"),
    ("s3.amazonaws.com", "GetObject"),
    ("sts.amazonaws.com", "AssumeRole"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("lambda.amazonaws.com", "Invoke"),
    ("lambda.amazonaws.com", "DeleteFunctionConcurrency20171031"),
    ("dynamodb.amazonaws.com", "DescribeTable"),
]


@dataclass(frozen=True)
class WrittenArchive:
    files: list[Path]
    events: int
    relevant_event_ids: set[str]
    grant_ids: set[str]


def _other(rng: random.Random, at: datetime) -> dict[str, Any]:
    source, name = rng.choice(_OTHER_CALLS)
    return {
        "eventVersion": "1.10",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/worker",
            "accountId": ACCOUNT,
        },
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.9",
        "userAgent": "aws-sdk-java/2.30",
        "requestParameters": {"keyId": "alias/app", "encryptionContext": {"app": "orders"}},
        "responseElements": None,
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }


def write_archive(
    root: Path,
    *,
    events: int,
    relevant_share: float,
    per_file: int = 100,
    seed: int = 7,
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC),
    region: str = REGION,
) -> WrittenArchive:
    """`events` records in files of `per_file`, five minutes apart; `relevant_share` of them grant events
    (each grant created, then retired in a later file)."""
    rng = random.Random(seed)
    relevant = int(events * relevant_share)
    slots = sorted(rng.sample(range(events), relevant))
    pending: list[str] = []
    grant_records: dict[int, dict[str, Any]] = {}
    grants: set[str] = set()
    for number, slot in enumerate(slots):
        at = start + timedelta(minutes=5 * (slot // per_file))
        if number % 2 == 0 or not pending:
            label = f"backfill-{seed}-{number}"
            pending.append(label)
            record = create(label, at, lambda_grant=number % 4 == 0)["detail"]
            grants.add(record["responseElements"]["grantId"])
        else:
            record = end(pending.pop(0), at, revoke=False)["detail"]
        grant_records[slot] = record
    files, relevant_ids = [], set()
    for first in range(0, events, per_file):
        moment = start + timedelta(minutes=5 * (first // per_file))
        records = []
        for slot in range(first, min(first + per_file, events)):
            record = grant_records.get(slot) or _other(rng, moment)
            record["awsRegion"] = region
            if slot in grant_records:
                relevant_ids.add(record["eventID"])
            records.append(record)
        folder = root / "AWSLogs" / ACCOUNT / "CloudTrail" / region / moment.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{ACCOUNT}_CloudTrail_{region}_{moment.strftime('%Y%m%dT%H%MZ')}_{first:08d}.json.gz"
        path = folder / name
        path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode(), compresslevel=6))
        files.append(path)
    return WrittenArchive(files, events, relevant_ids, grants)
