"""The reliability suite's simulated asynchronous delivery (tests/support/reliability/delivery.py): a failed
invocation is retried as Lambda retries it, but a test's own assertion inside the handler fails the test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.reliability.delivery import AsyncDelivery, RetryPolicy

POLICY = RetryPolicy(
    eventbridge_retries=3,
    eventbridge_max_age=3600,
    lambda_retries=2,
    lambda_max_age=21600,
    evaluation_visibility=360,
    evaluation_receives=5,
)


def test_a_failed_invocation_is_retried_then_dead_lettered() -> None:
    def fails(event: Any) -> None:
        raise RuntimeError("the table is down")

    report = AsyncDelivery(POLICY, fails).run(["e1"], 1.0)
    assert report.function_failures == 1 + POLICY.lambda_retries
    assert report.dead_lettered == [("lambda: on-failure destination", "e1")]


def test_an_assertion_inside_the_handler_fails_the_test_instead_of_being_retried() -> None:
    seen: list[Any] = []

    def checks(event: Any) -> None:
        seen.append(event)
        assert event == "expected", f"unexpected outcome for {event}"

    with pytest.raises(AssertionError, match="unexpected outcome for e1"):
        AsyncDelivery(POLICY, checks).run(["e1"], 1.0)
    assert seen == ["e1"]  # raised at the first attempt, not after Lambda's retries
