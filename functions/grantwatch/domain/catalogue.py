"""The CloudTrail events grantwatch acts on, per source: the one declaration that the recorder's dispatch and
backfill's selection are derived from, and that the EventBridge rules of the templates are checked against.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# CloudTrail Insights: the records' eventType (in the bucket's CloudTrail-Insight/ files).
INSIGHT_EVENT_TYPE = "AwsCloudTrailInsight"
# IAM is global: CloudTrail records its calls in us-east-1 (in us-east-1's log files, on us-east-1's bus).
GLOBAL_EVENTS_REGION = "us-east-1"
# The errors of a Decrypt that lost access (not throttling or a service fault): AccessDenied (how CloudTrail
# writes it), and the key disabled, pending deletion, or gone, with or without the KMS prefix Lambda uses.
ACCESS_LOSS_ERROR_CODES = (
    "AccessDenied",
    "AccessDeniedException",
    "DisabledException",
    "KMSDisabledException",
    "InvalidStateException",
    "KMSInvalidStateException",
    "NotFoundException",
    "KMSNotFoundException",
)


class EventKind(StrEnum):
    GRANT = "grant"
    KEY_STATE = "key-state"
    ROLE = "role"
    FUNCTION = "function"
    DECRYPT_FAILURE = "decrypt-failure"


@dataclass(frozen=True, slots=True)
class Selection:
    """Events of one kind: one CloudTrail source, the names of its calls, and which outcomes count."""

    kind: EventKind
    source: str  # EventBridge's `source`
    event_source: str  # CloudTrail's `eventSource`
    names: tuple[str, ...]
    # Lambda's names carry an API version (CreateFunction20150331): rules match a prefix ending in the
    # version's first digits, code the name with any version; LookupEvents needs the exact names.
    versioned_names: tuple[str, ...] = ()
    error_codes: tuple[str, ...] = ()  # failed calls with one of these; none: successful calls only
    identity_types: tuple[str, ...] = ()  # the callers, where only some count
    global_service: bool = False
    opt_in: bool = False

    def takes_name(self, event_name: str) -> bool:
        if not self.versioned_names:
            return event_name in self.names
        match = _VERSIONED.match(event_name)
        return match is not None and match["api"] in self.names

    def takes_outcome(self, error_code: object) -> bool:
        """Successful calls for most kinds; failed ones with an access-loss error for failed Decrypts."""
        if self.error_codes:
            return error_code in self.error_codes
        return error_code is None

    def rule_pattern(self) -> dict[str, Any]:
        """The EventBridge pattern that delivers exactly these events (the templates' rules are checked
        against it)."""
        detail: dict[str, Any] = {
            "eventSource": [self.event_source],
            "eventName": (
                [{"prefix": f"{name}20"} for name in self.names] if self.versioned_names else list(self.names)
            ),
            "errorCode": list(self.error_codes) if self.error_codes else [{"exists": False}],
        }
        if self.identity_types:
            detail["userIdentity"] = {"type": list(self.identity_types)}
        return {"source": [self.source], "detail-type": [CLOUDTRAIL_DETAIL_TYPE], "detail": detail}

    @property
    def lookup_names(self) -> tuple[str, ...]:
        return self.versioned_names or self.names


_VERSIONED = re.compile(r"^(?P<api>[A-Za-z]+?)(\d{8}(v\d+)?)?$")

GRANT_CALLS = Selection(
    EventKind.GRANT, "aws.kms", "kms.amazonaws.com", ("CreateGrant", "RetireGrant", "RevokeGrant")
)
KEY_STATE_CALLS = Selection(
    EventKind.KEY_STATE,
    "aws.kms",
    "kms.amazonaws.com",
    ("DisableKey", "EnableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy"),
)
ROLE_CALLS = Selection(
    EventKind.ROLE, "aws.iam", "iam.amazonaws.com", ("CreateRole", "DeleteRole"), global_service=True
)
FUNCTION_CALLS = Selection(
    EventKind.FUNCTION,
    "aws.lambda",
    "lambda.amazonaws.com",
    ("CreateFunction", "UpdateFunctionConfiguration", "DeleteFunction"),
    versioned_names=(
        "CreateFunction20150331",
        "UpdateFunctionConfiguration20150331v2",
        "DeleteFunction20150331",
    ),
)
# Opt-in: Decrypt is read-only, which a rule sees only in the state
# ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS.
# A function decrypts as its execution role's session (an assumed role), whichever of the two shapes the
# record has (with the encryption context that names the function, or with none at all).
DECRYPT_FAILURES = Selection(
    EventKind.DECRYPT_FAILURE,
    "aws.kms",
    "kms.amazonaws.com",
    ("Decrypt",),
    error_codes=ACCESS_LOSS_ERROR_CODES,
    identity_types=("AssumedRole",),
    opt_in=True,
)
CATALOGUE = (GRANT_CALLS, KEY_STATE_CALLS, ROLE_CALLS, FUNCTION_CALLS, DECRYPT_FAILURES)
LAMBDA_EVENT_SOURCE = FUNCTION_CALLS.event_source
KMS_EVENT_SOURCE = GRANT_CALLS.event_source
IAM_EVENT_SOURCE = ROLE_CALLS.event_source


def rule_pattern(*kinds: Selection) -> dict[str, Any]:
    """One rule's pattern for calls of one source and outcome (a rule may take more than one kind)."""
    pattern = kinds[0].rule_pattern()
    for other in kinds[1:]:
        more = other.rule_pattern()
        names = more["detail"].pop("eventName")
        if {**more, "detail": {**more["detail"], "eventName": None}} != {
            **pattern,
            "detail": {**pattern["detail"], "eventName": None},
        }:
            raise ValueError(f"{other.kind} cannot share a rule with {kinds[0].kind}")
        pattern["detail"]["eventName"] = pattern["detail"]["eventName"] + names
    return pattern


def selection_of(event_source: object, event_name: object) -> Selection | None:
    """The kind of call a record is, by its source and name alone; None for calls grantwatch ignores."""
    if not isinstance(event_source, str) or not isinstance(event_name, str):
        return None
    return next((s for s in CATALOGUE if s.event_source == event_source and s.takes_name(event_name)), None)


def selected(record: Mapping[str, Any], *, decrypt_failures: bool = True) -> Selection | None:
    """The selection a raw CloudTrail record falls in (name, outcome and caller), or None: what backfill
    keeps. Opt-in kinds count only when asked for."""
    found = screened(record)
    if not isinstance(found, Selection) or (found.opt_in and not decrypt_failures):
        return None
    return found


def screened(record: Mapping[str, Any]) -> Selection | str | None:
    """The selection a raw record falls in, told from its source, name, outcome and caller alone; else why
    it falls in none; None when its source or name is not text (only a strict reading can say what is
    wrong)."""
    if (insight := insights_record(record)) is not None:
        return insight
    source, name = record.get("eventSource"), record.get("eventName")
    if not isinstance(source, str) or not isinstance(name, str):
        return None
    selection = selection_of(source, name)
    if selection is None:
        return f"not an event grantwatch acts on: {source[:128]} {name[:128]}"
    error_code = record.get("errorCode")
    if not selection.error_codes:
        return f"failed call: {error_code[:128]}" if isinstance(error_code, str) and error_code else selection
    if error_code is None:
        return f"a {name} that succeeded"
    if isinstance(error_code, str) and not selection.takes_outcome(error_code):
        return f"a failed {name} that says nothing of access: {error_code[:128]}"
    identity = record.get("userIdentity")
    caller = identity.get("type") if isinstance(identity, dict) else None
    if selection.identity_types and caller not in selection.identity_types:
        return f"a failed {name} by a caller that is not an assumed role's session"
    return selection


def insights_record(record: Mapping[str, Any]) -> str | None:
    """Why a CloudTrail Insights record is no call to act on, or None for any other record. An Insights
    record reports an unusual rate of calls or errors: it has no top-level eventName (its API's name is in
    insightDetails) and it sits in the trail's bucket beside the calls (CloudTrail-Insight/ instead of
    CloudTrail/), so a replay or backfill of the bucket meets it."""
    if record.get("eventType") != INSIGHT_EVENT_TYPE and record.get("eventCategory") != "Insight":
        return None
    details = record.get("insightDetails")
    kind = details.get("insightType") if isinstance(details, Mapping) else None
    what = f" ({kind[:64]})" if isinstance(kind, str) and kind else ""
    return f"a CloudTrail Insights record{what}: not an API call"


def selections(*, decrypt_failures: bool) -> tuple[Selection, ...]:
    return tuple(s for s in CATALOGUE if decrypt_failures or not s.opt_in)
