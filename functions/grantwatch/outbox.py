"""Sending one claimed notice to the channels that have not taken it yet, and saying where it then stands:
the evaluator's alerts, resolved and key-policy notices, and the healer's outcomes. The rules are in
grantwatch.domain.delivery; the caller holds the notice's claim, reads and stores its states."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from grantwatch.domain.delivery import PRIMARY, ChannelState, Delivery, Settled, settle, settled_channels
from grantwatch.domain.notices import Notice
from grantwatch.ports import ChannelNotifier, DeliveryMonitor, NotDelivered, Notifier

logger = logging.getLogger(__name__)


def channel_names(notifier: Notifier) -> tuple[str, ...]:
    """The channels behind the notifier: a plain one (the SNS topic, a list) is the primary alone."""
    return notifier.names if isinstance(notifier, ChannelNotifier) else (PRIMARY,)


def attempt(notifier: Notifier, notice: Notice, before: Mapping[str, ChannelState]) -> Delivery:
    """Send the notice to every channel not settled in `before`. A plain notifier's error is raised."""
    if isinstance(notifier, ChannelNotifier):
        return notifier.deliver(notice, settled_channels(before))
    notifier.publish(notice)
    return Delivery(frozenset({PRIMARY}))


def send(
    notifier: Notifier,
    notice: Notice,
    now: datetime,
    *,
    before: Callable[[], dict[str, ChannelState]],
    record: Callable[[Settled], None],
    release: Callable[[], None],
    monitor: DeliveryMonitor | None = None,
) -> None:
    """Send a claimed notice: read where it stands, send it to the channels still owed it, store where it
    stands then. Unless every channel has it (or was given up on), release the claim and raise
    NotDelivered, so the caller's retry sends it to the rest."""
    try:
        states = before()
        delivery = attempt(notifier, notice, states)
    except Exception:
        release()
        raise
    outcome = settle(channel_names(notifier), states, delivery, now)
    report(notice, delivery, outcome, monitor)
    record(outcome)
    if not outcome.complete:
        release()
        failed = "; ".join(f"{name}: {reason}" for name, reason in sorted(delivery.failed.items()))
        raise NotDelivered(f"notice {notice.incident_id} not delivered to {failed}")


def report(notice: Notice, delivery: Delivery, outcome: Settled, monitor: DeliveryMonitor | None) -> None:
    """Log and count each channel that failed, and each given up on."""
    for channel, reason in sorted(delivery.failed.items()):
        state = outcome.states[channel]
        context = {"incidentId": notice.incident_id, "channel": channel, "reason": reason}
        if channel in outcome.gave_up:
            logger.error("channel given up on for this notice", extra=context | {"failures": state.failures})
            if monitor is not None:
                monitor.gave_up(channel, reason)
        else:
            logger.warning("notice not delivered", extra=context | {"failures": state.failures})
        if monitor is not None:
            monitor.failed(channel, reason)
