"""Every run draws hypothesis examples with the same profile: `make unit` and `make integration`, which do
not collect tests/reliability, as `make test` does."""

from __future__ import annotations

from hypothesis import settings

from tests.support.hypothesis_profile import PROFILE
from tests.support.reliability.scale import SCALE


def test_a_run_without_the_reliability_folder_loads_the_shared_profile() -> None:
    active = settings()
    assert repr(active) == repr(settings.get_profile(PROFILE))
    assert (active.max_examples, active.derandomize, active.deadline) == (SCALE.property_examples, True, None)
