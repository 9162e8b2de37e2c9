"""Resource alerts through the real pipeline on DynamoDB Local: a key disabled or scheduled for deletion
alerts once per key and service with the documented deadline, a revoked grant alerts where the service
documents its effect, the services' own churn never alerts, and the key back resolves; the notice is
published to moto's SNS as AWS takes it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from grantwatch.adapters.notifier import SnsNotifier
from grantwatch.adapters.resource_incidents import DynamoResourceIncidents
from grantwatch.adapters.tables import _shared_client
from grantwatch.domain.delivery import Delivery
from grantwatch.domain.facts import GrantFact, normalise
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.domain.records import CloudTrailRecord, EvaluationRequest
from grantwatch.domain.resource_alerts import MAX_NAMED_RESOURCES
from grantwatch.domain.services import SERVICES, Service
from grantwatch.evaluator import Evaluator
from grantwatch.pipeline import LocalPipeline
from grantwatch.ports import NotDelivered
from grantwatch.recorder import Recorder, parse_event
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.iam_contract import stands_for
from tests.support.moto_server import moto_server
from tests.support.resource_scenarios import (
    retired_by_service,
    revoked_by_person,
    revoked_by_service,
    service_grant,
    with_deletion_date,
)
from tests.support.samples import KEY_ARN
from tests.support.scenarios import (
    cancel_key_deletion,
    create_grant,
    disable_key,
    enable_key,
    grant_id,
    replay,
    schedule_key_deletion,
    update_function,
)

EVERY_SERVICE = [str(s) for s in SERVICES]
REVOCABLE = [str(s) for s, e in SERVICES.items() if e.on_grant_revoked is not None]
NOT_REVOCABLE = [str(s) for s, e in SERVICES.items() if e.on_grant_revoked is None]


@pytest.fixture
def pipeline(table_settings: Settings) -> LocalPipeline:
    return local_pipeline(table_settings)


def grant(service: str, resource: str, at: str, label: str = "") -> dict[str, Any]:
    context_key = SERVICES[Service(service)].context_keys[0]
    return service_grant(service, resource, at, context_key=context_key, label=label)


def about_resources(notices: list[Notice]) -> list[Notice]:
    return [n for n in notices if n.details.get("resourceKind")]


@pytest.mark.parametrize("service", EVERY_SERVICE)
def test_a_disabled_key_alerts_once_with_its_deadline_and_resolves_when_enabled(
    pipeline: LocalPipeline, service: str
) -> None:
    effect = SERVICES[Service(service)].on_key_disabled
    alert, resolved = about_resources(
        replay(
            pipeline,
            [
                grant(service, "first", "2026-11-20T10:00:00Z"),
                grant(service, "second", "2026-11-20T10:01:00Z"),
                disable_key("2026-11-24T09:15:02Z"),
                enable_key("2026-11-26T09:15:02Z"),
            ],
        )
    )
    assert alert.kind is NoticeKind.ALERT and resolved.kind is NoticeKind.RESOLVED
    assert alert.incident_id == resolved.incident_id
    details = alert.details
    assert details["alertType"] == "resource-key-disabled" and details["service"] == service
    assert details["resources"] == ["first", "second"] and details["resourceCount"] == 2
    assert details["lossStartedAt"] == "2026-11-24T09:15:02Z"
    expected = "2026-12-01T09:15:02Z" if effect.irreversible_after else None
    assert details["deadline"] == expected
    assert alert.attributes["alertType"] == "resource-key-disabled"  # not one self-healing acts on
    assert "functionArn" not in alert.attributes
    assert resolved.details["resolvedReason"].startswith("the key is enabled again at 2026-11-26T09:15:02Z")
    assert resolved.details["afterDeadline"] is False


@pytest.mark.parametrize("service", EVERY_SERVICE)
def test_a_key_scheduled_for_deletion_alerts_with_both_deadlines(
    pipeline: LocalPipeline, service: str
) -> None:
    effect = SERVICES[Service(service)].on_key_pending_deletion
    scheduled = with_deletion_date(
        schedule_key_deletion("2026-11-25T14:02:11Z"), "Dec 25, 2026, 12:00:00 AM", 30
    )
    notices = about_resources(
        replay(
            pipeline,
            [
                grant(service, "db-1", "2026-11-20T10:00:00Z"),
                scheduled,
                cancel_key_deletion("2026-11-26T15:30:00Z"),
                enable_key("2026-11-26T15:31:00Z"),
            ],
        )
    )
    alert, resolved = notices
    assert alert.details["alertType"] == "resource-key-pending-deletion"
    assert alert.details["deletionDate"] == "2026-12-25T00:00:00Z"
    assert alert.details["deadline"] == ("2026-12-02T14:02:11Z" if effect.irreversible_after else None)
    assert "KMS deletes key" in alert.message and "2026-12-25T00:00:00Z" in alert.message
    commands = [s["command"] for s in alert.details["fix"][0]["steps"]]
    assert commands == [
        f"aws kms cancel-key-deletion --region eu-central-1 --key-id {KEY_ARN}",
        f"aws kms enable-key --region eu-central-1 --key-id {KEY_ARN}",
    ]
    assert resolved.kind is NoticeKind.RESOLVED and resolved.incident_id == alert.incident_id


def test_a_key_left_disabled_after_its_deletion_is_cancelled_keeps_the_clock(pipeline: LocalPipeline) -> None:
    scheduled = with_deletion_date(
        schedule_key_deletion("2026-11-25T14:02:11Z"), "Dec 2, 2026, 2:02:11 PM", 7
    )
    deletion, disabled = about_resources(
        replay(
            pipeline,
            [
                grant("dynamodb", "orders", "2026-11-20T10:00:00Z"),
                scheduled,
                cancel_key_deletion("2026-11-26T15:30:00Z"),
            ],
        )
    )
    assert deletion.details["alertType"] == "resource-key-pending-deletion"
    assert disabled.details["alertType"] == "resource-key-disabled"  # KMS leaves the key disabled
    assert disabled.details["lossStartedAt"] == "2026-11-25T14:02:11Z"
    assert disabled.details["deadline"] == "2026-12-02T14:02:11Z"


def test_the_key_enabled_after_the_deadline_warns_that_tables_may_be_archived(
    pipeline: LocalPipeline,
) -> None:
    alert, resolved = about_resources(
        replay(
            pipeline,
            [
                grant("dynamodb", "orders", "2026-11-20T10:00:00Z"),
                disable_key("2026-11-24T09:15:02Z"),
                enable_key("2026-12-03T08:00:00Z"),
            ],
        )
    )
    assert alert.details["deadline"] == "2026-12-01T09:15:02Z"
    assert resolved.details["afterDeadline"] is True and resolved.details["severity"] == "warning"
    assert "may already have happened" in resolved.message and "archived" in resolved.message


@pytest.mark.parametrize("service", REVOCABLE)
def test_a_grant_revoked_by_a_person_alerts_where_documented(pipeline: LocalPipeline, service: str) -> None:
    [alert] = about_resources(
        replay(
            pipeline,
            [
                grant(service, "live", "2026-11-20T10:00:00Z"),
                revoked_by_person(service, "live", "2026-11-21T10:00:00Z"),
            ],
        )
    )
    assert alert.details["alertType"] == "resource-grant-revoked"
    assert alert.details["resources"] == ["live"]
    assert alert.details["evidence"]["eventName"] == "RevokeGrant"
    assert alert.details["evidence"]["by"] == "arn:aws:sts::210987654321:assumed-role/kms-administrators/dana"
    # the service creates a grant for it again: the incident resolves
    [resolved] = about_resources(replay(pipeline, [grant(service, "live", "2026-11-21T11:00:00Z", " again")]))
    assert resolved.kind is NoticeKind.RESOLVED and resolved.incident_id == alert.incident_id


@pytest.mark.parametrize("service", NOT_REVOCABLE)
def test_a_grant_revoked_without_a_documented_effect_does_not_alert(
    pipeline: LocalPipeline, service: str
) -> None:
    events = [
        grant(service, "live", "2026-11-20T10:00:00Z"),
        revoked_by_person(service, "live", "2026-11-21T10:00:00Z"),
    ]
    assert about_resources(replay(pipeline, events)) == []


@pytest.mark.parametrize("service", EVERY_SERVICE)
def test_the_services_own_churn_never_alerts(pipeline: LocalPipeline, service: str) -> None:
    """A table deleted (DynamoDB retires its grant), a volume detached (EC2 retires it), a backup's grant
    retired once taken, a grant the service revokes itself: then the key disabled and enabled. Only the
    resource that kept its grant is at risk."""
    events = [
        grant(service, "kept", "2026-11-20T10:00:00Z"),
        grant(service, "let-go", "2026-11-20T10:00:00Z"),
        grant(service, "own-revoke", "2026-11-20T10:00:00Z"),
        retired_by_service(service, "let-go", "2026-11-21T10:00:00Z"),
        revoked_by_service(service, "own-revoke", "2026-11-21T10:00:01Z"),
    ]
    assert about_resources(replay(pipeline, events)) == []
    alert, _ = about_resources(
        replay(pipeline, [disable_key("2026-11-24T09:15:02Z"), enable_key("2026-11-24T10:00:00Z")])
    )
    assert alert.details["resources"] == ["kept"] and alert.details["resourceCount"] == 1


def test_a_key_with_only_churn_on_it_does_not_alert(pipeline: LocalPipeline) -> None:
    events = [
        grant("dynamodb", "deleted-table", "2026-11-20T10:00:00Z"),
        grant("ebs", "vol-detached", "2026-11-20T10:00:00Z"),
        retired_by_service("dynamodb", "deleted-table", "2026-11-21T10:00:00Z"),
        retired_by_service("ebs", "vol-detached", "2026-11-21T10:00:00Z"),
        disable_key("2026-11-24T09:15:02Z"),
        enable_key("2026-11-25T09:15:02Z"),
    ]
    assert about_resources(replay(pipeline, events)) == []


def test_lambda_functions_on_the_key_keep_their_own_incidents(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            update_function("billing", "2026-11-20T09:59:00Z"),
            create_grant("billing", "billing-1", "2026-11-20T10:00:00Z"),
            grant("dynamodb", "orders", "2026-11-20T10:00:00Z"),
            disable_key("2026-11-24T09:15:02Z"),
        ],
    )
    kinds = Counter((n.details.get("alertType"), bool(n.details.get("functionArn"))) for n in notices)
    assert kinds == Counter({("key-disabled", True): 1, ("resource-key-disabled", False): 1})


class Requests:
    """DynamoDB requests made, by operation, while it listens."""

    def __init__(self, settings: Settings) -> None:
        self.client = _shared_client(settings).client()
        self.counted: Counter[str] = Counter()

    def __enter__(self) -> Requests:
        self.client.meta.events.register("before-call.dynamodb", self._count)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.meta.events.unregister("before-call.dynamodb", self._count)

    def _count(self, model: Any, params: Any, **_: Any) -> None:
        by_key = model.name == "Query" and b'"IndexName": "by-key"' in params.get("body", b"")
        self.counted[f"{model.name} by-key" if by_key else model.name] += 1


@pytest.fixture
def sns() -> Iterator[tuple[Any, str, Any, str]]:
    with moto_server() as endpoint:
        options: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        client, sqs = boto3.client("sns", **options), boto3.client("sqs", **options)
        topic = stands_for("AlertTopic", client.create_topic(Name="grantwatch-alerts")["TopicArn"])
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        client.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
        )
        yield client, topic, sqs, queue


def test_a_thousand_tables_make_one_notice_published_once_to_sns(
    pipeline: LocalPipeline, table_settings: Settings, sns: tuple[Any, str, Any, str]
) -> None:
    client, topic, sqs, queue = sns
    names = [f"orders-{n:04d}-" + "x" * 240 for n in range(1000)]  # near DynamoDB's 255-character names
    for n, name in enumerate(names):  # the grants recorded as the recorder records them, one write each
        record = parse_event(grant("dynamodb", name, f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}Z"))
        fact = normalise(record) if isinstance(record, CloudTrailRecord) else record
        assert isinstance(fact, GrantFact)
        pipeline.grants.record(fact)
    _, outcome = pipeline.feed(disable_key("2026-11-24T09:15:02Z"))
    assert outcome.outcome == "recorded"
    evaluator = Evaluator(
        pipeline.grants,
        pipeline.functions,
        pipeline.hazards,
        SnsNotifier(topic, client),
        pipeline.scheduler,
        resource_incidents=DynamoResourceIncidents(table_settings),
    )
    request = EvaluationRequest.about_key(
        KEY_ARN, "e-disable", "DisableKey", datetime(2026, 11, 24, 9, 15, 2, tzinfo=UTC)
    )
    now = datetime(2026, 11, 24, 9, 17, 2, tzinfo=UTC)
    with Requests(table_settings) as requests:
        [notice] = evaluator.run(request, now)
    # the functions on the key (the Lambda fan-out) and the key's service items, its state, the by-key index
    # a page a MB (DynamoDB Local counts the grant items' size, AWS the index entries': one page), the
    # grants in batches of 100; one transaction opens the incident with its alert claimed, one update
    # marks it sent
    index_pages = requests.counted.pop("Query by-key")
    assert 1 <= index_pages <= 2
    assert requests.counted == Counter(
        {"Query": 2, "GetItem": 1, "BatchGetItem": 10, "TransactWriteItems": 1, "UpdateItem": 1}
    )
    assert notice.details["resourceCount"] == 1000 and len(notice.details["resources"]) == MAX_NAMED_RESOURCES
    assert evaluator.run(request, now) == []  # once: the incident is open and its alert sent
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"])[
        "Messages"
    ]
    details = json.loads(message["Body"])  # an SQS subscriber gets the notice's details as JSON
    assert details == json.loads(json.dumps(notice.details))
    assert message["MessageAttributes"]["alertType"]["StringValue"] == "resource-key-disabled"
    assert message["MessageAttributes"]["incidentId"]["StringValue"] == notice.incident_id
    assert len(message["Body"].encode()) < 256 * 1024
    assert details["deadline"] == "2026-12-01T09:15:02Z"


def test_a_key_enabled_with_nothing_open_reads_no_grant(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    for n in range(150):
        pipeline.feed(grant("dynamodb", f"t{n}", f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}Z"))
    pipeline.feed(enable_key("2026-11-24T09:15:02Z"))
    request = EvaluationRequest.about_key(
        KEY_ARN, "e-enable", "EnableKey", datetime(2026, 11, 24, 9, 15, 2, tzinfo=UTC)
    )
    with Requests(table_settings) as requests:
        assert pipeline.evaluator.run(request, datetime(2026, 11, 24, 9, 17, 2, tzinfo=UTC)) == []
    assert requests.counted == Counter(
        {"Query": 2, "GetItem": 1}
    )  # functions on the key, service items, state


class Channels:
    """Five channels; `failing` refuse the notice until they are cleared."""

    names = ("sns", "chat", "events", "securityhub", "pagerduty")

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)
        self.taken: list[tuple[str, str]] = []  # (channel, incident id), in order

    def publish(self, notice: Notice) -> None:
        raise AssertionError("sent through deliver")

    def deliver(self, notice: Notice, skip: frozenset[str]) -> Delivery:
        delivered = {n for n in self.names if n not in skip and n not in self.failing}
        self.taken += [(n, notice.incident_id) for n in sorted(delivered)]
        return Delivery(frozenset(delivered), {n: "Throttled" for n in self.failing if n not in skip})


def test_a_channel_that_fails_gets_the_alert_on_the_retry_and_the_others_only_once(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    pipeline.feed(grant("dynamodb", "orders", "2026-11-20T10:00:00Z"))
    pipeline.feed(disable_key("2026-11-24T09:15:02Z"))
    channels = Channels("pagerduty")
    evaluator = Evaluator(
        pipeline.grants,
        pipeline.functions,
        pipeline.hazards,
        channels,
        pipeline.scheduler,
        resource_incidents=DynamoResourceIncidents(table_settings),
    )
    request = EvaluationRequest.about_key(
        KEY_ARN, "e-disable", "DisableKey", datetime(2026, 11, 24, 9, 15, 2, tzinfo=UTC)
    )
    with pytest.raises(NotDelivered, match="pagerduty: Throttled"):
        evaluator.run(request, datetime(2026, 11, 24, 9, 17, 2, tzinfo=UTC))
    channels.failing.clear()
    [alert] = evaluator.run(request, datetime(2026, 11, 24, 9, 18, 2, tzinfo=UTC))  # the queue's retry
    assert evaluator.run(request, datetime(2026, 11, 24, 9, 19, 2, tzinfo=UTC)) == []
    assert Counter(name for name, _ in channels.taken) == Counter(dict.fromkeys(Channels.names, 1))
    assert {incident for _, incident in channels.taken} == {alert.incident_id}


class Asked:
    def __init__(self) -> None:
        self.requests: list[EvaluationRequest] = []

    def schedule(self, request: EvaluationRequest) -> None:
        self.requests.append(request)


def test_the_recorder_asks_about_revoked_and_created_grants_only_where_a_revoke_has_an_effect(
    table_settings: Settings,
) -> None:
    asked = Asked()
    stores = local_pipeline(table_settings)
    recorder = Recorder(stores.grants, stores.functions, stores.hazards, asked)
    for event in (
        grant("ebs", "vol-1", "2026-11-20T10:00:00Z"),
        revoked_by_person("ebs", "vol-1", "2026-11-20T10:05:00Z"),
        retired_by_service("ebs", "vol-1", "2026-11-20T10:06:00Z"),
        grant("dynamodb", "orders", "2026-11-20T10:00:00Z"),
        retired_by_service("dynamodb", "orders", "2026-11-20T10:06:00Z"),
        revoked_by_person("dynamodb", "orders", "2026-11-20T10:07:00Z"),
    ):
        assert recorder.record(event).outcome in ("recorded", "duplicate")
    assert [(r.event_name, r.grant_id) for r in asked.requests] == [
        ("CreateGrant", grant_id("dynamodb orders")),
        ("RevokeGrant", grant_id("dynamodb orders")),
    ]
    [created, revoked] = asked.requests
    assert created.key_arn == KEY_ARN
    assert EvaluationRequest.from_body(revoked.body()) == revoked


def test_the_incident_lives_in_the_keys_partition_and_its_resolved_notice_survives_a_failure(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    channels = Channels()
    evaluator = Evaluator(
        pipeline.grants,
        pipeline.functions,
        pipeline.hazards,
        channels,
        pipeline.scheduler,
        resource_incidents=DynamoResourceIncidents(table_settings),
    )
    disabled = datetime(2026, 11, 24, 9, 15, 2, tzinfo=UTC)
    enabled = datetime(2026, 11, 25, 9, 15, 2, tzinfo=UTC)
    pipeline.feed(grant("dynamodb", "orders", "2026-11-20T10:00:00Z"))
    pipeline.feed(disable_key("2026-11-24T09:15:02Z"))
    [alert] = evaluator.run(EvaluationRequest.about_key(KEY_ARN, "e1", "DisableKey", disabled), disabled)
    client = _shared_client(table_settings).client()
    table, pk = table_settings.table_name, {"S": f"KEY#{KEY_ARN}"}
    service = client.get_item(TableName=table, Key={"pk": pk, "sk": {"S": "SERVICE#dynamodb"}})["Item"]
    assert service["openIncidentId"]["S"] == alert.incident_id
    sk = {"S": f"RESOURCE-INCIDENT#dynamodb#{alert.incident_id}"}
    incident = client.get_item(TableName=table, Key={"pk": pk, "sk": sk})["Item"]
    assert incident["status"]["S"] == "open" and "notifiedAt" in incident
    assert set(incident["alertDeliveries"]["M"]) == set(Channels.names)

    pipeline.feed(enable_key("2026-11-25T09:15:02Z"))
    channels.failing.add("sns")
    request = EvaluationRequest.about_key(KEY_ARN, "e2", "EnableKey", enabled)
    with pytest.raises(NotDelivered):
        evaluator.run(request, enabled)
    channels.failing.clear()
    [resolved] = evaluator.run(request, enabled)  # the retry: the closed incident's notice is still owed
    assert resolved.kind is NoticeKind.RESOLVED and resolved.incident_id == alert.incident_id
    assert evaluator.run(request, enabled) == []
    resolved_sent = [name for name, _ in channels.taken[len(Channels.names) :]]
    assert Counter(resolved_sent) == Counter(dict.fromkeys(Channels.names, 1))
    service = client.get_item(TableName=table, Key={"pk": pk, "sk": {"S": "SERVICE#dynamodb"}})["Item"]
    assert "openIncidentId" not in service and service["lastIncidentId"]["S"] == alert.incident_id


def test_a_table_only_reconciliation_saw_on_the_key_is_named_in_the_alert(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    """What the services' read APIs found (DescribeTable's SSEDescription) counts beside the lineage: a
    table whose grant predates the history still has its clock."""
    from grantwatch.adapters.discovered import DynamoDiscoveredResources
    from grantwatch.domain.resources import DiscoveredResource

    seen = DiscoveredResource(
        service=Service.DYNAMODB,
        resource_id="ledger",
        key_arn=KEY_ARN,
        account="210987654321",
        region="eu-central-1",
        state="ACTIVE",
        inaccessible_since=None,
        observed_at=datetime.now(UTC),
    )
    assert DynamoDiscoveredResources(table_settings).record([seen]) == 1
    [alert] = about_resources(
        replay(
            pipeline,
            [grant("dynamodb", "orders", "2026-11-20T10:00:00Z"), disable_key("2026-11-24T09:15:02Z")],
        )
    )
    assert alert.details["service"] == "dynamodb"
    assert alert.details["resources"] == ["ledger", "orders"] and alert.details["resourceCount"] == 2
    assert alert.details["deadline"] == "2026-12-01T09:15:02Z"
