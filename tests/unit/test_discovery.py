"""A resource's clock once its key is disabled or pending deletion, and the reconcile report's `resources`:
pure, from the catalogue's documented effects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grantwatch.domain.discovery import ServiceRead, discovery_report, resource_clock
from grantwatch.domain.facts import RECONCILIATION_ACTOR
from grantwatch.domain.hazards import KeyChange, KeyFact, KeyState, KeyStatus
from grantwatch.domain.resources import DiscoveredResource, ResourceOnKey
from grantwatch.domain.services import SERVICES, Service

KEY = "arn:aws:kms:eu-central-1:210987654321:key/8d2c4b6a-1e3f-4a5b-9c7d-0e1f2a3b4c5d"
DISABLED_AT = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


def _on_key(service: Service, inaccessible_since: datetime | None = None) -> ResourceOnKey:
    return ResourceOnKey(
        service=service,
        resource_id="payments",
        key_arn=KEY,
        account="210987654321",
        region="eu-central-1",
        usable_grants=1,
        seen_by=frozenset({"lineage"}),
        state=None,
        inaccessible_since=inaccessible_since,
    )


def _key(state: KeyState, deletion_date: datetime | None = None) -> KeyStatus:
    change = KeyChange.DISABLED if state is KeyState.DISABLED else KeyChange.DELETION_SCHEDULED
    fact = KeyFact(change, KEY, "e-1", DISABLED_AT, "DisableKey", RECONCILIATION_ACTOR, deletion_date)
    return KeyStatus(KEY, state, fact, deletion_date)


def test_a_table_on_a_disabled_key_is_archived_seven_days_after_the_key_was_disabled() -> None:
    clock = resource_clock(_on_key(Service.DYNAMODB), _key(KeyState.DISABLED))
    assert clock.effect is SERVICES[Service.DYNAMODB].on_key_disabled
    assert (clock.loss_started, clock.deadline) == (DISABLED_AT, DISABLED_AT + timedelta(days=7))


def test_dynamodbs_own_inaccessible_time_starts_the_clock_when_it_is_known() -> None:
    seen = DISABLED_AT + timedelta(minutes=11)
    clock = resource_clock(_on_key(Service.DYNAMODB, seen), _key(KeyState.DISABLED))
    assert (clock.loss_started, clock.deadline) == (seen, seen + timedelta(days=7))


def test_a_key_pending_deletion_ends_the_clock_on_its_deletion_date_when_that_comes_first() -> None:
    soon = DISABLED_AT + timedelta(days=3)
    clock = resource_clock(_on_key(Service.DYNAMODB), _key(KeyState.PENDING_DELETION, soon))
    assert clock.effect is SERVICES[Service.DYNAMODB].on_key_pending_deletion
    assert clock.deadline == soon
    later = DISABLED_AT + timedelta(days=30)
    assert resource_clock(_on_key(Service.DYNAMODB), _key(KeyState.PENDING_DELETION, later)).deadline == (
        DISABLED_AT + timedelta(days=7)
    )


def test_no_clock_on_a_usable_key_or_one_whose_state_is_unknown() -> None:
    assert resource_clock(_on_key(Service.DYNAMODB), _key(KeyState.ENABLED)).effect is None
    assert resource_clock(_on_key(Service.DYNAMODB), None).effect is None


def test_a_service_that_documents_no_period_has_a_clock_with_no_deadline() -> None:
    clock = resource_clock(_on_key(Service.EBS), _key(KeyState.DISABLED))
    assert clock.effect is SERVICES[Service.EBS].on_key_disabled
    assert clock.loss_started == DISABLED_AT and clock.deadline is None


def test_the_report_counts_each_service_and_names_those_not_read_whole() -> None:
    found = DiscoveredResource(
        Service.EBS, "vol-1", KEY, "210987654321", "eu-central-1", "in-use", None, DISABLED_AT
    )
    reads = [
        ServiceRead(Service.DYNAMODB, error="AccessDeniedException: User: … is not authorized", denied=True),
        ServiceRead(Service.RDS, error="EndpointConnectionError"),
        ServiceRead(Service.EBS, (found,), inspected=1000, capped=True),
    ]
    assert discovery_report(reads) == {
        "found": {"dynamodb": 0, "rds": 0, "ebs": 1},
        "unread": {
            "dynamodb": "not allowed to read: AccessDeniedException: User: … is not authorized",
            "rds": "not read: EndpointConnectionError",
        },
        "capped": {"ebs": "more resources than a run reads: the first 1000 read"},
    }
    assert not any(read.complete for read in reads)
    assert ServiceRead(Service.EBS, (found,), inspected=1).complete
