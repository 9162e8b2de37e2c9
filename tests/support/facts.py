"""A sample event parsed and normalised as the recorder does, for tests that start from a grant fact."""

from __future__ import annotations

from typing import Any

from grantwatch.domain.facts import GrantFact, normalise
from grantwatch.domain.records import CloudTrailRecord
from grantwatch.recorder import parse_event


def fact_of(event: dict[str, Any]) -> GrantFact:
    record = parse_event(event)
    assert isinstance(record, CloudTrailRecord)
    fact = normalise(record)
    assert isinstance(fact, GrantFact), fact
    return fact
