"""A corridor's AWS clients: all from one botocore session, one DynamoDB client for every model its stores
bind, and none created before an invocation sends a request through it. Counted here, never timed (the
cold start is a benchmark figure: bench/run.py --cold-start-only)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
from botocore.validate import ParamValidationDecorator
from pynamodb.models import Model

from grantwatch import wiring
from grantwatch.adapters.clients import clients_for
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.adapters.tables import dynamodb_client
from grantwatch.settings import Settings

REGION, ACCOUNT = "eu-central-1", "210987654321"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the environment, so creating a client looks no further (no instance metadata)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def settings(**changes: Any) -> Settings:
    """Settings no other test uses: the clients of equal settings are shared."""
    return Settings(
        table_name=f"grantwatch-{uuid.uuid4().hex[:12]}",
        region=REGION,
        evaluation_queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/evaluations",
        alert_topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts",
        **changes,
    )


def models_of(value: object, seen: set[int] | None = None) -> list[type[Model]]:
    """Every pynamodb model bound by the stores reachable from `value` (a corridor)."""
    seen = set() if seen is None else seen
    if id(value) in seen or not type(value).__module__.startswith("grantwatch."):
        return []
    seen.add(id(value))
    found: list[type[Model]] = []
    for item in vars(value).values() if hasattr(value, "__dict__") else []:
        if isinstance(item, type) and issubclass(item, Model):
            found.append(item)
        else:
            found += models_of(item, seen)
    return found


def client_of(model: type[Model]) -> Any:
    return model._get_connection().connection.client


def test_the_recorder_creates_no_client_when_built_and_one_dynamodb_client_for_all_its_models() -> None:
    config = settings()
    corridor = wiring.recorder(config)
    clients = clients_for(config)
    assert clients.created == 0  # nothing sent yet: nothing created
    models = models_of(corridor)
    assert len(models) >= 7  # grants, functions, incidents, keys, roles, facts, dependencies
    assert {id(client_of(model)) for model in models} == {id(dynamodb_client(config))}
    assert clients.created == 1
    assert corridor.scheduler.client.meta.service_model.service_name == "sqs"  # type: ignore[attr-defined]
    assert clients.created == 2


def test_stores_built_apart_on_the_same_settings_share_the_client_and_other_settings_do_not() -> None:
    config = settings()
    grants, functions, hazards = (
        DynamoGrantStore(config),
        DynamoFunctionStore(config),
        DynamoHazardStore(config),
    )
    assert client_of(grants.model) is client_of(functions.incidents) is client_of(hazards.dependencies)
    assert client_of(DynamoGrantStore(settings()).model) is not client_of(grants.model)


def test_the_evaluator_creates_each_alert_channels_client_when_it_first_sends() -> None:
    config = settings(
        alert_chat_topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:chat",
        alert_event_bus_name="alerts",
        security_hub_product_arn=f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default",
    )
    corridor = wiring.evaluator(config)
    clients = clients_for(config)
    assert clients.created == 0
    channels = dict(corridor.notifier.channels)  # type: ignore[attr-defined]
    assert channels["securityhub"].client.meta.region_name == REGION
    assert channels["events"].client.meta.service_model.service_name == "events"
    assert clients.created == 2


def test_the_shared_client_keeps_the_configured_retries_timeouts_and_local_credentials() -> None:
    config = settings(
        endpoint_url="http://localhost:8000", dynamodb_retries=7, dynamodb_read_timeout_seconds=2.5
    )
    client = client_of(DynamoHazardStore(config).keys)
    assert client.meta.endpoint_url == "http://localhost:8000"
    assert client.meta.region_name == REGION
    assert client.meta.config.retries == {"total_max_attempts": 8, "mode": "standard"}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3, 2.5)
    assert client.meta.config.max_pool_connections == 32  # what workers on every model may use at once
    assert not isinstance(client._serializer, ParamValidationDecorator)  # pynamodb validates no parameter
    assert client._request_signer._credentials.access_key == "local"


def test_no_corridor_of_a_lambda_function_imports_boto3_even_once_its_clients_exist() -> None:
    """boto3 brings s3transfer and multiprocessing with it; the corridors create their clients with
    botocore alone."""
    code = """
import json, sys
from grantwatch import wiring
from grantwatch.settings import Settings
settings = Settings(
    region="eu-central-1",
    evaluation_queue_url="https://sqs.eu-central-1.amazonaws.com/210987654321/evaluations",
    alert_topic_arn="arn:aws:sns:eu-central-1:210987654321:alerts",
)
for corridor in (
    wiring.recorder(settings),
    wiring.evaluator(settings),
    wiring.reconciler(settings, "210987654321"),
    wiring.remediation_healer(settings),
):
    for store in vars(corridor).values():
        for model in vars(store).values() if hasattr(store, "__dict__") else []:
            if isinstance(model, type) and hasattr(model, "_get_connection"):
                model._get_connection().connection.client
corridor.notifier.client, wiring.recorder(settings).scheduler.client
print(json.dumps(sorted(sys.modules)))
"""
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
    )
    modules = set(json.loads(completed.stdout))
    assert "pynamodb.connection.base" in modules and "grantwatch.adapters.readers" in modules
    assert not {name for name in modules if name.split(".")[0] in {"boto3", "s3transfer"}}


def test_a_corridors_clients_are_in_its_settings_region_unless_told_otherwise() -> None:
    from grantwatch.adapters.clients import clients_for

    clients = clients_for(Settings(table_name="grantwatch-region-test", region="eu-west-3"))
    assert clients.client("sqs").meta.region_name == "eu-west-3"  # the CLI's --region, Lambda's AWS_REGION
    assert clients.client("sns", region_name="us-west-2").meta.region_name == "us-west-2"
