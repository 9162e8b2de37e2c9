"""One incident by its id, whatever kind it is: what `grantwatch incidents INCIDENT_ID` shows, the command
every alert e-mail ends with.

Each kind of incident (today: a Lambda function that cannot decrypt its environment) is an `IncidentKind`
that finds its own incidents by id and says everything about one: the alert as the evaluator words it
(grantwatch.domain.notices, rebuilt from the stored incident) and where the incident stands. A new kind
is one more `IncidentKind` in `grantwatch.wiring.incident_kinds`, which builds each on its store;
`find_incident` asks each in turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from grantwatch.domain.delivery import states_to_map
from grantwatch.domain.functions import function_name
from grantwatch.domain.notices import Notice, alert_notice
from grantwatch.ports import IncidentRecord
from grantwatch.queries import incident_row


@dataclass(frozen=True, slots=True)
class FoundIncident:
    """Everything about one incident: its kind, its alert as sent, and its row (the fields of
    `grantwatch incidents --json`, with where each notice stands in each channel)."""

    kind: str
    alert: Notice
    row: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        alert = self.alert
        return (
            {"kind": self.kind}
            | self.row
            | {
                "fix": alert.details.get("fix", []),
                "alert": {
                    "subject": alert.subject,
                    "message": alert.message,
                    "email": alert.email,
                    "command": alert.command,
                },
            }
        )


class StoredIncidents(Protocol):
    """Where a kind's incidents are kept: one found by its id alone, as stored (None: unknown)."""

    def find_incident(self, incident_id: str) -> IncidentRecord | None: ...


class IncidentKind(Protocol):
    """One kind of incident: finds one of its own by id (None: not one of this kind)."""

    def find(self, incident_id: str) -> FoundIncident | None: ...


@dataclass(frozen=True, slots=True)
class FunctionIncidents:
    """Incidents about one Lambda function (items ``FUNCTION#<arn>`` / ``INCIDENT#<id>``): in DynamoDB,
    found by the function store's bounded query of its by-entity index, then one GetItem."""

    functions: StoredIncidents
    temporary_role: str | None = None  # SelfHealingTemporaryRoleArn, as the evaluator's alerts name it

    def find(self, incident_id: str) -> FoundIncident | None:
        record = self.functions.find_incident(incident_id)
        if record is None:
            return None
        return FoundIncident("function", alert_notice(record.incident, self.temporary_role), _row(record))


def _row(record: IncidentRecord) -> dict[str, Any]:
    return incident_row(record) | {
        "functionName": function_name(record.incident.function_arn),
        "deliveries": {
            "alert": states_to_map(record.alert_deliveries),
            "resolved": states_to_map(record.resolved_deliveries),
        },
    }


def find_incident(kinds: Iterable[IncidentKind], incident_id: str) -> FoundIncident | None:
    """The incident of this id, from the first kind that has it."""
    for kind in kinds:
        if (found := kind.find(incident_id)) is not None:
            return found
    return None
