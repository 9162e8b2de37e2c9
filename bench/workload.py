"""Generated CloudTrail grant events for the benchmarks, built from the record shapes in events/."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, overload

EVENTS = Path(__file__).resolve().parents[1] / "events"
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


def _when(offset: int) -> str:
    return (START + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def create(label: str, at: int, *, lambda_grant: bool) -> dict[str, Any]:
    event = _event("kms-create-grant-lambda.json" if lambda_grant else "kms-create-grant-ebs-volume.json")
    detail = event["detail"]
    detail |= {"eventID": _id(f"create {label}"), "eventTime": _when(at)}
    detail["responseElements"]["grantId"] = _grant(label)
    if lambda_grant:
        function = f"arn:aws:lambda:eu-central-1:210987654321:function:fn-{label}"
        session = f"arn:aws:sts::210987654321:assumed-role/fn-{label}-role/fn-{label}"
        detail["requestParameters"] |= {"granteePrincipal": session, "retiringPrincipal": session}
        detail["requestParameters"]["constraints"] = {
            "encryptionContextEquals": {"aws:lambda:FunctionArn": function}
        }
    else:
        detail["requestParameters"]["constraints"] = {
            "encryptionContextSubset": {"aws:ebs:id": f"vol-{label}"}
        }
    return event


def end(label: str, at: int, *, revoke: bool) -> dict[str, Any]:
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
