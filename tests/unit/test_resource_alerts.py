"""The pure decision on a key's resources of other services: one incident per key and service, its
documented effect and deadline, the service's own churn never at risk, and the key back before or after
the deadline."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from grantwatch.domain.facts import Actor
from grantwatch.domain.hazards import KeyState
from grantwatch.domain.resource_alerts import (
    AFTER_DEADLINE,
    MAX_NAMED_RESOURCES,
    ResourceCause,
    ResourceStep,
    RevokedGrant,
    decide,
    revoked_by_service,
)
from grantwatch.domain.resource_notices import resource_alert_notice, resource_resolved_notice
from grantwatch.domain.risk import Evidence
from grantwatch.domain.services import SERVICES, Service
from tests.support.incidents import ADMIN, T0
from tests.support.resource_scenarios import key_status, on_key, resource_incident
from tests.support.samples import KEY_ARN

EVERY_SERVICE = [str(s) for s in SERVICES]
REVOCABLE = [str(s) for s, e in SERVICES.items() if e.on_grant_revoked is not None]
NOT_REVOCABLE = [str(s) for s, e in SERVICES.items() if e.on_grant_revoked is None]
NOW = T0 + timedelta(minutes=2)


def revoked(service: str, name: str, *, by: Actor = ADMIN, let_go: bool = False) -> RevokedGrant:
    evidence = Evidence("revoked", "RevokeGrant", "e-revoke", T0, by)
    return RevokedGrant(
        "g1", service, name, evidence, by_service=revoked_by_service(by, service), let_go=let_go
    )


@pytest.mark.parametrize("service", EVERY_SERVICE)
def test_a_disabled_key_opens_one_incident_with_the_documented_deadline(service: str) -> None:
    entry = SERVICES[Service(service)]
    key = key_status(KeyState.DISABLED, T0)
    [decision] = decide(KEY_ARN, key, on_key(service, "b", "a"), {}, NOW)
    incident = decision.incident
    assert decision.step is ResourceStep.OPEN and incident is not None
    assert incident.cause is ResourceCause.KEY_DISABLED
    assert incident.resources == ("a", "b") and incident.resource_count == 2
    assert incident.loss_started == T0 and incident.evidence.event_name == "DisableKey"
    period = entry.on_key_disabled.irreversible_after
    assert incident.deadline == (T0 + period if period else None)
    assert incident.what_happens == entry.on_key_disabled.what_happens
    assert incident.deletion_date is None


def test_dynamodb_and_rds_get_seven_days_from_the_disable() -> None:
    for service in ("dynamodb", "rds"):
        incident = resource_incident(service, KeyState.DISABLED)
        assert incident.deadline == T0 + timedelta(days=7)
        notice = resource_alert_notice(incident)
        assert "after 2026-11-08T10:00:00Z" in notice.message
        assert f"unless key {KEY_ARN} is enabled before" in notice.message
        assert f"aws kms enable-key --region eu-central-1 --key-id {KEY_ARN}" in notice.message


@pytest.mark.parametrize("service", EVERY_SERVICE)
def test_a_key_scheduled_for_deletion_has_its_deletion_date_as_a_deadline_too(service: str) -> None:
    deletion = T0 + timedelta(days=30)
    key = key_status(KeyState.PENDING_DELETION, T0, deletion=deletion)
    [decision] = decide(KEY_ARN, key, on_key(service, "a"), {}, NOW)
    incident = decision.incident
    assert incident is not None and incident.cause is ResourceCause.KEY_PENDING_DELETION
    assert incident.deletion_date == deletion
    period = SERVICES[Service(service)].on_key_pending_deletion.irreversible_after
    assert incident.deadline == (T0 + period if period else None)
    assert incident.hard_deadline == min(d for d in (incident.deadline, deletion) if d is not None)
    notice = resource_alert_notice(incident)
    assert f"KMS deletes key {KEY_ARN} on 2026-12-01T10:00:00Z" in notice.message
    [fix] = notice.details["fix"]
    assert [s["command"].split()[2] for s in fix["steps"]] == ["cancel-key-deletion", "enable-key"]


def test_a_deletion_date_earlier_than_the_period_is_the_hard_deadline() -> None:
    incident = resource_incident("dynamodb", KeyState.PENDING_DELETION, deletion=T0 + timedelta(days=3))
    assert incident.deadline == T0 + timedelta(days=7)
    assert incident.hard_deadline == T0 + timedelta(days=3)
    assert resource_alert_notice(incident).details["deletionDate"] == "2026-11-04T10:00:00Z"


@pytest.mark.parametrize("service", REVOCABLE)
def test_a_grant_revoked_by_a_person_alerts_where_the_service_documents_an_effect(service: str) -> None:
    resources = on_key(service, "a", usable=0, state="available")  # live, its grant gone
    [decision] = decide(KEY_ARN, None, resources, {}, NOW, revoked(service, "a"))
    incident = decision.incident
    assert decision.step is ResourceStep.OPEN and incident is not None
    assert incident.cause is ResourceCause.GRANT_REVOKED and incident.resources == ("a",)
    assert incident.what_happens == SERVICES[Service(service)].on_grant_revoked.what_happens  # type: ignore[union-attr]
    assert incident.grant_id == "g1"


@pytest.mark.parametrize("service", REVOCABLE)
def test_a_revoked_grant_whose_resource_is_known_by_its_grants_alone_alerts(service: str) -> None:
    assert decide(KEY_ARN, None, [], {}, NOW, revoked(service, "a"))[0].step is ResourceStep.OPEN


@pytest.mark.parametrize("service", NOT_REVOCABLE)
def test_a_revoked_grant_without_a_documented_effect_does_not_alert(service: str) -> None:
    assert (
        decide(KEY_ARN, None, on_key(service, "a", usable=0, state="x"), {}, NOW, revoked(service, "a")) == []
    )


@pytest.mark.parametrize("service", REVOCABLE)
def test_a_revoked_grant_is_churn_when_the_resource_is_safe_or_gone(service: str) -> None:
    principal = Actor(
        principal=f"{service}.amazonaws.com", identity_type="AWSService", via=f"{service}.amazonaws.com"
    )
    # the service's own revocation; another usable grant; the resource deleted; the service let go of it
    assert decide(KEY_ARN, None, [], {}, NOW, revoked(service, "a", by=principal)) == []
    assert decide(KEY_ARN, None, on_key(service, "a", usable=1), {}, NOW, revoked(service, "a")) == []
    gone = on_key(service, "a", usable=0, state="deleted")
    assert decide(KEY_ARN, None, gone, {}, NOW, revoked(service, "a")) == []
    assert decide(KEY_ARN, None, [], {}, NOW, revoked(service, "a", let_go=True)) == []


@pytest.mark.parametrize("service", EVERY_SERVICE)
def test_resources_let_go_or_gone_are_not_at_risk_when_the_key_is_disabled(service: str) -> None:
    key = key_status(KeyState.DISABLED, T0)
    let_go = on_key(service, "detached", usable=0)  # a read API never saw it, and no grant is left
    gone = on_key(service, "deleted", usable=0, state="deleted")
    assert decide(KEY_ARN, key, [*let_go, *gone], {}, NOW) == []


def test_one_incident_per_service_however_many_resources() -> None:
    names = [f"table-{n:04d}" for n in range(1000)]
    resources = [*on_key("dynamodb", *reversed(names)), *on_key("ebs", "vol-1")]
    decisions = decide(KEY_ARN, key_status(KeyState.DISABLED, T0), resources, {}, NOW)
    assert [(d.service, d.step) for d in decisions] == [
        ("dynamodb", ResourceStep.OPEN),
        ("ebs", ResourceStep.OPEN),
    ]
    tables = decisions[0].incident
    assert tables is not None and tables.resource_count == 1000
    assert tables.resources == tuple(names[:MAX_NAMED_RESOURCES])
    notice = resource_alert_notice(tables)
    assert "… and 975 more: grantwatch resources --key" in notice.message
    assert "tables `table-0000`, `table-0001`, `table-0002` and 997 more: after" in notice.message
    assert len(notice.subject) <= 99 and notice.subject.isascii()
    assert len(json.dumps(notice.as_json()).encode()) < 64 * 1024


def test_the_incident_stays_while_the_key_stays_disabled() -> None:
    open_now = resource_incident("dynamodb")
    [decision] = decide(
        KEY_ARN, key_status(KeyState.DISABLED, T0), on_key("dynamodb", "orders"), {"dynamodb": open_now}, NOW
    )
    assert decision.step is ResourceStep.KEEP and decision.current == open_now


def test_scheduling_the_deletion_of_a_disabled_key_keeps_the_clock_from_the_disable() -> None:
    open_now = resource_incident("dynamodb")  # disabled at T0
    later = T0 + timedelta(days=2)
    key = key_status(KeyState.PENDING_DELETION, later, deletion=later + timedelta(days=7))
    [decision] = decide(KEY_ARN, key, on_key("dynamodb", "orders"), {"dynamodb": open_now}, later)
    assert decision.step is ResourceStep.SUPERSEDE and decision.incident is not None
    assert decision.incident.loss_started == T0
    assert decision.incident.deadline == T0 + timedelta(days=7)


def test_the_key_enabled_before_the_deadline_resolves() -> None:
    open_now = resource_incident("dynamodb")
    back = T0 + timedelta(days=2)
    [decision] = decide(
        KEY_ARN,
        key_status(KeyState.ENABLED, back),
        on_key("dynamodb", "orders"),
        {"dynamodb": open_now},
        back,
    )
    assert decision.step is ResourceStep.RESOLVE
    assert decision.reason == "the key is enabled again at 2026-11-03T10:00:00Z, before the deadline"
    notice = resource_resolved_notice(open_now, decision.reason, back)
    assert notice.details["severity"] == "info" and notice.details["afterDeadline"] is False


def test_the_key_enabled_after_the_deadline_says_the_tables_may_be_archived() -> None:
    open_now = resource_incident("dynamodb")
    back = T0 + timedelta(days=8)
    [decision] = decide(KEY_ARN, key_status(KeyState.ENABLED, back), [], {"dynamodb": open_now}, back)
    assert decision.step is ResourceStep.RESOLVE and decision.reason is not None
    assert AFTER_DEADLINE in decision.reason and "the table is archived" in decision.reason
    notice = resource_resolved_notice(open_now, decision.reason, back)
    assert notice.details["severity"] == "warning" and notice.details["afterDeadline"] is True
    assert "AFTER the deadline" in notice.subject


def test_a_revoked_grants_incident_resolves_when_the_resource_has_a_grant_again() -> None:
    [opened] = decide(KEY_ARN, None, [], {}, NOW, revoked("dynamodb", "a"))
    assert opened.incident is not None
    current = {"dynamodb": opened.incident}
    enabled = key_status(KeyState.ENABLED, NOW)
    [kept] = decide(KEY_ARN, enabled, [], current, NOW)
    assert kept.step is ResourceStep.KEEP
    [closed] = decide(KEY_ARN, enabled, on_key("dynamodb", "a"), current, NOW)
    assert closed.step is ResourceStep.RESOLVE


def test_the_key_disabled_over_a_revoked_grants_incident_supersedes_it() -> None:
    [opened] = decide(KEY_ARN, None, [], {}, NOW, revoked("dynamodb", "a"))
    assert opened.incident is not None
    key = key_status(KeyState.DISABLED, NOW)
    [decision] = decide(KEY_ARN, key, on_key("dynamodb", "a", "b"), {"dynamodb": opened.incident}, NOW)
    assert decision.step is ResourceStep.SUPERSEDE and decision.incident is not None
    assert decision.incident.cause is ResourceCause.KEY_DISABLED and decision.incident.resource_count == 2


def test_a_service_principal_is_told_from_a_person() -> None:
    ec2 = Actor(principal="ec2.amazonaws.com", identity_type="AWSService", via="ec2.amazonaws.com")
    regional = Actor(principal="dynamodb.eu-central-1.amazonaws.com", identity_type="AWSService", via=None)
    assert revoked_by_service(ec2, "ebs") and revoked_by_service(regional, "dynamodb")
    assert not revoked_by_service(ADMIN, "dynamodb") and not revoked_by_service(ec2, "dynamodb")
    impostor = Actor(
        principal="arn:aws:iam::1:role/dynamodb.amazonaws.com", identity_type="AssumedRole", via=None
    )
    assert not revoked_by_service(impostor, "dynamodb")
