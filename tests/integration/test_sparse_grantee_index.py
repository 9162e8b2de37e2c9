"""The by-grantee index is sparse: it holds IAM roles and users and service principals, the grantees people
look up; an EC2 instance principal or a role session is kept in the grant's terms, and reads back the same."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from grantwatch.adapters.store import (
    GRANT_SK,
    DynamoGrantStore,
    UnindexedGrantee,
    grant_pk,
    indexed_grantee,
)
from grantwatch.cli import app
from grantwatch.local import dynamodb_client
from grantwatch.settings import Settings
from tests.support.facts import fact_of
from tests.support.samples import load_event

ROLE = "arn:aws:iam::210987654321:role/batch-worker"


def _client(settings: Settings) -> Any:
    return dynamodb_client(settings.endpoint_url or "", settings.region)


def _index_keys(settings: Settings) -> set[str]:
    scanned = _client(settings).scan(TableName=settings.table_name, IndexName="by-grantee")
    return {item["granteePrincipal"]["S"] for item in scanned["Items"]}


@pytest.mark.parametrize(
    ("principal", "indexed"),
    [
        (ROLE, True),
        ("arn:aws:iam::210987654321:user/ops/alice", True),
        ("arn:aws-us-gov:iam::210987654321:role/app", True),
        ("dynamodb.eu-central-1.amazonaws.com", True),
        ("210987654321:aws:ec2-infrastructure:i-0a1b2c3d4e5f60718", False),
        ("arn:aws:sts::210987654321:assumed-role/report-mailer-role/report-mailer", False),
        ("AROAEXAMPLEID:session", False),
    ],
)
def test_which_grantees_the_index_holds(principal: str, indexed: bool) -> None:
    assert indexed_grantee(principal) is indexed


def test_only_looked_up_grantees_are_written_to_the_index_and_every_grantee_reads_back(
    store: DynamoGrantStore, table_settings: Settings
) -> None:
    ebs = fact_of(load_event("kms-create-grant-ebs-volume.json"))
    lambda_grant = fact_of(load_event("kms-create-grant-lambda.json"))
    service = fact_of(load_event("kms-create-grant-dynamodb-service-principal.json"))
    role_event = load_event("kms-create-grant-lambda.json")
    role_event["detail"]["requestParameters"]["granteePrincipal"] = ROLE
    role_event["detail"]["responseElements"]["grantId"] = "f" * 64
    role_event["detail"]["eventID"] = "0b7a3c1e-5d2f-4e6a-9b8c-7d6e5f4a3b2c"
    role_grant = fact_of(role_event)
    for fact in (ebs, lambda_grant, service, role_grant):
        store.record(fact)

    assert _index_keys(table_settings) == {ROLE, "dynamodb.eu-central-1.amazonaws.com"}
    for fact in (ebs, lambda_grant, service, role_grant):
        state = store.get(fact.grant_id)
        assert state is not None and state.terms is not None and fact.terms is not None
        assert state.terms.grantee_principal == fact.terms.grantee_principal
    assert [s.grant_id for s in store.grants(grantee=ROLE)] == [role_grant.grant_id]
    assert ebs.terms is not None
    with pytest.raises(UnindexedGrantee):
        list(store.grants(grantee=ebs.terms.grantee_principal))


def test_an_item_written_before_the_index_was_sparse_still_reads_and_is_found(
    store: DynamoGrantStore, table_settings: Settings
) -> None:
    """An EBS grant recorded by an earlier version keeps granteePrincipal (and its index entry): harmless."""
    ebs = fact_of(load_event("kms-create-grant-ebs-volume.json"))
    assert ebs.terms is not None
    store.record(ebs)
    _client(table_settings).update_item(
        TableName=table_settings.table_name,
        Key={"pk": {"S": grant_pk(ebs.grant_id)}, "sk": {"S": GRANT_SK}},
        UpdateExpression="SET granteePrincipal = :p REMOVE terms.grantee",
        ExpressionAttributeValues={":p": {"S": ebs.terms.grantee_principal}},
    )
    state = store.get(ebs.grant_id)
    assert state is not None and state.terms is not None
    assert state.terms.grantee_principal == ebs.terms.grantee_principal
    assert _index_keys(table_settings) == {ebs.terms.grantee_principal}


def test_the_grants_command_says_which_grantees_it_can_look_up(table_settings: Settings) -> None:
    result = CliRunner().invoke(
        app,
        [
            "grants",
            "--grantee",
            "210987654321:aws:ec2-infrastructure:i-0a1b2c3d4e5f60718",
            "--table",
            table_settings.table_name,
            "--endpoint-url",
            table_settings.endpoint_url or "",
            "--region",
            table_settings.region,
        ],
    )
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert "--grantee" in said and "IAM role and user ARNs" in said
