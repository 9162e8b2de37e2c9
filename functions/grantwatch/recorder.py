"""The recorder's one corridor: parse at the edge, normalise (pure), write through the store, and ask for
the functions it touched to be evaluated once the settle window has passed.

The Lambda handler and `grantwatch replay` both use `Recorder`, so a replayed event takes exactly the path
a delivered one does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from grantwatch.domain.canary import CanaryPath, canary_path, heartbeat_of
from grantwatch.domain.catalogue import CLOUDTRAIL_DETAIL_TYPE, EventKind, screened, selection_of
from grantwatch.domain.facts import FactKind, GrantFact, Ignored, RejectedRecord, normalise
from grantwatch.domain.functions import FunctionFact, normalise_function_event
from grantwatch.domain.hazards import (
    DecryptFailure,
    KeyFact,
    RoleFact,
    SessionDecryptFailure,
    attribute_failure,
    normalise_hazard,
)
from grantwatch.domain.records import (
    CloudTrailEventBridgeEvent,
    CloudTrailRecord,
    EvaluationRequest,
    FieldError,
)
from grantwatch.domain.services import entry_for
from grantwatch.ports import (
    EvaluationScheduler,
    FunctionStore,
    GrantStore,
    HazardStore,
    HeartbeatStore,
    RecordResult,
)


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    REJECTED = "rejected"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True, slots=True)
class EventOutcome:
    outcome: Outcome
    event_id: str | None
    event_name: str | None
    grant_id: str | None = None
    function_arn: str | None = None
    reason: str | None = None
    error: str | None = None
    canary_path: str | None = None
    canary_from: str | None = None  # ACCOUNT/REGION the canary's call was made in

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "eventID": self.event_id,
            "eventName": self.event_name,
            "outcome": self.outcome,
        }
        for name, value in (
            ("grantId", self.grant_id),
            ("functionArn", self.function_arn),
            ("reason", self.reason),
            ("error", self.error),
            ("canaryPath", self.canary_path),
            ("canaryFrom", self.canary_from),
        ):
            if value is not None:
                body[name] = value
        return body


def parse_event(raw: object) -> CloudTrailRecord | Ignored:
    """A CloudTrail record from an EventBridge event or a bare record; `RejectedRecord` if it is neither."""
    if not isinstance(raw, dict):
        raise RejectedRecord(f"an event must be a JSON object, not {type(raw).__name__}")
    try:
        if "detail-type" in raw or "detail" in raw:
            if raw.get("detail-type") != CLOUDTRAIL_DETAIL_TYPE:
                detail_type = str(raw.get("detail-type"))[:128]
                return Ignored(f"not a CloudTrail API call event: detail-type {detail_type!r}")
            if (ignored := screen(raw.get("detail"))) is not None:
                return ignored
            _require_unicode(raw)
            return CloudTrailEventBridgeEvent.parse(raw).detail
        if (ignored := screen(raw)) is not None:
            return ignored
        _require_unicode(raw)
        return CloudTrailRecord.parse(raw)
    except FieldError as error:
        raise RejectedRecord(str(error), event_id_of(raw)) from None


def screen(detail: object) -> Ignored | None:
    """`Ignored` for a call grantwatch does not act on, told from its source, name, outcome and caller alone,
    before any strict validation (as CloudTrail's own readers are lenient); None when the record must be
    read."""
    if not isinstance(detail, dict):
        return None
    request = detail.get("requestParameters")
    if isinstance(request, dict) and request.get("dryRun") is True:
        return Ignored("dry run")
    found = screened(detail)
    return Ignored(found) if isinstance(found, str) else None


def _require_unicode(raw: dict[str, object]) -> None:
    """JSON can escape half a surrogate pair (\\ud800), which no UTF-8 store, log or queue can carry."""
    try:
        json.dumps(raw, ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        raise RejectedRecord("the event holds text that is not valid Unicode (a lone surrogate)") from None


class Recorder:
    """Records grant and function events, and schedules the evaluation of every function they touch."""

    def __init__(
        self,
        grants: GrantStore,
        functions: FunctionStore,
        hazards: HazardStore,
        scheduler: EvaluationScheduler,
        *,
        canary_key_arn: str | None = None,
        heartbeats: HeartbeatStore | None = None,
    ) -> None:
        self.grants = grants
        self.functions = functions
        self.hazards = hazards
        self.scheduler = scheduler
        # The canary's events (grantwatch.domain.canary): a heartbeat each, kept in `heartbeats` when given.
        self.canary_key_arn = canary_key_arn
        self.heartbeats = heartbeats

    def record(self, raw: object) -> EventOutcome:
        """Record one event. Bad input comes back REJECTED; store failures raise, to be retried."""
        parsed = self.parse(raw)
        return parsed if isinstance(parsed, EventOutcome) else self.apply(parsed)

    def parse(self, raw: object) -> CloudTrailRecord | EventOutcome:
        """The record, or the IGNORED / REJECTED outcome of an event that is not one to apply."""
        try:
            parsed = parse_event(raw)
        except RejectedRecord as rejected:
            return EventOutcome(
                Outcome.REJECTED,
                rejected.event_id or event_id_of(raw),
                event_name_of(raw),
                error=str(rejected),
            )
        if isinstance(parsed, Ignored):
            return EventOutcome(Outcome.IGNORED, event_id_of(raw), event_name_of(raw), reason=parsed.reason)
        return parsed

    def apply(self, record: CloudTrailRecord) -> EventOutcome:
        """Dispatch by the catalogue's kind of call: a canary's heartbeat, or a function, key, role, Decrypt
        or grant fact."""
        if (path := canary_path(record, self.canary_key_arn)) is not None:
            return self._heartbeat(record, path)
        selection = selection_of(record.event_source, record.event_name)
        try:
            if selection is not None and selection.kind is EventKind.FUNCTION:
                change = normalise_function_event(record)
                return (
                    self._apply_function(change)
                    if isinstance(change, FunctionFact)
                    else self._ignored(record, change)
                )
            if selection is not None and selection.kind is not EventKind.GRANT:
                return self._apply_hazard(record, normalise_hazard(record))
            fact = normalise(record)
        except RejectedRecord as rejected:
            return EventOutcome(Outcome.REJECTED, record.event_id, record.event_name, error=str(rejected))
        if isinstance(fact, Ignored):
            return self._ignored(record, fact)
        recorded = self.grants.record(fact)
        if recorded.function_arn:
            self.scheduler.schedule(
                EvaluationRequest.about(recorded.function_arn, fact.event_id, fact.event_time)
            )
        elif recorded.result is RecordResult.RECORDED and _about_a_resource(fact, recorded.service):
            self.scheduler.schedule(
                EvaluationRequest.about_grant(
                    fact.key_ref, fact.grant_id, fact.event_id, fact.event_name, fact.event_time
                )
            )
        outcome = Outcome.RECORDED if recorded.result is RecordResult.RECORDED else Outcome.DUPLICATE
        return EventOutcome(
            outcome,
            fact.event_id,
            fact.event_name,
            grant_id=fact.grant_id,
            function_arn=recorded.function_arn,
        )

    def _heartbeat(self, record: CloudTrailRecord, path: CanaryPath) -> EventOutcome:
        """A canary's call heard: its heartbeat kept, and nothing else (no grant, no function, no loss)."""
        beat = heartbeat_of(record, path)
        if self.heartbeats is not None:
            self.heartbeats.record(beat.account, beat.region, beat.path, beat.at)
        return EventOutcome(
            Outcome.HEARTBEAT,
            record.event_id,
            record.event_name,
            canary_path=path.value,
            canary_from=f"{beat.account}/{beat.region}",
        )

    def _ignored(self, record: CloudTrailRecord, ignored: Ignored) -> EventOutcome:
        return EventOutcome(Outcome.IGNORED, record.event_id, record.event_name, reason=ignored.reason)

    def _apply_hazard(
        self,
        record: CloudTrailRecord,
        fact: KeyFact | RoleFact | DecryptFailure | SessionDecryptFailure | Ignored,
    ) -> EventOutcome:
        """A key, role or failed-Decrypt fact: recorded, then the functions it may affect evaluated (a
        failure at once: it is the loss itself). A failure known only by its caller's session takes one read
        of the function the session names."""
        if isinstance(fact, SessionDecryptFailure):
            fact = attribute_failure(fact, self.functions.get(fact.function_arn))
        if isinstance(fact, Ignored):
            return self._ignored(record, fact)
        request: EvaluationRequest
        function_arn = None
        if isinstance(fact, KeyFact):
            applied = self.hazards.record_key(fact)
            request = EvaluationRequest.about_key(
                fact.key_arn, fact.event_id, fact.event_name, fact.event_time
            )
        elif isinstance(fact, RoleFact):
            applied = self.hazards.record_role(fact)
            request = EvaluationRequest.about_role(fact.role_key, fact.event_id, fact.event_time)
        else:
            failure = self.functions.record_failure(fact)
            applied, function_arn = failure.newest, fact.function_arn
            if failure.attached or not failure.newest:
                return self._outcome(record, applied, function_arn)  # a confirmation: nothing to decide
            request = EvaluationRequest.about(function_arn, fact.event_id, fact.event_time, immediate=True)
        self.scheduler.schedule(request)
        return self._outcome(record, applied, function_arn)

    def _outcome(self, record: CloudTrailRecord, applied: bool, function_arn: str | None) -> EventOutcome:
        return EventOutcome(
            Outcome.RECORDED if applied else Outcome.DUPLICATE,
            record.event_id,
            record.event_name,
            function_arn=function_arn,
        )

    def _apply_function(self, fact: FunctionFact) -> EventOutcome:
        applied = self.functions.record(fact)
        self.scheduler.schedule(EvaluationRequest.about(fact.function_arn, fact.event_id, fact.event_time))
        return EventOutcome(
            Outcome.RECORDED if applied else Outcome.DUPLICATE,
            fact.event_id,
            fact.event_name,
            function_arn=fact.function_arn,
        )


def _about_a_resource(fact: GrantFact, service: str | None) -> bool:
    """A grant of a service whose revoked grant has a documented effect (grantwatch.domain.services),
    revoked (its resource may have lost the key: a person's act, rare), or created (it may have its grant
    back). `service`: an end's, as its recorded creation names it. EBS's grants, which come and go with
    every attachment, are neither."""
    if fact.kind is FactKind.CREATED and fact.terms is not None and not fact.terms.function_arn:
        service = fact.terms.service
    elif fact.kind is not FactKind.REVOKED:
        return False
    entry = entry_for(service)
    return entry is not None and entry.on_grant_revoked is not None


def _field_of(raw: object, name: str) -> str | None:
    if not isinstance(raw, dict):
        return None
    detail = raw.get("detail")
    for source in (detail, raw) if isinstance(detail, dict) else (raw,):
        value = source.get(name)
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return None


def event_id_of(raw: object) -> str | None:
    return _field_of(raw, "eventID")


def event_name_of(raw: object) -> str | None:
    return _field_of(raw, "eventName")
