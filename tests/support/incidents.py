"""An incident to build notices and heals from: one function, its key and role, at one moment."""

from __future__ import annotations

from datetime import UTC, datetime

from grantwatch.domain.alerts import Incident
from grantwatch.domain.facts import Actor
from grantwatch.domain.risk import Cause, Evidence

ACCOUNT = "210987654321"
FUNCTION = f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:billing"
KEY = f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service/billing-role"
TEMPORARY = f"arn:aws:iam::{ACCOUNT}:role/grantwatch-heal-temporary"
AWS_LAMBDA_KEY = f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/0a1b2c3d-aaaa-4bbb-8ccc-000000000001"
T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
ADMIN = Actor(principal="arn:aws:sts::210987654321:assumed-role/admin/dana", identity_type=None, via=None)


def incident(cause: Cause = Cause.GRANT_RETIRED) -> Incident:
    return Incident(
        incident_id="20261101T100000Z-g1",
        function_arn=FUNCTION,
        key_arn=KEY,
        role=ROLE,
        cause=cause,
        evidence=Evidence("retired", "RetireGrant", "e1", T0, ADMIN),
        detected_at=T0,
        grant_id="g1",
    )
