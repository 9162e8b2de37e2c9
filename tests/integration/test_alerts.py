"""Alerts before the failure, on the virtual clock, against DynamoDB Local: one alert per incident, no alert
for benign churn, one resolved notice when a usable grant is back."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.notifier import (
    MACHINE_PROTOCOLS,
    SnsNotifier,
    machine_message,
    publish_request,
)
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.notices import Notice, NoticeKind
from grantwatch.evaluator import Evaluator
from grantwatch.pipeline import DEFAULT_SETTLE, LocalPipeline, VirtualClockScheduler
from grantwatch.ports import GrantStore, HazardStore, Notifier
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.samples import KEY_ARN, load_event
from tests.support.scenarios import (
    create_grant,
    delete_function,
    function_arn,
    grant_id,
    replay,
    retire_grant,
    revoke_grant,
    update_function,
)


@pytest.fixture
def pipeline(table_settings: Settings) -> LocalPipeline:
    return local_pipeline(table_settings)


def evaluate(
    hazards: HazardStore,
    function: str,
    *,
    grants: GrantStore,
    functions: DynamoFunctionStore,
    notifier: Notifier,
    now: datetime,
) -> list[Notice]:
    return Evaluator(grants, functions, hazards, notifier, VirtualClockScheduler(DEFAULT_SETTLE)).evaluate(
        function, now
    )


def kinds(notices: list[Notice]) -> list[str]:
    return [n.kind.value for n in notices]


def test_the_seed_story_raises_one_alert(pipeline: LocalPipeline) -> None:
    events = [
        load_event(n)
        for n in (
            "lambda-create-function.json",
            "kms-create-grant-lambda.json",
            "kms-retire-grant-by-admin.json",
        )
    ]
    [alert] = replay(pipeline, events)
    assert alert.kind is NoticeKind.ALERT
    assert len(alert.subject) <= 100
    assert alert.subject == "[grantwatch] invoice-renderer: next cold start will fail (grant retired)"
    assert alert.attributes == {
        "severity": "critical",
        "alertType": "grant-retired",
        "functionArn": function_arn("invoice-renderer"),
        "keyArn": KEY_ARN,
        "account": "210987654321",
        "region": "eu-central-1",
    }
    details = alert.details
    assert details["grantId"] == "abfc6dbbc686122cb75763f3007e5aa9c67f9d9caafa2dd4320bbf61b393fd9a"
    assert details["evidence"] | {"eventId": "-"} == {
        "what": "retired",
        "eventName": "RetireGrant",
        "eventId": "-",
        "at": "2026-11-20T16:42:31Z",
        "by": "arn:aws:sts::210987654321:assumed-role/kms-administrators/dana",
        "via": None,
        "from": "203.0.113.24",
        "identityType": "AssumedRole",
    }
    assert details["detectedAt"] == "2026-11-20T16:44:31Z"  # the settle window after the retire
    assert details["executionRole"] == "arn:aws:iam::210987654321:role/invoice-renderer-role"
    for text in (
        "KMSAccessDeniedException",
        "Warm instances",
        "retired at 2026-11-20T16:42:31Z",
        "aws lambda update-function-configuration --region eu-central-1 --function-name "
        f"{function_arn('invoice-renderer')} --kms-key-arn {KEY_ARN}",
        '"incidentId"',
    ):
        assert text in alert.message, text
    fix = alert.message.split("\nFix\n", 1)[1].split("Details (JSON)")[0]
    function = f"--region eu-central-1 --function-name {function_arn('invoice-renderer')}"
    update = f"aws lambda update-function-configuration {function}"
    wait = f"aws lambda wait function-updated {function}"
    commands = [line.strip() for line in fix.splitlines() if line.strip().startswith("aws ")]
    assert commands[:4] == [f'{update} --kms-key-arn ""', wait, f"{update} --kms-key-arn {KEY_ARN}", wait]


def test_a_revoke_raises_a_revoke_alert(pipeline: LocalPipeline) -> None:
    [alert] = replay(
        pipeline,
        [create_grant("billing", "g1", "2026-11-01T10:00:00Z"), revoke_grant("g1", "2026-11-03T10:00:00Z")],
    )
    assert alert.attributes["alertType"] == "grant-revoked"
    assert alert.details["evidence"]["what"] == "revoked"


def test_a_new_grant_for_the_same_role_within_the_window_raises_nothing(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
            retire_grant("g1", "2026-11-03T10:00:00Z"),
            create_grant("billing", "g2", "2026-11-03T10:01:30Z"),
        ],
    )
    assert notices == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_configuration_update_churn_in_any_order_raises_nothing(
    pipeline: LocalPipeline, order: tuple[int, ...]
) -> None:
    churn = [
        update_function("billing", "2026-11-03T10:00:00Z"),
        create_grant("billing", "g2", "2026-11-03T10:00:01Z"),
        retire_grant("g1", "2026-11-03T10:00:03Z", by_lambda=True),
    ]
    assert (
        replay(pipeline, [create_grant("billing", "g1", "2026-11-01T10:00:00Z")] + [churn[i] for i in order])
        == []
    )


def test_a_role_change_keeps_the_function_safe_with_its_new_grant(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
            update_function("billing", "2026-11-03T10:00:00Z", role="billing-v2"),
            retire_grant("g1", "2026-11-03T10:00:03Z", by_lambda=True),
            create_grant("billing", "g2", "2026-11-03T10:00:01Z", role="billing-v2"),
        ],
    )
    assert notices == []


def test_a_grant_of_the_old_role_does_not_count_after_a_role_change(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
            create_grant("billing", "g0", "2026-11-01T09:00:00Z"),
            update_function("billing", "2026-11-03T10:00:00Z", role="billing-v2"),
            create_grant("billing", "g2", "2026-11-03T10:00:01Z", role="billing-v2"),
            retire_grant("g2", "2026-11-04T10:00:00Z"),
        ],
    )
    assert kinds(notices) == ["alert"]
    assert notices[0].details["executionRole"] == "arn:aws:iam::210987654321:role/billing-v2"


def test_a_deleted_function_raises_nothing_when_its_grants_end(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
            delete_function("billing", "2026-11-05T10:00:00Z"),
            retire_grant("g1", "2026-11-05T10:00:04Z", by_lambda=True),
        ],
    )
    assert notices == []


def test_a_function_moved_off_its_customer_managed_key_raises_nothing(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
            update_function("billing", "2026-11-05T10:00:00Z", key=None),
            retire_grant("g1", "2026-11-05T10:00:02Z", by_lambda=True),
        ],
    )
    assert notices == []


def test_every_event_delivered_three_times_raises_one_alert(pipeline: LocalPipeline) -> None:
    story = [
        create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
        retire_grant("g1", "2026-11-03T10:00:00Z"),
    ]
    notices = replay(pipeline, [e for e in story for _ in range(3)] + story[::-1])
    assert kinds(notices) == ["alert"]


def test_a_new_grant_after_the_alert_resolves_it_once(pipeline: LocalPipeline) -> None:
    story = [
        create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
        retire_grant("g1", "2026-11-03T10:00:00Z"),
        create_grant("billing", "g2", "2026-11-03T11:00:00Z"),
        create_grant("billing", "g2", "2026-11-03T11:00:00Z"),
    ]
    alert, resolved = replay(pipeline, story)
    assert (alert.kind, resolved.kind) == (NoticeKind.ALERT, NoticeKind.RESOLVED)
    assert resolved.incident_id == alert.incident_id
    assert resolved.attributes["alertType"] == "resolved" and resolved.attributes["severity"] == "info"
    assert resolved.details["resolvedByGrantId"] == grant_id("g2")
    assert resolved.details["resolvedAt"] == "2026-11-03T11:02:00Z"
    assert len(resolved.subject) <= 100
    # a second incident later is a new alert
    more = replay(pipeline, [retire_grant("g2", "2026-11-10T10:00:00Z")])
    assert kinds(more) == ["alert"] and more[0].incident_id != alert.incident_id


def test_a_retire_delivered_before_its_create_still_alerts(pipeline: LocalPipeline) -> None:
    story = [
        retire_grant("g1", "2026-11-03T10:00:00Z"),
        create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
    ]
    assert kinds(replay(pipeline, story)) == ["alert"]


class FailingOnce:
    def __init__(self) -> None:
        self.sent: list[Notice] = []
        self.failed = False

    def publish(self, notice: Notice) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("SNS unavailable")
        self.sent.append(notice)


def test_a_failed_publish_is_retried_and_sent_once(table_settings: Settings) -> None:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    pipeline = LocalPipeline(grants, functions, hazards)
    pipeline.feed(create_grant("billing", "g1", "2026-11-01T10:00:00Z"))
    pipeline.feed(retire_grant("g1", "2026-11-03T10:00:00Z"))
    notifier = FailingOnce()
    now = datetime(2026, 11, 3, 10, 2, tzinfo=UTC)
    with pytest.raises(ConnectionError):
        evaluate(
            hazards, function_arn("billing"), grants=grants, functions=functions, notifier=notifier, now=now
        )
    for attempt in range(3):
        evaluate(
            hazards,
            function_arn("billing"),
            grants=grants,
            functions=functions,
            notifier=notifier,
            now=now + timedelta(minutes=attempt + 1),
        )
    assert kinds(notifier.sent) == ["alert"]


def test_the_sns_publish_carries_the_subject_message_and_filterable_attributes(
    pipeline: LocalPipeline,
) -> None:
    [alert] = replay(
        pipeline,
        [create_grant("billing", "g1", "2026-11-01T10:00:00Z"), revoke_grant("g1", "2026-11-03T10:00:00Z")],
    )
    topic = "arn:aws:sns:eu-central-1:210987654321:grantwatch-alerts"
    import boto3

    client = boto3.client("sns", region_name="eu-central-1")
    expected = {
        "TopicArn": topic,
        "Subject": "[grantwatch] billing: next cold start will fail (grant revoked)",
        "Message": json.dumps(
            {"default": alert.email, "email": alert.email, "sms": f"{alert.subject}. {alert.command}"}
            | dict.fromkeys(MACHINE_PROTOCOLS, machine_message(alert))
        ),
        "MessageStructure": "json",
        "MessageAttributes": {
            "incidentId": {"DataType": "String", "StringValue": alert.incident_id},
            "severity": {"DataType": "String", "StringValue": "critical"},
            "alertType": {"DataType": "String", "StringValue": "grant-revoked"},
            "functionArn": {"DataType": "String", "StringValue": function_arn("billing")},
            "keyArn": {"DataType": "String", "StringValue": KEY_ARN},
            "account": {"DataType": "String", "StringValue": "210987654321"},
            "region": {"DataType": "String", "StringValue": "eu-central-1"},
        },
    }
    assert publish_request(topic, alert) == expected
    with Stubber(client) as stub:
        stub.add_response("publish", {"MessageId": "1"}, expected)
        SnsNotifier(topic, client).publish(alert)
        stub.assert_no_pending_responses()


def test_two_evaluations_racing_send_the_alert_once(table_settings: Settings) -> None:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    pipeline = LocalPipeline(grants, functions, hazards)
    pipeline.feed(create_grant("billing", "g1", "2026-11-01T10:00:00Z"))
    pipeline.feed(retire_grant("g1", "2026-11-03T10:00:00Z"))
    now = datetime(2026, 11, 3, 10, 2, tzinfo=UTC)
    sent: list[Notice] = []

    class SecondEvaluatorDuringPublish:
        """While the first evaluation publishes, a second one (another batch) evaluates the same function."""

        def publish(self, notice: Notice) -> None:
            sent.append(notice)
            if len(sent) == 1:
                evaluate(
                    hazards,
                    function_arn("billing"),
                    grants=grants,
                    functions=functions,
                    notifier=self,
                    now=now,
                )

    evaluate(
        hazards,
        function_arn("billing"),
        grants=grants,
        functions=functions,
        notifier=SecondEvaluatorDuringPublish(),
        now=now,
    )
    assert kinds(sent) == ["alert"]


def test_a_function_deleted_and_created_again_is_watched_again(pipeline: LocalPipeline) -> None:
    notices = replay(
        pipeline,
        [
            create_grant("billing", "g1", "2026-11-01T10:00:00Z"),
            delete_function("billing", "2026-11-05T10:00:00Z"),
            create_grant("billing", "g2", "2026-11-05T10:00:00Z"),
            retire_grant("g1", "2026-11-05T10:00:04Z", by_lambda=True),
            create_grant("billing", "g3", "2026-11-06T10:00:00Z"),
            retire_grant("g3", "2026-11-07T10:00:00Z"),
            retire_grant("g2", "2026-11-07T10:00:01Z"),
        ],
    )
    assert kinds(notices) == ["alert"]


def test_a_resolved_notice_that_failed_is_sent_even_after_a_new_incident_opened(
    table_settings: Settings,
) -> None:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    recorder = LocalPipeline(grants, functions, hazards).recorder
    billing = function_arn("billing")
    sent: list[Notice] = []

    class Notifier:
        fail_resolved = False

        def publish(self, notice: Notice) -> None:
            if notice.kind is NoticeKind.RESOLVED and self.fail_resolved:
                raise ConnectionError("SNS unavailable")
            sent.append(notice)

    notifier = Notifier()
    at = datetime(2026, 11, 3, 10, 2, tzinfo=UTC)
    recorder.record(create_grant("billing", "g1", "2026-11-01T10:00:00Z"))
    recorder.record(retire_grant("g1", "2026-11-03T10:00:00Z"))
    evaluate(hazards, billing, grants=grants, functions=functions, notifier=notifier, now=at)
    recorder.record(create_grant("billing", "g2", "2026-11-03T11:00:00Z"))
    notifier.fail_resolved = True
    with pytest.raises(ConnectionError):
        evaluate(
            hazards,
            billing,
            grants=grants,
            functions=functions,
            notifier=notifier,
            now=at + timedelta(hours=1),
        )
    notifier.fail_resolved = False
    recorder.record(retire_grant("g2", "2026-11-04T10:00:00Z"))
    evaluate(
        hazards, billing, grants=grants, functions=functions, notifier=notifier, now=at + timedelta(days=1)
    )
    evaluate(
        hazards,
        billing,
        grants=grants,
        functions=functions,
        notifier=notifier,
        now=at + timedelta(days=1, minutes=1),
    )
    # the new incident's alert, then the old one's resolved notice
    assert kinds(sent) == ["alert", "alert", "resolved"]
    assert sent[2].incident_id == sent[0].incident_id != sent[1].incident_id


def test_a_grant_back_while_the_alert_is_being_sent_still_gets_its_resolved_notice(
    table_settings: Settings,
) -> None:
    grants, functions = DynamoGrantStore(table_settings), DynamoFunctionStore(table_settings)
    hazards = DynamoHazardStore(table_settings)
    recorder = LocalPipeline(grants, functions, hazards).recorder
    recorder.record(create_grant("billing", "g1", "2026-11-01T10:00:00Z"))
    recorder.record(retire_grant("g1", "2026-11-03T10:00:00Z"))
    now = datetime(2026, 11, 3, 10, 2, tzinfo=UTC)
    sent: list[Notice] = []

    class ResolvedDuringPublish:
        """While the alert is being published, a new grant arrives and another evaluation resolves it."""

        def publish(self, notice: Notice) -> None:
            if not sent:
                recorder.record(create_grant("billing", "g2", "2026-11-03T10:01:00Z"))
                evaluate(
                    hazards,
                    function_arn("billing"),
                    grants=grants,
                    functions=functions,
                    notifier=self,
                    now=now,
                )
            sent.append(notice)

    evaluate(
        hazards,
        function_arn("billing"),
        grants=grants,
        functions=functions,
        notifier=ResolvedDuringPublish(),
        now=now,
    )
    assert kinds(sent) == ["alert", "resolved"]


def test_a_function_on_the_aws_managed_key_is_told_the_role_switch_with_the_stacks_temporary_role(
    table_settings: Settings,
) -> None:
    """Its configuration names no KMSKeyArn (Lambda's key aws/lambda): only the role switch resets its grant,
    and the alert names the temporary role the stack was given."""
    temporary = "arn:aws:iam::210987654321:role/grantwatch-heal-temporary"
    pipeline = local_pipeline(dataclasses.replace(table_settings, heal_temporary_role_arn=temporary))
    events = [
        update_function("billing", "2026-11-02T09:00:00Z", key=None),
        create_grant("billing", "b1", "2026-11-02T09:00:01Z"),
        retire_grant("b1", "2026-11-20T09:00:00Z"),
    ]
    [alert] = replay(pipeline, events)
    assert alert.details["awsManagedKey"] is True
    [role_switch] = alert.details["fix"]
    assert role_switch["procedure"] == "role-switch"
    assert [s["value"] for s in role_switch["steps"] if s["setting"]] == [
        temporary,
        "arn:aws:iam::210987654321:role/billing-role",
    ]
    assert f"--role {temporary}" in alert.message and "--kms-key-arn" not in alert.message
