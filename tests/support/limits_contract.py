"""AWS's documented limits as a tested contract: every AWS request made during the tests, checked against the
limits AWS documents for it, before it is sent.

The stand-ins the tests run against (DynamoDB Local, moto) enforce some of these limits and not others, so a
request that AWS would refuse can pass every test. Every botocore call, pynamodb's included (pynamodb
builds a botocore client and calls `BaseClient._make_api_call` on it), is seen by one wrapper, which hands the
request's parameters to the check of its operation in CHECKS. A check is pure: parameters in, the limits they
exceed out. Each limit in LIMITS names the AWS page that documents it. The local pipeline's notifier, where
`replay`'s and many tests' notices go instead of SNS, is wrapped too: each notice it collects is checked as
the requests every channel's adapter would send for it.

What the checks cannot see, from the request alone:
- UpdateItem: the item that results (the stored item plus the update). The key, each value the request carries
  and the values it assigns with `SET name = :value` are checked; an item that grows past 400 KB through
  updates of its own is not (the store's size guards and their tests cover that).
- TransactWriteItems: the 4 MB aggregate is the size of the items written (Put), plus the keys and values of
  the other actions, not the stored items an Update or ConditionCheck touches.
- Limits on a response or a rate (BatchGetItem's 16 MB of answers, KMS's requests per second) and every
  request a test's own stand-in (a notifier or client of its own) receives instead of a botocore client.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from types import FrameType
from typing import Any

from tests.support.dynamodb_size import attribute_size
from tests.support.samples import TEMPLATE
from tests.support.templates import load_template

KB = 1024
MB = 1024 * KB


@dataclass(frozen=True, slots=True)
class Limit:
    """One documented limit: what it says, and where AWS documents it."""

    call: str  # "service Operation"
    text: str
    source: str


_SNS_PUBLISH = "https://docs.aws.amazon.com/sns/latest/api/API_Publish.html"
_SNS_PUBLISH_JSON = (
    "https://docs.aws.amazon.com/sns/latest/api/API_Publish.html (MessageStructure) and "
    "https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html (Protocol)"
)
_SNS_ATTRIBUTES = "https://docs.aws.amazon.com/sns/latest/dg/sns-message-attributes.html"
_SNS_QUOTAS = "https://docs.aws.amazon.com/general/latest/gr/sns.html (Amazon SNS endpoints and quotas)"
_EVENTS_PUT = "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html"
_EVENTS_SIZE = (
    "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html "
    "(Calculating PutEvents event entry size)"
)
_EVENTS_ENTRY = "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html"
_HUB_IMPORT = "https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchImportFindings.html"
_SQS_SEND = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html"
_SQS_BATCH = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html"
_SQS_QUOTAS = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html "
    "(Amazon SQS message quotas)"
)
_DDB_QUOTAS = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html "
    "(Quotas in Amazon DynamoDB)"
)
_DDB_SIZE = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html"
_DDB_BATCH_WRITE = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html"
_DDB_BATCH_GET = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html"
_DDB_TRANSACT = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html"
_DDB_TRANSACT_GET = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactGetItems.html"
_STS_ASSUME = "https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html"
_LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (Lambda quotas)"
_KMS_LIST_GRANTS = "https://docs.aws.amazon.com/kms/latest/APIReference/API_ListGrants.html"
_KMS_LIST_KEYS = "https://docs.aws.amazon.com/kms/latest/APIReference/API_ListKeys.html"
_LAMBDA_LIST = "https://docs.aws.amazon.com/lambda/latest/api/API_ListFunctions.html"
_ORGS_LIST = "https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccounts.html"
_TRAIL_LOOKUP = "https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html"

# Every limit the contract checks. SQS: AWS raised SQS's maximum message size to 1 MiB in 2025; the contract
# holds the code to 256 KiB, the size every path of an alert or a request (SNS, EventBridge, SQS) accepts.
LIMITS: dict[str, Limit] = {
    "sns.message-size": Limit(
        "sns Publish",
        "message plus attribute names, types and values at most 262,144 bytes (UTF-8)",
        _SNS_PUBLISH,
    ),
    "sns.subject": Limit(
        "sns Publish",
        "subject 1 to 100 printable ASCII characters, no line break, not starting with whitespace",
        _SNS_PUBLISH,
    ),
    "sns.attribute-count": Limit("sns Publish", "at most 10 message attributes", _SNS_QUOTAS),
    "sns.attribute-value": Limit(
        "sns Publish", "a message attribute's value is not empty (InvalidParameterValue)", _SNS_ATTRIBUTES
    ),
    "sns.json-structure": Limit(
        "sns Publish",
        "MessageStructure is json or absent; with json, Message is a JSON object with a string `default`",
        _SNS_PUBLISH,
    ),
    "sns.json-protocol-value": Limit(
        "sns Publish",
        "with MessageStructure json, each protocol's message is a JSON string",
        _SNS_PUBLISH,
    ),
    "sns.json-protocol-key": Limit(
        "sns Publish",
        "with MessageStructure json, each key is `default` or a protocol SNS delivers to (no other is sent)",
        _SNS_PUBLISH_JSON,
    ),
    "events.entry-count": Limit("events PutEvents", "1 to 10 entries", _EVENTS_PUT),
    "events.entry-size": Limit(
        "events PutEvents",
        "an entry at most 262,144 bytes: Time 14 bytes if set, Source, DetailType, Detail, each resource",
        _EVENTS_SIZE,
    ),
    "events.required": Limit(
        "events PutEvents", "Source, DetailType and Detail set; Detail a JSON object", _EVENTS_ENTRY
    ),
    "events.aws-source": Limit("events PutEvents", "a custom Source does not start with `aws.`", _EVENTS_PUT),
    "securityhub.finding-count": Limit(
        "securityhub BatchImportFindings", "1 to 100 findings a request", _HUB_IMPORT
    ),
    "securityhub.finding-size": Limit(
        "securityhub BatchImportFindings", "a finding at most 240 KB (245,760 bytes of JSON)", _HUB_IMPORT
    ),
    "sqs.message-size": Limit(
        "sqs SendMessage", "body plus attribute names, types and values at most 262,144 bytes", _SQS_QUOTAS
    ),
    "sqs.body": Limit(
        "sqs SendMessage",
        "a body of at least 1 character, only #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF",
        _SQS_SEND,
    ),
    "sqs.delay": Limit("sqs SendMessage", "DelaySeconds 0 to 900", _SQS_SEND),
    "sqs.attribute-count": Limit("sqs SendMessage", "at most 10 message attributes", _SQS_QUOTAS),
    "sqs.batch-count": Limit("sqs SendMessageBatch", "1 to 10 entries", _SQS_BATCH),
    "sqs.batch-size": Limit("sqs SendMessageBatch", "all entries together at most 262,144 bytes", _SQS_BATCH),
    "sqs.batch-id": Limit("sqs SendMessageBatch", "entry Ids unique, 1 to 80 of A-Z a-z 0-9 - _", _SQS_BATCH),
    "dynamodb.item-size": Limit(
        "dynamodb", "an item (attribute names and values) at most 400 KB (409,600 bytes)", _DDB_QUOTAS
    ),
    "dynamodb.partition-key": Limit(
        "dynamodb",
        "a partition key value 1 to 2,048 bytes (the table's and every index's partition key)",
        _DDB_QUOTAS,
    ),
    "dynamodb.sort-key": Limit(
        "dynamodb", "a sort key value 1 to 1,024 bytes (the table's and every index's sort key)", _DDB_QUOTAS
    ),
    "dynamodb.batch-write-count": Limit("dynamodb BatchWriteItem", "at most 25 requests", _DDB_BATCH_WRITE),
    "dynamodb.batch-get-count": Limit("dynamodb BatchGetItem", "at most 100 keys", _DDB_BATCH_GET),
    "dynamodb.transact-count": Limit("dynamodb TransactWriteItems", "at most 100 actions", _DDB_TRANSACT),
    "dynamodb.transact-size": Limit(
        "dynamodb TransactWriteItems", "the items together at most 4 MB", _DDB_TRANSACT
    ),
    "dynamodb.transact-get-count": Limit(
        "dynamodb TransactGetItems", "at most 100 actions", _DDB_TRANSACT_GET
    ),
    "dynamodb.expression": Limit("dynamodb", "an expression string at most 4 KB (4,096 bytes)", _DDB_QUOTAS),
    "sts.session-name": Limit(
        "sts AssumeRole", "RoleSessionName 2 to 64 characters of [\\w+=,.@-]", _STS_ASSUME
    ),
    "sts.external-id": Limit(
        "sts AssumeRole", "ExternalId 2 to 1,224 characters of [\\w+=,.@:/-]", _STS_ASSUME
    ),
    "sts.duration": Limit("sts AssumeRole", "DurationSeconds 900 to 43,200", _STS_ASSUME),
    "lambda.environment": Limit(
        "lambda",
        "environment variables at most 4 KB (4,096 bytes of the variables as JSON, as Lambda measures them)",
        _LAMBDA_QUOTAS,
    ),
    "kms.list-grants-limit": Limit("kms ListGrants", "Limit 1 to 100", _KMS_LIST_GRANTS),
    "kms.list-keys-limit": Limit("kms ListKeys", "Limit 1 to 1,000", _KMS_LIST_KEYS),
    "lambda.list-functions-max": Limit("lambda ListFunctions", "MaxItems 1 to 10,000", _LAMBDA_LIST),
    "organizations.list-accounts-max": Limit("organizations ListAccounts", "MaxResults 1 to 20", _ORGS_LIST),
    "cloudtrail.lookup-max": Limit("cloudtrail LookupEvents", "MaxResults 1 to 50", _TRAIL_LOOKUP),
    "cloudtrail.lookup-attributes": Limit(
        "cloudtrail LookupEvents", "at most 1 lookup attribute", _TRAIL_LOOKUP
    ),
}


@dataclass(frozen=True, slots=True)
class Breach:
    """A request over one limit: which limit, and what the request measured."""

    limit: str  # a key of LIMITS
    measured: str

    def line(self) -> str:
        limit = LIMITS[self.limit]
        return f"{self.limit}: {limit.text}; measured {self.measured} [{limit.source}]"


Check = Callable[[dict[str, Any]], Iterator[Breach]]


def _utf8(text: Any) -> int:
    return len(str(text).encode("utf-8"))


def _in_range(limit: str, name: str, value: Any, low: int, high: int) -> Iterator[Breach]:
    if value is not None and not (isinstance(value, int) and low <= value <= high):
        yield Breach(limit, f"{name} {value!r}")


# ---- SNS -------------------------------------------------------------------------------------------------


def _attributes_size(attributes: dict[str, Any]) -> int:
    """Message attributes as SNS and SQS count them toward the message size: name, data type and value."""
    total = 0
    for name, attribute in attributes.items():
        total += _utf8(name) + _utf8(attribute.get("DataType", ""))
        if "StringValue" in attribute:
            total += _utf8(attribute["StringValue"])
        if "BinaryValue" in attribute:
            value = attribute["BinaryValue"]
            total += len(value) if isinstance(value, bytes | bytearray) else _utf8(value)
    return total


def _valid_subject(subject: str) -> bool:
    return (
        1 <= len(subject) <= 100 and subject.isascii() and subject.isprintable() and not subject[0].isspace()
    )


def sns_publish(params: dict[str, Any]) -> Iterator[Breach]:
    message = params.get("Message", "")
    attributes: dict[str, Any] = params.get("MessageAttributes") or {}
    size = _utf8(message) + _attributes_size(attributes)
    if size > 256 * KB:
        yield Breach("sns.message-size", f"{size:,} bytes")
    subject = params.get("Subject")
    if subject is not None and not _valid_subject(str(subject)):
        yield Breach("sns.subject", f"{len(str(subject))} characters: {str(subject)[:40]!r}")
    if len(attributes) > 10:
        yield Breach("sns.attribute-count", f"{len(attributes)} attributes")
    for name, attribute in attributes.items():
        value_key = (
            "BinaryValue" if str(attribute.get("DataType", "")).startswith("Binary") else "StringValue"
        )
        if not attribute.get(value_key):
            yield Breach("sns.attribute-value", f"attribute {name!r} {attribute!r}")
    structure = params.get("MessageStructure")
    if structure is not None and structure != "json":
        yield Breach("sns.json-structure", f"MessageStructure {structure!r}")
    if structure == "json":
        yield from _sns_structured(message)


# The keys of a `MessageStructure: json` message SNS delivers: `default`, Subscribe's protocols, and the
# platform keys of mobile push (the `application` protocol). SNS refuses no other key; it sends it nowhere.
SNS_MESSAGE_KEYS = frozenset(
    {"default", "email", "email-json", "sqs", "lambda", "http", "https", "sms", "application", "firehose"}
    | {"APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "MACOS", "MACOS_SANDBOX", "GCM", "ADM"}
    | {"BAIDU", "MPNS", "WNS"}
)


def _sns_structured(message: Any) -> Iterator[Breach]:
    try:
        document = json.loads(message)
    except (TypeError, ValueError):
        document = None
    if not (isinstance(document, dict) and isinstance(document.get("default"), str)):
        yield Breach("sns.json-structure", f"Message {str(message)[:60]!r}")
        return
    for key, value in document.items():
        if key not in SNS_MESSAGE_KEYS:
            yield Breach("sns.json-protocol-key", f"key {key!r}")
        if not isinstance(value, str):
            yield Breach("sns.json-protocol-value", f"{key!r}: {type(value).__name__}")


# ---- EventBridge -----------------------------------------------------------------------------------------


def event_entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge's "Calculating PutEvents event entry size" computes it."""
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        if entry.get(name) is not None:
            size += _utf8(entry[name])
    return size + sum(_utf8(resource) for resource in entry.get("Resources") or [])


def events_put_events(params: dict[str, Any]) -> Iterator[Breach]:
    entries = params.get("Entries") or []
    if not 1 <= len(entries) <= 10:
        yield Breach("events.entry-count", f"{len(entries)} entries")
    for index, entry in enumerate(entries):
        size = event_entry_size(entry)
        if size > 256 * KB:
            yield Breach("events.entry-size", f"entry {index}: {size:,} bytes")
        missing = [name for name in ("Source", "DetailType", "Detail") if not entry.get(name)]
        if missing:
            yield Breach("events.required", f"entry {index} without {', '.join(missing)}")
        elif not _json_object(entry["Detail"]):
            yield Breach("events.required", f"entry {index}: Detail {str(entry['Detail'])[:60]!r}")
        if str(entry.get("Source", "")).startswith("aws."):
            yield Breach("events.aws-source", f"entry {index}: Source {entry['Source']!r}")


def _json_object(text: Any) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (TypeError, ValueError):
        return False


# ---- Security Hub ----------------------------------------------------------------------------------------


def finding_size(finding: dict[str, Any]) -> int:
    return len(json.dumps(finding, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def securityhub_batch_import_findings(params: dict[str, Any]) -> Iterator[Breach]:
    findings = params.get("Findings") or []
    if not 1 <= len(findings) <= 100:
        yield Breach("securityhub.finding-count", f"{len(findings)} findings")
    for index, finding in enumerate(findings):
        size = finding_size(finding)
        if size > 240 * KB:
            yield Breach("securityhub.finding-size", f"finding {index}: {size:,} bytes")


# ---- SQS -------------------------------------------------------------------------------------------------

_SQS_CHARACTERS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_message_size(message: dict[str, Any]) -> int:
    return _utf8(message.get("MessageBody", "")) + _attributes_size(message.get("MessageAttributes") or {})


def _sqs_message(message: dict[str, Any], where: str) -> Iterator[Breach]:
    size = sqs_message_size(message)
    if size > 256 * KB:
        yield Breach("sqs.message-size", f"{where}{size:,} bytes")
    body = str(message.get("MessageBody", ""))
    invalid = _SQS_CHARACTERS.search(body)
    if not body:
        yield Breach("sqs.body", f"{where}an empty body")
    elif invalid:
        yield Breach("sqs.body", f"{where}character {invalid[0]!r}")
    yield from _in_range("sqs.delay", f"{where}DelaySeconds", message.get("DelaySeconds"), 0, 900)
    attributes = message.get("MessageAttributes") or {}
    if len(attributes) > 10:
        yield Breach("sqs.attribute-count", f"{where}{len(attributes)} attributes")


def sqs_send_message(params: dict[str, Any]) -> Iterator[Breach]:
    yield from _sqs_message(params, "")


def sqs_send_message_batch(params: dict[str, Any]) -> Iterator[Breach]:
    entries = params.get("Entries") or []
    if not 1 <= len(entries) <= 10:
        yield Breach("sqs.batch-count", f"{len(entries)} entries")
    total = sum(sqs_message_size(entry) for entry in entries)
    if total > 256 * KB:
        yield Breach("sqs.batch-size", f"{total:,} bytes")
    ids = [str(entry.get("Id", "")) for entry in entries]
    bad = [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", i)]
    if bad or len(set(ids)) != len(ids):
        yield Breach("sqs.batch-id", f"Ids {ids[:12]!r}")
    for entry in entries:
        yield from _sqs_message(entry, f"entry {entry.get('Id')!r}: ")


# ---- DynamoDB --------------------------------------------------------------------------------------------


_WIRE_TYPES = {"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}


def plain(value: Any) -> Any:
    """A DynamoDB attribute value of a request as the Python value dynamodb_size measures: botocore's
    `{"S": "x"}`, or already a Python value (boto3's table resource converts its values after this point)."""
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _WIRE_TYPES):
        return _python(value)
    ((kind, inner),) = value.items()
    match kind:
        case "S":
            return str(inner)
        case "N":
            return Decimal(str(inner))
        case "B":
            return inner if isinstance(inner, bytes) else str(inner).encode()
        case "BOOL" | "NULL":
            return bool(inner)
        case "SS":
            return {str(v) for v in inner}
        case "NS":
            return {Decimal(str(v)) for v in inner}
        case "BS":
            return {v if isinstance(v, bytes) else str(v).encode() for v in inner}
        case "L":
            return [plain(v) for v in inner]
        case "M":
            return {k: plain(v) for k, v in inner.items()}
    raise ValueError(f"DynamoDB attribute value of type {kind}")


def _python(value: Any) -> Any:
    if type(value).__name__ == "Binary":  # boto3.dynamodb.types.Binary
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_python(v) for v in value]
    return value


def item_size(item: dict[str, Any]) -> int:
    """An item of a request, as DynamoDB counts its size: attribute names plus values."""
    return sum(_utf8(name) + attribute_size(plain(value)) for name, value in item.items())


@cache
def key_schemas() -> tuple[tuple[str, str, str | None], ...]:
    """The key schema of the table in template.yaml and of each of its indexes: (name, partition key
    attribute, sort key attribute). An item is in an index when it has the index's key attributes."""
    found: list[tuple[str, str, str | None]] = []
    for logical_id, resource in load_template(TEMPLATE)["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        properties = resource["Properties"]
        indexes = properties.get("GlobalSecondaryIndexes", []) + properties.get("LocalSecondaryIndexes", [])
        for name, schema in [
            (logical_id, properties["KeySchema"]),
            *((index["IndexName"], index["KeySchema"]) for index in indexes),
        ]:
            roles = {key["KeyType"]: key["AttributeName"] for key in schema}
            found.append((name, roles["HASH"], roles.get("RANGE")))
    return tuple(found)


def _key_value_size(value: Any) -> int | None:
    """A string or binary key value's size (a number key is bounded by its type, not by these limits)."""
    converted = plain(value)
    return attribute_size(converted) if isinstance(converted, str | bytes) else None


def _key_values(item: dict[str, Any], where: str) -> Iterator[Breach]:
    """The key values of the item in the table and in every index it is in: a partition key 1 to 2,048
    bytes, a sort key 1 to 1,024 (a number key is bounded by its type, not by these)."""
    seen = set()
    for index, partition, sort in key_schemas():
        if partition not in item:
            continue  # not in this index (a sparse index holds only the items with its key attributes)
        for attribute, limit, maximum in (
            (partition, "dynamodb.partition-key", 2048),
            (sort, "dynamodb.sort-key", 1024),
        ):
            if attribute is None or attribute not in item or (attribute, limit) in seen:
                continue
            size = _key_value_size(item[attribute])
            if size is not None and not 1 <= size <= maximum:
                seen.add((attribute, limit))
                yield Breach(limit, f"{where}{attribute} {size:,} bytes ({index})")


def _item(item: dict[str, Any], where: str) -> Iterator[Breach]:
    size = item_size(item)
    if size > 400 * KB:
        yield Breach("dynamodb.item-size", f"{where}{size:,} bytes")
    yield from _key_values(item, where)


_EXPRESSIONS = (
    "UpdateExpression",
    "ConditionExpression",
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
)


def _expressions(params: dict[str, Any], where: str) -> Iterator[Breach]:
    for name in _EXPRESSIONS:
        size = _utf8(params.get(name) or "")
        if size > 4 * KB:
            yield Breach("dynamodb.expression", f"{where}{name} {size:,} bytes")


def assigned(params: dict[str, Any]) -> dict[str, Any]:
    """The attributes an update sets directly (`SET name = :value`), with their values."""
    names = params.get("ExpressionAttributeNames") or {}
    values = params.get("ExpressionAttributeValues") or {}
    expression = str(params.get("UpdateExpression") or "")
    found = {}
    for left, right in re.findall(r"(#?\w+)\s*=\s*(:\w+)", expression):
        if right in values:
            found[names.get(left, left)] = values[right]
    return found


def _update(params: dict[str, Any], where: str) -> Iterator[Breach]:
    """What an update's request shows: its key, each of its values, and the key plus what it sets directly."""
    key = params.get("Key") or {}
    yield from _key_values(key, where)
    for name, value in (params.get("ExpressionAttributeValues") or {}).items():
        size = attribute_size(plain(value))
        if size > 400 * KB:
            yield Breach("dynamodb.item-size", f"{where}value {name} {size:,} bytes")
    written = key | assigned(params)
    size = item_size(written)
    if size > 400 * KB:
        yield Breach("dynamodb.item-size", f"{where}key and set attributes {size:,} bytes")
    yield from _key_values({k: v for k, v in written.items() if k not in key}, where)
    yield from _expressions(params, where)


def update_size(params: dict[str, Any]) -> int:
    """The least an update writes, as far as the request shows: its key and every value it carries."""
    values = params.get("ExpressionAttributeValues") or {}
    return item_size(params.get("Key") or {}) + sum(attribute_size(plain(v)) for v in values.values())


def dynamodb_put_item(params: dict[str, Any]) -> Iterator[Breach]:
    yield from _item(params.get("Item") or {}, "")
    yield from _expressions(params, "")


def dynamodb_update_item(params: dict[str, Any]) -> Iterator[Breach]:
    yield from _update(params, "")


def dynamodb_keyed(params: dict[str, Any]) -> Iterator[Breach]:
    yield from _key_values(params.get("Key") or {}, "")
    yield from _expressions(params, "")


def dynamodb_batch_write_item(params: dict[str, Any]) -> Iterator[Breach]:
    writes = [write for table in (params.get("RequestItems") or {}).values() for write in table]
    if len(writes) > 25:
        yield Breach("dynamodb.batch-write-count", f"{len(writes)} requests")
    # BatchWriteItem's 16 MB in all follows from these: 25 items of at most 400 KB are 10 MB.
    for index, write in enumerate(writes):
        if "PutRequest" in write:
            yield from _item(write["PutRequest"]["Item"], f"request {index}: ")
        else:
            yield from _key_values(write["DeleteRequest"]["Key"], f"request {index}: ")


def dynamodb_batch_get_item(params: dict[str, Any]) -> Iterator[Breach]:
    keys = [key for table in (params.get("RequestItems") or {}).values() for key in table.get("Keys", [])]
    if len(keys) > 100:
        yield Breach("dynamodb.batch-get-count", f"{len(keys)} keys")
    for index, key in enumerate(keys):
        yield from _key_values(key, f"key {index}: ")


def dynamodb_transact_write_items(params: dict[str, Any]) -> Iterator[Breach]:
    actions = params.get("TransactItems") or []
    if len(actions) > 100:
        yield Breach("dynamodb.transact-count", f"{len(actions)} actions")
    total = 0
    for index, action in enumerate(actions):
        ((kind, body),) = action.items()
        where = f"action {index} ({kind}): "
        if kind == "Put":
            total += item_size(body.get("Item") or {})
            yield from _item(body.get("Item") or {}, where)
            yield from _expressions(body, where)
        elif kind == "Update":
            total += update_size(body)
            yield from _update(body, where)
        else:
            total += item_size(body.get("Key") or {})
            yield from _key_values(body.get("Key") or {}, where)
            yield from _expressions(body, where)
    if total > 4 * MB:
        yield Breach("dynamodb.transact-size", f"{total:,} bytes")


def dynamodb_transact_get_items(params: dict[str, Any]) -> Iterator[Breach]:
    actions = params.get("TransactItems") or []
    if len(actions) > 100:
        yield Breach("dynamodb.transact-get-count", f"{len(actions)} actions")
    for index, action in enumerate(actions):
        yield from _key_values(action.get("Get", {}).get("Key") or {}, f"action {index}: ")


def dynamodb_expressions(params: dict[str, Any]) -> Iterator[Breach]:
    yield from _expressions(params, "")


# ---- STS, Lambda, KMS and the listings -------------------------------------------------------------------


def sts_assume_role(params: dict[str, Any]) -> Iterator[Breach]:
    name = params.get("RoleSessionName")
    if name is not None and not re.fullmatch(r"[\w+=,.@-]{2,64}", str(name), re.ASCII):
        yield Breach("sts.session-name", f"{len(str(name))} characters: {str(name)[:70]!r}")
    external = params.get("ExternalId")
    if external is not None and not re.fullmatch(r"[\w+=,.@:/-]{2,1224}", str(external), re.ASCII):
        yield Breach("sts.external-id", f"{len(str(external))} characters")
    yield from _in_range("sts.duration", "DurationSeconds", params.get("DurationSeconds"), 900, 43200)


def environment_size(variables: dict[str, Any]) -> int:
    """Lambda's measure of a function's environment variables: the variables as JSON, in bytes (its error
    quotes the string it measured, `{"KEY":"value",...}`)."""
    return len(json.dumps(variables, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def lambda_environment(params: dict[str, Any]) -> Iterator[Breach]:
    variables = (params.get("Environment") or {}).get("Variables")
    if variables is not None:
        size = environment_size(variables)
        if size > 4 * KB:
            yield Breach("lambda.environment", f"{size:,} bytes")


def _bounded(limit: str, name: str, low: int, high: int) -> Check:
    def check(params: dict[str, Any]) -> Iterator[Breach]:
        yield from _in_range(limit, name, params.get(name), low, high)

    return check


def cloudtrail_lookup_events(params: dict[str, Any]) -> Iterator[Breach]:
    yield from _in_range("cloudtrail.lookup-max", "MaxResults", params.get("MaxResults"), 1, 50)
    attributes = params.get("LookupAttributes") or []
    if len(attributes) > 1:
        yield Breach("cloudtrail.lookup-attributes", f"{len(attributes)} attributes")


# The check of each (service, operation); an operation not listed has no limit the tests could reach.
CHECKS: dict[tuple[str, str], Check] = {
    ("sns", "Publish"): sns_publish,
    ("events", "PutEvents"): events_put_events,
    ("securityhub", "BatchImportFindings"): securityhub_batch_import_findings,
    ("sqs", "SendMessage"): sqs_send_message,
    ("sqs", "SendMessageBatch"): sqs_send_message_batch,
    ("dynamodb", "PutItem"): dynamodb_put_item,
    ("dynamodb", "UpdateItem"): dynamodb_update_item,
    ("dynamodb", "DeleteItem"): dynamodb_keyed,
    ("dynamodb", "GetItem"): dynamodb_keyed,
    ("dynamodb", "BatchWriteItem"): dynamodb_batch_write_item,
    ("dynamodb", "BatchGetItem"): dynamodb_batch_get_item,
    ("dynamodb", "TransactWriteItems"): dynamodb_transact_write_items,
    ("dynamodb", "TransactGetItems"): dynamodb_transact_get_items,
    ("dynamodb", "Query"): dynamodb_expressions,
    ("dynamodb", "Scan"): dynamodb_expressions,
    ("sts", "AssumeRole"): sts_assume_role,
    ("lambda", "UpdateFunctionConfiguration"): lambda_environment,
    ("lambda", "CreateFunction"): lambda_environment,
    ("lambda", "ListFunctions"): _bounded("lambda.list-functions-max", "MaxItems", 1, 10_000),
    ("kms", "ListGrants"): _bounded("kms.list-grants-limit", "Limit", 1, 100),
    ("kms", "ListKeys"): _bounded("kms.list-keys-limit", "Limit", 1, 1000),
    ("organizations", "ListAccounts"): _bounded("organizations.list-accounts-max", "MaxResults", 1, 20),
    ("cloudtrail", "LookupEvents"): cloudtrail_lookup_events,
}


def check(service: str, operation: str, params: dict[str, Any]) -> list[Breach]:
    """The limits a request exceeds (none for an operation the contract has no limits of)."""
    found = CHECKS.get((service, operation))
    return list(found(params)) if found else []


# ---- recording every request -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """A request over a limit, or a request the checks could not read (`error`), and who made it."""

    where: str  # the test, and the Lambda function whose code made the request when there is one
    call: str  # "service Operation"
    breach: Breach | None
    error: str = ""

    def line(self) -> str:
        what = self.breach.line() if self.breach else f"the limits check failed: {self.error}"
        return f"{self.where}: {self.call}: {what}"


@dataclass
class Session:
    """What the run recorded (tests/support/limits_contract_plugin.py installs it for the session)."""

    requests: Counter[str] = field(default_factory=Counter)
    violations: dict[str, Violation] = field(default_factory=dict)
    declared: dict[str, str] = field(default_factory=dict)  # violation -> the test's declared reason
    elsewhere: set[str] = field(default_factory=set)  # what other processes of the run recorded
    elsewhere_declared: dict[str, str] = field(default_factory=dict)
    allowance: str | None = None  # the reason the running test declared (exceeds_aws_limits)
    exceeded_under_allowance: int = 0
    captures: list[list[Violation]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sink(self, where: str, service: str, operation: str, params: dict[str, Any]) -> None:
        """Check one request; never raises (the code under test could swallow it)."""
        call = f"{service} {operation}"
        try:
            found = [Violation(where, call, breach) for breach in check(service, operation, params)]
        except Exception as error:  # a checker's failure is recorded, never raised
            found = [Violation(where, call, None, f"{type(error).__name__}: {error}")]
        with self._lock:
            self.requests[call] += 1
            for violation in found:
                self._record(violation)

    def _record(self, violation: Violation) -> None:
        if self.captures:
            self.captures[-1].append(violation)
        elif self.allowance is not None:
            self.exceeded_under_allowance += 1
            self.declared.setdefault(violation.line(), self.allowance)
        else:
            self.violations.setdefault(violation.line(), violation)

    @contextmanager
    def taken(self) -> Iterator[list[Violation]]:
        """The violations of the requests made inside the block, for a test to assert on: they are the test's
        own and do not count for the run."""
        captured: list[Violation] = []
        self.captures.append(captured)
        try:
            yield captured
        finally:
            self.captures.remove(captured)

    def report(self) -> list[str]:
        return sorted(set(self.violations) | self.elsewhere)

    def declared_report(self) -> dict[str, str]:
        return {**self.declared, **self.elsewhere_declared}

    def export(self) -> dict[str, Any]:
        """What this process recorded, as plain data (what pytest-xdist carries from a worker)."""
        return {
            "violations": self.report(),
            "declared": self.declared_report(),
            "requests": dict(self.requests),
        }

    def absorb(self, exported: dict[str, Any]) -> None:
        """Count what another process recorded (a pytest-xdist worker's export) as this run's."""
        self.elsewhere.update(exported["violations"])
        self.elsewhere_declared.update(exported["declared"])
        self.requests.update(exported["requests"])


SESSION = Session()


_WRAPPERS = {__name__, "tests.support.iam_contract"}


def _where() -> str:
    import os
    import sys

    from tests.support.iam_contract import attribute

    running = os.environ.get("PYTEST_CURRENT_TEST", "outside any test").rsplit(" (", 1)[0]
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in _WRAPPERS:
        frame = frame.f_back  # this contract's wrapper and the IAM contract's, whichever is outermost
    function, _ = attribute(frame)
    return f"{running} [{function}]" if function else running


# Where the notice check sends a notice: the stack's topics, bus and Security Hub product, as configured.
NOTICE_TOPIC = "arn:aws:sns:us-east-1:123456789012:grantwatch-AlertTopic-0123456789AB"
NOTICE_BUS = "grantwatch-alerts"
NOTICE_PRODUCT = "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default"


class _Capturing:
    """An AWS client for the channel adapters that sends nothing: each request goes to the contract, and
    the answer is AWS's for a request accepted."""

    def __init__(self, session: Session, service: str, where: str) -> None:
        self.session, self.service, self.where = session, service, where

    def _sink(self, operation: str, params: dict[str, Any]) -> None:
        self.session.sink(self.where, self.service, operation, params)

    def publish(self, **params: Any) -> dict[str, Any]:
        self._sink("Publish", params)
        return {"MessageId": "checked"}

    def put_events(self, **params: Any) -> dict[str, Any]:
        self._sink("PutEvents", params)
        return {"FailedEntryCount": 0, "Entries": []}

    def batch_import_findings(self, **params: Any) -> dict[str, Any]:
        self._sink("BatchImportFindings", params)
        return {"FailedCount": 0, "SuccessCount": len(params.get("Findings", [])), "FailedFindings": []}


def check_notice(session: Session, notice: Any) -> None:
    """A notice as the requests each channel's adapter would send for it (SNS text and chat topics, the
    event bus, Security Hub), checked; never raises."""
    from grantwatch.adapters.channels import Channel, ChatTopic, EventBus, SecurityHub
    from grantwatch.adapters.notifier import SnsNotifier

    try:
        where = _where()
        channels: list[Channel] = [
            SnsNotifier(NOTICE_TOPIC, client=_Capturing(session, "sns", where)),  # type: ignore[arg-type]
            ChatTopic(NOTICE_TOPIC, client=_Capturing(session, "sns", where)),  # type: ignore[arg-type]
            EventBus(NOTICE_BUS, client=_Capturing(session, "events", where)),  # type: ignore[arg-type]
            SecurityHub(NOTICE_PRODUCT, client=_Capturing(session, "securityhub", where)),  # type: ignore[arg-type]
        ]
        for channel in channels:
            channel.publish(notice)
    except Exception as error:  # recorded, never raised into the code under test
        with session._lock:
            session._record(Violation("a notice", "notice", None, f"{type(error).__name__}: {error}"))


@dataclass
class Recording:
    """Wraps botocore's BaseClient._make_api_call: every request is checked before it is sent."""

    session: Session
    _original: Any = None
    _wrapper: Any = None
    _notices: Any = None
    active: bool = False

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        recording = self

        def checked(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if recording.active:
                try:
                    service = client.meta.service_model.service_name
                    where = _where()
                except Exception as error:  # never raised into the code under test
                    service, where = "unknown", f"(who made it: {error})"
                recording.session.sink(where, service, operation_name, api_params)
            return original(client, operation_name, api_params)

        self._original, self._wrapper, self.active = original, checked, True
        BaseClient._make_api_call = checked  # type: ignore[attr-defined]
        self._install_notices()

    def _install_notices(self) -> None:
        """The local pipeline's notifier (where the CLI's and many tests' notices go instead of SNS): each
        notice it collects is checked as the requests every channel's adapter would send for it."""
        from grantwatch.pipeline import CollectingNotifier

        original = CollectingNotifier.publish
        recording = self

        def collected(notifier: Any, notice: Any) -> None:
            if recording.active:
                check_notice(recording.session, notice)
            original(notifier, notice)

        self._notices = original
        CollectingNotifier.publish = collected  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        """Stops checking; restores botocore's method unless another wrapper was installed over this one."""
        from botocore.client import BaseClient

        from grantwatch.pipeline import CollectingNotifier

        self.active = False
        if self._wrapper is not None and BaseClient._make_api_call is self._wrapper:  # type: ignore[attr-defined]
            BaseClient._make_api_call = self._original  # type: ignore[attr-defined]
        if self._notices is not None:
            CollectingNotifier.publish = self._notices  # type: ignore[method-assign]
            self._notices = None


RECORDING = Recording(SESSION)
