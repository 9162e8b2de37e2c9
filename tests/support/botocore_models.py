"""botocore's service models read once per test process instead of once per client.

Every pynamodb connection and boto3 client a test builds makes a new botocore session, and each new session
parsed the JSON models (the DynamoDB API, endpoints, partitions) again: more than a third of the integration
tests' time. One loader for the process keeps what it parsed, as one session would; the models are the same
files, read-only, so no test sees a difference."""

from __future__ import annotations

from functools import cache


def share_one_loader() -> None:
    import botocore.loaders
    import botocore.session

    botocore.session.create_loader = cache(botocore.loaders.create_loader)
