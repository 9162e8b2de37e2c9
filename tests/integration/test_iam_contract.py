"""The IAM contract sees the calls it must see: pynamodb's and boto3's, attributed to the function whose
corridor made them, however that corridor was driven (here the replay pipeline, as the CLI drives it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.settings import Settings
from grantwatch.sources import read_events
from grantwatch.wiring import local_pipeline
from tests.support.iam_contract import SESSION, Checker
from tests.support.samples import EVENTS


@contextmanager
def recorded() -> Iterator[Checker]:
    yield from SESSION.scope()


def test_the_replay_of_every_sample_makes_only_calls_its_functions_may_make(table_settings: Settings) -> None:
    pipeline = local_pipeline(table_settings)
    with recorded() as checker:
        for item in read_events([EVENTS]):
            if item.event is not None:
                pipeline.feed(item.event)
        pipeline.drain()
        # A CLI query, outside every corridor: no Lambda function's call, not checked.
        listed = list(DynamoFunctionStore(table_settings).all_functions())

    assert listed
    assert sorted(checker.violations) == []
    seen = set(checker.calls)
    # pynamodb's own client is seen, attributed through the corridor the pipeline drove.
    assert ("RecorderFunction", "dynamodb:UpdateItem") in seen
    assert ("EvaluatorFunction", "dynamodb:Query") in seen
    assert ("EvaluatorFunction", "dynamodb:TransactWriteItems") in seen
    assert not any(function not in {"RecorderFunction", "EvaluatorFunction"} for function, _ in seen)
