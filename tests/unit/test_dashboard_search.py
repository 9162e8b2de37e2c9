"""Every SEARCH expression of every dashboard in the templates finds the metrics the stack really produces:
the metrics the functions' code emits (Powertools: namespace grantwatch, dimension service = the
function's POWERTOOLS_SERVICE_NAME) and the queues CloudFormation names STACK-LogicalId-SUFFIX. A quoted
value in a search is an exact match of the whole value, so `MetricName="Alerts-"` finds nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from grantwatch.domain.facts import FactKind
from grantwatch.domain.functions import FunctionChange
from grantwatch.domain.notices import NoticeKind
from grantwatch.domain.risk import Cause
from grantwatch.recorder import Outcome
from tests.support.cloudformation import Stack
from tests.support.cloudwatch_search import Metric, parse, tokens
from tests.support.iam_contract import MEMBER_PARAMETERS, PARAMETERS
from tests.support.samples import ROOT

TEMPLATES = ("template.yaml", "member/forwarder.yaml", "forwarders/iam-role-events.yaml")
PACKAGE = ROOT / "functions"
ADD_METRIC = re.compile(r'add_metric\(\s*name=(f?)"([^"]+)"')
# What each placeholder of an emitted metric name takes, from the code's own enumerations.
PLACEHOLDERS = {
    "notice.kind.title()": [kind.value.title() for kind in NoticeKind],
    "alert_type": [cause.value for cause in Cause],
    "result.outcome.title()": [outcome.value.title() for outcome in Outcome],
    "what": [f"grant-{kind.value}" for kind in FactKind] + [f"function-{c.value}" for c in FunctionChange],
}
SUFFIX = "1QX7K2M9ZP4RT"  # CloudFormation's random suffix: upper-case letters and digits


def emitted_names(handler_module: str) -> set[str]:
    source = (PACKAGE / Path(*handler_module.split("."))).with_suffix(".py").read_text()
    names: set[str] = set()
    for formatted, name in ADD_METRIC.findall(source):
        if not formatted:
            names.add(name)
            continue
        (placeholder,) = re.findall(r"\{([^}]+)\}", name)
        names |= {re.sub(r"\{[^}]+\}", value, name) for value in PLACEHOLDERS[placeholder]}
    return names


def stack_metrics(stack: Stack) -> list[Metric]:
    """Every metric the stack's functions and queues produce, with CloudFormation's names."""
    common = stack.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    metrics: list[Metric] = []
    for logical_id, resource in stack.resources.items():
        if not stack.exists(logical_id):
            continue
        if resource["Type"] == "AWS::Serverless::Function":
            own = resource["Properties"].get("Environment", {}).get("Variables", {})
            env = stack.resolve({**common, **own})
            handler = resource["Properties"]["Handler"].rsplit(".", 1)[0]
            service = env["POWERTOOLS_SERVICE_NAME"]
            metrics += [
                Metric(env["POWERTOOLS_METRICS_NAMESPACE"], name, {"service": service})
                for name in emitted_names(handler)
            ]
            function = f"{stack.name}-{logical_id}-{SUFFIX}"
            metrics += [
                Metric("AWS/Lambda", n, {"FunctionName": function}) for n in ("Invocations", "Errors")
            ]
        if resource["Type"] == "AWS::SQS::Queue":
            queue = f"{stack.name}-{logical_id}-{SUFFIX}"
            metrics += [
                Metric("AWS/SQS", n, {"QueueName": queue})
                for n in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage")
            ]
    return metrics


def full_stack(name: str, path: str = "template.yaml") -> Stack:
    parameters = {"template.yaml": PARAMETERS, "member/forwarder.yaml": MEMBER_PARAMETERS}.get(path, {})
    return Stack.load(ROOT / path, parameters=parameters, name=name)


def searches(stack: Stack) -> list[tuple[str, str]]:
    """(widget id, expression) of every SEARCH on the stack's dashboards."""
    found = []
    for logical_id, resource in stack.resources.items():
        if resource["Type"] != "AWS::CloudWatch::Dashboard":
            continue
        body: dict[str, Any] = json.loads(stack.resolve(resource["Properties"]["DashboardBody"]))
        for widget in body["widgets"]:
            for line in widget.get("properties", {}).get("metrics", []):
                for item in line:
                    if isinstance(item, dict) and "SEARCH(" in item.get("expression", ""):
                        found.append((f"{logical_id}.{item['id']}", item["expression"]))
    return found


def _service_metrics(metrics: list[Metric], service: str) -> set[tuple[Any, ...]]:
    return {m.key() for m in metrics if m.dimensions.get("service") == service}


# What each search must find: exactly these of the stack's metrics.
def expected(widget: str, stack: Stack, metrics: list[Metric]) -> set[tuple[Any, ...]]:
    match widget:
        case "OperationsDashboard.alerts":
            return {
                m.key()
                for m in metrics
                if m.dimensions.get("service") == "grantwatch-evaluator" and m.name.startswith("Alerts-")
            }
        case "OperationsDashboard.dlq":
            return {
                m.key()
                for m in metrics
                if m.name == "ApproximateNumberOfMessagesVisible"
                and "DeadLetterQueue" in m.dimensions["QueueName"]
            }
        case "OperationsDashboard.reconcile":
            return _service_metrics(metrics, "grantwatch-reconciler")
    raise AssertionError(f"a search this test does not know: {widget} (say what it must find)")


def test_the_model_reads_quoted_values_as_exact_and_unquoted_as_partial() -> None:
    alert = Metric("grantwatch", "Alerts-grant-retired", {"service": "grantwatch-evaluator"})
    notice = Metric("grantwatch", "NoticesAlert", {"service": "grantwatch-evaluator"})
    queue = Metric(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": f"prod-RecorderDeadLetterQueue-{SUFFIX}"},
    )
    assert tokens("CPUUtilization") == ["cpu", "utilization"]
    assert parse("SEARCH('{grantwatch,service} MetricName=\"Alerts-\"', 'Sum', 300)").finds([alert]) == []
    assert parse("SEARCH('{grantwatch,service} MetricName=Alerts', 'Sum', 300)").finds([alert, notice]) == [
        alert
    ]
    assert parse("SEARCH('{grantwatch,service} MetricName=\"NoticesAlert\"', 'Sum')").finds(
        [alert, notice]
    ) == [notice]
    assert parse("SEARCH('{AWS/SQS,QueueName} \"prod\" DeadLetter', 'Maximum')").finds([queue]) == []
    assert parse("SEARCH('{AWS/SQS,QueueName} prod DeadLetterQueue', 'Maximum')").finds([queue]) == [queue]
    assert parse("SEARCH('{AWS/SQS,QueueName} prod NOT Recorder', 'Maximum')").finds([queue]) == []
    assert parse("SEARCH('{AWS/SQS,QueueName} (staging OR prod) Recorder', 'Maximum')").finds([queue]) == [
        queue
    ]
    # the schema's dimensions must be the metric's, exactly
    assert parse("SEARCH('{AWS/SQS} prod', 'Maximum')").finds([queue]) == []


@pytest.mark.parametrize("path", TEMPLATES)
@pytest.mark.parametrize("name", ["grantwatch", "prod-grantwatch"])
def test_every_dashboard_search_finds_exactly_the_stacks_own_metrics(path: str, name: str) -> None:
    stack = full_stack(name, path)
    other = full_stack("billing")  # another stack in the account, with queues and functions of its own
    metrics = stack_metrics(stack)
    everything = metrics + stack_metrics(other)
    for widget, expression in searches(stack):
        found = {m.key() for m in parse(expression).finds(everything)}
        assert found, f"{widget}: {expression} finds nothing"
        assert found == expected(widget, stack, metrics), widget


def test_the_dashboard_has_the_searches_this_test_knows() -> None:
    assert {widget for widget, _ in searches(full_stack("grantwatch"))} == {
        "OperationsDashboard.alerts",
        "OperationsDashboard.dlq",
        "OperationsDashboard.reconcile",
    }
