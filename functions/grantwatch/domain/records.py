"""Typed models of what arrives: CloudTrail records, alone or wrapped in an EventBridge event.

Parsing is lenient about what AWS may add (unknown fields are ignored) and strict about what grantwatch
needs: a record without an event id, name or time is rejected here, at the edge.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EARLIEST_EVENT_YEAR = 2000
LATEST_EVENT_YEAR = 9998

_LENIENT = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)
# ISO 8601 as CloudTrail and its exporters write it: "T" or a space between date and time, any number of
# fractional digits (nanoseconds, from some), and a zone, or none: CloudTrail's times are UTC.
_EVENT_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,12}))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<hours>\d{2}):?(?P<minutes>\d{2})?)?",
    re.ASCII,
)
MAX_ERROR_MESSAGE_LENGTH = 2048


class UserIdentity(BaseModel):
    model_config = _LENIENT

    type: str | None = None
    arn: str | None = None
    principal_id: str | None = Field(default=None, alias="principalId")
    account_id: str | None = Field(default=None, alias="accountId")
    invoked_by: str | None = Field(default=None, alias="invokedBy")


class ResourceRef(BaseModel):
    model_config = _LENIENT

    arn: str | None = Field(default=None, alias="ARN")
    type: str | None = None
    account_id: str | None = Field(default=None, alias="accountId")


class CloudTrailRecord(BaseModel):
    """The fields of a CloudTrail management event that grantwatch reads; the rest is ignored."""

    model_config = _LENIENT

    event_id: str = Field(alias="eventID", min_length=1, max_length=128)
    event_name: str = Field(alias="eventName", min_length=1, max_length=128)
    event_source: str = Field(alias="eventSource", min_length=1, max_length=128)
    event_time: datetime = Field(alias="eventTime")
    aws_region: str = Field(alias="awsRegion", min_length=1, max_length=64)
    recipient_account_id: str | None = Field(default=None, alias="recipientAccountId")
    shared_event_id: str | None = Field(default=None, alias="sharedEventID")
    user_identity: UserIdentity = Field(default_factory=UserIdentity, alias="userIdentity")
    source_ip_address: str | None = Field(default=None, alias="sourceIPAddress")
    user_agent: str | None = Field(default=None, alias="userAgent")
    error_code: str | None = Field(default=None, alias="errorCode")
    error_message: str | None = Field(default=None, alias="errorMessage")
    request_parameters: dict[str, Any] | None = Field(default=None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(default=None, alias="responseElements")
    additional_event_data: dict[str, Any] | None = Field(default=None, alias="additionalEventData")
    resources: list[ResourceRef] | None = None

    @field_validator("event_time", mode="before")
    @classmethod
    def _read_time(cls, value: object) -> datetime:
        if not isinstance(value, str):
            raise ValueError("eventTime must be an ISO 8601 string, as CloudTrail writes it")
        return parse_event_time(value)

    @field_validator("error_message", mode="before")
    @classmethod
    def _bounded_message(cls, value: object) -> str | None:
        """Read only to find a key in: kept if it is text, and only its beginning."""
        return value[:MAX_ERROR_MESSAGE_LENGTH] if isinstance(value, str) else None


def parse_event_time(text: str) -> datetime:
    """An eventTime in UTC. Without a zone it is UTC, as CloudTrail's times are; digits beyond the
    microsecond are dropped."""
    match = _EVENT_TIME.fullmatch(text.strip()) if len(text) <= 64 else None
    if match is None:
        raise ValueError("eventTime must be an ISO 8601 time, as CloudTrail writes it")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}")
    except ValueError:
        raise ValueError("eventTime is not a valid date and time") from None
    if not EARLIEST_EVENT_YEAR <= moment.year <= LATEST_EVENT_YEAR:
        raise ValueError(f"eventTime must fall between {EARLIEST_EVENT_YEAR} and {LATEST_EVENT_YEAR}")
    if match["sign"]:
        offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
        if offset >= timedelta(hours=24):
            raise ValueError("eventTime has an offset of a day or more")
        zone = timezone(offset if match["sign"] == "+" else -offset)
        return moment.replace(tzinfo=zone).astimezone(UTC)
    return moment.replace(tzinfo=UTC)


class CloudTrailEventBridgeEvent(BaseModel):
    """EventBridge's envelope around a CloudTrail record (detail-type "AWS API Call via CloudTrail")."""

    model_config = _LENIENT

    id: str | None = None
    source: str
    detail_type: str = Field(alias="detail-type")
    account: str | None = None
    region: str | None = None
    detail: CloudTrailRecord


class GrantConstraints(BaseModel):
    """KMS grant constraints as CloudTrail writes them (camelCase); newer kinds are kept as seen."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    encryption_context_equals: dict[str, str] | None = Field(default=None, alias="encryptionContextEquals")
    encryption_context_subset: dict[str, str] | None = Field(default=None, alias="encryptionContextSubset")


class CreateGrantParameters(BaseModel):
    """`requestParameters` of CreateGrant. Grant tokens are deliberately not modelled, so never kept."""

    model_config = _LENIENT

    key_id: str = Field(alias="keyId", min_length=1)
    grantee_principal: str | None = Field(default=None, alias="granteePrincipal", min_length=1)
    grantee_service_principal: str | None = Field(default=None, alias="granteeServicePrincipal", min_length=1)
    retiring_principal: str | None = Field(default=None, alias="retiringPrincipal")
    retiring_service_principal: str | None = Field(default=None, alias="retiringServicePrincipal")
    operations: list[str] = Field(default_factory=list)
    constraints: GrantConstraints | None = None
    name: str | None = None


class RevokeGrantParameters(BaseModel):
    model_config = _LENIENT

    key_id: str = Field(alias="keyId", min_length=1)
    grant_id: str = Field(alias="grantId", min_length=1)


class RetireGrantParameters(BaseModel):
    """RetireGrant's request parameters are null in CloudTrail; the id comes from additionalEventData."""

    model_config = _LENIENT

    key_id: str | None = Field(default=None, alias="keyId")
    grant_id: str | None = Field(default=None, alias="grantId")


class EvaluationRequest(BaseModel):
    """Asks for an evaluation after the settle window: the delay queue's message body. Its subject is one
    function, or every function that depends on a key or on a role (`account/name`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # Bounded as the recorder bounds them (grantwatch.domain.facts.KEY_VALUE_LIMITS: 140 and 512 bytes).
    function_arn: str | None = Field(default=None, alias="functionArn", min_length=1, max_length=140)
    key_arn: str | None = Field(default=None, alias="keyArn", min_length=1, max_length=512)
    role: str | None = Field(default=None, alias="role", min_length=1, max_length=128)
    event_id: str = Field(alias="eventID", min_length=1, max_length=128)
    event_name: str | None = Field(default=None, alias="eventName", max_length=128)
    event_time: datetime = Field(alias="eventTime")
    immediate: bool = False

    @model_validator(mode="after")
    def _one_subject(self) -> EvaluationRequest:
        if sum(x is not None for x in (self.function_arn, self.key_arn, self.role)) != 1:
            raise ValueError("an evaluation request names exactly one of functionArn, keyArn, role")
        return self

    @classmethod
    def about(
        cls, function_arn: str, event_id: str, event_time: datetime, *, immediate: bool = False
    ) -> EvaluationRequest:
        return cls(function_arn=function_arn, event_id=event_id, event_time=event_time, immediate=immediate)

    @classmethod
    def about_key(
        cls, key_arn: str, event_id: str, event_name: str, event_time: datetime
    ) -> EvaluationRequest:
        return cls(key_arn=key_arn, event_id=event_id, event_name=event_name, event_time=event_time)

    @classmethod
    def about_role(cls, role: str, event_id: str, event_time: datetime) -> EvaluationRequest:
        return cls(role=role, event_id=event_id, event_time=event_time)

    def body(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)
