"""The corridors' wiring takes what the caller asks for, zero included."""

from __future__ import annotations

from datetime import timedelta

from grantwatch.settings import Settings
from grantwatch.wiring import healer


def test_a_heal_asked_to_verify_for_zero_seconds_does_not_wait_the_configured_time() -> None:
    settings = Settings(table_name="grantwatch-test", region="eu-central-1", heal_verify_seconds=60)
    assert healer(settings, verify_for=timedelta(0)).verify_for == timedelta(0)
    assert healer(settings).verify_for == timedelta(seconds=60)
