from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grantwatch.settings import Settings, SettingsError


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    env = {
        "GRANTWATCH_TABLE": "from-env",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        "AWS_REGION": "eu-west-1",
    }
    assert Settings.from_environ({}) == Settings(table_name="grantwatch", region="us-east-1")
    from_env = Settings.from_environ(env)
    assert (from_env.table_name, from_env.endpoint_url, from_env.region) == (
        "from-env",
        "http://127.0.0.1:9",
        "eu-west-1",
    )
    flagged = Settings.from_environ(env, table_name="from-flag", endpoint_url=None)
    assert (flagged.table_name, flagged.endpoint_url) == ("from-flag", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("https://dynamodb.eu-west-1.amazonaws.com", False),
        (None, False),
    ],
)
def test_only_loopback_endpoints_count_as_local(url: str | None, local: bool) -> None:
    assert Settings(endpoint_url=url).endpoint_is_local is local


def test_a_table_name_dynamodb_would_refuse_is_an_error() -> None:
    with pytest.raises(SettingsError, match="table_name"):
        Settings.from_environ({"GRANTWATCH_TABLE": "x"})


def test_an_expiry_counts_from_the_later_of_the_end_and_the_write() -> None:
    settings = Settings(retention_days=30)
    written = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    period = 30 * 86400
    long_ago = written - timedelta(days=400)  # a backfilled event: its own expiry is long past
    assert settings.expires_at(long_ago, now=written) == int(written.timestamp()) + period
    ahead = written + timedelta(seconds=90)  # a clock behind the event's
    assert settings.expires_at(ahead, now=written) == int(ahead.timestamp()) + period
    by_default = settings.expires_at(long_ago)  # the wall clock
    assert by_default is not None and by_default > int(datetime.now(UTC).timestamp())
    assert Settings().expires_at(long_ago, now=written) is None
