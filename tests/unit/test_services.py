"""The service catalogue: every covered service has an entry, every effect cites AWS's documentation, and
deadlines are the documented period counted from the loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from grantwatch.domain.facts import dependent_resource
from grantwatch.domain.services import (
    DELETING_KEYS,
    KEY_STATES,
    SERVICES,
    Service,
    deadline,
    entry_for,
)

LOSS = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_every_service_has_its_entry() -> None:
    assert set(SERVICES) == set(Service)
    assert all(entry.service is service for service, entry in SERVICES.items())


@pytest.mark.parametrize("service", list(Service))
def test_every_effect_cites_aws_documentation(service: Service) -> None:
    entry = SERVICES[service]
    for effect in entry.effects:
        assert effect.sources, (service, effect.what_happens)
        hosts = {urlparse(s.url).hostname for s in effect.sources}
        assert "docs.aws.amazon.com" in hosts, (service, hosts)
        assert all(s.title and urlparse(s.url).scheme == "https" for s in effect.sources)
        assert effect.what_happens and effect.takes_effect and effect.recovery
        # what becomes irreversible and when go together, or neither is said
        if effect.irreversible_after is not None:
            assert effect.irreversible


@pytest.mark.parametrize("service", list(Service))
def test_the_context_keys_name_the_service_as_the_recorder_does(service: Service) -> None:
    for context_key in SERVICES[service].context_keys:
        constraints: dict[str, dict[str, str] | str] = {
            "encryptionContextSubset": {context_key: "resource-1"}
        }
        assert dependent_resource(constraints, "anyone", None) == (service.value, "resource-1", None)


def test_entry_for_takes_the_recorded_name_and_refuses_others() -> None:
    entry = entry_for("dynamodb")
    assert entry is not None and entry.service is Service.DYNAMODB
    assert entry_for("lambda") is None
    assert entry_for("no-such-service") is None
    assert entry_for(None) is None
    assert entry_for("") is None


def test_dynamodb_archives_a_table_seven_days_after_the_key_became_inaccessible() -> None:
    effect = SERVICES[Service.DYNAMODB].on_key_disabled
    assert effect.resource_state == "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
    assert deadline(effect, LOSS) == LOSS + timedelta(days=7)


def test_an_effect_without_a_documented_period_has_no_deadline() -> None:
    effect = SERVICES[Service.EBS].on_key_disabled
    assert effect.irreversible_after is None
    assert deadline(effect, LOSS) is None


def test_a_pending_deletion_ends_at_the_earlier_of_the_period_and_the_key_deletion() -> None:
    dynamodb = SERVICES[Service.DYNAMODB].on_key_pending_deletion
    ebs = SERVICES[Service.EBS].on_key_pending_deletion
    soon, late = LOSS + timedelta(days=3), LOSS + timedelta(days=30)
    assert deadline(dynamodb, LOSS, key_deletion_date=late) == LOSS + timedelta(days=7)
    assert deadline(dynamodb, LOSS, key_deletion_date=soon) == soon
    assert deadline(ebs, LOSS, key_deletion_date=late) == late
    assert deadline(ebs, LOSS) is None
    # a disabled key is not being deleted: its date, if any, is not a deadline
    assert deadline(SERVICES[Service.EBS].on_key_disabled, LOSS, key_deletion_date=soon) is None


@pytest.mark.parametrize("service", list(Service))
def test_documented_churn_and_context_cite_their_pages(service: Service) -> None:
    entry = SERVICES[service]
    if entry.benign_churn:
        assert entry.churn_sources
    for source in (*entry.churn_sources, *entry.context_sources):
        assert urlparse(source.url).hostname == "docs.aws.amazon.com", source


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"aws:rds:db-id": "db-ABCDEFGHIJKLMN", "aws:ebs:id": "vol-ad8c6542"}, ("rds", "db-ABCDEFGHIJKLMN")),
        (
            {"aws:workspaces:sid-directoryid": "[S-1-5-21]@[d-1234abcd01]", "aws:ebs:id": "vol-1234abcd"},
            ("workspaces", "[S-1-5-21]@[d-1234abcd01]"),
        ),
        ({"aws:ebs:id": "vol-1234abcd"}, ("ebs", "vol-1234abcd")),
    ],
)
def test_a_service_built_on_ebs_owns_its_grant_rather_than_the_volume(
    context: dict[str, str], expected: tuple[str, str]
) -> None:
    """RDS and WorkSpaces name their EBS volume in the encryption context beside their own key."""
    constraints: dict[str, dict[str, str] | str] = {"encryptionContextSubset": context}
    assert dependent_resource(constraints, "anyone", None) == (*expected, None)


SERVICES_PAGE = Path(__file__).resolve().parents[2] / "docs" / "services.md"


@pytest.mark.parametrize("service", list(Service))
def test_the_services_page_renders_every_entry_with_its_sources(service: Service) -> None:
    page = SERVICES_PAGE.read_text(encoding="utf-8")
    entry = SERVICES[service]
    assert f"\n## {entry.title}\n" in page
    section = page.split(f"\n## {entry.title}\n", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{key}`" in section for key in entry.context_keys)
    shared = {s.url for s in (KEY_STATES, DELETING_KEYS)}  # said once, above the services
    urls = {
        s.url
        for s in (
            *(s for e in entry.effects for s in e.sources),
            *entry.churn_sources,
            *entry.context_sources,
        )
    }
    assert sorted(url for url in urls - shared if f"({url})" not in section) == []
    assert all(f"({url})" in page for url in shared)
