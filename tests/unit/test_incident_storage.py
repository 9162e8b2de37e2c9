"""The incident's stored shape belongs to its adapter and is stored data: it must not move when the notices'
wording or details change."""

from __future__ import annotations

from datetime import UTC, datetime

from grantwatch.adapters.functions import incident_from_map, incident_to_map
from grantwatch.domain.alerts import Incident
from grantwatch.domain.facts import Actor
from grantwatch.domain.notices import alert_notice
from grantwatch.domain.risk import Cause, Evidence

AT = datetime(2026, 11, 20, 16, 42, 31, tzinfo=UTC)
INCIDENT = Incident(
    incident_id="20261120T164300Z-abfc6dbb",
    function_arn="arn:aws:lambda:eu-central-1:210987654321:function:billing",
    key_arn="arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
    role="arn:aws:iam::210987654321:role/billing-role",
    cause=Cause.GRANT_RETIRED,
    evidence=Evidence(
        what="retired",
        event_name="RetireGrant",
        event_id="745e1982-0000-4000-8000-000000000001",
        at=AT,
        actor=Actor(
            principal="arn:aws:sts::210987654321:assumed-role/admins/dana",
            identity_type="AssumedRole",
            via=None,
            source_ip="203.0.113.24",
        ),
    ),
    detected_at=datetime(2026, 11, 20, 16, 43, tzinfo=UTC),
    grant_id="abfc6dbb",
)

# As every version so far has written it: no nulls, no empty lists.
STORED = {
    "incidentId": "20261120T164300Z-abfc6dbb",
    "alertType": "grant-retired",
    "predicted": True,
    "functionArn": "arn:aws:lambda:eu-central-1:210987654321:function:billing",
    "keyArn": "arn:aws:kms:eu-central-1:210987654321:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6",
    "executionRole": "arn:aws:iam::210987654321:role/billing-role",
    "grantId": "abfc6dbb",
    "evidence": {
        "what": "retired",
        "eventName": "RetireGrant",
        "eventId": "745e1982-0000-4000-8000-000000000001",
        "at": "2026-11-20T16:42:31Z",
        "by": "arn:aws:sts::210987654321:assumed-role/admins/dana",
        "from": "203.0.113.24",
        "identityType": "AssumedRole",
    },
    "detectedAt": "2026-11-20T16:43:00Z",
    "awsManagedKey": False,
}


def test_the_incident_is_stored_as_it_always_was_and_read_back_whole() -> None:
    assert incident_to_map(INCIDENT) == STORED
    assert incident_from_map(STORED) == INCIDENT


def test_the_stored_shape_does_not_follow_the_notices_details() -> None:
    details = alert_notice(INCIDENT).details
    assert {"severity", "functionName", "fix"} <= details.keys()
    assert not {"severity", "functionName", "fix"} & incident_to_map(INCIDENT).keys()
