"""IAM as a tested contract: every AWS call a Lambda function's code makes in the tests, checked against that
function's policy in template.yaml.

Every botocore call, pynamodb's included (it calls `BaseClient._make_api_call` on a client of its own), is
seen by one wrapper. A call is attributed to the Lambda function whose corridor made it: the innermost frame
on the call stack that belongs to a corridor module (the CLI, the replay pipeline and the handlers all reuse
the corridors) or to a function's handler (as template.yaml names it), whatever test code sits between it and
botocore (a test double wrapping a client). A call made outside every corridor (test set-up, CLI queries) is
no Lambda function's and is not checked; so is a call a test makes from a botocore event hook while another
call is in flight (a stand-in playing an AWS service, as Lambda creating a grant).

Each call becomes the IAM requests AWS authorizes for it (a transaction: one per item; an index: the index
ARN; an UpdateFunctionConfiguration that names a role: iam:PassRole on it), on the resource the call itself
names (its TableName, TopicArn, QueueUrl, KeyId, FunctionName, ...) in the caller's account and the client's
region, with the condition keys that can be computed from the request (dynamodb:LeadingKeys), and is decided
by a small policy evaluator over the function's policies as the stack deploys them in its own account and
region (STACK_ACCOUNT, STACK_REGION): Action and Resource wildcards, Allow and Deny, the condition operators
the template uses. A call made with a member account's role's credentials is decided by that role's policy
(member/forwarder.yaml), deployed in the member's account.

The tests create tables, topics and queues with names of their own: the fixtures that create one say which
template resource it stands for (`stands_for`). A name nobody registered is a violation, as is a condition
key whose value the contract cannot compute from the request (a legacy `KeyConditions` query, an index
query, a key condition it cannot parse): a condition key no request in the tests can carry must be listed in
UNEVALUATED_CONDITIONS with the code path that handles its denial. An error inside the checker is a
violation too, never an exception into the code under test.

A run that collected the whole tests/ tree also fails when a function of template.yaml made no checked call.
The CLI's own calls (queries, migrations, table creation) are no function's: the CLI runs with the
operator's credentials and the project documents no operator policy to check them against. The corridors a
CLI subprocess drives are checked in that subprocess (tests/support/iam_contract_subprocess.py).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

from tests.support.cloudformation import Stack
from tests.support.samples import TEMPLATE

# Every optional part of the stack deployed, so that every function and statement exists.
# The temporary role is the one the self-healing tests configure (checked in tests/unit/test_iam_contract.py).
PARAMETERS = {
    "SelfHealing": "true",
    "SelfHealingTemporaryRoleArn": "arn:aws:iam::123456789012:role/grantwatch-heal-temporary",
    "ConfirmWithDecryptFailures": "true",
    "OrganizationId": "o-a1b2c3d4e5",
    "RetentionDays": "30",
    "OrganizationReconciliation": "true",
    "ExternalId": "grantwatch-test-external-id",
    "AccountIdsParameter": "/grantwatch/accounts",
    "ChatTopicArn": "create",
    "AlertEventBusName": "grantwatch-alerts",
    "SecurityHubFindings": "true",
}
# The account and region the tests' stack is deployed in: the account moto gives the tests' credentials and
# the region tests/conftest.py sets. Every central function's call is made from here, whatever resource it
# names.
STACK_ACCOUNT = "123456789012"
STACK_REGION = "us-east-1"
MEMBER_TEMPLATE = TEMPLATE.parent / "member" / "forwarder.yaml"
# The member account's stack as the organization deploys it (the read-only role created).
MEMBER_PARAMETERS = {
    "CentralEventBusArn": f"arn:aws:events:{STACK_REGION}:{STACK_ACCOUNT}:event-bus/grantwatch",
    "CentralAccountId": STACK_ACCOUNT,
    "OrganizationId": "o-a1b2c3d4e5",
    "ExternalId": "grantwatch-test-external-id",
}
MEMBER_ROLE = "ReadRole"

# The corridor each function's code runs through: the domain module its handler drives, which the CLI and the
# local pipeline drive too. (The handler modules themselves are read from template.yaml.)
CORRIDORS = {
    "grantwatch.recorder": "RecorderFunction",
    "grantwatch.evaluator": "EvaluatorFunction",
    "grantwatch.reconciler": "ReconcilerFunction",
    "grantwatch.healer": "RemediationFunction",
    "grantwatch.fanout": "OrganizationFanOutFunction",
    "grantwatch.canary": "CanaryFunction",
}

# Corridors that run another corridor's code as a function of their own: every call made inside them is that
# function's, whichever corridor is innermost (an organization worker runs the reconciler's corridor).
RUNS_AS = {"grantwatch.organization": "OrganizationWorkerFunction"}

# The template resource types whose test stand-ins have names of their own, and the service that names them.
NAMED_KINDS = {
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::SNS::Topic": "sns",
    "AWS::SQS::Queue": "sqs",
    "AWS::KMS::Key": "kms",
}

# Condition keys no request in the tests can carry, each with the code path that handles AWS's denial when the
# condition does not hold. A statement conditioned on one of these is taken to allow the call.
# (module, qualified name of the code, what it does with the denial)
UNEVALUATED_CONDITIONS = {
    "aws:ResourceTag/*": (
        "grantwatch.adapters.lambda_healer",
        "AwsFunctionHealer.function",
        "Lambda answers AccessDeniedException for a function without the self-heal tag (or in another "
        "account): the healer takes it as not opted in",
    ),
}

# Calls that need no permission.
UNAUTHORIZED_CALLS = {("sts", "GetCallerIdentity")}

# Calls a grant authorizes, not a policy (KMS's "Retiring and revoking grants", "Grant tokens"): by the
# function whose policy lets it create that grant, naming itself retiring principal (the canary's
# CanaryRolePolicy, tests/unit/test_canary_template.py). An Encrypt counts only with the grant's token.
GRANT_AUTHORIZED = {("CanaryFunction", "kms:RetireGrant"), ("CanaryFunction", "kms:Encrypt")}


def authorized_by_a_grant(function: str, service: str, operation: str, params: dict[str, Any]) -> bool:
    if (function, f"{service}:{operation}") not in GRANT_AUTHORIZED:
        return False
    return operation == "RetireGrant" or bool(params.get("GrantTokens"))


# Calls a function makes to be refused: the policy must deny them (the canary's Decrypt fails because its
# grant is gone; a policy that allowed kms:Decrypt would make it succeed and prove nothing).
MUST_BE_DENIED = {("CanaryFunction", "kms:Decrypt")}


@dataclass(frozen=True, slots=True)
class Request:
    """One IAM authorization: an action on a resource, with the condition keys the request carries, and those
    it carries but the contract could not compute (`uncomputed`: a statement conditioned on one of them
    cannot be decided, and the call is a violation)."""

    action: str
    resource: str
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()
    uncomputed: tuple[str, ...] = ()

    def values(self, key: str) -> tuple[str, ...] | None:
        return dict(self.context).get(key)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    assumed: tuple[str, ...] = ()  # condition keys taken to hold (UNEVALUATED_CONDITIONS)
    reason: str = ""


class Unknown(Exception):
    """A condition key the request does not carry."""


class Uncomputed(Exception):
    """A condition key the request carries, whose value the contract could not compute."""


# ---- the template side: each function's statements, resolved for an account and region ------------------


@cache
def _template_stack() -> Stack:
    return Stack.load(TEMPLATE, parameters=PARAMETERS)


@cache
def stack_for(account: str, region: str) -> Stack:
    base = _template_stack()
    return Stack(base.template, parameters=PARAMETERS, account=account, region=region)


def central_stack() -> Stack:
    """The stack as the tests deploy it, in its own account and region: every central function's policy."""
    return stack_for(STACK_ACCOUNT, STACK_REGION)


def handler_modules(stack: Stack) -> dict[str, str]:
    """The module of each function's handler, e.g. grantwatch.handlers.recorder -> RecorderFunction."""
    found = {}
    for logical_id, resource in stack.resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            found[resource["Properties"]["Handler"].rsplit(".", 1)[0]] = logical_id
    return found


def functions(stack: Stack) -> set[str]:
    """Every Lambda function of the template."""
    return {k for k, r in stack.resources.items() if r["Type"] == "AWS::Serverless::Function"}


def statements(stack: Stack, function: str) -> list[dict[str, Any]]:
    """The function's policy statements with every intrinsic function resolved: SAM's Policies, or the
    inline policies of the role it names (Role: !GetAtt SomeRole.Arn)."""
    properties = stack.resources[function]["Properties"]
    if "Role" in properties:
        role = _role_of(properties["Role"])
        return role_statements(stack, role) + attached_statements(stack, role)
    found: list[dict[str, Any]] = []
    for policy in properties.get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            document = stack.resolve(policy)
        else:
            raise ValueError(f"{function}: a policy this contract cannot read: {policy!r} (teach it)")
        listed = document["Statement"]
        found.extend(listed if isinstance(listed, list) else [listed])
    return found + attached_statements(stack, f"{function}Role")


def attached_statements(stack: Stack, role: str) -> list[dict[str, Any]]:
    """The statements of the inline policies (AWS::IAM::Policy) the template attaches to a role by its
    logical id, SAM's generated <Function>Role included; a document written as JSON text is parsed."""
    found: list[dict[str, Any]] = []
    for logical_id, resource in stack.resources.items():
        if resource["Type"] != "AWS::IAM::Policy" or not stack.exists(logical_id):
            continue
        if {"Ref": role} not in resource["Properties"]["Roles"]:
            continue
        document = stack.resolve(resource["Properties"]["PolicyDocument"])
        document = json.loads(document) if isinstance(document, str) else document
        listed = document["Statement"]
        found.extend(listed if isinstance(listed, list) else [listed])
    return found


def _role_of(role: Any) -> str:
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        logical_id, attribute = target if isinstance(target, list) else target.split(".", 1)
        if attribute == "Arn":
            return str(logical_id)
    raise ValueError(f"a function role this contract cannot read: {role!r} (teach it)")


def role_statements(stack: Stack, role: str) -> list[dict[str, Any]]:
    """An AWS::IAM::Role's inline policy statements, resolved."""
    found: list[dict[str, Any]] = []
    for policy in stack.resources[role]["Properties"].get("Policies", []):
        listed = stack.resolve(policy["PolicyDocument"])["Statement"]
        found.extend(listed if isinstance(listed, list) else [listed])
    return found


@cache
def member_stack(account: str) -> Stack:
    """A member account's stack, in the region that creates its read-only role (IAM roles are global)."""
    base = Stack.load(MEMBER_TEMPLATE, parameters=MEMBER_PARAMETERS, account=account)
    region = base.parameter("MemberRoleRegion")
    return Stack(base.template, parameters=MEMBER_PARAMETERS, account=account, region=region)


def environment(stack: Stack, function: str) -> dict[str, Any]:
    """A function's environment variables as the stack sets them (Globals and its own), resolved."""
    common = stack.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = stack.resources[function]["Properties"].get("Environment", {}).get("Variables", {})
    resolved: dict[str, Any] = stack.resolve({**common, **own})
    return resolved


def hash_key_name(stack: Stack) -> str:
    for resource in stack.resources.values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            schema = resource["Properties"]["KeySchema"]
            return str(next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH"))
    raise ValueError("no table in the template")


# ---- which template resource each of the tests' tables, topics and queues stands for -------------------

# (service, name) -> logical id. Filled by the fixtures that create a table, topic or queue (`stands_for`);
# a subprocess of the run reads the file named by REGISTRY_VARIABLE, which this process keeps up to date.
REGISTRY: dict[tuple[str, str], str] = {}
REGISTRY_VARIABLE = "GRANTWATCH_IAM_CONTRACT_REGISTRY"


def resource_name(service: str, named: str) -> str:
    """A table's name, a topic's ARN or a queue's URL, as the bare name of the resource."""
    if service == "sns":
        return named.rsplit(":", 1)[-1]
    if service == "sqs":
        return named.rstrip("/").rsplit("/", 1)[-1]
    if service == "kms":
        return named.rsplit("key/", 1)[-1]
    return named.rsplit("/", 1)[-1] if named.startswith("arn:") else named


def stands_for(logical_id: str, named: str) -> str:
    """Registers a table (its name), topic (ARN), queue (URL) or key (ARN) the tests created as the template's
    resource `logical_id`: a function's call to it is checked as a call to that resource. Answers `named`."""
    kind = _template_stack().resources[logical_id]["Type"]
    service = NAMED_KINDS.get(kind)
    if service is None:
        raise ValueError(f"{logical_id} is a {kind}, not a table, topic or queue")
    key = (service, resource_name(service, named))
    with _lock:
        if REGISTRY.get(key, logical_id) != logical_id:
            raise ValueError(f"{service} {key[1]} already stands for {REGISTRY[key]}, not {logical_id}")
        REGISTRY[key] = logical_id
        _write_registry()
    return named


def _write_registry() -> None:
    path = os.environ.get(REGISTRY_VARIABLE)
    if path:
        listed = [[service, name, logical_id] for (service, name), logical_id in sorted(REGISTRY.items())]
        Path(path).write_text(json.dumps(listed), encoding="utf-8")


def _registered_as(service: str, name: str) -> str:
    found = REGISTRY.get((service, name))
    path = os.environ.get(REGISTRY_VARIABLE)
    if found is None and path and Path(path).exists():  # registered by the process that started this one
        for listed_service, listed_name, logical_id in json.loads(Path(path).read_text(encoding="utf-8")):
            REGISTRY.setdefault((listed_service, listed_name), logical_id)
        found = REGISTRY.get((service, name))
    if found is None:
        raise ValueError(
            f"{service} resource {name} stands for no resource of template.yaml: the fixture that creates it "
            "must say which (tests.support.iam_contract.stands_for)"
        )
    return found


# ---- the policy evaluator ----------------------------------------------------------------------------------


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, case: bool = True) -> bool:
    """IAM's wildcards: * any run of characters (slashes and colons too), ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _operator_matches(operator: str, expected: str, actual: str) -> bool:
    match operator:
        case "StringEquals" | "ArnEquals":
            return actual == expected
        case "StringEqualsIgnoreCase":
            return actual.lower() == expected.lower()
        case "StringLike" | "ArnLike":
            return _wildcard(expected, actual)
        case "Bool":
            return actual.lower() == str(expected).lower()
    raise ValueError(f"condition operator {operator} (teach the contract)")


def _condition_holds(operator: str, key: str, expected: list[str], request: Request) -> bool:
    qualifier, _, base = operator.rpartition(":")
    negated = base.startswith(("StringNot", "ArnNot"))
    positive = base.replace("StringNot", "String").replace("ArnNot", "Arn")
    if key in request.uncomputed:
        raise Uncomputed(key)
    values = request.values(key)
    if values is None:
        if qualifier == "ForAllValues":
            return True  # AWS: true when the request has no value for the key
        raise Unknown(key)

    def one(actual: str) -> bool:
        return any(_operator_matches(positive, str(e), actual) for e in expected) != negated

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def _registered(key: str) -> str | None:
    return next((p for p in UNEVALUATED_CONDITIONS if fnmatch.fnmatchcase(key, p)), None)


def _applies(statement: dict[str, Any], request: Request) -> tuple[bool, tuple[str, ...]]:
    """Whether a statement applies to the request, and the unevaluated condition keys it was assumed for."""
    if "NotAction" in statement or "NotResource" in statement:
        raise ValueError("NotAction/NotResource (teach the contract)")
    if not any(_wildcard(a, request.action, case=False) for a in _listed(statement["Action"])):
        return False, ()
    if not any(_wildcard(r, request.resource) for r in _listed(statement.get("Resource", "*"))):
        return False, ()
    assumed: list[str] = []
    for operator, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            try:
                if not _condition_holds(operator, key, [str(e) for e in _listed(expected)], request):
                    return False, ()
            except Unknown:
                if _registered(key) is None:
                    raise
                assumed.append(key)
    return True, tuple(assumed)


def decide(policy: list[dict[str, Any]], request: Request) -> Decision:
    """Explicit deny, else an allow, else the implicit deny. A condition key neither computed nor listed in
    UNEVALUATED_CONDITIONS, or one the request carries with a value the contract could not compute, is a
    denial that says so."""
    allowed: Decision | None = None
    for statement in policy:
        try:
            applies, assumed = _applies(statement, request)
        except Unknown as unknown:
            return Decision(
                False,
                reason=f"condition key {unknown} cannot be evaluated: name it in UNEVALUATED_CONDITIONS",
            )
        except Uncomputed as uncomputed:
            return Decision(
                False,
                reason=f"condition key {uncomputed} of statement {statement.get('Sid', '?')}: the request's "
                "value cannot be computed (teach the contract its form), so the statement cannot be decided",
            )
        if not applies:
            continue
        if statement["Effect"] == "Deny":
            return Decision(False, reason=f"denied by statement {statement.get('Sid', '?')}")
        if allowed is None or (allowed.assumed and not assumed):
            allowed = Decision(True, assumed)
    return allowed or Decision(False, reason="no statement allows it")


# ---- the code side: a botocore call as the IAM requests AWS makes of it -----------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    service: str
    operation: str
    region: str
    adapter: str | None
    params: dict[str, Any] = field(hash=False, compare=False)
    assumed_role: str | None = None  # made with credentials STS issued for this role (a member account's)

    @property
    def account(self) -> str:
        """The account of the credentials that sign the call: a member's for its role, else the stack's."""
        return self.assumed_role.split(":")[4] if self.assumed_role else STACK_ACCOUNT


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _table_arn(call: Call, named: str) -> str:
    """The table a call names (a name, or an ARN as AWS also takes), as the template's table it stands for."""
    region, account = call.region, call.account
    if named.startswith("arn:"):
        parts = named.split(":")
        region, account = parts[3], parts[4]
    physical = central_stack().physical_name(_registered_as("dynamodb", resource_name("dynamodb", named)))
    return _arn("dynamodb", region, account, f"table/{physical}")


def _topic_arn(named: str) -> str:
    parts = named.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sns"]:
        raise ValueError(f"not a topic ARN: {named}")
    physical = central_stack().physical_name(_registered_as("sns", parts[5]))
    return _arn("sns", parts[3], parts[4], physical)


def _queue_arn(call: Call, url: str) -> str:
    """A queue URL's ARN: its account and name from the path, its region from the host (a local server's URL,
    as moto's, has none: the client's region is the queue's)."""
    match = re.match(r"https?://([^/]+)/(\d{12})/([^/]+)/?$", url)
    if not match:
        raise ValueError(f"not a queue URL: {url}")
    host, account, name = match.groups()
    in_host = re.match(r"sqs\.([a-z0-9-]+)\.amazonaws\.com$", host)
    region = in_host.group(1) if in_host else call.region
    physical = central_stack().physical_name(_registered_as("sqs", name))
    return _arn("sqs", region, account, physical)


def _key_value(value: dict[str, Any]) -> str:
    ((_, inner),) = value.items()
    return str(inner)


_LEADING = "dynamodb:LeadingKeys"


def _leading(stack: Stack, action: str, table: str, *items: dict[str, Any]) -> Request:
    """A request on items: their partition keys are its dynamodb:LeadingKeys (an item without one: not
    computed)."""
    name = hash_key_name(stack)
    if any(name not in item for item in items):
        return Request(action, table, uncomputed=(_LEADING,))
    keys = tuple(sorted({_key_value(i[name]) for i in items}))
    return Request(action, table, ((_LEADING, keys),))


# The key conditions whose partition key value can be read: `pk = :v`, alone or with one sort key condition
# (=, <, <=, >, >=, BETWEEN, begins_with) on either side of AND, each clause in optional parentheses.
_HASH = r"\(?\s*(?P<name>[#\w]+)\s*=\s*(?P<value>:\w+)\s*\)?"
_SORT = (
    r"\(?\s*(?:[#\w]+\s*(?:<=|>=|=|<|>)\s*:\w+|[#\w]+\s+BETWEEN\s+:\w+\s+AND\s+:\w+"
    r"|begins_with\s*\(\s*[#\w]+\s*,\s*:\w+\s*\))\s*\)?"
)
_KEY_CONDITIONS = [
    re.compile(rf"\s*{_HASH}(?:\s+AND\s+{_SORT})?\s*", re.IGNORECASE),
    re.compile(rf"\s*{_SORT}\s+AND\s+{_HASH}\s*", re.IGNORECASE),
]


def _query(stack: Stack, resource: str, params: dict[str, Any]) -> Request:
    """A query's partition key value, from its key condition. A legacy KeyConditions query, an index query
    (its leading key is the index's) or a key condition this cannot parse: not computed."""
    action = "dynamodb:Query"
    expression = params.get("KeyConditionExpression")
    if params.get("IndexName") or not isinstance(expression, str):
        return Request(action, resource, uncomputed=(_LEADING,))
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    for pattern in _KEY_CONDITIONS:
        whole = pattern.fullmatch(expression)
        if whole:
            left, right = whole.group("name"), whole.group("value")
            if names.get(left, left) == hash_key_name(stack) and right in values:
                return Request(action, resource, ((_LEADING, (_key_value(values[right]),)),))
    return Request(action, resource, uncomputed=(_LEADING,))


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


# Adapters that read the account's own tables (what keys they are on), not the stack's: a table they name is
# the account's table of that name.
ACCOUNT_TABLE_READERS = {"grantwatch.adapters.service_resources"}


def _dynamodb_requests(stack: Stack, call: Call) -> list[Request]:
    params, operation = call.params, call.operation
    if operation == "ListTables":
        return [Request("dynamodb:ListTables", "*")]
    if call.adapter in ACCOUNT_TABLE_READERS:
        named = str(params["TableName"])
        table = (
            named
            if named.startswith("arn:")
            else _arn("dynamodb", call.region, call.account, f"table/{named}")
        )
        return [Request(f"dynamodb:{operation}", table)]
    if operation in {"TransactWriteItems", "TransactGetItems"}:
        found = []
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
            key = body.get("Key") or body.get("Item") or {}
            table = _table_arn(call, str(body["TableName"]))
            found.append(_leading(stack, f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table, key))
        return found
    if operation == "BatchGetItem":
        return [
            _leading(stack, "dynamodb:BatchGetItem", _table_arn(call, str(name)), *request["Keys"])
            for name, request in params["RequestItems"].items()
        ]
    if operation == "BatchWriteItem":
        found = []
        for name, writes in params["RequestItems"].items():
            keys = [
                w.get("PutRequest", {}).get("Item") or w.get("DeleteRequest", {}).get("Key") or {}
                for w in writes
            ]
            found.append(_leading(stack, "dynamodb:BatchWriteItem", _table_arn(call, str(name)), *keys))
        return found
    table = _table_arn(call, str(params["TableName"]))
    if operation in {"Query", "Scan"}:
        resource = f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table
        if operation == "Query":
            return [_query(stack, resource, params)]
        return [Request("dynamodb:Scan", resource)]
    key = params.get("Key") or params.get("Item")
    if operation in {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}:
        return [_leading(stack, f"dynamodb:{operation}", table, key or {})]
    return [Request(f"dynamodb:{operation}", table)]


def _named_arn(value: str, kind: str, call: Call) -> str:
    """A resource a call names by its ARN, or by a name in the caller's account and the client's region."""
    if value.startswith("arn:"):
        return value
    separator = ":" if kind == "function" else "/"
    if kind == "key" and value.startswith("alias/"):
        return _arn(call.service, call.region, call.account, value)
    return _arn(call.service, call.region, call.account, f"{kind}{separator}{value}")


def _key_arn(call: Call, named: str) -> str:
    """A key a call names; one the tests registered (`stands_for`) as the template's key it stands for."""
    arn = _named_arn(named, "key", call)
    logical_id = REGISTRY.get(("kms", resource_name("kms", arn)))
    if logical_id is None:
        return arn
    parts = arn.split(":")
    return _arn("kms", parts[3], parts[4], f"key/{central_stack().physical_name(logical_id)}")


_RDS_LISTS = {
    "DescribeDBInstances": ("db", "DBInstanceIdentifier"),
    "DescribeDBClusters": ("cluster", "DBClusterIdentifier"),
}


def _resource_arn(call: Call) -> str:
    params = call.params
    if call.service == "kms" and "KeyId" in params:
        return _key_arn(call, str(params["KeyId"]))
    if call.service == "sts" and "RoleArn" in params:
        return str(params["RoleArn"])
    if call.service == "iam" and "RoleName" in params:
        return f"arn:aws:iam::{call.account}:role/{params['RoleName']}"
    if call.service == "lambda":
        named = params.get("FunctionName") or params.get("Resource")
        if named:
            return _named_arn(str(named), "function", call)
    if call.service == "rds" and call.operation in _RDS_LISTS:
        # Listing every instance or cluster is authorized against all of them in the region, `db:*` or
        # `cluster:*`; naming one, against it.
        kind, name = _RDS_LISTS[call.operation]
        return _arn("rds", call.region, call.account, f"{kind}:{params.get(name) or '*'}")
    if call.service == "ssm" and (named := params.get("Name") or params.get("Path")):
        # A parameter's ARN is `parameter` + its fully qualified name; GetParametersByPath is authorized
        # against the path it names, not the parameters it returns.
        name = str(named)
        return name if name.startswith("arn:") else _named_arn(name.removeprefix("/"), "parameter", call)
    return "*"


def requests_of(call: Call) -> list[Request]:
    """The IAM requests AWS authorizes for one call, on the resources the call names."""
    stack = central_stack()
    if call.service == "dynamodb":
        return _dynamodb_requests(stack, call)
    if call.service == "sqs":
        action = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}.get(
            call.operation, call.operation
        )
        return [Request(f"sqs:{action}", _queue_arn(call, str(call.params["QueueUrl"])))]
    if call.service == "sns" and "TopicArn" in call.params:
        return [Request(f"sns:{call.operation}", _topic_arn(str(call.params["TopicArn"])))]
    if call.service == "sns":
        raise ValueError(f"sns {call.operation} with no TopicArn (teach the contract its resource)")
    if (call.service, call.operation) == ("events", "PutEvents"):
        buses = {str(entry.get("EventBusName") or "default") for entry in call.params["Entries"]}
        return [Request("events:PutEvents", _named_arn(bus, "event-bus", call)) for bus in sorted(buses)]
    if (call.service, call.operation) == ("securityhub", "BatchImportFindings"):
        products = {str(finding["ProductArn"]) for finding in call.params["Findings"]}
        return [Request("securityhub:BatchImportFindings", product) for product in sorted(products)]
    if (call.service, call.operation) == ("kms", "CreateGrant"):
        return [Request("kms:CreateGrant", _resource_arn(call), _grant_context(call.params))]
    found = [Request(f"{call.service}:{call.operation}", _resource_arn(call))]
    if call.service == "lambda" and call.params.get("Role"):
        passed_to = (("iam:PassedToService", ("lambda.amazonaws.com",)),)
        found.append(Request("iam:PassRole", str(call.params["Role"]), passed_to))
    return found


def _grant_context(params: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The condition keys a CreateGrant request carries (KMS's condition keys for grants)."""
    constraints = params.get("Constraints") or {}
    context = {
        "kms:GranteePrincipal": (str(params["GranteePrincipal"]),),
        "kms:GrantOperations": tuple(str(o) for o in params.get("Operations", ())),
        "kms:GrantConstraintType": tuple(sorted(str(k) for k in constraints)),
    }
    if params.get("RetiringPrincipal"):
        context["kms:RetiringPrincipal"] = (str(params["RetiringPrincipal"]),)
    return tuple(sorted(context.items()))


# ---- the checker -----------------------------------------------------------------------------------------


@dataclass
class Violation:
    function: str
    call: str
    request: Request | None
    reason: str

    def line(self) -> str:
        where = f": {self.request.action} on {self.request.resource}" if self.request else ""
        keys = f" with {dict(self.request.context)}" if self.request and self.request.context else ""
        return f"{self.function}: {self.call}{where}{keys}: {self.reason}"


@dataclass
class Checker:
    """Decides each call as it is made and keeps what it found. It never raises: an error while deciding a
    call is that call's violation."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: dict[str, Violation] = field(default_factory=dict)
    assumed: Counter[str] = field(default_factory=Counter)

    def check(self, call: Call) -> None:
        described = f"{call.service} {call.operation}"
        try:
            self._check(call, described)
        except Exception as error:  # the contract's own failure: the call's violation
            self._add(Violation(call.function, described, None, f"the contract failed: {error!r}"))

    def _check(self, call: Call, described: str) -> None:
        self.calls[(call.function, f"{call.service}:{call.operation}")] += 1
        if (call.service, call.operation) in UNAUTHORIZED_CALLS:
            return
        if authorized_by_a_grant(call.function, call.service, call.operation, call.params):
            return
        try:
            requests = requests_of(call)
            policy = self._policy(call)
        except ValueError as error:
            self._add(Violation(call.function, described, None, str(error)))
            return
        for request in requests:
            decision = decide(policy, request)
            if (call.function, request.action) in MUST_BE_DENIED:
                if decision.allowed:
                    self._add(Violation(call.function, described, request, "allowed, and must be refused"))
                continue
            if not decision.allowed:
                self._add(Violation(call.function, described, request, decision.reason))
            for key in decision.assumed:
                self.assumed[key] += 1

    def error(self, where: str, error: BaseException) -> None:
        """An error of the recording itself (attributing a call): a violation of the run."""
        self._add(Violation("(contract)", where, None, f"the contract failed: {error!r}"))

    @staticmethod
    def _policy(call: Call) -> list[dict[str, Any]]:
        """The function's policy in the stack's own account and region; for a call made as a member
        account's role, that role's in the member template, deployed in the role's account."""
        if call.assumed_role is None:
            return statements(central_stack(), call.function)
        stack = member_stack(call.account)
        role = stack.resources[MEMBER_ROLE]["Properties"]["RoleName"]
        if call.assumed_role.split(":role/")[-1] != stack.resolve(role):
            raise ValueError(f"credentials of {call.assumed_role}, a role no template of the stack creates")
        return role_statements(stack, MEMBER_ROLE)

    def _add(self, violation: Violation) -> None:
        self.violations.setdefault(violation.line(), violation)


def uncovered(seen: set[str]) -> list[str]:
    """The functions of template.yaml that made no checked call, each as a line of the report."""
    return [
        f"{function}: made no call the contract checked in a run of the whole test suite: a test must drive "
        "its corridor against the local stand-ins"
        for function in sorted(functions(central_stack()) - seen)
    ]


# ---- recording every botocore call ------------------------------------------------------------------------


@cache
def _function_modules() -> dict[str, str]:
    return {**handler_modules(_template_stack()), **CORRIDORS, **RUNS_AS}


_SDK = ("botocore.", "boto3.", "pynamodb.")


def _module(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def attribute(frame: FrameType | None, *, nested: bool = False) -> tuple[str | None, str | None]:
    """The Lambda function whose corridor is innermost on the stack, and the adapter module that calls.
    Test frames in between (a double wrapping a client) do not hide the corridor. A call made while another
    is in flight (`nested`) by test code (a stand-in playing an AWS service from a botocore hook) is no
    function's."""
    if nested:
        caller = frame
        while caller is not None and _module(caller).startswith(_SDK):
            caller = caller.f_back
        if caller is not None and _module(caller).startswith("tests."):
            return None, None
    modules = _function_modules()
    function = adapter = None
    while frame is not None and function is None:
        name = _module(frame)
        if adapter is None and name.startswith("grantwatch.adapters."):
            adapter = name
        function = modules.get(name)
        frame = frame.f_back
    while function is not None and frame is not None:  # an outer corridor that runs this one as its own
        function = RUNS_AS.get(_module(frame), function)
        frame = frame.f_back
    return (function, adapter) if function else (None, None)


# Access keys STS issued in calls the recording saw, and the role each was issued for.
ISSUED: dict[str, str] = {}


def _assumed_role(client: Any) -> str | None:
    credentials = client._request_signer._credentials
    return ISSUED.get(getattr(credentials, "access_key", None) or "") if credentials else None


_lock = threading.RLock()
_in_flight = threading.local()


@dataclass
class Recording:
    """Wraps botocore's BaseClient._make_api_call; every attributed call goes to `sink`, every error of the
    recording itself to `failed` (never to the caller)."""

    sink: Callable[[Call], None]
    failed: Callable[[str, BaseException], None]
    _original: Any = None

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        sink, failed = self.sink, self.failed

        def record(client: Any, operation_name: str, api_params: dict[str, Any], frame: FrameType) -> None:
            try:
                function, adapter = attribute(frame, nested=getattr(_in_flight, "depth", 0) > 0)
                if function is None:
                    return
                model = client.meta.service_model
                service = model.metadata.get("signingName") or model.endpoint_prefix
                call = Call(
                    function,
                    service,
                    operation_name,
                    client.meta.region_name,
                    adapter,
                    api_params,
                    _assumed_role(client),
                )
                with _lock:
                    sink(call)
            except Exception as error:  # never into the code under test
                with _lock:
                    failed(f"recording {operation_name}", error)

        def recorded(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            record(client, operation_name, api_params, sys._getframe(1))
            _in_flight.depth = getattr(_in_flight, "depth", 0) + 1
            try:
                answer = original(client, operation_name, api_params)
            finally:
                _in_flight.depth -= 1
            if operation_name == "AssumeRole" and "Credentials" in answer:
                ISSUED[answer["Credentials"]["AccessKeyId"]] = api_params["RoleArn"]
            return answer

        self._original = original
        BaseClient._make_api_call = recorded  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        from botocore.client import BaseClient

        if self._original is not None:
            BaseClient._make_api_call = self._original  # type: ignore[attr-defined]
            self._original = None


@dataclass
class Session:
    """What the whole test run recorded (tests/support/iam_contract_plugin.py installs it for the session)."""

    checker: Checker = field(default_factory=Checker)
    scopes: list[Checker] = field(default_factory=list)
    elsewhere: set[str] = field(default_factory=set)  # violations other processes of the run recorded

    def sink(self, call: Call) -> None:
        self.checker.check(call)
        for scope in self.scopes:
            scope.check(call)

    def failed(self, where: str, error: BaseException) -> None:
        self.checker.error(where, error)
        for scope in self.scopes:
            scope.error(where, error)

    def scope(self) -> Iterator[Checker]:
        """A checker of its own for the calls made while a test runs (also counted for the session)."""
        checker = Checker()
        self.scopes.append(checker)
        try:
            yield checker
        finally:
            self.scopes.remove(checker)

    def seen(self) -> set[str]:
        return {function for function, _ in self.checker.calls}

    def report(self) -> list[str]:
        return sorted(set(self.checker.violations) | self.elsewhere)

    def export(self) -> dict[str, Any]:
        """What this process recorded, as plain data (what pytest-xdist carries from a worker)."""
        calls = [[function, call, count] for (function, call), count in self.checker.calls.items()]
        return {"violations": self.report(), "calls": calls}

    def absorb(self, exported: dict[str, Any]) -> None:
        """Count what another process recorded (a pytest-xdist worker's export) as this run's."""
        self.elsewhere.update(exported["violations"])
        for function, call, count in exported["calls"]:
            self.checker.calls[(function, call)] += count


SESSION = Session()
RECORDING = Recording(SESSION.sink, SESSION.failed)
