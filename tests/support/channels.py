"""Every kind of notice people receive, and the JSON Schemas their channel payloads are checked against."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from grantwatch.domain.coverage import Coverage, Target, Unheard, unreachable
from grantwatch.domain.facts import Actor
from grantwatch.domain.fixes import FixTarget, key_switch
from grantwatch.domain.hazards import KeyChange, KeyFact, KeyState
from grantwatch.domain.healing import HealOutcome
from grantwatch.domain.notices import (
    Notice,
    alert_notice,
    heal_notice,
    member_canary_notice,
    policy_notice,
    resolved_notice,
    stale_notice,
)
from grantwatch.domain.resource_alerts import back_reason
from grantwatch.domain.resource_notices import resource_alert_notice, resource_resolved_notice
from grantwatch.domain.risk import Cause
from tests.support.incidents import FUNCTION, KEY, T0, incident
from tests.support.resource_scenarios import resource_incident

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
HUB_ACCOUNT = "210987654321"
HUB_REGION = "eu-central-1"


def schema(name: str) -> Draft202012Validator:
    document = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def every_notice() -> dict[str, Notice]:
    """An alert of every alert type, its resolved notice, heal succeeded and failed, a key policy change,
    account-regions not reconciled lately; resource alerts of each service and a resolved resource
    notice."""
    notices: dict[str, Notice] = {}
    for cause in Cause:
        notices[f"alert {cause.value}"] = alert_notice(incident(cause))
    opened = incident(Cause.GRANT_RETIRED)
    notices["resolved"] = resolved_notice(opened, "can decrypt again", T0 + timedelta(hours=1), "g2")
    fix = key_switch(FixTarget(FUNCTION, KEY, None))
    notices["heal succeeded"] = heal_notice(
        opened, HealOutcome(True, T0 + timedelta(minutes=5), 1, 2, grant_id="g2", fix=fix)
    )
    notices["heal failed"] = heal_notice(
        opened,
        HealOutcome(False, T0 + timedelta(minutes=5), 2, 2, error="AccessDenied", fix=fix, left_on="x"),
    )
    admin = Actor(principal="arn:aws:sts::210987654321:assumed-role/admin/dana", identity_type=None, via=None)
    fact = KeyFact(KeyChange.POLICY_CHANGED, KEY, "e9", T0, "PutKeyPolicy", admin)
    notices["key policy changed"] = policy_notice(fact, [FUNCTION])
    notices["reconciliation stale"] = stale_notice([LATE], [late_coverage()], timedelta(hours=1))
    notices["member canary silent"] = member_canary_notice([Unheard(LATE, None)], timedelta(hours=1))
    for service in ("dynamodb", "rds", "ebs", "elasticfilesystem", "workspaces"):
        notices[f"alert resource {service}"] = resource_alert_notice(resource_incident(service))
    lost = resource_incident("dynamodb", KeyState.PENDING_DELETION, deletion=T0 + timedelta(days=7))
    notices["alert resource key pending deletion"] = resource_alert_notice(lost)
    back = back_reason(lost, T0 + timedelta(days=8))
    notices["resolved resource"] = resource_resolved_notice(lost, back, T0 + timedelta(days=8))
    return notices


LATE = Target("210987654321", "eu-west-1")


def late_coverage() -> Coverage:
    """An account-region not reconciled for three hours, its role refused."""
    return unreachable(LATE, "AccessDenied: not authorized to perform sts:AssumeRole", T0, None)


NOTICES = every_notice()


def render_input(transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    """An EventBridge input transformer applied to the event: each <name> of the template becomes the JSON
    of the value at its path. A path the event lacks creates no variable (EventBridge's input
    transformation guide, Common issues) and the body it would send is broken: that fails here."""
    values = {name: _at(path, event) for name, path in transformer["InputPathsMap"].items()}
    dropped = sorted(name for name, value in values.items() if value is _MISSING)
    assert not dropped, f"EventBridge creates no variable {dropped}: the event lacks their paths"
    template = transformer["InputTemplate"]
    undefined = sorted(set(re.findall(r"<([\w.-]+)>", template)) - set(values))
    assert not undefined, f"the template uses variables no path defines: {undefined}"
    return json.loads(re.sub(r"<([\w.-]+)>", lambda m: json.dumps(values[m.group(1)]), template))


_MISSING = object()


def _at(path: str, event: dict[str, Any]) -> Any:
    found: Any = event
    for part in path.removeprefix("$.").split("."):
        if not isinstance(found, dict) or part not in found:
            return _MISSING
        found = found[part]
    return found
