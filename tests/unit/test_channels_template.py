"""The alert channels and the operations dashboard in template.yaml: each channel's resources and
permissions exist only when its parameter turns it on, each permission is one action on the one resource,
and the PagerDuty rules' input transformers produce the documented body (schemas/pagerduty-event.schema.json).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from grantwatch.domain.channels import event_entry, pagerduty_event
from grantwatch.domain.notices import Notice
from grantwatch.recorder import Outcome
from tests.support.channels import NOTICES, render_input, schema
from tests.support.cloudformation import Stack
from tests.support.samples import TEMPLATE

ACCOUNT, REGION = "210987654321", "eu-central-1"
EXISTING_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:team-chat"
SECRET = "grantwatch/pagerduty-routing-key"
CHANNEL_RESOURCES = {
    "AlertChatTopic",
    "PagerDutyConnection",
    "PagerDutyApiDestination",
    "PagerDutyInvokeRole",
    "PagerDutyTriggerRule",
    "PagerDutyResolveRule",
}
NOTIFYING = ("EvaluatorFunction", "RemediationFunction")
CHANNEL_VARIABLES = {
    "GRANTWATCH_ALERT_CHAT_TOPIC_ARN",
    "GRANTWATCH_ALERT_EVENT_BUS",
    "GRANTWATCH_SECURITY_HUB_PRODUCT_ARN",
}


def stack(**parameters: str) -> Stack:
    return Stack.load(
        TEMPLATE, parameters={"SelfHealing": "true", **parameters}, account=ACCOUNT, region=REGION
    )


def created(s: Stack) -> set[str]:
    return {r for r in CHANNEL_RESOURCES if s.exists(r)}


def channel_statements(s: Stack, function: str) -> dict[str, dict[str, Any]]:
    """The function's statements beyond the SNS text topic's, DynamoDB's, SQS's, KMS's, Lambda's and IAM's."""
    found = {}
    for policy in s.resources[function]["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Statement" in policy:
            for statement in s.resolve(policy)["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                if (
                    any(a.startswith(("events:", "securityhub:")) for a in actions)
                    or "Chat" in statement["Sid"]
                ):
                    found[statement["Sid"]] = statement
    return found


def variables(s: Stack, function: str) -> set[str]:
    env = s.resolve(s.resources[function]["Properties"]["Environment"]["Variables"])
    return set(env) & CHANNEL_VARIABLES


def test_with_no_channel_parameter_the_stack_has_no_channel_resource_permission_or_setting() -> None:
    s = stack()
    assert created(s) == set()
    for function in NOTIFYING:
        assert channel_statements(s, function) == {}
        assert variables(s, function) == set()


@pytest.mark.parametrize(
    ("parameters", "resources", "actions", "setting"),
    [
        ({"ChatTopicArn": "create"}, {"AlertChatTopic"}, {"sns:Publish"}, "GRANTWATCH_ALERT_CHAT_TOPIC_ARN"),
        ({"ChatTopicArn": EXISTING_TOPIC}, set(), {"sns:Publish"}, "GRANTWATCH_ALERT_CHAT_TOPIC_ARN"),
        ({"AlertEventBusName": "ops"}, set(), {"events:PutEvents"}, "GRANTWATCH_ALERT_EVENT_BUS"),
        (
            {"SecurityHubFindings": "true"},
            set(),
            {"securityhub:BatchImportFindings"},
            "GRANTWATCH_SECURITY_HUB_PRODUCT_ARN",
        ),
        ({"PagerDutyRoutingKeySecret": SECRET}, set(), set(), None),  # PagerDuty needs the alert bus
    ],
)
def test_each_channel_exists_only_when_its_parameter_turns_it_on(
    parameters: dict[str, str], resources: set[str], actions: set[str], setting: str | None
) -> None:
    s = stack(**parameters)
    assert created(s) == resources
    for function in NOTIFYING:
        statements = channel_statements(s, function).values()
        assert {statement["Action"] for statement in statements} == actions
        assert variables(s, function) == ({setting} if setting else set())


def test_each_channel_permission_is_one_action_on_the_one_resource() -> None:
    s = stack(ChatTopicArn=EXISTING_TOPIC, AlertEventBusName="ops", SecurityHubFindings="true")
    expected = {
        "sns:Publish": EXISTING_TOPIC,
        "events:PutEvents": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/ops",
        "securityhub:BatchImportFindings": (
            f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
        ),
    }
    for function in NOTIFYING:
        statements = list(channel_statements(s, function).values())
        assert {st["Action"]: st["Resource"] for st in statements} == expected
        assert all(st["Effect"] == "Allow" and "Condition" not in st for st in statements)
    env = s.resolve(s.resources["EvaluatorFunction"]["Properties"]["Environment"]["Variables"])
    assert env["GRANTWATCH_SECURITY_HUB_PRODUCT_ARN"] == expected["securityhub:BatchImportFindings"]
    assert env["GRANTWATCH_ALERT_EVENT_BUS"] == "ops"
    created_topic = stack(ChatTopicArn="create")
    statement = channel_statements(created_topic, "EvaluatorFunction")["PublishNoticesToTheChatTopic"]
    assert statement["Resource"] == created_topic.ref("AlertChatTopic")


def test_pagerduty_sends_through_an_api_destination_whose_connection_holds_the_routing_key() -> None:
    s = stack(AlertEventBusName="ops", PagerDutyRoutingKeySecret=SECRET)
    assert created(s) == CHANNEL_RESOURCES - {"AlertChatTopic"}
    destination = s.resolve(s.resources["PagerDutyApiDestination"]["Properties"])
    assert (destination["InvocationEndpoint"], destination["HttpMethod"]) == (
        "https://events.pagerduty.com/v2/enqueue",
        "POST",
    )
    auth = s.resolve(s.resources["PagerDutyConnection"]["Properties"]["AuthParameters"])
    reference = f"{{{{resolve:secretsmanager:{SECRET}:SecretString}}}}"
    assert auth["ApiKeyAuthParameters"]["ApiKeyValue"] == reference
    assert auth["InvocationHttpParameters"]["BodyParameters"] == [
        {"Key": "routing_key", "Value": reference, "IsValueSecret": True}
    ]
    role = s.resolve(s.resources["PagerDutyInvokeRole"]["Properties"])
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "events:InvokeApiDestination",
            "Resource": s.attribute("PagerDutyApiDestination", "Arn"),
        }
    ]
    for rule in ("PagerDutyTriggerRule", "PagerDutyResolveRule"):
        properties = s.resolve(s.resources[rule]["Properties"])
        assert properties["EventBusName"] == "ops"
        assert properties["EventPattern"]["source"] == ["grantwatch"]


def test_the_routing_key_secret_is_only_ever_resolved_from_secrets_manager() -> None:
    """The template names the secret and nothing else: every use of the parameter is a dynamic reference
    that CloudFormation resolves into the connection, and no parameter takes the key itself."""
    text = TEMPLATE.read_text()
    uses = re.findall(r".*\$\{PagerDutyRoutingKeySecret\}.*", text)
    assert len(uses) == 2
    assert all("{{resolve:secretsmanager:${PagerDutyRoutingKeySecret}:SecretString}}" in use for use in uses)
    refs = re.findall(r".*!Ref PagerDutyRoutingKeySecret.*", text)
    assert [r.strip() for r in refs] == [
        '- !Not [!Equals [!Ref PagerDutyRoutingKeySecret, ""]]'
    ]  # the condition
    declared = Stack.load(TEMPLATE).template["Parameters"]
    assert not [name for name in declared if re.search(r"(RoutingKey|ApiKey)$", name)]


def pagerduty_rule(s: Stack, event: dict[str, Any]) -> list[str]:
    """The PagerDuty rules whose pattern's detail type the event has."""
    return [
        rule
        for rule in ("PagerDutyTriggerRule", "PagerDutyResolveRule")
        if event["detail-type"] in s.resolve(s.resources[rule]["Properties"])["EventPattern"]["detail-type"]
    ]


def bus_event(notice: Notice) -> dict[str, Any]:
    """The event as EventBridge hands it to a rule's target."""
    entry = event_entry(notice, "ops")
    return {
        "version": "0",
        "source": entry["Source"],
        "account": ACCOUNT,
        "region": REGION,
        "detail-type": entry["DetailType"],
        "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


@pytest.mark.parametrize("name", NOTICES)
def test_the_pagerduty_rules_turn_every_notice_into_the_documented_events_v2_body(name: str) -> None:
    """Function and resource notices alike: every variable's path is in the event, the body is valid JSON
    with what PagerDuty requires, and it is the body pagerduty_event documents."""
    notice = NOTICES[name]
    s = stack(AlertEventBusName="ops", PagerDutyRoutingKeySecret=SECRET)
    event = bus_event(notice)
    matching = pagerduty_rule(s, event)
    expected = pagerduty_event(notice)
    assert len(matching) == (expected is not None)
    if expected is None:
        return
    (target,) = s.resolve(s.resources[matching[0]]["Properties"])["Targets"]
    body = render_input(target["InputTransformer"], event)
    assert body == expected
    assert not list(schema("pagerduty-event").iter_errors(body))
    assert body["dedup_key"] == notice.incident_id


def test_a_resource_incident_is_triggered_and_resolved_under_one_dedup_key() -> None:
    s = stack(AlertEventBusName="ops", PagerDutyRoutingKeySecret=SECRET)
    alert, resolved = NOTICES["alert resource key pending deletion"], NOTICES["resolved resource"]
    bodies = []
    for notice in (alert, resolved):
        event = bus_event(notice)
        (rule,) = pagerduty_rule(s, event)
        (target,) = s.resolve(s.resources[rule]["Properties"])["Targets"]
        bodies.append(render_input(target["InputTransformer"], event))
    trigger, resolve = bodies
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == alert.incident_id
    assert trigger["payload"]["source"] == alert.details["keyArn"]
    assert trigger["payload"]["component"] == "dynamodb table"


def test_a_path_the_event_lacks_fails_the_render_as_eventbridge_drops_its_variable() -> None:
    """The transformer before resource notices had top-level source and component: a resource alert has
    no functionArn, so EventBridge would have sent PagerDuty a broken body."""
    event = bus_event(NOTICES["alert resource ebs"])
    old = {
        "InputPathsMap": {"incident": "$.detail.incidentId", "function": "$.detail.details.functionArn"},
        "InputTemplate": '{"dedup_key": <incident>, "payload": {"source": <function>}}',
    }
    with pytest.raises(AssertionError, match=r"no variable \['function'\]"):
        render_input(old, event)
    function_alert = bus_event(NOTICES["alert grant-retired"])
    assert render_input(old, function_alert)["payload"]["source"] == function_alert["detail"]["source"]


def test_the_evaluation_lag_alarm_watches_the_oldest_request_of_the_evaluation_queue() -> None:
    s = stack(EvaluationLagAlarmSeconds="900")
    alarm = s.resolve(s.resources["EvaluationLagAlarm"]["Properties"])
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": s.attribute("EvaluationQueue", "QueueName")}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == ("900", "GreaterThanThreshold")
    declared = Stack.load(TEMPLATE).template["Parameters"]
    # the age includes the settle window: by default the alarm stays quiet however long that window is
    assert declared["EvaluationLagAlarmSeconds"]["Default"] > declared["SettleSeconds"]["MaxValue"]


def test_the_dashboard_shows_the_metrics_the_code_emits() -> None:
    s = stack()
    body = json.loads(s.resolve(s.resources["OperationsDashboard"]["Properties"]["DashboardBody"]))
    text = json.dumps(body)
    for outcome in Outcome:
        assert f'"Events{outcome.value.title()}"' in text, outcome  # the recorder's Events<Outcome>
    for notice in ("NoticesAlert", "NoticesResolved", "NoticesInfo"):
        assert f'"{notice}"' in text
    assert "MetricName=Alerts" in text and "grantwatch-reconciler" in text and "DeadLetter" in text
    assert s.attribute("EvaluationQueue", "QueueName") in text and "ApproximateAgeOfOldestMessage" in text
    assert s.ref("EvaluatorFunction") in text
