"""Reconciliation against moto's KMS, Lambda, IAM and STS (its server, on loopback) and DynamoDB Local:
grants created directly through the KMS API, events that were never delivered, a grant bound to a deleted
role, a function with a customer managed key and no grant, and paging through ListGrants."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from typer.testing import CliRunner

from grantwatch.adapters.readers import RETRIES, KmsGrantReader, LambdaFunctionReader
from grantwatch.cli import app
from grantwatch.domain.facts import utc_iso
from grantwatch.domain.lineage import GrantStatus
from grantwatch.pipeline import LocalPipeline
from grantwatch.reconciler import Reconciler
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.aws import ACCOUNT, REGION, Aws, delivered_create, session
from tests.support.moto_server import moto_server
from tests.support.scenarios import grant_id as grant_id_of

runner = CliRunner()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with moto_server(monkeypatch, "KMS", "LAMBDA", "IAM", "STS", "DYNAMODB", "RDS", "EC2") as endpoint:
        yield Aws(
            endpoint,
            boto3.client("kms", region_name=REGION),
            boto3.client("lambda", region_name=REGION),
            boto3.client("iam", region_name=REGION),
        )


def reconciler(pipeline: LocalPipeline) -> Reconciler:
    return Reconciler(
        grants=pipeline.grants,  # type: ignore[arg-type]
        functions=pipeline.functions,  # type: ignore[arg-type]
        hazards=pipeline.hazards,  # type: ignore[arg-type]
        kms=KmsGrantReader(region=REGION),
        lambda_=LambdaFunctionReader(region=REGION),
        scheduler=pipeline.scheduler,
        account=ACCOUNT,
        region=REGION,
    )


def reconcile_and_evaluate(pipeline: LocalPipeline, now: datetime) -> tuple[dict[str, Any], list[Any]]:
    report = reconciler(pipeline).run(now)
    pipeline.clock = now
    return report.as_json(), pipeline.drain()


def test_a_missed_create_grant_and_an_unrecorded_function_are_repaired_without_alerting(
    aws: Aws, table_settings: Settings
) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    function = aws.function("billing", aws.role("billing-role"), key)
    grant = aws.lambda_grant(key, function, session("billing-role", "billing"))
    pipeline = local_pipeline(table_settings)

    report, notices = reconcile_and_evaluate(pipeline, datetime.now(UTC))
    assert report["repairs"] == {"function-configured": 1, "grant-created": 1}
    assert notices == []
    state = pipeline.grants.get(grant)
    assert state is not None and state.status is GrantStatus.ACTIVE
    assert state.created is not None and state.created.source == "reconciliation"
    assert state.terms is not None and state.terms.function_arn == function

    again, _ = reconcile_and_evaluate(pipeline, datetime.now(UTC))
    assert again["repairs"] == {}  # idempotent: each repair has a deterministic event id

    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    shown = json.loads(runner.invoke(app, ["history", grant, "--json", *where]).stdout)
    assert [(e["what"], e["source"], e["eventName"]) for e in shown["lineage"]] == [
        ("created", "reconciliation", "ListGrants")
    ]


def test_a_missed_retire_grant_ends_the_grant_and_alerts(aws: Aws, table_settings: Settings) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    grantee = session("billing-role", "billing")
    function = aws.function("billing", aws.role("billing-role"), key)
    grant = aws.lambda_grant(key, function, grantee)
    pipeline = local_pipeline(table_settings)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    pipeline.feed(delivered_create(grant, key, function, grantee, utc_iso(yesterday)))
    assert pipeline.drain() == []
    aws.kms.retire_grant(KeyId=key, GrantId=grant)  # CloudTrail's RetireGrant never arrives

    report, notices = reconcile_and_evaluate(pipeline, datetime.now(UTC))
    assert report["repairs"]["grant-vanished"] == 1
    [alert] = notices
    assert alert.attributes["alertType"] == "grant-vanished"
    assert "no longer listed by ListGrants" in alert.message and "(found by reconciliation)" in alert.message
    assert alert.subject.endswith("(grant gone)")
    state = pipeline.grants.get(grant)
    assert state is not None and state.ended is not None and state.ended.source == "reconciliation"


def test_a_grant_bound_to_a_deleted_role_is_dead_and_alerts(aws: Aws, table_settings: Settings) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    grantee = session("billing-role", "billing")
    function = aws.function("billing", aws.role("billing-role"), key)
    # How ListGrants shows a grant whose role was deleted and re-created: by the old role's unique id.
    grant = aws.lambda_grant(key, function, "AROAEXAMPLE0OLDROLE01:billing")
    pipeline = local_pipeline(table_settings)
    pipeline.feed(
        delivered_create(grant, key, function, grantee, utc_iso(datetime.now(UTC) - timedelta(days=2)))
    )
    pipeline.drain()

    report, notices = reconcile_and_evaluate(pipeline, datetime.now(UTC))
    assert report["repairs"]["grant-invalidated"] == 1
    [alert] = notices
    assert alert.attributes["alertType"] == "role-recreated"
    assert "found bound to a deleted role's unique id" in alert.message
    state = pipeline.grants.get(grant)
    assert state is not None and state.status is GrantStatus.DEAD
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    dead = runner.invoke(app, ["grants", "--state", "dead", "--json", *where])
    assert [g["grantId"] for g in json.loads(dead.stdout)] == [grant]


def test_a_function_with_a_customer_managed_key_and_no_grant_alerts(
    aws: Aws, table_settings: Settings
) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    aws.function("orphan", aws.role("orphan-role"), key)
    aws.function("plain", aws.role("plain-role"), None)  # no customer managed key: not concerned
    pipeline = local_pipeline(table_settings)

    _, just_configured = reconcile_and_evaluate(pipeline, datetime.now(UTC))
    assert just_configured == []  # Lambda may still be creating the grant: wait for the next run
    _, notices = reconcile_and_evaluate(pipeline, datetime.now(UTC) + timedelta(hours=1))
    [alert] = notices
    assert (alert.attributes["alertType"], alert.details["functionName"]) == ("no-grant", "orphan")


def test_a_function_gone_without_a_delete_event_is_marked_deleted(aws: Aws, table_settings: Settings) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    aws.function("billing", aws.role("billing-role"), key)
    pipeline = local_pipeline(table_settings)
    reconcile_and_evaluate(pipeline, datetime.now(UTC))
    aws.lambda_.delete_function(FunctionName="billing")

    report, notices = reconcile_and_evaluate(pipeline, datetime.now(UTC) + timedelta(hours=1))
    assert report["repairs"] == {"function-deleted": 1}
    assert notices == []
    state = pipeline.functions.get(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:billing")
    assert state is not None and state.deleted


def test_more_than_a_hundred_grants_on_one_key_are_all_reconciled(aws: Aws, table_settings: Settings) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    grantee = session("billing-role", "billing")
    function = aws.function("billing", aws.role("billing-role"), key)
    tracked = aws.lambda_grant(key, function, grantee)
    for index in range(130):  # none of these CreateGrant events arrived
        aws.kms.create_grant(
            KeyId=key,
            GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/volume-attacher-{index}",
            Operations=["Decrypt", "CreateGrant"],
        )
    pipeline = local_pipeline(table_settings)
    pipeline.feed(
        delivered_create(tracked, key, function, grantee, utc_iso(datetime.now(UTC) - timedelta(days=1)))
    )
    report, _ = reconcile_and_evaluate(pipeline, datetime.now(UTC))
    assert (report["grantsListed"], report["repairs"]["grant-created"]) == (131, 130)
    assert sum(1 for _ in pipeline.grants.grants(key=key)) == 131


def test_list_grants_follows_next_marker_a_hundred_at_a_time() -> None:
    client = boto3.client("kms", region_name=REGION, config=RETRIES)
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0d8f5c3e-2b1a-4c9d-8e7f-6a5b4c3d2e1f"

    def page(first: int, count: int) -> list[dict[str, Any]]:
        return [
            {
                "KeyId": key,
                "GrantId": f"{i:064x}",
                "GranteePrincipal": "ec2.amazonaws.com",
                "Operations": ["Decrypt"],
            }
            for i in range(first, first + count)
        ]

    with Stubber(client) as stub:
        stub.add_response(
            "list_grants",
            {"Grants": page(0, 100), "NextMarker": "m1", "Truncated": True},
            {"KeyId": key, "Limit": 100},
        )
        stub.add_response(
            "list_grants",
            {"Grants": page(100, 100), "NextMarker": "m2", "Truncated": True},
            {"KeyId": key, "Limit": 100, "Marker": "m1"},
        )
        stub.add_response(
            "list_grants",
            {"Grants": page(200, 7), "Truncated": False},
            {"KeyId": key, "Limit": 100, "Marker": "m2"},
        )
        listed = list(KmsGrantReader(client).list_grants(key))
        stub.assert_no_pending_responses()
    assert len({g.grant_id for g in listed}) == 207
    retries: dict[str, Any] = client.meta.config.retries  # type: ignore[attr-defined]
    assert retries["mode"] == "adaptive"  # throttling backs off, and slows the client down


def test_the_cli_reconciles_against_the_configured_endpoints(aws: Aws, table_settings: Settings) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    function = aws.function("billing", aws.role("billing-role"), key)
    aws.lambda_grant(key, function, session("billing-role", "billing"))
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    result = runner.invoke(app, ["reconcile", "--json", "--region", REGION, *where])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert (summary["account"], summary["keys"], summary["repairs"]) == (
        ACCOUNT,
        1,
        {"function-configured": 1, "grant-created": 1},
    )


def test_a_key_that_cannot_be_listed_is_reported_and_the_others_still_reconciled(
    aws: Aws, table_settings: Settings
) -> None:
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    function = aws.function("billing", aws.role("billing-role"), key)
    aws.lambda_grant(key, function, session("billing-role", "billing"))
    failing = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-000000000000"
    aws.function("stale", aws.role("stale-role"), failing)  # moto answers ListGrants on it with a 500
    pipeline = local_pipeline(table_settings)
    quick = boto3.client(
        "kms", region_name=REGION, config=Config(retries={"mode": "standard", "max_attempts": 2})
    )
    report = replace(reconciler(pipeline), kms=KmsGrantReader(quick)).run(datetime.now(UTC)).as_json()
    assert len(report["errors"]) == 1 and report["errors"][0].startswith(failing)
    assert report["repairs"]["grant-created"] == 1


def test_a_deleted_key_has_no_grants_left(aws: Aws, table_settings: Settings) -> None:
    gone = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b"
    function = aws.function("billing", aws.role("billing-role"), gone)
    grantee = session("billing-role", "billing")
    pipeline = local_pipeline(table_settings)
    pipeline.feed(
        delivered_create(
            grant_id_of("g1"), gone, function, grantee, utc_iso(datetime.now(UTC) - timedelta(days=1))
        )
    )
    pipeline.drain()
    kms = boto3.client("kms", region_name=REGION)
    with Stubber(kms) as stub:
        stub.add_client_error("list_grants", service_error_code="NotFoundException", http_status_code=400)
        report = replace(reconciler(pipeline), kms=KmsGrantReader(kms)).run(datetime.now(UTC)).as_json()
    assert report["errors"] == [] and report["repairs"]["grant-vanished"] == 1
    state = pipeline.grants.get(grant_id_of("g1"))
    assert state is not None and state.ended is not None and state.ended.source == "reconciliation"
