"""Where one notice stands in each alert channel: the outbox, per channel. Pure: no I/O.

A notice is sent to every configured channel. A channel that took it is never sent it again, whatever
happens to the others; a channel that failed is tried again on the next attempt, until it has failed
MAX_CHANNEL_ATTEMPTS times: then it is given up on (logged and counted), and no longer holds the notice
back. The SNS topic is the primary channel and is never given up on: while it fails, the notice stays
unsent and is retried, as before there were other channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from grantwatch.domain.facts import utc_iso

PRIMARY = "sns"
# How long a claim on a notice's sending holds: an evaluation that died holding it only delays the notice.
NOTICE_LEASE = timedelta(seconds=60)
# Attempts of an optional channel before it is given up on for the notice. Below the evaluation queue's
# maxReceiveCount (5), so that a channel that keeps failing is given up on before the request would be
# dead-lettered (tests/unit/test_delivery.py checks it against template.yaml).
MAX_CHANNEL_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One channel's part of one notice, as stored on its item."""

    delivered_at: str | None = None
    failures: int = 0
    error: str | None = None  # the last failure's AWS error code, or the exception's type
    gave_up_at: str | None = None

    @property
    def settled(self) -> bool:
        """Delivered, or given up on: not to be sent again."""
        return self.delivered_at is not None or self.gave_up_at is not None

    def as_map(self) -> dict[str, Any]:
        stored: dict[str, Any] = {
            "deliveredAt": self.delivered_at,
            "failures": self.failures or None,
            "error": self.error,
            "gaveUpAt": self.gave_up_at,
        }
        return {name: value for name, value in stored.items() if value is not None}

    @classmethod
    def from_map(cls, stored: Mapping[str, Any]) -> ChannelState:
        return cls(
            delivered_at=stored.get("deliveredAt"),
            failures=int(stored.get("failures") or 0),
            error=stored.get("error"),
            gave_up_at=stored.get("gaveUpAt"),
        )


def states_to_map(states: Mapping[str, ChannelState]) -> dict[str, dict[str, Any]]:
    return {channel: state.as_map() for channel, state in sorted(states.items())}


def states_from_map(stored: Mapping[str, Any] | None) -> dict[str, ChannelState]:
    return {channel: ChannelState.from_map(value) for channel, value in (stored or {}).items()}


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt did: the channels that took the notice, and why each of the others failed."""

    delivered: frozenset[str] = frozenset()
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settled:
    """Where the notice stands after an attempt."""

    states: dict[str, ChannelState]
    gave_up: tuple[str, ...]  # the channels given up on by this attempt
    complete: bool  # every channel delivered or given up on: the notice is sent

    def unsent(self, channels: Sequence[str]) -> list[str]:
        return [c for c in channels if not self.states.get(c, ChannelState()).settled]


def settled_channels(states: Mapping[str, ChannelState]) -> frozenset[str]:
    """The channels an attempt leaves out."""
    return frozenset(channel for channel, state in states.items() if state.settled)


def settle(
    channels: Sequence[str],
    before: Mapping[str, ChannelState],
    delivery: Delivery,
    at: datetime,
    max_attempts: int = MAX_CHANNEL_ATTEMPTS,
) -> Settled:
    """The states after `delivery`: delivered channels stamped, failed ones counted, and an optional
    channel that has failed `max_attempts` times given up on."""
    when = utc_iso(at)
    states = dict(before)
    gave_up: list[str] = []
    for channel in delivery.delivered:
        states[channel] = replace(states.get(channel, ChannelState()), delivered_at=when)
    for channel, reason in delivery.failed.items():
        state = states.get(channel, ChannelState())
        failures = state.failures + 1
        give_up = channel != PRIMARY and failures >= max_attempts
        states[channel] = replace(
            state, failures=failures, error=reason[:256], gave_up_at=when if give_up else None
        )
        if give_up:
            gave_up.append(channel)
    complete = all(states.get(c, ChannelState()).settled for c in channels)
    return Settled(states, tuple(sorted(gave_up)), complete)
