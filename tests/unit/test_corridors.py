"""The recorder, evaluator and reconciler corridors on in-memory fakes of their ports: no DynamoDB, no AWS.
What the fakes keep is what the table would; the corridors are the real ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from grantwatch.domain.alerts import Incident
from grantwatch.domain.delivery import ChannelState
from grantwatch.domain.facts import GrantFact
from grantwatch.domain.functions import FunctionChange, FunctionFact, FunctionState, function_arn_prefix
from grantwatch.domain.hazards import DecryptFailure, KeyFact, KeyStatus, RoleFact, RoleStatus
from grantwatch.domain.lineage import GrantState, GrantStatus, fold
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.domain.reconcile import ListedFunction, ListedGrant
from grantwatch.domain.records import EvaluationRequest
from grantwatch.evaluator import Evaluator
from grantwatch.ports import (
    FailureRecorded,
    IncidentRecord,
    KeyNotFound,
    RecordedGrant,
    RecordResult,
    Relink,
    ServiceError,
)
from grantwatch.reconciler import Reconciler
from grantwatch.recorder import Outcome, Recorder
from tests.support.samples import ACCOUNT, KEY_ARN, REGION
from tests.support.scenarios import create_grant, function_arn, retire_grant

BILLING = function_arn("billing")


class MemoryGrants:
    def __init__(self) -> None:
        self.facts: dict[str, list[GrantFact]] = {}

    def record(self, fact: GrantFact) -> RecordedGrant:
        facts = self.facts.setdefault(fact.grant_id, [])
        seen = any(f.event_id == fact.event_id for f in facts)
        if not seen:
            facts.append(fact)
        result = RecordResult.DUPLICATE if seen else RecordResult.RECORDED
        return RecordedGrant(result, _function_of(fold(facts)))

    def get(self, grant_id: str) -> GrantState | None:
        return fold(self.facts[grant_id]) if grant_id in self.facts else None

    def grants(
        self,
        *,
        key: str | None = None,
        function: str | None = None,
        grantee: str | None = None,
        status: GrantStatus | None = None,
    ) -> Iterator[GrantState]:
        for facts in self.facts.values():
            state = fold(facts)
            if key in (None, state.key_arn) and function in (None, _function_of(state)):
                yield state

    def key_arns(self) -> set[str]:
        return {fold(facts).key_arn for facts in self.facts.values()}


def _function_of(state: GrantState) -> str | None:
    return state.terms.function_arn if state.terms else None


class MemoryFunctions:
    def __init__(self) -> None:
        self.states: dict[str, FunctionState] = {}
        self.records: dict[str, IncidentRecord] = {}
        self.open_ids: dict[str, str] = {}
        self.claims: set[tuple[str, bool]] = set()
        self.outbox: dict[tuple[str, bool], dict[str, ChannelState]] = {}
        # the links an incident's write moves (the hazards' own, shared with them by `Corridors`)
        self.links: dict[str, tuple[str | None, str | None]] = {}

    def _relink(self, function_arn: str, relink: Relink | None) -> None:
        if relink is not None:
            self.links[function_arn] = (relink.key, relink.role)

    def record(self, fact: FunctionFact) -> bool:
        self.states[fact.function_arn] = FunctionState(
            fact.function_arn,
            fact.role,
            fact.kms_key_arn,
            fact.has_environment,
            fact.event_time if fact.change is not FunctionChange.DELETED else None,
            fact.event_time if fact.change is FunctionChange.DELETED else None,
        )
        return True

    def get(self, function_arn: str) -> FunctionState | None:
        return self.states.get(function_arn)

    def all_functions(self) -> Iterator[tuple[FunctionState, str | None]]:
        for arn, state in self.states.items():
            yield state, self.open_ids.get(arn)

    def functions_in(self, account: str, region: str) -> Iterator[FunctionState]:
        prefix = function_arn_prefix(account, region)
        return (state for arn, state in self.states.items() if arn.startswith(prefix))

    def open_incident_id(self, function_arn: str) -> str | None:
        return self.open_ids.get(function_arn)

    def touch(self, function_arn: str) -> None:
        self.states.setdefault(function_arn, FunctionState(function_arn, None, None, False, None, None))

    def unsent_resolutions(self, function_arn: str) -> list[IncidentRecord]:
        return [
            r
            for r in self.records.values()
            if r.incident.function_arn == function_arn
            and r.status == "resolved"
            and r.notified
            and not r.resolved_notified
        ]

    def incident(self, function_arn: str, incident_id: str) -> IncidentRecord | None:
        return self.records.get(incident_id)

    def open(
        self, incident: Incident, *, claimed_until: datetime | None = None, relink: Relink | None = None
    ) -> bool:
        if incident.function_arn in self.open_ids:
            return False
        self._relink(incident.function_arn, relink)
        self.open_ids[incident.function_arn] = incident.incident_id
        self.records[incident.incident_id] = IncidentRecord(incident, "open")
        if claimed_until is not None:
            self.claims.add((incident.incident_id, False))
        return True

    def resolve(
        self,
        incident: Incident,
        at: datetime,
        reason: str,
        grant_id: str | None,
        *,
        relink: Relink | None = None,
    ) -> bool:
        if self.open_ids.pop(incident.function_arn, None) != incident.incident_id:
            return False
        self._relink(incident.function_arn, relink)
        self._change(incident, status="resolved", resolved_at=at, resolved_reason=reason)
        self._change(incident, resolved_grant_id=grant_id)
        return True

    def supersede(
        self,
        old: Incident,
        new: Incident,
        *,
        claimed_until: datetime | None = None,
        relink: Relink | None = None,
    ) -> bool:
        self._change(old, status="superseded", superseded_by=new.incident_id)
        del self.open_ids[old.function_arn]
        return self.open(new, claimed_until=claimed_until, relink=relink)

    def record_failure(self, failure: DecryptFailure) -> FailureRecorded:
        raise AssertionError("no failure in these stories")

    def attach_failure(self, failure: DecryptFailure, incident_id: str, *, newest: bool = True) -> None:
        raise AssertionError("no failure in these stories")

    def claim_notice(
        self, incident: Incident, *, resolved: bool, now: datetime
    ) -> dict[str, ChannelState] | None:
        claim = (incident.incident_id, resolved)
        if claim in self.claims:
            return None
        self.claims.add(claim)
        return self.deliveries(incident, resolved=resolved)

    def release_notice(self, incident: Incident, *, resolved: bool) -> None:
        self.claims.discard((incident.incident_id, resolved))

    def deliveries(self, incident: Incident, *, resolved: bool) -> dict[str, ChannelState]:
        return dict(self.outbox.get((incident.incident_id, resolved), {}))

    def record_deliveries(
        self, incident: Incident, *, resolved: bool, states: dict[str, ChannelState], sent_at: datetime | None
    ) -> IncidentRecord | None:
        self.outbox[(incident.incident_id, resolved)] = dict(states)
        if sent_at is not None and resolved:
            self._change(incident, resolved_notified=True)
        elif sent_at is not None:
            self._change(incident, notified_at=sent_at)
        return self.records[incident.incident_id]

    def _change(self, incident: Incident, **changes: Any) -> None:
        record = self.records[incident.incident_id]
        self.records[incident.incident_id] = dataclasses.replace(record, **changes)


class MemoryHazards:
    """No key or role events in these stories: the links a function's evaluation makes are kept."""

    def __init__(self) -> None:
        self.links: dict[str, tuple[str | None, str | None]] = {}
        self.verified: dict[str, datetime] = {}

    def key(self, key_arn: str) -> KeyStatus | None:
        return None

    def role(self, account: str, name: str) -> RoleStatus | None:
        return None

    def record_key(self, fact: KeyFact) -> bool:
        raise AssertionError("no key events in these stories")

    def key_lineage(self, key_arn: str) -> list[KeyFact]:
        return []

    def key_fact(self, key_arn: str, event_id: str, event_time: datetime) -> KeyFact | None:
        return None

    def record_role(self, fact: RoleFact) -> bool:
        raise AssertionError("no role events in these stories")

    def dependents_of_key(
        self, key_arn: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        return _page(sorted(arn for arn, (key, _) in self.links.items() if key == key_arn), after, limit)

    def dependents_of_role(
        self, account: str, name: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        on_role = sorted(arn for arn, (_, role) in self.links.items() if role == f"{account}/{name}")
        return _page(on_role, after, limit)

    def link(
        self, function_arn: str, *, key: str | None, role: str | None, was: tuple[str | None, str | None]
    ) -> bool:
        self.links[function_arn] = (key, role)
        return True

    def mark_verified(self, key_arn: str, at: datetime) -> None:
        self.verified[key_arn] = at

    def claim_key_notice(self, fact: KeyFact) -> bool:
        return True

    def release_key_notice(self, fact: KeyFact) -> None:
        pass

    def key_notice_deliveries(self, fact: KeyFact) -> dict[str, ChannelState]:
        return {}

    def record_key_notice_deliveries(self, fact: KeyFact, states: dict[str, ChannelState]) -> None:
        pass

    def keys_in(self, account: str, region: str) -> Iterator[str]:
        return iter(())


def _page(ordered: list[str], after: str | None, limit: int | None) -> list[str]:
    rest = [arn for arn in ordered if after is None or arn > after]
    return rest[:limit] if limit is not None else rest


class Outbox:
    """The scheduler and the notifier: what the corridors asked for, in order."""

    def __init__(self) -> None:
        self.scheduled: list[EvaluationRequest] = []
        self.notices: list[Notice] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.scheduled.append(request)

    def publish(self, notice: Notice) -> None:
        self.notices.append(notice)


class Corridors:
    def __init__(self, grants: MemoryGrants | None = None) -> None:
        self.grants, self.functions, self.hazards = (
            grants or MemoryGrants(),
            MemoryFunctions(),
            MemoryHazards(),
        )
        self.hazards.links = self.functions.links
        self.outbox = Outbox()
        self.recorder = Recorder(self.grants, self.functions, self.hazards, self.outbox)
        self.evaluator = Evaluator(self.grants, self.functions, self.hazards, self.outbox, self.outbox)

    def evaluate_scheduled(self, now: datetime) -> list[Notice]:
        requests, self.outbox.scheduled = self.outbox.scheduled, []
        return [notice for request in requests for notice in self.evaluator.run(request, now)]


T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def corridors() -> Corridors:
    return Corridors()


def test_the_recorder_records_a_grant_once_and_asks_for_its_functions_evaluation(
    corridors: Corridors,
) -> None:
    created = create_grant("billing", "g1", at(0))

    first, again = corridors.recorder.record(created), corridors.recorder.record(created)

    assert (first.outcome, first.function_arn) == (Outcome.RECORDED, BILLING)
    assert again.outcome is Outcome.DUPLICATE
    assert [g.grant_id for g in corridors.grants.grants(function=BILLING)] == [first.grant_id]
    assert {r.function_arn for r in corridors.outbox.scheduled} == {BILLING}
    rejected = corridors.recorder.record({"detail-type": "AWS API Call via CloudTrail", "detail": []})
    assert rejected.outcome is Outcome.REJECTED and rejected.error


def test_the_evaluator_opens_an_incident_alerts_once_and_resolves_it(corridors: Corridors) -> None:
    corridors.recorder.record(create_grant("billing", "g1", at(0)))
    corridors.recorder.record(retire_grant("g1", at(5)))

    [alert] = corridors.evaluate_scheduled(T0 + timedelta(minutes=8))
    assert (alert.kind, alert.attributes["functionArn"]) == (NoticeKind.ALERT, BILLING)
    record = corridors.functions.incident(BILLING, alert.incident_id)
    assert record is not None and record.status == "open" and record.notified
    assert corridors.evaluator.evaluate(BILLING, T0 + timedelta(minutes=9)) == []  # sent once

    corridors.recorder.record(create_grant("billing", "g2", at(10)))
    [resolved] = corridors.evaluate_scheduled(T0 + timedelta(minutes=13))
    assert (resolved.kind, resolved.incident_id) == (NoticeKind.RESOLVED, alert.incident_id)
    assert corridors.functions.open_incident_id(BILLING) is None
    assert corridors.outbox.notices == [alert, resolved]


class Lambda:
    def __init__(self, *functions: ListedFunction) -> None:
        self.functions = functions

    def list_functions(self) -> Iterator[ListedFunction]:
        return iter(self.functions)

    def get_function(self, function_arn: str) -> ListedFunction | None:
        return next((f for f in self.functions if f.function_arn == function_arn), None)


class Kms:
    def __init__(self, grants: dict[str, list[ListedGrant] | ServiceError]) -> None:
        self.answers = grants

    def list_keys(self) -> Iterator[str]:
        return iter(self.answers)

    def list_grants(self, key_arn: str) -> Iterator[ListedGrant]:
        answer = self.answers.get(key_arn, [])
        if isinstance(answer, ServiceError):
            raise answer
        return iter(answer)


def reconciler(corridors: Corridors, kms: Kms, *functions: ListedFunction) -> Reconciler:
    return Reconciler(
        grants=corridors.grants,
        functions=corridors.functions,
        hazards=corridors.hazards,
        kms=kms,
        lambda_=Lambda(*functions),
        scheduler=corridors.outbox,
        account=ACCOUNT,
        region=REGION,
    )


BILLING_LISTED = ListedFunction.from_api(
    {"FunctionArn": BILLING, "Role": f"arn:aws:iam::{ACCOUNT}:role/billing-role", "KMSKeyArn": KEY_ARN}
)


def test_the_reconciler_records_a_grant_that_vanished_and_has_its_function_evaluated(
    corridors: Corridors,
) -> None:
    corridors.recorder.record(create_grant("billing", "g1", at(0)))
    corridors.outbox.scheduled.clear()

    report = reconciler(corridors, Kms({KEY_ARN: []}), BILLING_LISTED).run(T0 + timedelta(hours=1))

    assert report.errors == [] and report.keys == 1
    assert report.repairs == {"function-configured": 1, "grant-vanished": 1}  # the table had not its config
    assert corridors.functions.states[BILLING].kms_key_arn == KEY_ARN
    [state] = corridors.grants.grants(function=BILLING)
    assert state.status is GrantStatus.ENDED
    assert BILLING in {r.function_arn for r in corridors.outbox.scheduled}
    assert KEY_ARN in corridors.hazards.verified
    [alert] = corridors.evaluate_scheduled(T0 + timedelta(hours=1))
    assert alert.attributes["alertType"] == "grant-vanished"


def test_the_reconciler_takes_a_key_kms_does_not_know_as_gone_and_reports_one_it_could_not_list(
    corridors: Corridors,
) -> None:
    corridors.recorder.record(create_grant("billing", "g1", at(0)))

    missing = KeyNotFound("NotFoundException: no such key")
    gone = reconciler(corridors, Kms({KEY_ARN: missing}), BILLING_LISTED)
    assert gone.run(T0 + timedelta(hours=1)).repairs["grant-vanished"] == 1

    other = Corridors()
    other.recorder.record(create_grant("billing", "g1", at(0)))
    stalled = ServiceError("ThrottlingException: Rate exceeded", uncertain=False)
    report = reconciler(other, Kms({KEY_ARN: stalled}), BILLING_LISTED).run(T0 + timedelta(hours=1))
    assert report.errors == [f"{KEY_ARN}: ThrottlingException: Rate exceeded"]
    assert "grant-vanished" not in report.repairs
    [state] = other.grants.grants(function=BILLING)
    assert state.status is not GrantStatus.ENDED  # nothing is concluded from a key that was not listed


class TableNotScanned(MemoryGrants):
    def key_arns(self) -> set[str]:
        raise AssertionError("a member account-region's reconciliation scanned the whole table's keys")


def test_one_member_account_region_takes_its_keys_from_kms_never_from_a_scan_of_the_table() -> None:
    corridors = Corridors(grants=TableNotScanned())
    corridors.recorder.record(create_grant("ebs-volume", "g1", at(0)))  # a key no function is on
    corridors.outbox.scheduled.clear()
    member = dataclasses.replace(reconciler(corridors, Kms({KEY_ARN: []})), keys_from_kms=True)

    report = member.run(T0 + timedelta(hours=1))

    assert report.errors == [] and report.keys == 1
    assert report.repairs.get("grant-vanished") == 1  # found on a key only KMS's list named


def test_a_key_request_asks_for_its_functions_a_page_at_a_time(corridors: Corridors) -> None:
    from grantwatch.evaluator import FAN_OUT_PAGE

    on_key = [function_arn(f"fn-{n:03}") for n in range(2 * FAN_OUT_PAGE + 50)]
    for arn in on_key:
        corridors.hazards.links[arn] = (KEY_ARN, None)
    pending = [EvaluationRequest.about_key(KEY_ARN, "disable", "DisableKey", T0)]
    functions: list[str] = []
    requests_per_run: list[int] = []
    while pending:
        assert corridors.evaluator.run(pending.pop(), T0) == []
        asked, corridors.outbox.scheduled = corridors.outbox.scheduled, []
        assert all(r.immediate for r in asked)
        requests_per_run.append(len(asked))
        functions += [r.function_arn for r in asked if r.function_arn is not None]
        pending += [r for r in asked if r.function_arn is None]
    assert functions == on_key  # each once, in order
    assert requests_per_run == [FAN_OUT_PAGE + 1, FAN_OUT_PAGE + 1, 50]
