"""Hazards without a grant event, on the virtual clock against DynamoDB Local: an execution role deleted or
re-created, a key disabled or scheduled for deletion, a key policy changed, and the failed Decrypt that
confirms an alert (or reveals a loss nothing predicted). Each alerts once with its own type; benign
sequences raise nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.cli import app
from grantwatch.domain.notices import Notice
from grantwatch.domain.records import EvaluationRequest
from grantwatch.pipeline import LocalPipeline
from grantwatch.queries import incident_rows
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.samples import ACCOUNT, KEY_ARN
from tests.support.scenarios import (
    AWS_LAMBDA_KEY_ARN,
    cancel_key_deletion,
    create_grant,
    create_role,
    decrypt_failed,
    decrypt_failed_by_session,
    delete_role,
    disable_key,
    enable_key,
    function_arn,
    grant_id,
    put_key_policy,
    replay,
    retire_grant,
    schedule_key_deletion,
    update_function,
)

runner = CliRunner()


@pytest.fixture
def pipeline(table_settings: Settings) -> LocalPipeline:
    return local_pipeline(table_settings)


def summary(notices: list[Notice]) -> list[tuple[str, str, str]]:
    return [
        (n.kind.value, n.attributes["alertType"], n.attributes.get("functionArn", "-").rsplit(":", 1)[-1])
        for n in notices
    ]


TWO_FUNCTIONS = [
    create_grant("billing", "b1", "2026-11-01T10:00:00Z"),
    create_grant("payroll", "p1", "2026-11-01T11:00:00Z"),
]


def test_a_deleted_execution_role_alerts_for_its_function(pipeline: LocalPipeline) -> None:
    notices = replay(pipeline, [*TWO_FUNCTIONS, delete_role("billing-role", "2026-11-10T09:00:00Z")])
    assert summary(notices) == [("alert", "role-deleted", "billing")]
    [alert] = notices
    assert "was deleted at 2026-11-10T09:00:00Z" in alert.message
    assert alert.details["evidence"]["eventName"] == "DeleteRole"
    assert "--role arn:aws:iam::210987654321:role/billing-role" in alert.message


def test_a_role_re_created_under_the_same_name_leaves_dead_grants_until_the_function_is_updated(
    pipeline: LocalPipeline,
) -> None:
    notices = replay(
        pipeline,
        [
            *TWO_FUNCTIONS,
            delete_role("billing-role", "2026-11-10T09:00:00Z"),
            create_role("billing-role", "2026-11-10T09:00:20Z"),  # a replacement: seconds apart
        ],
    )
    assert summary(notices) == [("alert", "role-recreated", "billing")]
    [alert] = notices
    assert f"Grant {grant_id('b1')}" in alert.message and "unique id" in alert.message
    assert "aws lambda update-function-configuration" in alert.message
    fixed = replay(
        pipeline,
        [
            update_function("billing", "2026-11-10T10:00:00Z"),
            create_grant("billing", "b2", "2026-11-10T10:00:01Z"),
        ],
    )
    assert summary(fixed) == [("resolved", "resolved", "billing")]


def test_a_role_deleted_that_no_function_uses_raises_nothing(pipeline: LocalPipeline) -> None:
    assert replay(pipeline, [*TWO_FUNCTIONS, delete_role("unrelated-role", "2026-11-10T09:00:00Z")]) == []


def test_a_disabled_key_alerts_every_function_on_it_and_enabling_it_resolves(pipeline: LocalPipeline) -> None:
    notices = replay(pipeline, [*TWO_FUNCTIONS, disable_key("2026-11-10T09:00:00Z")])
    assert sorted(summary(notices)) == [
        ("alert", "key-disabled", "billing"),
        ("alert", "key-disabled", "payroll"),
    ]
    for alert in notices:
        assert alert.details["functionsOnKey"] == [function_arn("billing"), function_arn("payroll")]
        assert "KMSDisabledException" in alert.message
        assert f"aws kms enable-key --region eu-central-1 --key-id {KEY_ARN}" in alert.message
    resolved = replay(pipeline, [enable_key("2026-11-10T12:00:00Z")])
    assert sorted(summary(resolved)) == [
        ("resolved", "resolved", "billing"),
        ("resolved", "resolved", "payroll"),
    ]


def test_a_key_disabled_with_no_functions_on_it_raises_no_function_alert(pipeline: LocalPipeline) -> None:
    """Only the volume's: one resource alert for the EBS volume on it (docs/alerts.md)."""
    from tests.support.samples import load_event

    ebs_only = load_event("kms-create-grant-ebs-volume.json")
    notices = replay(pipeline, [ebs_only, disable_key("2026-11-10T09:00:00Z")])
    assert [
        (n.attributes["alertType"], n.details.get("functionName"), n.details["service"]) for n in notices
    ] == [("resource-key-disabled", None, "ebs")]


def test_a_key_disabled_then_enabled_within_the_settle_window_raises_nothing(pipeline: LocalPipeline) -> None:
    events = [*TWO_FUNCTIONS, enable_key("2026-11-10T09:00:40Z"), disable_key("2026-11-10T09:00:00Z")]
    assert replay(pipeline, events) == []  # delivered out of order, too


def test_a_key_scheduled_for_deletion_names_the_date_and_cancelling_leaves_it_disabled(
    pipeline: LocalPipeline,
) -> None:
    notices = replay(pipeline, [*TWO_FUNCTIONS[:1], schedule_key_deletion("2026-11-25T14:02:11Z")])
    assert summary(notices) == [("alert", "key-pending-deletion", "billing")]
    [alert] = notices
    assert alert.details["deletionDate"] == "2026-12-03T00:00:00Z"
    assert "KMS deletes it on 2026-12-03T00:00:00Z" in alert.message
    assert "aws kms cancel-key-deletion" in alert.message and "aws kms enable-key" in alert.message
    # KMS leaves a key whose deletion is cancelled disabled: the function still cannot decrypt.
    cancelled = replay(pipeline, [cancel_key_deletion("2026-11-25T15:30:00Z")])
    assert summary(cancelled) == [("alert", "key-disabled", "billing")]
    assert "was left disabled when its deletion was cancelled at 2026-11-25T15:30:00Z" in cancelled[0].message
    assert summary(replay(pipeline, [enable_key("2026-11-25T16:00:00Z")])) == [
        ("resolved", "resolved", "billing")
    ]


def test_a_key_policy_change_sends_one_informational_notice_naming_the_functions(
    pipeline: LocalPipeline,
) -> None:
    change = put_key_policy("2026-11-26T11:00:05Z")
    notices = replay(pipeline, [*TWO_FUNCTIONS, change, change])
    assert [(n.kind.value, n.attributes["alertType"]) for n in notices] == [("info", "key-policy-changed")]
    assert notices[0].details["functions"] == [function_arn("billing"), function_arn("payroll")]
    assert "Review the" in notices[0].message and "explicit Deny" in notices[0].message


def test_a_failed_decrypt_confirms_the_alert_and_records_the_lead_time(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    replay(pipeline, [TWO_FUNCTIONS[0], retire_grant("b1", "2026-11-10T09:00:00Z")])
    failure = decrypt_failed("billing", "2026-11-10T13:02:00Z")
    later = decrypt_failed("billing", "2026-11-10T14:00:00Z")
    assert replay(pipeline, [later, failure, failure]) == []  # confirmation, not a new alert
    from grantwatch.adapters.functions import DynamoFunctionStore

    [incident] = incident_rows(DynamoFunctionStore(table_settings), open_only=True)
    assert incident["confirmed"] and incident["failures"] == 2
    assert incident["firstFailureAt"] == "2026-11-10T13:02:00Z"
    assert incident["leadTimeSeconds"] == 4 * 3600  # alert at 09:02, first failure at 13:02


def test_a_failed_decrypt_nothing_predicted_alerts_at_once(pipeline: LocalPipeline) -> None:
    notices = replay(pipeline, [TWO_FUNCTIONS[0], decrypt_failed("billing", "2026-11-10T09:00:00Z")])
    assert summary(notices) == [("alert", "decrypt-failed", "billing")]
    [alert] = notices
    assert alert.details["detectedAt"] == "2026-11-10T09:00:00Z"  # no settle window
    assert alert.details["predicted"] is False and "not predicted" in alert.subject
    # nothing explains it, so it stays open until something repairs it: a new grant
    assert replay(pipeline, [decrypt_failed("billing", "2026-11-10T09:30:00Z")]) == []
    repaired = replay(pipeline, [create_grant("billing", "b2", "2026-11-10T10:00:00Z")])
    assert summary(repaired) == [("resolved", "resolved", "billing")]


def test_history_and_lineage_show_key_state_events(pipeline: LocalPipeline, table_settings: Settings) -> None:
    replay(
        pipeline, [*TWO_FUNCTIONS, disable_key("2026-11-10T09:00:00Z"), enable_key("2026-11-10T12:00:00Z")]
    )
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    shown = runner.invoke(app, ["history", grant_id("b1"), "--json", *where])
    assert shown.exit_code == 0, shown.output
    whats = [(e["what"], e["eventName"]) for e in json.loads(shown.stdout)["lineage"]]
    assert whats == [("created", "CreateGrant"), ("key-disabled", "DisableKey"), ("key-enabled", "EnableKey")]
    timeline = runner.invoke(app, ["lineage", "--key", KEY_ARN, "--json", *where])
    assert [r["what"] for r in json.loads(timeline.stdout) if r["what"].startswith("key-")] == [
        "key-disabled",
        "key-enabled",
    ]


def test_a_failure_an_alert_accounted_for_raises_no_unpredicted_alert_after_it_resolves(
    pipeline: LocalPipeline,
) -> None:
    notices = replay(
        pipeline,
        [
            TWO_FUNCTIONS[0],
            disable_key("2026-11-10T09:00:00Z"),
            decrypt_failed("billing", "2026-11-10T09:30:00Z"),
            enable_key("2026-11-10T10:00:00Z"),
            put_key_policy("2026-11-11T10:00:00Z"),  # any later evaluation of the function
            decrypt_failed("billing", "2026-11-10T09:20:00Z"),  # an older failure, delivered late
        ],
    )
    assert [(n.kind.value, n.attributes["alertType"]) for n in notices] == [
        ("alert", "key-disabled"),
        ("resolved", "resolved"),
        ("info", "key-policy-changed"),
    ]


def test_failed_decrypts_that_say_nothing_of_a_lost_grant_are_ignored(pipeline: LocalPipeline) -> None:
    throttled = decrypt_failed("billing", "2026-11-10T09:00:00Z")
    throttled["detail"]["errorCode"] = "ThrottlingException"
    forged = decrypt_failed("billing", "2026-11-10T09:01:00Z")
    forged["detail"]["requestParameters"]["encryptionContext"]["aws:lambda:FunctionArn"] = "arn:nonsense"
    for event in (throttled, forged):
        _, outcome = pipeline.feed(event)
        assert outcome.outcome == "ignored", outcome
    too_long = decrypt_failed("billing", "2026-11-10T09:02:00Z")
    too_long["detail"]["requestParameters"]["encryptionContext"]["aws:lambda:FunctionArn"] = function_arn(
        "b" * 2000
    )
    assert pipeline.feed(too_long)[1].outcome in {"ignored", "rejected"}
    long_key = disable_key("2026-11-10T09:03:00Z")
    long_key["detail"]["resources"][0]["ARN"] = KEY_ARN + "x" * 3000
    assert pipeline.feed(long_key)[1].outcome == "rejected"
    assert pipeline.drain() == []


def test_a_role_deleted_and_created_in_the_same_second_exists(pipeline: LocalPipeline) -> None:
    events = [
        *TWO_FUNCTIONS,
        create_role("billing-role", "2026-11-10T09:00:00Z"),
        delete_role("billing-role", "2026-11-10T09:00:00Z"),
        update_function("billing", "2026-11-10T09:00:00Z"),
        create_grant("billing", "b2", "2026-11-10T09:00:00Z"),
    ]
    assert replay(pipeline, events) == []


def test_role_names_match_whatever_their_case(pipeline: LocalPipeline) -> None:
    notices = replay(pipeline, [*TWO_FUNCTIONS, delete_role("BILLING-ROLE", "2026-11-10T09:00:00Z")])
    assert summary(notices) == [("alert", "role-deleted", "billing")]


def test_a_retire_delivered_after_reconciliation_found_the_grant_gone_is_the_same_incident(
    pipeline: LocalPipeline,
) -> None:
    from datetime import UTC, datetime

    from grantwatch.domain.reconcile import grant_repairs

    replay(pipeline, [TWO_FUNCTIONS[0]])
    recorded = list(pipeline.grants.grants(key=KEY_ARN))
    at = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    [vanished] = grant_repairs(KEY_ARN, recorded, [], at)
    pipeline.grants.record(vanished)
    pipeline.scheduler.schedule(EvaluationRequest.about(function_arn("billing"), "reconciliation", at))
    first = pipeline.drain()
    late = replay(pipeline, [retire_grant("b1", "2026-11-10T08:55:00Z")])
    assert summary(first) == [("alert", "grant-vanished", "billing")] and late == []


def test_concurrent_relinking_leaves_the_links_the_function_item_names(table_settings: Settings) -> None:
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore

    hazards, functions = DynamoHazardStore(table_settings), DynamoFunctionStore(table_settings)
    billing = function_arn("billing")
    k0, k1, k2 = (KEY_ARN.replace("5f1e", f"000{n}") for n in range(3))
    assert hazards.link(billing, key=k0, role=None, was=(None, None))
    assert hazards.link(billing, key=k1, role=None, was=(k0, None))
    assert not hazards.link(billing, key=k2, role=None, was=(k0, None))  # read before the other moved it
    state = functions.get(billing)
    assert state is not None and state.depends_on_key == k1
    assert [hazards.dependents_of_key(k) for k in (k0, k1, k2)] == [[], [billing], []]


# A function on the AWS managed key aws/lambda (no KMSKeyArn), whose role is then deleted and re-created.
ON_AWS_LAMBDA_KEY = [
    update_function("orders", "2026-11-01T09:59:00Z", key=None),
    create_grant("orders", "o1", "2026-11-01T10:00:00Z", key=AWS_LAMBDA_KEY_ARN),
]
ROLE_RECREATED = [
    delete_role("orders-role", "2026-11-10T09:00:00Z"),
    create_role("orders-role", "2026-11-10T09:00:20Z"),
]


def _open_incident(table_settings: Settings) -> dict[str, object]:
    from grantwatch.adapters.functions import DynamoFunctionStore

    [incident] = incident_rows(DynamoFunctionStore(table_settings), open_only=True)
    return incident


def test_a_failed_decrypt_without_request_parameters_confirms_a_role_recreated_incident_on_aws_lambda(
    pipeline: LocalPipeline, table_settings: Settings
) -> None:
    """The shape CloudTrail records: no encryption context, no resources; the function only as the session
    of its role, the key only in the error message. It confirms the incident and gives the lead time."""
    alerted = replay(pipeline, [*ON_AWS_LAMBDA_KEY, *ROLE_RECREATED])
    assert summary(alerted) == [("alert", "role-recreated", "orders")]
    first = decrypt_failed_by_session("orders", "2026-11-10T13:00:20Z")
    assert first["detail"]["requestParameters"] is None and "resources" not in first["detail"]
    later = decrypt_failed_by_session("orders", "2026-11-10T14:00:00Z")
    _, outcome = pipeline.feed(later)
    assert (outcome.outcome, outcome.function_arn) == ("recorded", function_arn("orders"))
    assert replay(pipeline, [first, first]) == []  # a confirmation, counted once: no new alert
    incident = _open_incident(table_settings)
    assert incident["alertType"] == "role-recreated" and incident["confirmed"]
    assert incident["failures"] == 2
    assert incident["firstFailureAt"] == "2026-11-10T13:00:20Z"
    assert incident["leadTimeSeconds"] == 4 * 3600  # alert at 09:00:20, first failure at 13:00:20

    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    shown = runner.invoke(app, ["incidents", "--long", *where])
    assert shown.exit_code == 0, shown.output
    assert (
        "confirmed first failed Decrypt 2026-11-10T13:00:20Z (2 failure(s), lead time 14400 s)"
        in " ".join(shown.stdout.split())
    )


BOTH_SHAPES = pytest.mark.parametrize(
    "failed", [decrypt_failed, decrypt_failed_by_session], ids=["with-context", "by-session"]
)


@BOTH_SHAPES
def test_a_failure_delivered_before_the_alert_confirms_the_incident_once_it_opens(
    pipeline: LocalPipeline, table_settings: Settings, failed: Any
) -> None:
    early = failed("orders", "2026-11-10T09:01:00Z")  # inside the settle window of the role's re-creation
    notices = replay(pipeline, [*ON_AWS_LAMBDA_KEY, *ROLE_RECREATED, early])
    assert summary(notices) == [("alert", "role-recreated", "orders")]
    incident = _open_incident(table_settings)
    assert incident["confirmed"] and incident["failures"] == 1
    assert incident["firstFailureAt"] == "2026-11-10T09:01:00Z"


def test_a_failure_by_session_nothing_predicted_alerts_as_not_predicted_on_the_key_it_names(
    pipeline: LocalPipeline,
) -> None:
    notices = replay(
        pipeline, [*ON_AWS_LAMBDA_KEY, decrypt_failed_by_session("orders", "2026-11-10T09:00:00Z")]
    )
    assert summary(notices) == [("alert", "decrypt-failed", "orders")]
    [alert] = notices
    assert alert.details["predicted"] is False
    assert alert.details["detectedAt"] == "2026-11-10T09:00:00Z"
    assert AWS_LAMBDA_KEY_ARN in alert.message


def test_a_failed_decrypt_by_a_session_that_is_no_known_function_is_ignored_never_rejected(
    pipeline: LocalPipeline,
) -> None:
    replay(pipeline, ON_AWS_LAMBDA_KEY)
    unknown = decrypt_failed_by_session("batch-job", "2026-11-10T09:00:00Z")
    other_role = decrypt_failed_by_session("orders", "2026-11-10T09:01:00Z", role="ci-runner")
    not_a_name = decrypt_failed_by_session("orders", "2026-11-10T09:02:00Z")
    not_a_name["detail"]["userIdentity"]["arn"] += "/../x"
    by_a_user = decrypt_failed_by_session("orders", "2026-11-10T09:03:00Z")
    by_a_user["detail"]["userIdentity"] = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/orders"}
    for event, reason in (
        (unknown, "not a known Lambda function"),
        (other_role, "runs as another role"),
        (not_a_name, "cannot be a Lambda function's"),
        (by_a_user, "not an assumed role's session"),
    ):
        _, outcome = pipeline.feed(event)
        assert outcome.outcome == "ignored" and reason in (outcome.reason or ""), outcome
    assert pipeline.drain() == []


def test_the_key_in_the_error_message_is_taken_only_in_the_form_of_a_key_arn(pipeline: LocalPipeline) -> None:
    replay(pipeline, ON_AWS_LAMBDA_KEY)
    forged = decrypt_failed_by_session("orders", "2026-11-10T09:00:00Z", key=None)
    forged["detail"]["errorMessage"] += (
        " on resource: arn:aws:kms:eu-central-1:210987654321:key/not-a-key-id"
        " arn:aws:kms:eu-central-1:210987654321:key/9c8b7a69-5e4d-4c3b-8a29-1f0e9d8c7b6ax"
    )
    [alert] = replay(pipeline, [forged])
    # neither string is a key ARN: the function's own recorded key (the one its grant is on) stands
    assert alert.details["keyArn"] == AWS_LAMBDA_KEY_ARN
    assert "not-a-key-id" not in alert.message


def test_an_unpredicted_failure_on_the_aws_managed_key_takes_its_key_from_the_message_and_the_role_switch(
    pipeline: LocalPipeline,
) -> None:
    """No grant recorded, only the function's configuration (no KMSKeyArn): the key the alert names is the
    one the error message names, and the fix is the role switch (nobody but Lambda creates grants on the AWS
    managed key), never a key switch on a key grantwatch does not know."""
    replay(pipeline, [update_function("orders", "2026-11-01T09:59:00Z", key=None)])
    [alert] = replay(pipeline, [decrypt_failed_by_session("orders", "2026-11-10T09:00:00Z")])
    assert alert.details["alertType"] == "decrypt-failed"
    assert alert.details["keyArn"] == AWS_LAMBDA_KEY_ARN
    assert alert.details["executionRole"] == f"arn:aws:iam::{ACCOUNT}:role/orders-role"
    [fix] = alert.details["fix"]
    assert fix["procedure"] == "role-switch"
    assert fix["original"] == f"arn:aws:iam::{ACCOUNT}:role/orders-role"
    assert "--kms-key-arn" not in alert.message


def test_a_forged_key_in_the_message_leaves_the_key_unknown_and_the_fix_a_role_switch(
    pipeline: LocalPipeline,
) -> None:
    replay(pipeline, [update_function("orders", "2026-11-01T09:59:00Z", key=None)])
    forged = decrypt_failed_by_session("orders", "2026-11-10T09:00:00Z", key=None)
    forged["detail"]["errorMessage"] += " on resource: arn:aws:kms:eu-central-1:210987654321:key/not-a-key-id"
    [alert] = replay(pipeline, [forged])
    assert alert.details["keyArn"] == "unknown"
    assert "not-a-key-id" not in alert.message
    assert [fix["procedure"] for fix in alert.details["fix"]] == ["role-switch"]
