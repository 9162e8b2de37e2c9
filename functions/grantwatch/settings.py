"""Every setting grantwatch reads, in one typed model, read from the environment on first use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_TABLE = "grantwatch"
DEFAULT_REGION = "us-east-1"
MIN_RETENTION_DAYS = 30
_DAY_SECONDS = 86400


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table_name: str = Field(default=DEFAULT_TABLE, min_length=3, max_length=255)
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    rejected_queue_url: str | None = None
    evaluation_queue_url: str | None = None
    alert_topic_arn: str | None = None
    # The optional alert channels (docs/alerts-channels.md): each is on when set.
    alert_chat_topic_arn: str | None = None
    alert_event_bus_name: str | None = Field(default=None, max_length=1600)
    security_hub_product_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:securityhub:[a-z0-9-]+:\d{12}:product/\d{12}/default$"
    )
    heal_tag: str = Field(default="grantwatch:self-heal", min_length=1, max_length=128)
    heal_max_attempts: int = Field(default=2, ge=1, le=5)
    heal_verify_seconds: int = Field(default=60, ge=0, le=600)
    # How long one DynamoDB call may wait for an answer, and how many times it is retried (with backoff)
    # before the caller gets the error: together how long a stalled table is ridden out.
    dynamodb_read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    dynamodb_retries: int = Field(default=5, ge=0, le=20)
    # SelfHealingTemporaryRoleArn: the role the role switch moves a function to and back from
    heal_temporary_role_arn: str | None = Field(
        default=None, max_length=2048, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
    )
    retention_days: int = Field(default=0, ge=0, le=9999)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **overrides: str | None) -> Settings:
        """Explicit overrides first (CLI flags), then the environment, then the defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for field, variable in (
            ("table_name", "GRANTWATCH_TABLE"),
            ("endpoint_url", "AWS_ENDPOINT_URL_DYNAMODB"),
            ("rejected_queue_url", "GRANTWATCH_REJECTED_QUEUE_URL"),
            ("evaluation_queue_url", "GRANTWATCH_EVALUATION_QUEUE_URL"),
            ("alert_topic_arn", "GRANTWATCH_ALERT_TOPIC_ARN"),
            ("alert_chat_topic_arn", "GRANTWATCH_ALERT_CHAT_TOPIC_ARN"),
            ("alert_event_bus_name", "GRANTWATCH_ALERT_EVENT_BUS"),
            ("security_hub_product_arn", "GRANTWATCH_SECURITY_HUB_PRODUCT_ARN"),
            ("heal_tag", "GRANTWATCH_HEAL_TAG"),
            ("heal_max_attempts", "GRANTWATCH_HEAL_MAX_ATTEMPTS"),
            ("heal_verify_seconds", "GRANTWATCH_HEAL_VERIFY_SECONDS"),
            ("dynamodb_read_timeout_seconds", "GRANTWATCH_DYNAMODB_READ_TIMEOUT_SECONDS"),
            ("dynamodb_retries", "GRANTWATCH_DYNAMODB_RETRIES"),
            ("heal_temporary_role_arn", "GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN"),
            ("retention_days", "GRANTWATCH_RETENTION_DAYS"),
        ):
            if env.get(variable):
                values[field] = env[variable]
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
        values.update({k: v for k, v in overrides.items() if v})
        return cls.model_validate(values)

    @field_validator("retention_days")
    @classmethod
    def _keep_or_a_month(cls, days: int) -> int:
        if 0 < days < MIN_RETENTION_DAYS:
            raise ValueError(f"0 (keep everything) or at least {MIN_RETENTION_DAYS} days")
        return days

    def expires_at(self, ended_at: datetime, now: datetime | None = None) -> int | None:
        """When DynamoDB's TTL may delete what ended at `ended_at` (epoch seconds), counted from then or
        from `now` (when it is written: the wall clock unless given), whichever is later, so that what is
        recorded after the period (a backfill) is not deleted at once with the ids that mark its event
        seen. None: kept for ever."""
        if not self.retention_days:
            return None
        written = now or datetime.now(UTC)
        return int(max(ended_at.timestamp(), written.timestamp())) + self.retention_days * _DAY_SECONDS

    @property
    def endpoint_is_local(self) -> bool:
        """True for DynamoDB Local on this machine, which takes any credentials."""
        if not self.endpoint_url:
            return False
        host = urlparse(self.endpoint_url).hostname or ""
        return host == "localhost" or host.startswith("127.") or host == "::1"


@cache
def settings() -> Settings:
    """The settings of this process (a Lambda execution environment), read once."""
    return Settings.from_environ()


def required(value: str | None, variable: str) -> str:
    """A setting a function cannot work without: fail the invocation (so the event is retried, not lost)."""
    if not value:
        raise RuntimeError(f"{variable} is not set")
    return value
