"""The alert channels besides the SNS text topic: the Amazon Q Developer chat topic, an EventBridge bus (which
also feeds PagerDuty through the template's API destination) and Security Hub; and the notifier that sends
every notice to each configured channel.

A notice is sent at least once to each channel, and to a channel that took it, once: the evaluator records
on the incident which channels took each notice, and its retry sends only to the others (a channel that
keeps failing is given up on: grantwatch.domain.delivery). Should a channel still see a notice twice (its
answer lost on the way back), the re-send is harmless: the chat card lands in the incident's thread, the
finding is re-imported under the same Id (an update), the event carries the incident id to deduplicate on,
and PagerDuty deduplicates a trigger by its dedup_key (the incident id)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from grantwatch.adapters.clients import Clients, create_client
from grantwatch.adapters.notifier import SnsNotifier, message_attributes
from grantwatch.domain.channels import chat_notification, detail_type, event_entry, finding
from grantwatch.domain.delivery import Delivery
from grantwatch.domain.notices import Notice
from grantwatch.ports import NotDelivered

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_securityhub.client import SecurityHubClient

    from grantwatch.settings import Settings

CHANNELS = ("sns", "chat", "events", "securityhub")


class ChannelError(NotDelivered):
    """A channel refused or failed a notice. The message names the channel and the AWS error code, never
    the notice's content."""


class Channel(Protocol):
    def publish(self, notice: Notice) -> None: ...


class ChatTopic(SnsNotifier):
    """An SNS topic that Amazon Q Developer in chat applications reads: its custom-notification JSON."""

    def publish(self, notice: Notice) -> None:
        self.client.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(chat_notification(notice)),
            MessageAttributes=message_attributes({"incidentId": notice.incident_id}),
        )


class EventBus:
    """One event per notice on the bus (PutEvents answers 200 with the entries it refused counted).
    Without `client`, one from `clients` (boto3's without), created when the first notice is sent."""

    def __init__(
        self, bus_name: str, client: EventBridgeClient | None = None, *, clients: Clients | None = None
    ) -> None:
        self._client = client
        self._clients = clients
        self.bus_name = bus_name

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = create_client("events", self._clients)
        return self._client

    def publish(self, notice: Notice) -> None:
        answer = self.client.put_events(Entries=[event_entry(notice, self.bus_name)])  # type: ignore[list-item]
        if answer.get("FailedEntryCount"):
            code = next((e.get("ErrorCode") for e in answer.get("Entries", []) if e.get("ErrorCode")), None)
            raise ChannelError(f"EventBridge refused the '{detail_type(notice)}' event: {code or 'unknown'}")


class SecurityHub:
    """The incident's finding, imported with the account's default product (the account and region of
    `product_arn`). A notice about no incident has no finding. Without `client`, one from `clients`
    (boto3's without), created when the first notice is sent."""

    def __init__(
        self, product_arn: str, client: SecurityHubClient | None = None, *, clients: Clients | None = None
    ) -> None:
        parts = product_arn.split(":")
        if len(parts) < 6 or parts[2] != "securityhub" or not parts[4].isdigit():
            raise ValueError("GRANTWATCH_SECURITY_HUB_PRODUCT_ARN is not a Security Hub product ARN")
        self.partition, self.region, self.account = parts[1], parts[3], parts[4]
        self._client = client
        self._clients = clients

    @property
    def client(self) -> SecurityHubClient:
        if self._client is None:
            self._client = create_client("securityhub", self._clients, region_name=self.region)
        return self._client

    def publish(self, notice: Notice) -> None:
        found = finding(notice, region=self.region, account=self.account, partition=self.partition)
        if found is None:
            return
        answer = self.client.batch_import_findings(Findings=[found])  # type: ignore[list-item]
        if answer.get("FailedCount"):
            code = next((f.get("ErrorCode") for f in answer.get("FailedFindings", [])), None)
            raise ChannelError(f"Security Hub refused the finding: {code or 'unknown'}")


class FanOut:
    """Sends each notice to every channel; one failing does not stop the others. `publish` raises the
    failures together after all were tried. `deliver` raises nothing: it says which channels took the
    notice and why the others failed, and leaves out the channels already delivered (the evaluator keeps
    that per notice, so a retry sends only what is still unsent)."""

    def __init__(self, channels: Sequence[tuple[str, Channel]]) -> None:
        self.channels = tuple(channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.channels)

    def deliver(self, notice: Notice, skip: frozenset[str] = frozenset()) -> Delivery:
        delivered: set[str] = set()
        failed: dict[str, str] = {}
        for name, channel in self.channels:
            if name in skip:
                continue
            try:
                channel.publish(notice)
            except Exception as error:  # reported by the caller, after the other channels
                failed[name] = _reason(error)
            else:
                delivered.add(name)
        return Delivery(frozenset(delivered), failed)

    def publish(self, notice: Notice) -> None:
        failed = self.deliver(notice).failed
        if failed:
            listed = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
            raise ChannelError(f"notice {notice.incident_id} not delivered to {listed}")


def _reason(error: Exception) -> str:
    response: Any = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return str(error) if isinstance(error, ChannelError) else type(error).__name__


def configured_channels(
    settings: Settings, topic_arn: str | None, clients: Clients | None = None
) -> list[tuple[str, Channel]]:
    """The channels the stack turned on, the SNS text topic first; each creates its client from
    `clients` when it first sends."""
    channels: list[tuple[str, Channel]] = []
    if topic_arn:
        channels.append(("sns", SnsNotifier(topic_arn, clients=clients)))
    if settings.alert_chat_topic_arn:
        channels.append(("chat", ChatTopic(settings.alert_chat_topic_arn, clients=clients)))
    if settings.alert_event_bus_name:
        channels.append(("events", EventBus(settings.alert_event_bus_name, clients=clients)))
    if settings.security_hub_product_arn:
        channels.append(("securityhub", SecurityHub(settings.security_hub_product_arn, clients=clients)))
    return channels


def alert_notifier(settings: Settings, topic_arn: str, clients: Clients | None = None) -> Channel:
    """The SNS topic alone, or every configured channel behind one publish."""
    channels = configured_channels(settings, topic_arn, clients)
    return channels[0][1] if len(channels) == 1 else FanOut(channels)
