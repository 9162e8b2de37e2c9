"""`grantwatch notify-test`: a notice marked TEST through the configured alert channels."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from grantwatch.cli.errors import Unavailable, UsageError
from grantwatch.cli.operations import caller_account
from grantwatch.cli.options import RegionOption, resolve_settings
from grantwatch.cli.output import out, print_json
from grantwatch.settings import Settings


class AlertChannel(StrEnum):
    SNS = "sns"
    CHAT = "chat"
    EVENTS = "events"
    SECURITYHUB = "securityhub"


def notify_test(
    channel: Annotated[
        list[AlertChannel] | None,
        typer.Option("--channel", help="Only this channel (repeatable). Default: every configured one."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what each channel would receive; send nothing.")
    ] = False,
    topic_arn: Annotated[
        str | None,
        typer.Option("--topic-arn", help="The SNS text topic (default: GRANTWATCH_ALERT_TOPIC_ARN)."),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", help="Account the test notice names (default: the caller's).", show_default=False
        ),
    ] = None,
    region: RegionOption = None,
) -> None:
    """Send a notice marked TEST through the configured alert channels, to check their wiring after a
    deploy: the SNS text topic (GRANTWATCH_ALERT_TOPIC_ARN), the chat topic (GRANTWATCH_ALERT_CHAT_TOPIC_ARN),
    the alert event bus (GRANTWATCH_ALERT_EVENT_BUS) and Security Hub (GRANTWATCH_SECURITY_HUB_PRODUCT_ARN).
    Its finding is archived at once; PagerDuty is not paged. With --dry-run, prints each channel's payload
    as JSON lines. Exits 2 if a channel asked for is not configured, 3 if a channel failed (all are tried).
    """
    from grantwatch.adapters.channels import ChannelError, FanOut, configured_channels
    from grantwatch.adapters.notifier import publish_request
    from grantwatch.domain.channels import chat_notification, event_entry, finding
    from grantwatch.domain.facts import partition_of
    from grantwatch.domain.notices import trial_notice

    settings = resolve_settings(None, None, region)
    topic = topic_arn or settings.alert_topic_arn
    if dry_run:
        where = _notice_account(account, settings, dry_run=True)
        notice = trial_notice(datetime.now(UTC), account=where, region=settings.region)
        payloads = {
            AlertChannel.SNS: publish_request(topic or "", notice),
            AlertChannel.CHAT: chat_notification(notice),
            AlertChannel.EVENTS: event_entry(notice, settings.alert_event_bus_name or "default"),
            AlertChannel.SECURITYHUB: finding(
                notice, region=settings.region, account=where, partition=partition_of(settings.region)
            ),
        }
        for name in channel or list(AlertChannel):
            print_json({"channel": name.value, "payload": payloads[name]})
        return
    configured = dict(configured_channels(settings, topic))
    wanted = [c.value for c in channel] if channel else list(configured)
    missing = [name for name in wanted if name not in configured]
    if missing or not wanted:
        what = ", ".join(missing) or "any alert channel"
        raise UsageError(f"not configured: {what} (see docs/alerts-channels.md)")
    where = _notice_account(account, settings, dry_run=False)
    notice = trial_notice(datetime.now(UTC), account=where, region=settings.region)
    try:
        FanOut([(name, configured[name]) for name in wanted]).publish(notice)
    except ChannelError as error:
        raise Unavailable(str(error)) from None
    out.print(f"test notice {notice.incident_id} sent to {', '.join(wanted)}")


def _notice_account(account: str | None, settings: Settings, *, dry_run: bool) -> str:
    """--account, else Security Hub's account, else the caller's (a dry run asks AWS nothing: zeros)."""
    if account:
        return account
    if settings.security_hub_product_arn:
        return settings.security_hub_product_arn.split(":")[4]
    return "000000000000" if dry_run else caller_account(settings.region)
