"""An AWS Organization: member accounts forward their CloudTrail events from several regions to a central
bus, one recorder records them all. Each grant and function stays in its own account and region, and the
two records CloudTrail writes of one cross-account call (the caller's and the key owner's, one
sharedEventID) count once, whichever arrives first."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest
from moto.events.models import EventPattern

from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.notices import NoticeKind
from grantwatch.settings import Settings
from tests.support.reliability.harness import pipeline_for, replay
from tests.support.reliability.scale import report
from tests.support.samples import ACCOUNT, REGION, ROOT, TEMPLATE, load_event, sample_event_files
from tests.support.scenarios import create_grant, grant_id, retire_grant
from tests.support.templates import load_template

CENTRAL = "111111111111"
MEMBERS = ("222222222222", "333333333333")
REGIONS = ("us-east-1", "eu-central-1", "ap-southeast-2")


def located(event: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """The same record as written in another account and region (ARNs, envelope and recipient)."""
    moved: dict[str, Any] = json.loads(json.dumps(event).replace(ACCOUNT, account).replace(REGION, region))
    return moved


def key_arn(account: str, region: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/5f1e2d3c-4b5a-4968-8776-a1b2c3d4e5f6"


def function_arn(account: str, region: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def recorded_by(caller: str, event: dict[str, Any]) -> dict[str, Any]:
    """The caller's copy of a cross-account call: its own eventID and recipient, the same sharedEventID."""
    copy: dict[str, Any] = json.loads(json.dumps(event))
    detail = copy["detail"]
    detail["eventID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{caller} {detail['eventID']}"))
    detail["recipientAccountId"] = copy["account"] = caller
    return copy


def cross_account(event: dict[str, Any], caller: str) -> tuple[dict[str, Any], dict[str, Any]]:
    owner_copy = json.loads(json.dumps(event))
    owner_copy["detail"]["sharedEventID"] = str(
        uuid.uuid5(uuid.NAMESPACE_URL, owner_copy["detail"]["eventID"])
    )
    return owner_copy, recorded_by(caller, owner_copy)


def organization_stream() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same function name, 'billing', in every member account and region, each with its grant; in one
    of them the grant is retired. Plus a grant a member account's role holds on a central key."""
    events: list[dict[str, Any]] = []
    for account, region in itertools.product(MEMBERS, REGIONS):
        events.append(
            located(create_grant("billing", f"g-{account}-{region}", "2026-11-01T10:00:00Z"), account, region)
        )
    events.append(
        located(retire_grant(f"g-{MEMBERS[0]}-{REGIONS[1]}", "2026-11-03T10:00:00Z"), MEMBERS[0], REGIONS[1])
    )
    # The central account's key, used by a function in a member account: both trails record each call.
    shared_create = located(create_grant("reports", "g-shared", "2026-11-01T11:00:00Z"), CENTRAL, REGIONS[0])
    params = shared_create["detail"]["requestParameters"]  # the function and its role are the member's
    for field in ("granteePrincipal", "retiringPrincipal"):
        params[field] = params[field].replace(CENTRAL, MEMBERS[1])
    context = params["constraints"]["encryptionContextEquals"]
    context["aws:lambda:FunctionArn"] = function_arn(MEMBERS[1], REGIONS[0], "reports")
    shared_retire = located(retire_grant("g-shared", "2026-11-04T10:00:00Z"), CENTRAL, REGIONS[0])
    shared = [*cross_account(shared_create, MEMBERS[1]), *cross_account(shared_retire, MEMBERS[1])]
    return events, shared


@pytest.mark.parametrize("member_copies_first", [False, True])
def test_an_organization_s_events_stay_in_their_account_and_region_and_count_once(
    table_settings: Settings, member_copies_first: bool
) -> None:
    events, shared = organization_stream()
    owner_create, member_create, owner_retire, member_retire = shared
    order = [member_create, owner_create, member_retire, owner_retire] if member_copies_first else shared
    notices = replay(pipeline_for(table_settings), events + order)
    store = DynamoGrantStore(table_settings)

    for account, region in itertools.product(MEMBERS, REGIONS):
        [grant] = store.grants(key=key_arn(account, region))
        assert (grant.account, grant.region, grant.grant_id) == (
            account,
            region,
            grant_id(f"g-{account}-{region}"),
        )
        assert grant.terms is not None and grant.terms.function_arn == function_arn(
            account, region, "billing"
        )
    retired = store.get(grant_id(f"g-{MEMBERS[0]}-{REGIONS[1]}"))
    assert retired is not None and retired.ended is not None

    shared_grant = store.get(grant_id("g-shared"))
    assert shared_grant is not None
    assert (shared_grant.account, shared_grant.region) == (CENTRAL, REGIONS[0])
    assert [fact.kind.value for fact in shared_grant.lineage] == ["created", "retired"]  # not four facts

    report(
        "multi-account",
        accounts=1 + len(MEMBERS),
        regions=len(REGIONS),
        events=len(events) + len(order),
        crossAccountCopies=len(order),
        factsFromThem=len(shared_grant.lineage),
        alerts=len(notices),
        bothArrivalOrders=True,
    )
    alerts = sorted(
        (n.attributes["account"], n.attributes["region"], n.attributes["functionArn"]) for n in notices
    )
    assert [n.kind for n in notices] == [NoticeKind.ALERT, NoticeKind.ALERT]
    assert alerts == [
        (MEMBERS[0], REGIONS[1], function_arn(MEMBERS[0], REGIONS[1], "billing")),
        (MEMBERS[1], REGIONS[0], function_arn(MEMBERS[1], REGIONS[0], "reports")),
    ]


FORWARDER = load_template(ROOT / "member" / "forwarder.yaml")
CENTRAL_TEMPLATE = load_template(TEMPLATE)


def _rules(template: dict[str, Any]) -> dict[str, EventPattern]:
    return {
        name: EventPattern.load(json.dumps(resource["Properties"]["EventPattern"]))
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule"
    }


@pytest.mark.parametrize("path", sample_event_files(), ids=lambda p: p.name)
def test_a_member_account_forwards_every_event_the_central_rules_take(path: Any) -> None:
    event = located(load_event(path.name), MEMBERS[0], REGIONS[2])
    central = {n for n, p in _rules(CENTRAL_TEMPLATE).items() if p.matches_event(event)}  # type: ignore[arg-type]
    forwarded = {n for n, p in _rules(FORWARDER).items() if p.matches_event(event)}  # type: ignore[arg-type]
    assert bool(forwarded) == bool(central)
    assert len(forwarded) <= 1  # each event is put on the central bus once


def test_the_central_bus_admits_the_organization_only_and_its_rules_listen_on_it() -> None:
    resources = CENTRAL_TEMPLATE["Resources"]
    policy = resources["OrganizationEventBusPolicy"]
    assert policy["Condition"] == "HasOrganization"
    statement = policy["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    forwarded = sorted(
        {
            s
            for r in _rules(FORWARDER)
            for s in FORWARDER["Resources"][r]["Properties"]["EventPattern"]["source"]
        }
    )
    condition = statement["Condition"]
    assert condition["StringEquals"] == {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    # only what member accounts forward, in every entry of a request
    assert sorted(condition["ForAllValues:StringEquals"]["events:source"]) == forwarded
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        sources = resource["Properties"].get("EventPattern", {}).get("source", [])
        # CloudTrail's events on the watched bus; grantwatch's own notices (PagerDuty) on the alert bus
        expected = "AlertEventBusName" if sources == ["grantwatch"] else "EventBusName"
        assert resource["Properties"]["EventBusName"] == {"Ref": expected}, name
    role = FORWARDER["Resources"]["ForwardingRole"]["Properties"]
    [statement] = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("events:PutEvents", {"Ref": "CentralEventBusArn"})
    for name, resource in FORWARDER["Resources"].items():
        if resource["Type"] == "AWS::Events::Rule":
            [target] = resource["Properties"]["Targets"]
            assert target["Arn"] == {"Ref": "CentralEventBusArn"} and "DeadLetterConfig" in target, name
