"""Typed models of what arrives: CloudTrail records, alone or wrapped in an EventBridge event.

Parsing is lenient about what AWS may add (unknown fields are ignored) and strict about what grantwatch
needs: a record without an event id, name or time is rejected here, at the edge. A rejection is a
`FieldError` naming the field by its path (`detail.eventID`), never its value.

Plain dataclasses and the small readers below, not a validation library: this is on every function's
import path, and Lambda bills the time an import takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Self

EARLIEST_EVENT_YEAR = 2000
LATEST_EVENT_YEAR = 9998

# ISO 8601 as CloudTrail and its exporters write it: "T" or a space between date and time, any number of
# fractional digits (nanoseconds, from some), and a zone, or none: CloudTrail's times are UTC.
_EVENT_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,12}))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<hours>\d{2}):?(?P<minutes>\d{2})?)?",
    re.ASCII,
)
MAX_ERROR_MESSAGE_LENGTH = 2048


class FieldError(ValueError):
    """A field that is missing or not what it must be, named by its path; never carries the value."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '(root)'}: {problem}")
        self.path = path
        self.problem = problem


class Fields:
    """Reads the fields of one JSON object at `path`, raising `FieldError` for any that is wrong."""

    def __init__(self, raw: object, path: str = "") -> None:
        if not isinstance(raw, Mapping):
            raise FieldError(path, "must be a JSON object")
        self.raw: Mapping[str, Any] = raw
        self.path = path

    def where(self, name: str | int) -> str:
        return f"{self.path}.{name}" if self.path else str(name)

    def text(self, name: str, *, min_length: int = 0, max_length: int | None = None) -> str:
        value = self.optional_text(name, min_length=min_length, max_length=max_length)
        if value is None:
            raise FieldError(self.where(name), "is missing" if name not in self.raw else "must be text")
        return value

    def optional_text(self, name: str, *, min_length: int = 0, max_length: int | None = None) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldError(self.where(name), "must be text")
        if len(value) < min_length:
            raise FieldError(self.where(name), f"must have at least {min_length} character(s)")
        if max_length is not None and len(value) > max_length:
            raise FieldError(self.where(name), f"must have at most {max_length} characters")
        return value

    def optional_object(self, name: str) -> dict[str, Any] | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise FieldError(self.where(name), "must be a JSON object")
        return dict(value)

    def optional_text_map(self, name: str) -> dict[str, str] | None:
        found = self.optional_object(name)
        if found is None:
            return None
        for key, value in found.items():
            if not isinstance(value, str):
                # the key names the field; bounded, as an error must stay short whatever arrived
                raise FieldError(f"{self.where(name)}.{str(key)[:128]}", "must be text")
        return found

    def text_list(self, name: str) -> list[str]:
        """A list of text, empty when absent (null is not absent: it is an error)."""
        if name not in self.raw:
            return []
        value = self.raw[name]
        if not isinstance(value, list | tuple):
            raise FieldError(self.where(name), "must be a list")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise FieldError(f"{self.where(name)}.{index}", "must be text")
        return list(value)

    def optional_list(self, name: str) -> list[Any] | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise FieldError(self.where(name), "must be a list")
        return list(value)

    def nested(self, name: str) -> Fields:
        if name not in self.raw:
            raise FieldError(self.where(name), "is missing")
        return Fields(self.raw[name], self.where(name))


@dataclass(frozen=True, slots=True)
class UserIdentity:
    type: str | None = None
    arn: str | None = None
    principal_id: str | None = None
    account_id: str | None = None
    invoked_by: str | None = None

    @classmethod
    def parse(cls, raw: object, path: str) -> Self:
        fields = Fields(raw, path)
        return cls(
            type=fields.optional_text("type"),
            arn=fields.optional_text("arn"),
            principal_id=fields.optional_text("principalId"),
            account_id=fields.optional_text("accountId"),
            invoked_by=fields.optional_text("invokedBy"),
        )


@dataclass(frozen=True, slots=True)
class ResourceRef:
    arn: str | None = None
    type: str | None = None
    account_id: str | None = None

    @classmethod
    def parse(cls, raw: object, path: str) -> Self:
        fields = Fields(raw, path)
        return cls(
            arn=fields.optional_text("ARN"),
            type=fields.optional_text("type"),
            account_id=fields.optional_text("accountId"),
        )


@dataclass(frozen=True, slots=True)
class CloudTrailRecord:
    """The fields of a CloudTrail management event that grantwatch reads; the rest is ignored."""

    event_id: str
    event_name: str
    event_source: str
    event_time: datetime
    aws_region: str
    recipient_account_id: str | None = None
    shared_event_id: str | None = None
    user_identity: UserIdentity = field(default_factory=UserIdentity)
    source_ip_address: str | None = None
    user_agent: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    additional_event_data: dict[str, Any] | None = None
    resources: list[ResourceRef] | None = None

    @classmethod
    def parse(cls, raw: object, path: str = "") -> Self:
        fields = Fields(raw, path)
        resources = fields.optional_list("resources")
        message = fields.raw.get("errorMessage")
        return cls(
            event_id=fields.text("eventID", min_length=1, max_length=128),
            event_name=fields.text("eventName", min_length=1, max_length=128),
            event_source=fields.text("eventSource", min_length=1, max_length=128),
            event_time=_event_time(fields),
            aws_region=fields.text("awsRegion", min_length=1, max_length=64),
            recipient_account_id=fields.optional_text("recipientAccountId"),
            shared_event_id=fields.optional_text("sharedEventID"),
            user_identity=(
                UserIdentity.parse(fields.raw["userIdentity"], fields.where("userIdentity"))
                if "userIdentity" in fields.raw
                else UserIdentity()
            ),
            source_ip_address=fields.optional_text("sourceIPAddress"),
            user_agent=fields.optional_text("userAgent"),
            error_code=fields.optional_text("errorCode"),
            # Read only to find a key in: kept if it is text, and only its beginning.
            error_message=message[:MAX_ERROR_MESSAGE_LENGTH] if isinstance(message, str) else None,
            request_parameters=fields.optional_object("requestParameters"),
            response_elements=fields.optional_object("responseElements"),
            additional_event_data=fields.optional_object("additionalEventData"),
            resources=None
            if resources is None
            else [
                ResourceRef.parse(item, f"{fields.where('resources')}.{index}")
                for index, item in enumerate(resources)
            ],
        )


def _event_time(fields: Fields) -> datetime:
    if "eventTime" not in fields.raw:
        raise FieldError(fields.where("eventTime"), "is missing")
    value = fields.raw["eventTime"]
    try:
        if not isinstance(value, str):
            raise ValueError("eventTime must be an ISO 8601 string, as CloudTrail writes it")
        return parse_event_time(value)
    except ValueError as error:
        raise FieldError(fields.where("eventTime"), str(error)) from None


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


@dataclass(frozen=True, slots=True)
class CloudTrailEventBridgeEvent:
    """EventBridge's envelope around a CloudTrail record (detail-type "AWS API Call via CloudTrail")."""

    source: str
    detail_type: str
    detail: CloudTrailRecord
    id: str | None = None
    account: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, raw: object) -> Self:
        fields = Fields(raw)
        return cls(
            id=fields.optional_text("id"),
            source=fields.text("source"),
            detail_type=fields.text("detail-type"),
            account=fields.optional_text("account"),
            region=fields.optional_text("region"),
            detail=CloudTrailRecord.parse(fields.nested("detail").raw, "detail"),
        )


_CONTEXT_CONSTRAINTS = {
    "encryption_context_equals": "encryptionContextEquals",
    "encryption_context_subset": "encryptionContextSubset",
}


@dataclass(frozen=True, slots=True)
class GrantConstraints:
    """KMS grant constraints as CloudTrail writes them (camelCase); newer kinds are kept as seen (`extra`)."""

    encryption_context_equals: dict[str, str] | None = None
    encryption_context_subset: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: object, path: str) -> Self:
        fields = Fields(raw, path)
        known = set(_CONTEXT_CONSTRAINTS.values())
        return cls(
            encryption_context_equals=fields.optional_text_map("encryptionContextEquals"),
            encryption_context_subset=fields.optional_text_map("encryptionContextSubset"),
            extra={name: value for name, value in fields.raw.items() if name not in known},
        )


@dataclass(frozen=True, slots=True)
class CreateGrantParameters:
    """`requestParameters` of CreateGrant. Grant tokens are deliberately not modelled, so never kept."""

    key_id: str
    grantee_principal: str | None = None
    grantee_service_principal: str | None = None
    retiring_principal: str | None = None
    retiring_service_principal: str | None = None
    operations: list[str] = field(default_factory=list)
    constraints: GrantConstraints | None = None
    name: str | None = None

    @classmethod
    def parse(cls, raw: object, path: str) -> Self:
        fields = Fields(raw, path)
        constraints = fields.raw.get("constraints")
        return cls(
            key_id=fields.text("keyId", min_length=1),
            grantee_principal=fields.optional_text("granteePrincipal", min_length=1),
            grantee_service_principal=fields.optional_text("granteeServicePrincipal", min_length=1),
            retiring_principal=fields.optional_text("retiringPrincipal"),
            retiring_service_principal=fields.optional_text("retiringServicePrincipal"),
            operations=fields.text_list("operations"),
            constraints=None
            if constraints is None
            else GrantConstraints.parse(constraints, fields.where("constraints")),
            name=fields.optional_text("name"),
        )


@dataclass(frozen=True, slots=True)
class RevokeGrantParameters:
    key_id: str
    grant_id: str

    @classmethod
    def parse(cls, raw: object, path: str) -> Self:
        fields = Fields(raw, path)
        return cls(key_id=fields.text("keyId", min_length=1), grant_id=fields.text("grantId", min_length=1))


@dataclass(frozen=True, slots=True)
class RetireGrantParameters:
    """RetireGrant's request parameters are null in CloudTrail; the id comes from additionalEventData."""

    key_id: str | None = None
    grant_id: str | None = None

    @classmethod
    def parse(cls, raw: object, path: str) -> Self:
        fields = Fields(raw, path)
        return cls(key_id=fields.optional_text("keyId"), grant_id=fields.optional_text("grantId"))


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationRequest:
    """Asks for an evaluation after the settle window: the delay queue's message body. Its subject is one
    function, or every function that depends on a key or on a role (`account/name`)."""

    function_arn: str | None = None
    key_arn: str | None = None
    role: str | None = None
    event_id: str
    event_name: str | None = None
    event_time: datetime
    immediate: bool = False
    # a key's or role's: the function its functions are asked for after (their pages, in order)
    after: str | None = None
    # a key's RevokeGrant or CreateGrant: the service's grant, for its resource's evaluation
    grant_id: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.function_arn, self.key_arn, self.role)) != 1:
            raise FieldError("", "an evaluation request names exactly one of functionArn, keyArn, role")

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
    def about_grant(
        cls, key_arn: str, grant_id: str, event_id: str, event_name: str, event_time: datetime
    ) -> EvaluationRequest:
        """Another service's grant revoked (its resource may have lost the key), or created (it may have
        its grant back)."""
        return cls(
            key_arn=key_arn,
            event_id=event_id,
            event_name=event_name,
            event_time=event_time,
            grant_id=grant_id,
        )

    @classmethod
    def about_role(cls, role: str, event_id: str, event_time: datetime) -> EvaluationRequest:
        return cls(role=role, event_id=event_id, event_time=event_time)

    @classmethod
    def from_body(cls, body: str) -> EvaluationRequest:
        """The request a message body holds; `FieldError` naming what is wrong with it."""
        try:
            raw = json.loads(body)
        except ValueError:
            raise FieldError("", "the body is not JSON") from None
        fields = Fields(raw)
        immediate = fields.raw.get("immediate", False)
        if not isinstance(immediate, bool):
            raise FieldError("immediate", "must be true or false")
        # Bounded as the recorder bounds them (grantwatch.domain.facts.KEY_VALUE_LIMITS: 140 and 512 bytes).
        return cls(
            function_arn=fields.optional_text("functionArn", min_length=1, max_length=140),
            key_arn=fields.optional_text("keyArn", min_length=1, max_length=512),
            role=fields.optional_text("role", min_length=1, max_length=128),
            event_id=fields.text("eventID", min_length=1, max_length=128),
            event_name=fields.optional_text("eventName", max_length=128),
            event_time=_event_time(fields),
            immediate=immediate,
            after=fields.optional_text("after", min_length=1, max_length=140),
            grant_id=fields.optional_text("grantId", min_length=1, max_length=128),
        )

    def body(self) -> str:
        named = {
            "functionArn": self.function_arn,
            "keyArn": self.key_arn,
            "role": self.role,
            "eventID": self.event_id,
            "eventName": self.event_name,
            "eventTime": self.event_time.isoformat().replace("+00:00", "Z"),
            "immediate": self.immediate,
            "after": self.after,
            "grantId": self.grant_id,
        }
        return json.dumps({k: v for k, v in named.items() if v is not None}, separators=(",", ":"))
