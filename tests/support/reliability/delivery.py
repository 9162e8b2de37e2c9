"""How AWS delivers and retries, as template.yaml configures it, on a virtual clock.

EventBridge -> the recorder: EventBridge invokes Lambda asynchronously; a failed *delivery* (the invoke
throttled or refused) is retried with exponential backoff up to the rule target's MaximumRetryAttempts and
MaximumEventAgeInSeconds, then sent to the target's dead-letter queue. An accepted invocation whose
*function* fails is retried by Lambda (EventInvokeConfig: MaximumRetryAttempts, one minute before the
second attempt and two before the third) within MaximumEventAgeInSeconds, then sent to the OnFailure
destination. The recorder -> the evaluator: an SQS delay queue; a failed receive becomes visible again after
VisibilityTimeout and goes to the redrive queue after maxReceiveCount receives.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.samples import TEMPLATE
from tests.support.templates import load_template

LAMBDA_RETRY_DELAYS = (60, 120)  # Lambda's documented waits before the second and the third attempt


def _value(template: dict[str, Any], value: Any) -> int:
    if isinstance(value, dict) and "Ref" in value:
        return int(template["Parameters"][value["Ref"]]["Default"])
    return int(value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    eventbridge_retries: int
    eventbridge_max_age: int
    lambda_retries: int
    lambda_max_age: int
    evaluation_visibility: int
    evaluation_receives: int

    @classmethod
    def from_template(cls) -> RetryPolicy:
        template = load_template(TEMPLATE)
        resources = template["Resources"]
        rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
        targets = [t for rule in rules for t in rule["Properties"]["Targets"]]
        policies = {
            (
                t["RetryPolicy"]["MaximumRetryAttempts"],
                _value(template, t["RetryPolicy"]["MaximumEventAgeInSeconds"]),
            )
            for t in targets
        }
        assert len(policies) == 1, f"the rules' retry policies differ: {policies}"
        ((retries, max_age),) = policies
        invoke = resources["RecorderFunction"]["Properties"]["EventInvokeConfig"]
        assert invoke["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
        queue = resources["EvaluationQueue"]["Properties"]
        return cls(
            eventbridge_retries=int(retries),
            eventbridge_max_age=max_age,
            lambda_retries=int(invoke["MaximumRetryAttempts"]),
            lambda_max_age=int(invoke["MaximumEventAgeInSeconds"]),
            evaluation_visibility=int(queue["VisibilityTimeout"]),
            evaluation_receives=int(queue["RedrivePolicy"]["maxReceiveCount"]),
        )


@dataclass
class DeliveryReport:
    processed: int = 0
    attempts: int = 0
    function_failures: int = 0
    delivery_failures: int = 0
    dead_lettered: list[tuple[str, Any]] = field(default_factory=list)
    attempts_per_event: Counter[int] = field(default_factory=Counter)

    @property
    def retried(self) -> int:
        return sum(n for attempts, n in self.attempts_per_event.items() if attempts > 1)


@dataclass(order=True)
class _Attempt:
    at: float
    sequence: int
    event: Any = field(compare=False)
    arrived: float = field(compare=False)
    function_attempt: int = field(compare=False, default=0)
    delivery_attempt: int = field(compare=False, default=0)
    accepted: bool = field(compare=False, default=False)


class AsyncDelivery:
    """EventBridge's target retries around Lambda's asynchronous retries around one handler."""

    def __init__(
        self,
        policy: RetryPolicy,
        handler: Callable[[Any], Any],
        *,
        at_time: Callable[[float], None] = lambda t: None,
        invoke_refused: Callable[[float], bool] = lambda t: False,
    ) -> None:
        self.policy = policy
        self.handler = handler
        self.at_time = at_time  # called before every attempt: where a test kills or restarts a service
        self.invoke_refused = invoke_refused
        self.report = DeliveryReport()
        self._queue: list[_Attempt] = []
        self._sequence = 0

    def _push(self, attempt: _Attempt) -> None:
        self._sequence += 1
        attempt.sequence = self._sequence
        heapq.heappush(self._queue, attempt)

    def run(self, events: list[Any], interval: float) -> DeliveryReport:
        for index, event in enumerate(events):
            self._push(_Attempt(index * interval, 0, event, index * interval))
        while self._queue:
            attempt = heapq.heappop(self._queue)
            self.at_time(attempt.at)
            if attempt.accepted:
                self._invoke(attempt)
            else:
                self._deliver(attempt)
        return self.report

    def _deliver(self, attempt: _Attempt) -> None:
        attempt.delivery_attempt += 1
        if not self.invoke_refused(attempt.at):
            attempt.accepted = True
            self._invoke(attempt)
            return
        self.report.delivery_failures += 1
        backoff = min(2.0**attempt.delivery_attempt, 300.0)
        retry_at = attempt.at + backoff
        if (
            attempt.delivery_attempt > self.policy.eventbridge_retries
            or retry_at - attempt.arrived > self.policy.eventbridge_max_age
        ):
            self.report.dead_lettered.append(("eventbridge: delivery retries exhausted", attempt.event))
            return
        attempt.at = retry_at
        self._push(attempt)

    def _invoke(self, attempt: _Attempt) -> None:
        attempt.function_attempt += 1
        self.report.attempts += 1
        try:
            self.handler(attempt.event)
        except AssertionError:
            raise  # a test's own check inside the handler: a failed test, never a failed invocation to retry
        except Exception:  # a failed invocation, as Lambda sees it
            self.report.function_failures += 1
            retries = attempt.function_attempt - 1
            if retries >= self.policy.lambda_retries:
                self.report.dead_lettered.append(("lambda: on-failure destination", attempt.event))
                return
            retry_at = attempt.at + LAMBDA_RETRY_DELAYS[min(retries, len(LAMBDA_RETRY_DELAYS) - 1)]
            if retry_at - attempt.arrived > self.policy.lambda_max_age:
                self.report.dead_lettered.append(("lambda: event too old", attempt.event))
                return
            attempt.at = retry_at
            self._push(attempt)
            return
        self.report.processed += 1
        self.report.attempts_per_event[attempt.function_attempt] += 1
