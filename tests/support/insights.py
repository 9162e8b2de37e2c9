"""CloudTrail Insights records, in the shape CloudTrail documents for them: an unusual rate of calls or of
errors of one API, opened by a Start record and closed by an End record. They have no top-level eventName
or eventSource (the API's are in insightDetails) and CloudTrail writes them to the trail's bucket under
CloudTrail-Insight/, beside the calls under CloudTrail/."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tests.support.samples import ACCOUNT, REGION

INSIGHT_DETAIL_TYPE = "AWS Insight via CloudTrail"


def _id(label: str) -> str:
    return str(uuid.UUID(hashlib.sha256(label.encode()).hexdigest()[:32]))


def insights_record(
    state: str,
    at: str,
    *,
    insight_type: str = "ApiCallRateInsight",
    event_source: str = "kms.amazonaws.com",
    event_name: str = "CreateGrant",
    error_code: str | None = None,
) -> dict[str, Any]:
    """One Insights record; an End record carries the insight's statistics over its whole duration."""
    shared = _id(f"{insight_type} {event_name}")
    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci"
    statistics: dict[str, Any] = {
        "baseline": {"average": 0.0417},
        "insight": {"average": 3.25},
    }
    if state == "End":
        statistics |= {"insightDuration": 11, "baselineDuration": 10079}
    details: dict[str, Any] = {
        "state": state,
        "eventSource": event_source,
        "eventName": event_name,
        "insightType": insight_type,
        "insightContext": {
            "statistics": statistics,
            "attributions": [
                {
                    "attribute": "userIdentityArn",
                    "insight": [{"value": caller, "average": 3.1}],
                    "baseline": [{"value": caller, "average": 0.04}],
                }
            ],
        },
    }
    if error_code is not None:
        details["errorCode"] = error_code
    return {
        "eventVersion": "1.08",
        "eventTime": at,
        "awsRegion": REGION,
        "eventID": _id(f"{shared} {state} {at}"),
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": ACCOUNT,
        "sharedEventID": shared,
        "insightDetails": details,
        "eventCategory": "Insight",
    }


def insights_records() -> list[dict[str, Any]]:
    """A call-rate insight on CreateGrant and an error-rate insight on Decrypt, each opened and closed."""
    return [
        insights_record("Start", "2026-11-10T09:00:00Z"),
        insights_record("End", "2026-11-10T09:11:00Z"),
        insights_record(
            "Start",
            "2026-11-10T09:20:00Z",
            insight_type="ApiErrorRateInsight",
            event_name="Decrypt",
            error_code="AccessDeniedException",
        ),
        insights_record(
            "End",
            "2026-11-10T09:31:00Z",
            insight_type="ApiErrorRateInsight",
            event_name="Decrypt",
            error_code="AccessDeniedException",
        ),
    ]


def on_event_bridge(record: dict[str, Any], detail_type: str = INSIGHT_DETAIL_TYPE) -> dict[str, Any]:
    """The record as EventBridge delivers an Insights event (source aws.cloudtrail), or as `detail_type`."""
    return {
        "version": "0",
        "id": _id(f"envelope {record['eventID']} {detail_type}"),
        "detail-type": detail_type,
        "source": "aws.cloudtrail",
        "account": ACCOUNT,
        "time": record["eventTime"],
        "region": REGION,
        "resources": [],
        "detail": record,
    }
