"""Shared fixtures. DynamoDB Local is started once per test process (each pytest-xdist worker has its own),
in memory, and stopped at the end; each test gets a fresh table created from template.yaml."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from grantwatch import local as local_dynamo
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.settings import Settings
from tests.support import hypothesis_profile
from tests.support.botocore_models import share_one_loader
from tests.support.samples import ROOT
from tests.support.tables import new_table

# No test may reach AWS: fake credentials and a fixed region, set before any client exists.
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "grantwatch-tests",
    "POWERTOOLS_SERVICE_NAME": "grantwatch-tests",
}.items():
    os.environ[name] = value
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "GRANTWATCH_TABLE"):
    os.environ.pop(name, None)
share_one_loader()
hypothesis_profile.load()  # one profile whichever folders the run collected


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_dynamo.LocalDynamo]:
    state_dir = tmp_path_factory.mktemp("dynamodb-local")
    running = local_dynamo.start(ROOT, state_dir, port=local_dynamo.free_port(), in_memory=True)
    try:
        yield running
    finally:
        local_dynamo.stop(state_dir)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's own process stops every DynamoDB Local started under the run's temporary folder that still
    runs: one a pytest-xdist worker left when it crashed or was killed before its teardown."""
    if hasattr(session.config, "workerinput"):
        return
    factory: pytest.TempPathFactory | None = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    for state_file in factory.getbasetemp().glob("**/state.json"):
        local_dynamo.stop(state_file.parent)


@pytest.fixture
def table_settings(dynamodb_local: local_dynamo.LocalDynamo) -> Settings:
    return new_table(dynamodb_local.endpoint_url, "grantwatch-test")


@pytest.fixture
def store(table_settings: Settings) -> DynamoGrantStore:
    return DynamoGrantStore(table_settings)


# IAM as a tested contract (tests/support/iam_contract.py): every AWS call a Lambda function's code makes
# during the run is checked against that function's policy in template.yaml; a call the policy does not
# allow fails the run, with the list of such calls, also when pytest-xdist's workers made it.
# AWS's documented limits as a tested contract too (tests/support/limits_contract.py): every AWS request of
# the run is checked against the limits AWS documents for it; a request over one fails the run, with the list.
# A run of the whole tree leaves its wall time in build/test-time.json (tests/support/session_time.py).
pytest_plugins = [
    "tests.support.iam_contract_plugin",
    "tests.support.limits_contract_plugin",
    "tests.support.session_time",
]
