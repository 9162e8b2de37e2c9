"""Every setting grantwatch reads, in one typed model, read from the environment on first use."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlparse

DEFAULT_TABLE = "grantwatch"
DEFAULT_REGION = "us-east-1"
MIN_RETENTION_DAYS = 30
_DAY_SECONDS = 86400
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")
# An SSM parameter's name as template.yaml takes it: fully qualified (the ARN is `parameter` + the name).
_PARAMETER_NAME = re.compile(r"(/[A-Za-z0-9_.-]+)+")
_PARAMETER_NAME_MAX = 1011
_FINDINGS_PRODUCT_ARN = re.compile(r"arn:aws[a-z-]*:securityhub:[a-z0-9-]+:\d{12}:product/\d{12}/default")

# Each setting read from the environment, and the variable it is read from.
_VARIABLES = (
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
    ("organization_queue_url", "GRANTWATCH_ORGANIZATION_QUEUE_URL"),
    ("account_ids", "GRANTWATCH_ACCOUNT_IDS"),
    ("account_ids_parameter", "GRANTWATCH_ACCOUNT_IDS_PARAMETER"),
    ("central_account_id", "GRANTWATCH_CENTRAL_ACCOUNT_ID"),
    ("regions", "GRANTWATCH_REGIONS"),
    ("reconcile_schedule", "GRANTWATCH_RECONCILE_SCHEDULE"),
    ("member_role_name", "GRANTWATCH_MEMBER_ROLE_NAME"),
    ("member_external_id", "GRANTWATCH_MEMBER_EXTERNAL_ID"),
    ("canary_key_arn", "GRANTWATCH_CANARY_KEY_ARN"),
    ("canary_role_arn", "GRANTWATCH_CANARY_ROLE_ARN"),
    ("member_canary_interval_minutes", "GRANTWATCH_MEMBER_CANARY_INTERVAL_MINUTES"),
)
_WHOLE_NUMBERS = frozenset(
    {
        "heal_max_attempts",
        "heal_verify_seconds",
        "dynamodb_retries",
        "retention_days",
        "member_canary_interval_minutes",
    }
)
_NUMBERS = frozenset({"dynamodb_read_timeout_seconds"})


class SettingsError(ValueError):
    """A setting out of its range, named (never its value: an environment variable may hold a secret)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Checked when made, so `dataclasses.replace` checks a changed copy too."""

    table_name: str = DEFAULT_TABLE
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    rejected_queue_url: str | None = None
    evaluation_queue_url: str | None = None
    alert_topic_arn: str | None = None
    # The optional alert channels (docs/alerts-channels.md): each is on when set.
    alert_chat_topic_arn: str | None = None
    alert_event_bus_name: str | None = None
    security_hub_product_arn: str | None = None
    heal_tag: str = "grantwatch:self-heal"
    heal_max_attempts: int = 2
    heal_verify_seconds: int = 60
    # How long one DynamoDB call may wait for an answer, and how many times it is retried (with backoff)
    # before the caller gets the error: together how long a stalled table is ridden out.
    dynamodb_read_timeout_seconds: float = 10.0
    dynamodb_retries: int = 5
    # SelfHealingTemporaryRoleArn: the role the role switch moves a function to and back from
    heal_temporary_role_arn: str | None = None
    retention_days: int = 0
    # Organization reconciliation (docs/organizations.md): the queue of account-regions, the accounts and
    # regions to cover (comma-separated, or the SSM parameter that lists the accounts; none: the
    # organization's active accounts, the stack's region), the central account (reconciled with its own
    # credentials), the schedule, and the member role with its external id (kept out of the repr, as out
    # of logs).
    organization_queue_url: str | None = None
    account_ids: str = ""
    account_ids_parameter: str | None = None
    central_account_id: str | None = None
    regions: str = ""
    reconcile_schedule: str = "rate(1 hour)"
    member_role_name: str | None = None
    member_external_id: str | None = field(default=None, repr=False)
    # The canary (docs/canary.md): its key, which the recorder recognises the canary's events by, and the
    # role the canary grants to itself.
    canary_key_arn: str | None = None
    canary_role_arn: str | None = None
    # How often member accounts' canaries are expected to run (the central stack's CanaryIntervalMinutes):
    # the fan-out flags a member account-region not heard for two of them. 0: not checked.
    member_canary_interval_minutes: int = 0

    def __post_init__(self) -> None:
        _length("table_name", self.table_name, 3, 255)
        _length("heal_tag", self.heal_tag, 1, 128)
        _within("heal_max_attempts", self.heal_max_attempts, 1, 5)
        _within("heal_verify_seconds", self.heal_verify_seconds, 0, 600)
        _within("dynamodb_retries", self.dynamodb_retries, 0, 20)
        _within("retention_days", self.retention_days, 0, 9999)
        _within("member_canary_interval_minutes", self.member_canary_interval_minutes, 0, 1440)
        if 0 < self.retention_days < MIN_RETENTION_DAYS:
            raise SettingsError(
                "retention_days", f"0 (keep everything) or at least {MIN_RETENTION_DAYS} days"
            )
        if not 0 < self.dynamodb_read_timeout_seconds <= 300:
            raise SettingsError("dynamodb_read_timeout_seconds", "must be more than 0 and at most 300")
        if self.alert_event_bus_name is not None:
            _length("alert_event_bus_name", self.alert_event_bus_name, 1, 1600)
        product = self.security_hub_product_arn
        if product is not None and not _FINDINGS_PRODUCT_ARN.fullmatch(product):
            raise SettingsError(
                "security_hub_product_arn", "must be the ARN of the account's default product"
            )
        self._check_organization()
        role = self.heal_temporary_role_arn
        if role is not None and (len(role) > 2048 or not _ROLE_ARN.fullmatch(role)):
            raise SettingsError("heal_temporary_role_arn", "must be the ARN of an IAM role")

    def _check_organization(self) -> None:
        if not all(_ACCOUNT_ID.fullmatch(a) for a in self.account_id_list):
            raise SettingsError("account_ids", "must be 12-digit account ids separated by commas")
        if not all(_REGION.fullmatch(r) for r in self.region_list):
            raise SettingsError("regions", "must be region names separated by commas")
        central = self.central_account_id
        if central is not None and not _ACCOUNT_ID.fullmatch(central):
            raise SettingsError("central_account_id", "must be a 12-digit account id")
        name = self.account_ids_parameter
        if name is None:
            return
        if len(name) > _PARAMETER_NAME_MAX or not _PARAMETER_NAME.fullmatch(name):
            raise SettingsError(
                "account_ids_parameter",
                f"must be an SSM parameter name that starts with / (at most {_PARAMETER_NAME_MAX} "
                "letters, digits and _.-/)",
            )
        if self.account_id_list:
            raise SettingsError("account_ids_parameter", "and account_ids cannot both be set")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **overrides: str | None) -> Settings:
        """Explicit overrides first (CLI flags), then the environment, then the defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {name: env[variable] for name, variable in _VARIABLES if env.get(variable)}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
        values.update({k: v for k, v in overrides.items() if v})
        return cls(**{name: _typed(name, value) for name, value in values.items()})

    @property
    def account_id_list(self) -> list[str]:
        return _listed(self.account_ids)

    @property
    def region_list(self) -> list[str]:
        return _listed(self.regions)

    def expires_at(self, ended_at: datetime, now: datetime | None = None) -> int | None:
        """When DynamoDB's TTL may delete what ended at `ended_at` (epoch seconds), counted from then or
        from `now` (when it is written: the wall clock unless given), whichever is later, so that what is
        recorded after the period (a backfill) is not deleted at once with the ids that mark its event
        seen. None: kept for ever."""
        if not self.retention_days:
            return None
        written = now or datetime.now(UTC)
        return int(max(ended_at.timestamp(), written.timestamp())) + self.retention_days * _DAY_SECONDS

    def expiry_is_current(self, ended_at: datetime, stored: int, now: datetime | None = None) -> bool:
        """Whether a stored expiresAt is one `expires_at` gives under the current period: the period after
        a moment between the end and now (when it was written). An expiry stamped under another period is
        not (unless the item was written that much after it ended, which nothing stored tells apart)."""
        if not self.retention_days:
            return True
        counted_from = stored - self.retention_days * _DAY_SECONDS
        return int(ended_at.timestamp()) <= counted_from <= int((now or datetime.now(UTC)).timestamp())

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


def _typed(name: str, value: str) -> Any:
    """A setting read as text (a variable or a flag) as the type it has."""
    try:
        if name in _WHOLE_NUMBERS:
            return int(value)
        if name in _NUMBERS:
            return float(value)
    except ValueError:
        raise SettingsError(name, "must be a number") from None
    return value


def _length(name: str, value: str, least: int, most: int) -> None:
    if not least <= len(value) <= most:
        raise SettingsError(name, f"must have {least} to {most} characters")


def _within(name: str, value: int, least: int, most: int) -> None:
    if not least <= value <= most:
        raise SettingsError(name, f"must be from {least} to {most}")


def _listed(values: str) -> list[str]:
    return [value.strip() for value in values.split(",") if value.strip()]
