"""IAM as a tested contract: every AWS call a Lambda function's code makes in the tests, checked against that
function's policy in template.yaml.

Every botocore call, pynamodb's included (it calls `BaseClient._make_api_call` on a client of its own), is
seen by one wrapper. A call is attributed to the Lambda function whose corridor made it: the innermost frame
on the call stack that belongs to a corridor module (the CLI, the replay pipeline and the handlers all reuse
the corridors) or to a function's handler (as template.yaml names it). A call made outside every corridor
(test set-up, CLI queries) is no Lambda function's and is not checked.

Each call becomes the IAM requests AWS authorizes for it (a transaction: one per item; an index: the index
ARN; an UpdateFunctionConfiguration that names a role: iam:PassRole on it), with the condition keys that can
be computed from the request (dynamodb:LeadingKeys), and is decided by a small policy evaluator over the
function's resolved policies: Action and Resource wildcards, Allow and Deny, the condition operators the
template uses. A condition key that cannot be computed from a request must be listed in
UNEVALUATED_CONDITIONS with the code path that handles its denial; any other makes the call a violation.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
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
MEMBER_TEMPLATE = TEMPLATE.parent / "member" / "forwarder.yaml"
# The member account's stack as the organization deploys it (the read-only role created).
MEMBER_PARAMETERS = {
    "CentralEventBusArn": "arn:aws:events:eu-central-1:210987654321:event-bus/grantwatch",
    "CentralAccountId": "210987654321",
    "OrganizationId": "o-a1b2c3d4e5",
    "ExternalId": "grantwatch-test-external-id",
}
MEMBER_ROLE = "ReadRole"
DEFAULT_ACCOUNT = "210987654321"

# The corridor each function's code runs through: the domain module its handler drives, which the CLI and the
# local pipeline drive too. (The handler modules themselves are read from template.yaml.)
CORRIDORS = {
    "grantwatch.recorder": "RecorderFunction",
    "grantwatch.evaluator": "EvaluatorFunction",
    "grantwatch.reconciler": "ReconcilerFunction",
    "grantwatch.healer": "RemediationFunction",
    "grantwatch.fanout": "OrganizationFanOutFunction",
}

# Corridors that run another corridor's code as a function of their own: every call made inside them is that
# function's, whichever corridor is innermost (an organization worker runs the reconciler's corridor).
RUNS_AS = {"grantwatch.organization": "OrganizationWorkerFunction"}

# Which environment variable names the destination of a call to a resource the stack creates, by service and
# the adapter module that makes it (None: any adapter). The variable's value in template.yaml says which
# resource that is, for the function that made the call.
DESTINATIONS: dict[tuple[str, str | None], str] = {
    ("dynamodb", None): "GRANTWATCH_TABLE",
    ("sns", None): "GRANTWATCH_ALERT_TOPIC_ARN",
    ("sns", "grantwatch.adapters.channels"): "GRANTWATCH_ALERT_CHAT_TOPIC_ARN",
    ("sqs", "grantwatch.adapters.scheduler"): "GRANTWATCH_EVALUATION_QUEUE_URL",
    ("sqs", "grantwatch.adapters.rejected"): "GRANTWATCH_REJECTED_QUEUE_URL",
    ("sqs", "grantwatch.adapters.accounts"): "GRANTWATCH_ORGANIZATION_QUEUE_URL",
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


@dataclass(frozen=True, slots=True)
class Request:
    """One IAM authorization: an action on a resource, with the condition keys the request carries."""

    action: str
    resource: str
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def values(self, key: str) -> tuple[str, ...] | None:
        return dict(self.context).get(key)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    assumed: tuple[str, ...] = ()  # condition keys taken to hold (UNEVALUATED_CONDITIONS)
    reason: str = ""


class Unknown(Exception):
    """A condition key the request does not carry."""


# ---- the template side: each function's statements, resolved for an account and region ------------------


@cache
def _template_stack() -> Stack:
    return Stack.load(TEMPLATE, parameters=PARAMETERS)


@cache
def stack_for(account: str, region: str) -> Stack:
    base = _template_stack()
    return Stack(base.template, parameters=PARAMETERS, account=account, region=region)


def handler_modules(stack: Stack) -> dict[str, str]:
    """The module of each function's handler, e.g. grantwatch.handlers.recorder -> RecorderFunction."""
    found = {}
    for logical_id, resource in stack.resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            found[resource["Properties"]["Handler"].rsplit(".", 1)[0]] = logical_id
    return found


def statements(stack: Stack, function: str) -> list[dict[str, Any]]:
    """The function's policy statements with every intrinsic function resolved: SAM's Policies, or the
    inline policies of the role it names (Role: !GetAtt SomeRole.Arn)."""
    properties = stack.resources[function]["Properties"]
    if "Role" in properties:
        return role_statements(stack, _role_of(properties["Role"]))
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
def member_stack(account: str, region: str) -> Stack:
    return Stack.load(MEMBER_TEMPLATE, parameters=MEMBER_PARAMETERS, account=account, region=region)


def environment(stack: Stack, function: str) -> dict[str, Any]:
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
    UNEVALUATED_CONDITIONS is a denial that says so."""
    allowed: Decision | None = None
    for statement in policy:
        try:
            applies, assumed = _applies(statement, request)
        except Unknown as unknown:
            return Decision(
                False,
                reason=f"condition key {unknown} cannot be evaluated: name it in UNEVALUATED_CONDITIONS",
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


def _arn_parts(arn: str) -> tuple[str, str] | None:
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn":
        return parts[4] or DEFAULT_ACCOUNT, parts[3]
    return None


def _queue_arn(url: str) -> str:
    match = re.match(r"https?://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/(.+)$", url)
    if not match:
        raise ValueError(f"not a queue URL of the stack: {url}")
    region, account, name = match.groups()
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _destination(stack: Stack, call: Call) -> str:
    """The ARN of the stack's resource the function's environment names for this call."""
    variable = DESTINATIONS.get((call.service, call.adapter)) or DESTINATIONS.get((call.service, None))
    if variable is None:
        raise ValueError(
            f"{call.adapter or 'unknown code'} calls {call.service} {call.operation}: which of the stack's "
            "resources is that? Add its environment variable to DESTINATIONS"
        )
    value = environment(stack, call.function).get(variable)
    if value is None:
        raise ValueError(f"{call.function}'s environment in template.yaml does not set {variable}")
    if call.service == "dynamodb":
        return f"arn:aws:dynamodb:{stack.region}:{stack.account}:table/{value}"
    if call.service == "sqs":
        return _queue_arn(str(value))
    return str(value)


def _key_value(value: dict[str, Any]) -> str:
    ((_, inner),) = value.items()
    return str(inner)


def _leading(stack: Stack, *items: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    name = hash_key_name(stack)
    keys = tuple(sorted({_key_value(i[name]) for i in items if name in i}))
    return (("dynamodb:LeadingKeys", keys),)


def _query_leading(stack: Stack, params: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A table query's partition key value, from its key condition (an index query has none to offer)."""
    if params.get("IndexName"):
        return ()
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    for left, right in re.findall(r"([#\w]+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")):
        if names.get(left, left) == hash_key_name(stack) and right in values:
            return (("dynamodb:LeadingKeys", (_key_value(values[right]),)),)
    return ()


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb_requests(stack: Stack, call: Call) -> list[Request]:
    table = _destination(stack, call)
    params, operation = call.params, call.operation
    if operation in {"TransactWriteItems", "TransactGetItems"}:
        found = []
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
            key = body.get("Key") or body.get("Item") or {}
            found.append(Request(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table, _leading(stack, key)))
        return found
    if operation == "BatchGetItem":
        keys = [k for request in params["RequestItems"].values() for k in request["Keys"]]
        return [Request("dynamodb:BatchGetItem", table, _leading(stack, *keys))]
    if operation == "BatchWriteItem":
        writes = [w for ws in params["RequestItems"].values() for w in ws]
        keys = [w.get("PutRequest", {}).get("Item") or w["DeleteRequest"]["Key"] for w in writes]
        return [Request("dynamodb:BatchWriteItem", table, _leading(stack, *keys))]
    if operation in {"Query", "Scan"}:
        resource = f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table
        context = _query_leading(stack, params) if operation == "Query" else ()
        return [Request(f"dynamodb:{operation}", resource, context)]
    key = params.get("Key") or params.get("Item")
    return [Request(f"dynamodb:{operation}", table, _leading(stack, key) if key else ())]


def _named_arn(value: str, kind: str, call: Call, stack: Stack) -> str:
    if value.startswith("arn:"):
        return value
    separator = ":" if kind == "function" else "/"
    return f"arn:aws:{call.service}:{call.region}:{stack.account}:{kind}{separator}{value}"


def _resource_arn(call: Call, stack: Stack) -> str:
    params = call.params
    if call.service == "kms" and "KeyId" in params:
        return _named_arn(str(params["KeyId"]), "key", call, stack)
    if call.service == "sts" and "RoleArn" in params:
        return str(params["RoleArn"])
    if call.service == "lambda":
        named = params.get("FunctionName") or params.get("Resource")
        if named:
            return _named_arn(str(named), "function", call, stack)
    if call.service == "ssm" and (named := params.get("Name") or params.get("Path")):
        # A parameter's ARN is `parameter` + its fully qualified name; GetParametersByPath is authorized
        # against the path it names, not the parameters it returns.
        name = str(named)
        return (
            name if name.startswith("arn:") else _named_arn(name.removeprefix("/"), "parameter", call, stack)
        )
    return "*"


def requests_of(call: Call) -> list[Request]:
    """The IAM requests AWS authorizes for one call, against the stack in the resource's account/region."""
    stack = _stack_of(call)
    if call.service == "dynamodb":
        return _dynamodb_requests(stack, call)
    if call.service in {"sqs", "sns"}:
        action = {"SendMessageBatch": "SendMessage"}.get(call.operation, call.operation)
        return [Request(f"{call.service}:{action}", _destination(stack, call))]
    if (call.service, call.operation) == ("events", "PutEvents"):
        buses = {str(entry.get("EventBusName") or "default") for entry in call.params["Entries"]}
        return [
            Request("events:PutEvents", _named_arn(bus, "event-bus", call, stack)) for bus in sorted(buses)
        ]
    if (call.service, call.operation) == ("securityhub", "BatchImportFindings"):
        products = {str(finding["ProductArn"]) for finding in call.params["Findings"]}
        return [Request("securityhub:BatchImportFindings", product) for product in sorted(products)]
    found = [Request(f"{call.service}:{call.operation}", _resource_arn(call, stack))]
    if call.service == "lambda" and call.params.get("Role"):
        passed_to = (("iam:PassedToService", ("lambda.amazonaws.com",)),)
        found.append(Request("iam:PassRole", str(call.params["Role"]), passed_to))
    return found


def _stack_of(call: Call) -> Stack:
    named = next(
        (str(call.params[k]) for k in ("KeyId", "FunctionName", "Resource", "TopicArn") if k in call.params),
        str(call.params.get("Findings", [{}])[0].get("ProductArn", "")),
    )
    account, region = _arn_parts(named) or (DEFAULT_ACCOUNT, call.region)
    return stack_for(account, region)


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
    """Decides each call as it is made and keeps what it found."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: dict[str, Violation] = field(default_factory=dict)
    assumed: Counter[str] = field(default_factory=Counter)

    def check(self, call: Call) -> None:
        self.calls[(call.function, f"{call.service}:{call.operation}")] += 1
        if (call.service, call.operation) in UNAUTHORIZED_CALLS:
            return
        described = f"{call.service} {call.operation}"
        try:
            requests = requests_of(call)
            policy = self._policy(call)
        except ValueError as error:
            self._add(Violation(call.function, described, None, str(error)))
            return
        for request in requests:
            decision = decide(policy, request)
            if not decision.allowed:
                self._add(Violation(call.function, described, request, decision.reason))
            for key in decision.assumed:
                self.assumed[key] += 1

    @staticmethod
    def _policy(call: Call) -> list[dict[str, Any]]:
        """The function's policy; for a call made as a member account's role, that role's in the member
        template, deployed in the role's account."""
        if call.assumed_role is None:
            return statements(_stack_of(call), call.function)
        account = call.assumed_role.split(":")[4]
        stack = member_stack(account, call.region)
        role = stack.resources[MEMBER_ROLE]["Properties"]["RoleName"]
        if call.assumed_role.split(":role/")[-1] != stack.resolve(role):
            raise ValueError(f"credentials of {call.assumed_role}, a role no template of the stack creates")
        return role_statements(stack, MEMBER_ROLE)

    def _add(self, violation: Violation) -> None:
        self.violations.setdefault(violation.line(), violation)


# ---- recording every botocore call ------------------------------------------------------------------------


@cache
def _function_modules() -> dict[str, str]:
    return {**handler_modules(_template_stack()), **CORRIDORS, **RUNS_AS}


def attribute(frame: FrameType | None) -> tuple[str | None, str | None]:
    """The Lambda function whose corridor is innermost on the stack, and the adapter module that calls. A
    call a test makes itself inside a corridor (a stand-in playing an AWS service from a botocore hook, as
    Lambda creating a grant) is no function's: the test's frame comes before any corridor's."""
    modules = _function_modules()
    function = adapter = None
    while frame is not None and function is None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("tests."):
            return None, None
        if adapter is None and name.startswith("grantwatch.adapters."):
            adapter = name
        function = modules.get(name)
        frame = frame.f_back
    while function is not None and frame is not None:  # an outer corridor that runs this one as its own
        name = frame.f_globals.get("__name__", "")
        if name.startswith("tests."):
            break
        function = RUNS_AS.get(name, function)
        frame = frame.f_back
    return function, adapter


# Access keys STS issued in calls the recording saw, and the role each was issued for.
ISSUED: dict[str, str] = {}


def _assumed_role(client: Any) -> str | None:
    credentials = client._request_signer._credentials
    return ISSUED.get(getattr(credentials, "access_key", None) or "") if credentials else None


_lock = threading.Lock()


@dataclass
class Recording:
    """Wraps botocore's BaseClient._make_api_call; every attributed call goes to `sink`."""

    sink: Callable[[Call], None]
    _original: Any = None

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        sink = self.sink

        def recorded(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            function, adapter = attribute(sys._getframe(1))
            if function is not None:
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
            answer = original(client, operation_name, api_params)
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

    def scope(self) -> Iterator[Checker]:
        """A checker of its own for the calls made while a test runs (also counted for the session)."""
        checker = Checker()
        self.scopes.append(checker)
        try:
            yield checker
        finally:
            self.scopes.remove(checker)

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
RECORDING = Recording(SESSION.sink)
