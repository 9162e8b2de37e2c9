"""The one hypothesis profile of every test run (`make test`, `make unit`, `make integration`, `make
reliability`): loaded by tests/conftest.py, so that a property test draws the same examples whichever
folders the run collected. Every generated case comes from a derandomized run, so a run repeats exactly, on
one process or spread over pytest-xdist's workers; its size comes from tests/support/reliability/scale.py."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

from tests.support.reliability.scale import SCALE

PROFILE = "grantwatch"


def load() -> None:
    settings.register_profile(
        PROFILE,
        max_examples=SCALE.property_examples,
        derandomize=True,  # the same examples every run: the suite never flakes in CI
        deadline=None,  # DynamoDB Local round trips vary with the machine's load
        print_blob=True,
        # No shrinking: each example costs many DynamoDB Local round trips, and shrinking one failure took
        # longer than the whole suite. A failing example is reported as drawn (print_blob reproduces it).
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    settings.load_profile(PROFILE)
