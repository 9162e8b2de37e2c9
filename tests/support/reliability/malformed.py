"""Malformed events, generated from the sample events with a seeded random source: wrong types, missing
fields, huge strings, text that is not valid Unicode, nested nulls, broken envelopes, and any of these
padded to a 256 KB record. Every one is malformed by construction, so the recorder must reject it."""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.samples import load_event

GRANT_SAMPLES = (
    "kms-create-grant-lambda.json",
    "kms-create-grant-ebs-volume.json",
    "kms-retire-grant-by-admin.json",
    "kms-revoke-grant-bare-key-id.json",
)
FUNCTION_SAMPLES = (
    "lambda-update-function-configuration.json",
    "lambda-create-function.json",
    "lambda-delete-function.json",
)
REQUIRED = ("eventID", "eventName", "eventSource", "eventTime", "awsRegion")
WRONG_TYPES: tuple[Any, ...] = (None, 0, -1, 1.5, True, [], {}, ["x"], {"a": None}, [None, [None]])
BAD_TIMES = (
    "",
    "yesterday",
    "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in "2026-11-20T16:42:31Z"),  # fullwidth digits
    "2026-11-20T16:42",  # no seconds (a time with no zone is UTC, as CloudTrail's are: not malformed)
    "0001-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "9" * 100_000,
)
LONE_SURROGATE = "\ud800"
RECORD_LIMIT = 256 * 1024


@dataclass(frozen=True, slots=True)
class Malformed:
    kind: str
    event: Any
    event_id: str | None  # the id the rejection must name, where the event still has a usable one


def _sample(rng: random.Random, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any], str]:
    event = load_event(rng.choice(names))
    event_id = str(uuid.UUID(int=rng.getrandbits(128)))
    event["detail"]["eventID"] = event_id
    return event, event["detail"], event_id


def _huge(rng: random.Random) -> str:
    return rng.choice("abcdef0123456789") * rng.choice((3_000, 70_000, 250_000))


def wrong_type(rng: random.Random) -> Malformed:
    event, detail, event_id = _sample(rng, GRANT_SAMPLES + FUNCTION_SAMPLES)
    field = rng.choice(REQUIRED)
    detail[field] = copy.deepcopy(rng.choice(WRONG_TYPES))
    return Malformed(f"wrong type: {field}", event, None if field == "eventID" else event_id)


def missing_field(rng: random.Random) -> Malformed:
    event, detail, event_id = _sample(rng, GRANT_SAMPLES + FUNCTION_SAMPLES)
    field = rng.choice(REQUIRED)
    del detail[field]
    return Malformed(f"missing: {field}", event, None if field == "eventID" else event_id)


def bad_time(rng: random.Random) -> Malformed:
    event, detail, event_id = _sample(rng, GRANT_SAMPLES + FUNCTION_SAMPLES)
    detail["eventTime"] = rng.choice(BAD_TIMES)
    return Malformed("bad eventTime", event, event_id)


def bad_id(rng: random.Random) -> Malformed:
    event, detail, _ = _sample(rng, GRANT_SAMPLES + FUNCTION_SAMPLES)
    detail["eventID"] = rng.choice(("", "x" * 129, _huge(rng)))
    return Malformed("bad eventID", event, None)


def bad_grant_fields(rng: random.Random) -> Malformed:
    """A grant call without what makes it one: no grant id, no key, no grantee, wrongly typed terms."""
    event, detail, event_id = _sample(rng, GRANT_SAMPLES)
    name = detail["eventName"]
    if name == "CreateGrant":
        _break_create_grant(rng, detail)
    elif name == "RetireGrant":
        _break_retire_grant(rng, detail)
    else:
        detail["requestParameters"] = rng.choice(
            (
                None,
                {"keyId": None, "grantId": "g"},
                {"keyId": "k"},
                {"grantId": "g"},
                {"keyId": "k", "grantId": 1},
            )
        )
    return Malformed(f"bad {name} fields", event, event_id)


def _break_create_grant(rng: random.Random, detail: dict[str, Any]) -> None:
    choice = rng.randrange(9)
    params, response = detail["requestParameters"], detail["responseElements"]
    if choice == 0:
        detail["responseElements"] = rng.choice((None, {}, [], "grant"))
    elif choice == 1:
        response["grantId"] = rng.choice(("", None, 7, ["g"], {"id": None}))
    elif choice == 2:
        detail["requestParameters"] = rng.choice((None, [], "keyId", {"keyId": None}))
    elif choice == 3:
        params.pop("granteePrincipal", None)
        params.pop("granteeServicePrincipal", None)
    elif choice == 4:
        params["constraints"] = rng.choice(
            ({"encryptionContextEquals": "x"}, {"encryptionContextSubset": {"k": None}}, [], "c")
        )
    elif choice == 5:
        params["operations"] = rng.choice(("Decrypt", [None], [["Decrypt"]], {"Decrypt": 1}))
    elif choice == 6:
        response["grantId"] = _huge(rng)
    elif choice == 7:
        params["granteePrincipal"] = "arn:aws:iam::210987654321:role/" + _huge(rng)
    else:
        response.pop("keyId", None)
        params["keyId"] = _huge(rng)


def _break_retire_grant(rng: random.Random, detail: dict[str, Any]) -> None:
    choice = rng.randrange(3)
    if choice == 0:
        detail["additionalEventData"] = rng.choice((None, {}, {"grantId": None}, {"grantId": ""}))
    elif choice == 1:
        detail["resources"] = rng.choice(([None], "key", [{"ARN": 5}], [[]]))
    else:
        detail["resources"] = []


def bad_function_fields(rng: random.Random) -> Malformed:
    event, detail, event_id = _sample(rng, FUNCTION_SAMPLES)
    detail["responseElements"] = rng.choice((None, {}, {"functionArn": 5}))
    detail["requestParameters"] = rng.choice(
        (
            None,
            {},
            {"functionName": None},
            {"functionName": "no spaces allowed"},
            {"functionName": _huge(rng)},
        )
    )
    return Malformed("bad function fields", event, event_id)


def not_unicode(rng: random.Random) -> Malformed:
    """Text that JSON can escape but UTF-8 cannot carry: a lone surrogate, where each field is read."""
    event, detail, event_id = _sample(rng, GRANT_SAMPLES + FUNCTION_SAMPLES)
    choice = rng.randrange(4)
    if choice == 0:
        detail["eventID"] = event_id = f"{event_id[:8]}{LONE_SURROGATE}"
    elif choice == 1:
        detail["userIdentity"]["arn"] += LONE_SURROGATE
    elif choice == 2:
        detail["requestParameters"] = {"functionName": "f", "keyId": "k", "grantId": "g" + LONE_SURROGATE}
        detail["responseElements"] = {"grantId": "g" + LONE_SURROGATE, "functionArn": LONE_SURROGATE}
    else:
        detail["sourceIPAddress"] = LONE_SURROGATE * 3
    return Malformed("not valid Unicode", event, event_id)


def nested_nulls(rng: random.Random) -> Malformed:
    event, detail, event_id = _sample(rng, GRANT_SAMPLES)
    choice = rng.randrange(4)
    if choice == 0:
        detail["userIdentity"] = None
    elif choice == 1:
        for field in rng.sample(REQUIRED[1:], 2):
            detail[field] = None
    elif choice == 2:
        detail["requestParameters"] = {"keyId": {"a": [None, {"b": None}]}, "grantId": [None]}
        detail["responseElements"] = {"grantId": {"nested": [None, [None, [None]]]}}
        detail["additionalEventData"] = {"grantId": [[None]]}
    else:
        deep: Any = None
        for _ in range(200):
            deep = {"x": deep, "y": [None]}
        detail["requestParameters"] = {"keyId": deep}
        detail["responseElements"] = {"grantId": deep}
        detail["additionalEventData"] = None
        detail["resources"] = [deep]
    return Malformed("nested nulls", event, event_id)


def broken_envelope(rng: random.Random) -> Malformed:
    choice = rng.randrange(3)
    if choice == 0:
        return Malformed("not an object", rng.choice((None, [], "event", 42, 1.5, [{"detail": {}}])), None)
    event, _, _ = _sample(rng, GRANT_SAMPLES)
    event["detail"] = rng.choice((None, [], "detail", 7, {}))
    return Malformed("broken envelope", event, None)


MUTATIONS: tuple[Callable[[random.Random], Malformed], ...] = (
    wrong_type,
    missing_field,
    bad_time,
    bad_id,
    bad_grant_fields,
    bad_grant_fields,
    bad_function_fields,
    not_unicode,
    nested_nulls,
    broken_envelope,
)


def pad_to_record_limit(case: Malformed) -> Malformed:
    """The same malformed event, made as large as EventBridge allows a record to be."""
    event = case.event
    if not isinstance(event, dict):
        return case
    padded = copy.copy(event)
    padded["padding"] = "p" * (RECORD_LIMIT - 2_000)
    return Malformed(f"{case.kind}, 256 KB", padded, case.event_id)


def malformed_events(count: int, seed: int = 7) -> Iterator[Malformed]:
    rng = random.Random(seed)
    for _ in range(count):
        case = rng.choice(MUTATIONS)(rng)
        yield pad_to_record_limit(case) if rng.random() < 0.04 else case
