"""CloudTrail archives the tests write themselves, in the layout a trail writes to S3:
AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.scenarios import ACCOUNT, REGION, create_grant, retire_grant

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
        at = (start + timedelta(minutes=5 * (slot // per_file))).strftime("%Y-%m-%dT%H:%M:%SZ")
        if number % 2 == 0 or not pending:
            label = f"backfill-{seed}-{number}"
            pending.append(label)
            record = create_grant(f"fn-{number % 40}", label, at)["detail"]
            grants.add(record["responseElements"]["grantId"])
        else:
            record = retire_grant(pending.pop(0), at)["detail"]
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
