"""The limits contract's checks: each limit with a request just within it and one just over it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from grantwatch.pipeline import CollectingNotifier
from tests.support.channels import NOTICES
from tests.support.limits_contract import (
    CHECKS,
    KB,
    LIMITS,
    MB,
    SESSION,
    check,
    environment_size,
    event_entry_size,
    item_size,
    key_schemas,
)

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
TABLE = "grantwatch"


def _publish(message: str = "m", **extra: Any) -> dict[str, Any]:
    return {"TopicArn": TOPIC, "Message": message, **extra}


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _attributes(count: int) -> dict[str, Any]:
    return {f"a{i}": _string("v") for i in range(count)}


# An attribute "incidentId" of type String and value "x": 10 + 6 + 1 bytes toward the message size.
_ATTRIBUTE_BYTES = len("incidentId") + len("String") + 1


def _entry(detail: dict[str, Any] | str, **extra: Any) -> dict[str, Any]:
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return {"Source": "grantwatch", "DetailType": "alert", "Detail": text, **extra}


def _entry_of_size(size: int) -> dict[str, Any]:
    """An entry with a Time and a resource, exactly `size` bytes as EventBridge counts it."""
    base = _entry({"p": ""}, Time="2026-01-01T00:00:00Z", Resources=["arn:aws:kms:us-east-1:1:key/k"])
    padding = size - event_entry_size(base)
    return _entry({"p": "x" * padding}, Time=base["Time"], Resources=base["Resources"])


def _finding_of_size(size: int) -> dict[str, Any]:
    base = {"Id": "f", "Description": ""}
    return {"Id": "f", "Description": "x" * (size - len(json.dumps(base, separators=(",", ":"))))}


def _item(pk: str = "GRANT#1", sk: str = "GRANT", **more: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in more.items()}}


def _item_of_size(size: int) -> dict[str, Any]:
    base = item_size(_item(blob=""))
    return _item(blob="x" * (size - base))


def _put(item: dict[str, Any]) -> dict[str, Any]:
    return {"TableName": TABLE, "Item": item}


def _writes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"RequestItems": {TABLE: [{"PutRequest": {"Item": item}} for item in items]}}


def _transact(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"TransactItems": [{"Put": {"TableName": TABLE, "Item": item}} for item in items]}


def _update(key: dict[str, Any], sets: dict[str, Any]) -> dict[str, Any]:
    names = {f"#n{i}": name for i, name in enumerate(sets)}
    values = {f":v{i}": {"S": value} for i, value in enumerate(sets.values())}
    expression = "SET " + ", ".join(f"#n{i} = :v{i}" for i in range(len(sets)))
    return {
        "TableName": TABLE,
        "Key": key,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _sqs(body: str, **extra: Any) -> dict[str, Any]:
    return {"QueueUrl": QUEUE, "MessageBody": body, **extra}


def _batch(bodies: list[str], ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or [f"m{i}" for i in range(len(bodies))]
    return {
        "QueueUrl": QUEUE,
        "Entries": [{"Id": i, "MessageBody": b} for i, b in zip(ids, bodies, strict=True)],
    }


def _assume(**extra: Any) -> dict[str, Any]:
    return {"RoleArn": "arn:aws:iam::123456789012:role/r", "RoleSessionName": "grantwatch", **extra}


def _environment(size: int) -> dict[str, Any]:
    base = environment_size({"A": ""})
    return {"FunctionName": "f", "Environment": {"Variables": {"A": "x" * (size - base)}}}


# (limit, service, operation, a request just within it, a request just over it)
CASES: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "sns.message-size",
        "sns",
        "Publish",
        _publish("x" * (256 * KB - _ATTRIBUTE_BYTES), MessageAttributes={"incidentId": _string("x")}),
        _publish("x" * (256 * KB - _ATTRIBUTE_BYTES + 1), MessageAttributes={"incidentId": _string("x")}),
    ),
    ("sns.message-size", "sns", "Publish", _publish("é" * (128 * KB)), _publish("é" * (128 * KB) + "x")),
    ("sns.subject", "sns", "Publish", _publish(Subject="s" * 100), _publish(Subject="s" * 101)),
    ("sns.subject", "sns", "Publish", _publish(Subject="a line"), _publish(Subject="a line\nand another")),
    ("sns.subject", "sns", "Publish", _publish(Subject="Key lost"), _publish(Subject=" Key lost")),
    ("sns.subject", "sns", "Publish", _publish(Subject="grant retired"), _publish(Subject="grant retiré")),
    ("sns.subject", "sns", "Publish", _publish(Subject="x"), _publish(Subject="")),
    (
        "sns.attribute-count",
        "sns",
        "Publish",
        _publish(MessageAttributes=_attributes(10)),
        _publish(MessageAttributes=_attributes(11)),
    ),
    (
        "sns.attribute-value",
        "sns",
        "Publish",
        _publish(MessageAttributes={"incidentId": _string("i")}),
        _publish(MessageAttributes={"incidentId": _string("")}),
    ),
    (
        "sns.json-structure",
        "sns",
        "Publish",
        _publish(json.dumps({"default": "d", "email": "e"}), MessageStructure="json"),
        _publish(json.dumps({"email": "e"}), MessageStructure="json"),
    ),
    (
        "sns.json-structure",
        "sns",
        "Publish",
        _publish(json.dumps({"default": "d"}), MessageStructure="json"),
        _publish("not json", MessageStructure="json"),
    ),
    (
        "sns.json-structure",
        "sns",
        "Publish",
        _publish(json.dumps({"default": "d"}), MessageStructure="json"),
        _publish(json.dumps({"default": "d"}), MessageStructure="text"),
    ),
    (
        "sns.json-structure",
        "sns",
        "Publish",
        _publish(json.dumps({"default": "d"}), MessageStructure="json"),
        _publish(json.dumps(["default", "d"]), MessageStructure="json"),
    ),
    (
        "sns.json-protocol-value",
        "sns",
        "Publish",
        _publish(json.dumps({"default": "d", "sqs": json.dumps({"a": 1})}), MessageStructure="json"),
        _publish(json.dumps({"default": "d", "sqs": {"a": 1}}), MessageStructure="json"),
    ),
    (
        "sns.json-protocol-key",
        "sns",
        "Publish",
        _publish(json.dumps({"default": "d", "email-json": "j", "GCM": "{}"}), MessageStructure="json"),
        _publish(json.dumps({"default": "d", "e-mail": "e"}), MessageStructure="json"),
    ),
    (
        "events.entry-count",
        "events",
        "PutEvents",
        {"Entries": [_entry({})] * 10},
        {"Entries": [_entry({})] * 11},
    ),
    ("events.entry-count", "events", "PutEvents", {"Entries": [_entry({})]}, {"Entries": []}),
    (
        "events.entry-size",
        "events",
        "PutEvents",
        {"Entries": [_entry_of_size(256 * KB)]},
        {"Entries": [_entry_of_size(256 * KB + 1)]},
    ),
    ("events.required", "events", "PutEvents", {"Entries": [_entry({})]}, {"Entries": [_entry("")]}),
    ("events.required", "events", "PutEvents", {"Entries": [_entry({"a": 1})]}, {"Entries": [_entry("[1]")]}),
    (
        "events.required",
        "events",
        "PutEvents",
        {"Entries": [_entry({})]},
        {"Entries": [{"Source": "grantwatch", "Detail": "{}"}]},
    ),
    (
        "events.aws-source",
        "events",
        "PutEvents",
        {"Entries": [_entry({}, Source="grantwatch.aws")]},
        {"Entries": [_entry({}, Source="aws.kms")]},
    ),
    (
        "securityhub.finding-count",
        "securityhub",
        "BatchImportFindings",
        {"Findings": [{"Id": "f"}] * 100},
        {"Findings": [{"Id": "f"}] * 101},
    ),
    (
        "securityhub.finding-size",
        "securityhub",
        "BatchImportFindings",
        {"Findings": [_finding_of_size(240 * KB)]},
        {"Findings": [_finding_of_size(240 * KB + 1)]},
    ),
    ("sqs.message-size", "sqs", "SendMessage", _sqs("x" * 256 * KB), _sqs("x" * 256 * KB + "x")),
    (
        "sqs.message-size",
        "sqs",
        "SendMessage",
        _sqs("x" * (256 * KB - _ATTRIBUTE_BYTES), MessageAttributes={"incidentId": _string("x")}),
        _sqs("x" * (256 * KB - _ATTRIBUTE_BYTES + 1), MessageAttributes={"incidentId": _string("x")}),
    ),
    ("sqs.body", "sqs", "SendMessage", _sqs("a\tb\n"), _sqs("a\x00b")),
    ("sqs.body", "sqs", "SendMessage", _sqs("a"), _sqs("")),
    ("sqs.delay", "sqs", "SendMessage", _sqs("b", DelaySeconds=900), _sqs("b", DelaySeconds=901)),
    ("sqs.delay", "sqs", "SendMessage", _sqs("b", DelaySeconds=0), _sqs("b", DelaySeconds=-1)),
    (
        "sqs.attribute-count",
        "sqs",
        "SendMessage",
        _sqs("b", MessageAttributes=_attributes(10)),
        _sqs("b", MessageAttributes=_attributes(11)),
    ),
    ("sqs.batch-count", "sqs", "SendMessageBatch", _batch(["b"] * 10), _batch(["b"] * 11)),
    (
        "sqs.batch-size",
        "sqs",
        "SendMessageBatch",
        _batch(["x" * 128 * KB, "x" * 128 * KB]),
        _batch(["x" * 128 * KB, "x" * 128 * KB + "x"]),
    ),
    (
        "sqs.batch-id",
        "sqs",
        "SendMessageBatch",
        _batch(["a", "b"], ["m-1", "m_2"]),
        _batch(["a", "b"], ["m", "m"]),
    ),
    ("sqs.batch-id", "sqs", "SendMessageBatch", _batch(["a"], ["x" * 80]), _batch(["a"], ["x" * 81])),
    (
        "dynamodb.item-size",
        "dynamodb",
        "PutItem",
        _put(_item_of_size(400 * KB)),
        _put(_item_of_size(400 * KB + 1)),
    ),
    (
        "dynamodb.partition-key",
        "dynamodb",
        "PutItem",
        _put(_item(pk="p" * 2048)),
        _put(_item(pk="p" * 2049)),
    ),
    ("dynamodb.partition-key", "dynamodb", "PutItem", _put(_item(pk="p")), _put(_item(pk=""))),
    ("dynamodb.sort-key", "dynamodb", "PutItem", _put(_item(sk="s" * 1024)), _put(_item(sk="s" * 1025))),
    (
        "dynamodb.partition-key",
        "dynamodb",
        "PutItem",
        _put(_item(keyArn="k" * 2048)),
        _put(_item(keyArn="k" * 2049)),
    ),
    (
        "dynamodb.partition-key",
        "dynamodb",
        "UpdateItem",
        _update(_item(), {"functionArn": "f" * 2048}),
        _update(_item(), {"functionArn": "f" * 2049}),
    ),
    (
        "dynamodb.item-size",
        "dynamodb",
        "UpdateItem",
        _update(_item(), {"blob": "x" * (400 * KB - item_size(_item(blob="")))}),
        _update(_item(), {"blob": "x" * (400 * KB - item_size(_item(blob="")) + 1)}),
    ),
    (
        "dynamodb.sort-key",
        "dynamodb",
        "DeleteItem",
        {"TableName": TABLE, "Key": _item(sk="s" * 1024)},
        {"TableName": TABLE, "Key": _item(sk="s" * 1025)},
    ),
    (
        "dynamodb.batch-write-count",
        "dynamodb",
        "BatchWriteItem",
        _writes([_item(pk=f"p{i}") for i in range(25)]),
        _writes([_item(pk=f"p{i}") for i in range(26)]),
    ),
    (
        "dynamodb.item-size",
        "dynamodb",
        "BatchWriteItem",
        _writes([_item_of_size(400 * KB)]),
        _writes([_item_of_size(400 * KB + 1)]),
    ),
    (
        "dynamodb.batch-get-count",
        "dynamodb",
        "BatchGetItem",
        {"RequestItems": {TABLE: {"Keys": [_item(pk=f"p{i}") for i in range(100)]}}},
        {"RequestItems": {TABLE: {"Keys": [_item(pk=f"p{i}") for i in range(101)]}}},
    ),
    (
        "dynamodb.transact-count",
        "dynamodb",
        "TransactWriteItems",
        _transact([_item(pk=f"p{i}") for i in range(100)]),
        _transact([_item(pk=f"p{i}") for i in range(101)]),
    ),
    (
        "dynamodb.transact-size",
        "dynamodb",
        "TransactWriteItems",
        _transact([_item_of_size(4 * MB // 16)] * 16),
        _transact([_item_of_size(4 * MB // 16)] * 15 + [_item_of_size(4 * MB // 16 + 1)]),
    ),
    (
        "dynamodb.transact-get-count",
        "dynamodb",
        "TransactGetItems",
        {"TransactItems": [{"Get": {"TableName": TABLE, "Key": _item()}}] * 100},
        {"TransactItems": [{"Get": {"TableName": TABLE, "Key": _item()}}] * 101},
    ),
    (
        "dynamodb.expression",
        "dynamodb",
        "Query",
        {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "FilterExpression": "a" * 4096},
        {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "FilterExpression": "a" * 4097},
    ),
    (
        "sts.session-name",
        "sts",
        "AssumeRole",
        _assume(RoleSessionName="s" * 64),
        _assume(RoleSessionName="s" * 65),
    ),
    ("sts.session-name", "sts", "AssumeRole", _assume(RoleSessionName="ab"), _assume(RoleSessionName="a")),
    (
        "sts.session-name",
        "sts",
        "AssumeRole",
        _assume(RoleSessionName="a+=,.@-_"),
        _assume(RoleSessionName="a b"),
    ),
    ("sts.external-id", "sts", "AssumeRole", _assume(ExternalId="e" * 1224), _assume(ExternalId="e" * 1225)),
    ("sts.external-id", "sts", "AssumeRole", _assume(ExternalId="a:/b"), _assume(ExternalId="a#b")),
    ("sts.duration", "sts", "AssumeRole", _assume(DurationSeconds=43200), _assume(DurationSeconds=43201)),
    ("sts.duration", "sts", "AssumeRole", _assume(DurationSeconds=900), _assume(DurationSeconds=899)),
    (
        "lambda.environment",
        "lambda",
        "UpdateFunctionConfiguration",
        _environment(4 * KB),
        _environment(4 * KB + 1),
    ),
    ("lambda.environment", "lambda", "CreateFunction", _environment(4 * KB), _environment(4 * KB + 1)),
    (
        "kms.list-grants-limit",
        "kms",
        "ListGrants",
        {"KeyId": "k", "Limit": 100},
        {"KeyId": "k", "Limit": 101},
    ),
    ("kms.list-keys-limit", "kms", "ListKeys", {"Limit": 1000}, {"Limit": 1001}),
    ("lambda.list-functions-max", "lambda", "ListFunctions", {"MaxItems": 10_000}, {"MaxItems": 10_001}),
    (
        "organizations.list-accounts-max",
        "organizations",
        "ListAccounts",
        {"MaxResults": 20},
        {"MaxResults": 21},
    ),
    ("cloudtrail.lookup-max", "cloudtrail", "LookupEvents", {"MaxResults": 50}, {"MaxResults": 51}),
    (
        "cloudtrail.lookup-attributes",
        "cloudtrail",
        "LookupEvents",
        {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateGrant"}]},
        {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateGrant"}] * 2},
    ),
]


@pytest.mark.parametrize(
    ("limit", "service", "operation", "within", "over"),
    CASES,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(CASES)],
)
def test_a_request_just_within_a_limit_passes_and_one_just_over_it_is_reported(
    limit: str, service: str, operation: str, within: dict[str, Any], over: dict[str, Any]
) -> None:
    assert check(service, operation, within) == []
    breaches = check(service, operation, over)
    assert [b.limit for b in breaches] == [limit], breaches


def test_every_limit_has_a_source_and_a_case_of_its_own() -> None:
    assert {case[0] for case in CASES} == set(LIMITS)
    assert all(limit.source.startswith("https://docs.aws.amazon.com/") for limit in LIMITS.values())
    assert {(service, operation) for _, service, operation, _, _ in CASES} == set(CHECKS) - {
        ("dynamodb", "GetItem"),
        ("dynamodb", "Scan"),
    }


def test_a_breach_names_the_limit_the_measure_and_the_source() -> None:
    (breach,) = check("sns", "Publish", _publish("x" * (256 * KB + 1)))

    assert breach.line() == (
        "sns.message-size: message plus attribute names, types and values at most 262,144 bytes (UTF-8); "
        "measured 262,145 bytes [https://docs.aws.amazon.com/sns/latest/api/API_Publish.html]"
    )


def test_the_key_attributes_are_the_tables_and_every_indexs_from_the_template() -> None:
    schemas = {index: (partition, sort) for index, partition, sort in key_schemas()}

    assert schemas == {
        "GrantsTable": ("pk", "sk"),
        "by-key": ("keyArn", "pk"),
        "by-function": ("functionArn", "pk"),
        "by-grantee": ("granteePrincipal", "pk"),
        "by-entity": ("entity", "pk"),
    }


def test_a_partition_key_is_held_to_a_sort_keys_limit_in_an_index_that_sorts_by_it() -> None:
    in_no_index = _put(_item(pk="p" * 2048))
    in_by_key = _put(_item(pk="p" * 1025, keyArn="arn:aws:kms:us-east-1:1:key/k"))

    assert check("dynamodb", "PutItem", in_no_index) == []
    (breach,) = check("dynamodb", "PutItem", in_by_key)
    assert (breach.limit, breach.measured) == ("dynamodb.sort-key", "pk 1,025 bytes (by-key)")


def test_a_request_the_checks_cannot_read_is_recorded_never_raised() -> None:
    with SESSION.taken() as taken:
        # boto3 refuses a float for DynamoDB; the contract sees it first and cannot measure it.
        SESSION.sink("a test", "dynamodb", "PutItem", {"TableName": TABLE, "Item": {"pk": "p", "f": 1.5}})
        SESSION.sink("a test", "sns", "Publish", {"Message": "fine"})

    (violation,) = taken
    assert violation.breach is None
    assert violation.line() == (
        "a test: dynamodb PutItem: the limits check failed: TypeError: <class 'float'>"
    )
    assert not any("a test" in line for line in SESSION.report())


def test_a_notice_the_local_pipeline_collects_is_checked_as_every_channel_would_send_it() -> None:
    notifier = CollectingNotifier()
    resolved = NOTICES["resolved"]
    long_message = replace(resolved, email="m" * 262_145)
    long_subject = replace(resolved, subject="s" * 101)

    with SESSION.taken() as taken:
        for notice in NOTICES.values():
            notifier.publish(notice)
        within = list(taken)
        notifier.publish(long_message)
        notifier.publish(long_subject)

    assert within == []
    assert notifier.notices[-2:] == [long_message, long_subject]  # collected as before
    found = [(v.call, v.breach.limit) for v in taken if v.breach]
    assert found == [
        ("sns Publish", "sns.message-size"),  # the text topic; the chat topic sends a card, not the text
        ("sns Publish", "sns.subject"),
    ]
    assert all(v.where.startswith(f"{__name__.replace('.', '/')}.py::") for v in taken)


def test_a_table_resources_python_values_are_measured_as_dynamodb_counts_them() -> None:
    # boto3's Table resource hands botocore Python values, converted to {"S": ...} after the contract.
    within: dict[str, Any] = {
        "TableName": TABLE,
        "Item": {"pk": "p" * 2048, "sk": "GRANT", "n": 5, "tags": ["a"]},
    }
    over = {"TableName": TABLE, "Item": {"pk": "p" * 2049, "sk": "GRANT", "n": 5, "tags": ["a"]}}

    assert check("dynamodb", "PutItem", within) == []
    assert [b.limit for b in check("dynamodb", "PutItem", over)] == ["dynamodb.partition-key"]
    # a number of one digit is 2 bytes with its name's; a list is 3 bytes plus 1 and its value's per element
    assert (
        item_size(within["Item"]) == item_size(_item(pk="p" * 2048)) + len("n") + 1 + len("tags") + 3 + 1 + 1
    )
