"""What each Lambda handler module imports: Lambda bills the INIT phase, so a handler imports no library
and no domain module that its path never calls. Checked in a fresh interpreter, as Lambda starts one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Handler module -> modules it must not import. pydantic: the edge is parsed by grantwatch.domain.records.
# Incidents and their notices and fixes: only the evaluator and the healer open, read or close one.
_INCIDENTS = ("grantwatch.domain.alerts", "grantwatch.domain.fixes", "grantwatch.domain.risk")
NEVER_IMPORTED = {
    "grantwatch.handlers.recorder": ("pydantic", *_INCIDENTS),
    # Powertools' batch utility imports asyncio and every event data class: the evaluator reports its
    # batch item failures itself.
    "grantwatch.handlers.evaluator": ("pydantic", "aws_lambda_powertools.utilities.batch", "asyncio"),
    "grantwatch.handlers.reconciler": ("pydantic", *_INCIDENTS),
}


def imported_by(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(completed.stdout))


@pytest.mark.parametrize(("handler", "never"), NEVER_IMPORTED.items())
def test_a_handler_imports_only_what_its_path_calls(handler: str, never: tuple[str, ...]) -> None:
    modules = imported_by(handler)
    assert handler in modules
    assert not modules & set(never)


# What Lambda gives every function: credentials and the region, under both names.
LAMBDA_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "eu-central-1",
    "AWS_DEFAULT_REGION": "eu-central-1",
}

# Every corridor a Lambda function builds, as its handler builds it (grantwatch.wiring), with the settings
# the template gives it. pydantic is the CLI's (Terraform plans and change sets): the layer does not ship it.
_BUILD_EVERY_CORRIDOR = """
import dataclasses, json, sys
from grantwatch import wiring
from grantwatch.settings import Settings
settings = Settings(
    evaluation_queue_url="https://sqs.eu-central-1.amazonaws.com/210987654321/evaluations",
    rejected_queue_url="https://sqs.eu-central-1.amazonaws.com/210987654321/rejected",
    alert_topic_arn="arn:aws:sns:eu-central-1:210987654321:alerts",
    alert_chat_topic_arn="arn:aws:sns:eu-central-1:210987654321:chat",
    alert_event_bus_name="alerts",
    security_hub_product_arn="arn:aws:securityhub:eu-central-1:210987654321:product/210987654321/default",
    region="eu-central-1",
)
wiring.recorder(settings)
wiring.rejected_sink(settings)
wiring.evaluator(settings)
wiring.reconciler(settings, "210987654321")
wiring.remediation_healer(settings)
wiring.organization_reconciler(settings, "grantwatch-member-reader", "external-id")
wiring.fan_out(
    dataclasses.replace(settings, organization_queue_url="https://sqs.eu-central-1.amazonaws.com/210987654321/o")
)
import grantwatch.handlers.recorder, grantwatch.handlers.evaluator, grantwatch.handlers.reconciler
import grantwatch.handlers.remediation, grantwatch.handlers.fanout, grantwatch.handlers.organization
print(json.dumps(sorted(sys.modules)))
"""


def test_no_corridor_a_lambda_function_builds_imports_what_the_layer_does_not_ship() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _BUILD_EVERY_CORRIDOR],
        capture_output=True,
        text=True,
        check=True,
        env=LAMBDA_ENVIRONMENT,
    )
    modules = set(json.loads(completed.stdout))
    assert "grantwatch.adapters.channels" in modules  # every corridor was built
    assert not {name for name in modules if name.split(".")[0] in {"pydantic", "typer", "rich", "yaml"}}


@pytest.mark.parametrize(
    ("handler", "build"),
    [
        ("grantwatch.handlers.recorder", "handler.recorder()"),
        ("grantwatch.handlers.reconciler", "handler.reconciler('210987654321')"),
    ],
)
def test_the_corridors_that_never_open_an_incident_do_not_import_one_when_built(
    handler: str, build: str
) -> None:
    code = f"import json, sys; import {handler} as handler; {build}; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=LAMBDA_ENVIRONMENT
        | {"GRANTWATCH_EVALUATION_QUEUE_URL": "https://sqs.eu-central-1.amazonaws.com/210987654321/e"},
    )
    modules = set(json.loads(completed.stdout))
    assert "grantwatch.adapters.functions" in modules
    assert not modules & set(_INCIDENTS)
