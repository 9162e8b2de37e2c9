"""Values that become keys, on DynamoDB Local: the longest value the edge accepts, with its key prefix, is
stored and found through every index; and whatever a record holds, nothing reaches the table that DynamoDB
would refuse in the table or in an index (2,048 bytes for a partition key, 1,024 for a sort key). DynamoDB
Local does not enforce the index limits, so the test reads every key and index attribute back and checks it
against the template's key schemas."""

from __future__ import annotations

import copy
from typing import Any

import boto3
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.facts import KEY_VALUE_LIMITS
from grantwatch.domain.records import EvaluationRequest
from grantwatch.recorder import Outcome, Recorder
from grantwatch.settings import Settings
from grantwatch.template import table_properties
from grantwatch.wiring import local_pipeline
from tests.support.samples import ACCOUNT, REGION, TEMPLATE, load_event
from tests.support.scenarios import create_role, delete_role, disable_key, replay
from tests.support.templates import load_template

TABLE = table_properties(load_template(TEMPLATE))
PARTITION_KEY_BYTES, SORT_KEY_BYTES = 2048, 1024
# Every key of the table and of each index: (attribute, its limit).
KEY_ATTRIBUTES = {
    "table": [
        (k["AttributeName"], PARTITION_KEY_BYTES if k["KeyType"] == "HASH" else SORT_KEY_BYTES)
        for k in TABLE["KeySchema"]
    ],
    **{
        index["IndexName"]: [
            (k["AttributeName"], PARTITION_KEY_BYTES if k["KeyType"] == "HASH" else SORT_KEY_BYTES)
            for k in index["KeySchema"]
        ]
        for index in TABLE["GlobalSecondaryIndexes"]
    },
}


def _items(settings: Settings) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", endpoint_url=settings.endpoint_url, region_name=settings.region)
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=settings.table_name):
        items += page["Items"]
    return items


def _too_long(items: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(index, attribute, bytes) of each key attribute an item holds beyond DynamoDB's limit for it."""
    found = []
    for item in items:
        for index, keys in KEY_ATTRIBUTES.items():
            if index != "table" and not all(name in item for name, _ in keys):
                continue  # not in this index
            for name, limit in keys:
                size = len(item[name]["S"].encode())
                if size > limit:
                    found.append((index, name, size))
    return found


def _longest(what: str, prefix: str, fill: str = "x") -> str:
    return prefix + fill * (KEY_VALUE_LIMITS[what] - len(prefix.encode()))


def test_the_longest_accepted_values_are_stored_and_found_through_every_index(
    table_settings: Settings,
) -> None:
    key = _longest("key", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    function = _longest("function ARN", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:")
    grantee = _longest("grantee principal", f"arn:aws:sts::{ACCOUNT}:assumed-role/long-role/")
    grant = "f" * KEY_VALUE_LIMITS["grant id"]
    # by-grantee holds role and user ARNs (not a function's role session): the longest one, on a second grant
    role_grantee = _longest("grantee principal", f"arn:aws:iam::{ACCOUNT}:role/")
    to_role = load_event("kms-create-grant-lambda.json")
    to_role["detail"]["eventID"] = "e" * 36
    to_role["detail"]["responseElements"] |= {"grantId": "e" * KEY_VALUE_LIMITS["grant id"], "keyId": key}
    to_role["detail"]["requestParameters"] |= {"keyId": key, "granteePrincipal": role_grantee}
    to_role["detail"]["requestParameters"].pop("constraints", None)
    event = load_event("kms-create-grant-lambda.json")
    detail = event["detail"]
    detail["responseElements"] |= {"grantId": grant, "keyId": key}
    detail["requestParameters"] |= {"keyId": key, "granteePrincipal": grantee, "retiringPrincipal": grantee}
    detail["requestParameters"]["constraints"]["encryptionContextEquals"]["aws:lambda:FunctionArn"] = function
    retire = load_event("kms-retire-grant-by-admin.json")
    retire["detail"]["additionalEventData"]["grantId"] = grant
    retire["detail"]["resources"][0]["ARN"] = key
    retire["detail"]["eventTime"] = "2026-11-21T10:00:00Z"
    disabled = disable_key("2026-11-22T10:00:00Z")
    disabled["detail"]["resources"][0]["ARN"] = key
    role = "r" * 64
    pipeline = local_pipeline(table_settings)
    notices = replay(
        pipeline,
        [
            event,
            to_role,
            retire,
            disabled,
            delete_role(role, "2026-11-23T10:00:00Z"),
            create_role(role, "2026-11-23T10:01:00Z"),
        ],
    )
    assert [n.attributes["alertType"] for n in notices] == ["grant-retired", "key-disabled"]  # incidents

    grants = DynamoGrantStore(table_settings)
    assert sorted(g.grant_id for g in grants.grants(key=key)) == sorted([grant, "e" * len(grant)])
    assert [g.grant_id for g in grants.grants(function=function)] == [grant]
    assert [g.grant_id for g in grants.grants(grantee=role_grantee)] == ["e" * len(grant)]
    functions = DynamoFunctionStore(table_settings)
    assert [state.function_arn for state, _ in functions.all_functions()] == [function]
    assert {r.incident.function_arn for r in functions.all_incidents()} == {function}
    hazards = DynamoHazardStore(table_settings)
    status = hazards.key(key)
    assert status is not None and status.key_arn == key
    assert hazards.role(ACCOUNT, role) is not None
    items = _items(table_settings)
    assert _too_long(items) == []
    longest_pk = max(len(item["pk"]["S"].encode()) for item in items)
    assert longest_pk > max(KEY_VALUE_LIMITS.values())  # the prefix included


class _Scheduled:
    def schedule(self, request: EvaluationRequest) -> None:
        pass


_KEY_PATHS: list[tuple[str, tuple[str | int, ...]]] = [
    ("kms-create-grant-lambda.json", ("responseElements", "grantId")),
    ("kms-create-grant-lambda.json", ("responseElements", "keyId")),
    ("kms-create-grant-lambda.json", ("requestParameters", "granteePrincipal")),
    (
        "kms-create-grant-lambda.json",
        ("requestParameters", "constraints", "encryptionContextEquals", "aws:lambda:FunctionArn"),
    ),
    ("kms-retire-grant-by-admin.json", ("additionalEventData", "grantId")),
    ("kms-retire-grant-by-admin.json", ("resources", 0, "ARN")),
    ("kms-revoke-grant-bare-key-id.json", ("requestParameters", "grantId")),
    ("kms-revoke-grant-bare-key-id.json", ("requestParameters", "keyId")),
    ("kms-disable-key.json", ("resources", 0, "ARN")),
    (
        "kms-decrypt-access-denied-lambda.json",
        ("requestParameters", "encryptionContext", "aws:lambda:FunctionArn"),
    ),
    ("kms-decrypt-access-denied-no-context.json", ("userIdentity", "arn")),
    ("kms-decrypt-access-denied-no-context.json", ("awsRegion",)),
    ("lambda-update-function-configuration.json", ("responseElements", "functionArn")),
    ("lambda-update-function-configuration.json", ("responseElements", "kMSKeyArn")),
    ("lambda-create-function.json", ("requestParameters", "functionName")),
    ("iam-create-role.json", ("responseElements", "role", "roleName")),
    ("iam-delete-role.json", ("recipientAccountId",)),
]
_PREFIXES = (
    "",
    f"arn:aws:kms:{REGION}:{ACCOUNT}:key/",
    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/role/",
)
_CHARACTERS = st.sampled_from("a0-_/:é€𝄞")  # one to four bytes each in UTF-8


@st.composite
def _long_values(draw: st.DrawFn) -> tuple[str, tuple[str | int, ...], str]:
    sample, path = draw(st.sampled_from(_KEY_PATHS))
    prefix = draw(st.sampled_from(_PREFIXES))
    body = draw(_CHARACTERS) * draw(st.integers(min_value=1, max_value=2200))
    return sample, path, prefix + body


def test_no_value_a_record_holds_reaches_a_key_dynamodb_would_refuse(table_settings: Settings) -> None:
    recorder = Recorder(
        DynamoGrantStore(table_settings),
        DynamoFunctionStore(table_settings),
        DynamoHazardStore(table_settings),
        _Scheduled(),
    )
    outcomes: list[Outcome] = []

    @hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=_long_values(), number=st.integers(min_value=0, max_value=10**9))
    def record(case: tuple[str, tuple[str | int, ...], str], number: int) -> None:
        sample, path, value = case
        event = copy.deepcopy(load_event(sample))
        event["detail"]["eventID"] = f"fuzz-{number}"
        target: Any = event["detail"]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        result = recorder.record(event)
        outcomes.append(result.outcome)
        if result.outcome is Outcome.REJECTED:
            assert result.error and (
                len(value) < 16 or value not in result.error
            )  # the field, never the value

    record()
    assert _too_long(_items(table_settings)) == []
    assert Outcome.REJECTED in outcomes and Outcome.RECORDED in outcomes
