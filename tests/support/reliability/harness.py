"""What the reliability tests share: fresh tables, a canonical view of a table, and replays that
collect every notice."""

from __future__ import annotations

from collections import Counter
from typing import Any

from grantwatch import local as local_dynamo
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.pipeline import LocalPipeline
from grantwatch.recorder import Outcome
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support import tables


def new_table(endpoint_url: str, prefix: str = "grantwatch-rel") -> Settings:
    return tables.new_table(endpoint_url, prefix)


def drop_table(settings: Settings) -> None:
    local_dynamo.dynamodb_client(settings.endpoint_url or "").delete_table(TableName=settings.table_name)


def scan_all(settings: Settings) -> list[dict[str, Any]]:
    """Every item of the table, as DynamoDB's typed JSON, read consistently."""
    client = local_dynamo.dynamodb_client(settings.endpoint_url or "")
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": settings.table_name, "ConsistentRead": True}
    while True:
        page = client.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _plain(value: dict[str, Any]) -> Any:
    """DynamoDB's typed JSON as plain values, sets as sorted lists."""
    ((kind, inner),) = value.items()
    if kind == "M":
        return {k: _plain(v) for k, v in inner.items()}
    if kind == "L":
        return [_plain(v) for v in inner]
    if kind in {"SS", "NS"}:
        return sorted(inner)
    if kind == "NULL":
        return None
    return inner


def canonical_table(settings: Settings) -> dict[str, Any]:
    """The table with what depends only on arrival order or evaluation time taken out: a grant's lineage
    sorted (readers sort it), an incident by what it is about rather than when it was detected."""
    grants: dict[str, Any] = {}
    functions: dict[str, Any] = {}
    keys_and_roles: dict[str, Any] = {}
    dependencies: set[tuple[str, str]] = set()
    links: set[tuple[str, ...]] = set()
    incidents: Counter[tuple[str, ...]] = Counter()
    for raw in scan_all(settings):
        item = {k: _plain(v) for k, v in raw.items()}
        if item["sk"] in ("GRANT", "KEY", "ROLE"):
            item["events"] = sorted(item.get("events", []), key=lambda e: (e["eventTime"], e["eventId"]))
            (grants if item["sk"] == "GRANT" else keys_and_roles)[item["pk"]] = item
        elif item["sk"] == "FUNCTION":
            item["openIncidentId"] = item.get("openIncidentId") is not None
            functions[item["pk"]] = item
        elif item["sk"].startswith("FUNCTION#"):
            dependencies.add((item["pk"], item["sk"]))
        elif item["sk"].startswith("GRANT#"):  # a grant's link in its function's partition
            links.add((item["pk"], item["sk"], item.get("key", "-"), item.get("role", "-")))
        elif item["sk"] == "LAYOUT":
            continue
        else:
            incident = item["incident"]
            incidents[
                (
                    item["pk"],
                    item["status"],
                    incident["alertType"],
                    incident.get("grantId", "-"),
                    str("notifiedAt" in item),
                    str("resolvedNotifiedAt" in item),
                )
            ] += 1
    return {
        "grants": grants,
        "functions": functions,
        "keysAndRoles": keys_and_roles,
        "dependencies": sorted(dependencies),
        "links": sorted(links),
        "incidents": sorted(incidents.items()),
    }


def pipeline_for(settings: Settings) -> LocalPipeline:
    return local_pipeline(settings)


def replay(pipeline: LocalPipeline, events: list[dict[str, Any]]) -> list[Notice]:
    """Feed every event; none may be rejected or ignored: the scenarios only hold events to apply."""
    notices: list[Notice] = []
    for event in events:
        fired, outcome = pipeline.feed(event)
        assert outcome.outcome in {Outcome.RECORDED, Outcome.DUPLICATE}, outcome
        notices += fired
    return notices + pipeline.drain()


def notice_set(notices: list[Notice]) -> list[tuple[str, str, str, str]]:
    """What each notice says, without when it was detected: kind, function, alert type, grant."""
    return sorted(
        (n.kind.value, n.details["functionArn"], n.details["alertType"], n.details["grantId"])
        for n in notices
    )


def assert_one_notice_of_each_kind_per_incident(notices: list[Notice]) -> None:
    per_incident = Counter((n.incident_id, n.kind) for n in notices)
    assert all(count == 1 for count in per_incident.values()), per_incident
    alerted = {n.incident_id for n in notices if n.kind is NoticeKind.ALERT}
    resolved = {n.incident_id for n in notices if n.kind is NoticeKind.RESOLVED}
    assert resolved <= alerted, "a resolved notice for an incident that never alerted"
