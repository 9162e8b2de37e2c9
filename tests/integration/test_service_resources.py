"""Which resources are on a key, as the services' own read APIs say: RDS and EC2 against moto's server (on
loopback), which returns their KmsKeyId as AWS does; DynamoDB's DescribeTable, and the states moto cannot
reach (a table whose key is inaccessible, an archived table, an RDS instance that lost its key), through the
botocore Stubber with AWS's documented response shapes; each service's refusal in the shape that service
sends it. What reconciliation finds is kept in the key's partition in DynamoDB Local."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from typer.testing import CliRunner

from grantwatch import wiring
from grantwatch.adapters.accounts import DynamoCoverageStore, MemberRoles
from grantwatch.adapters.discovered import DynamoDiscoveredResources, ResourceItem, resource_sk
from grantwatch.adapters.hazards import key_pk
from grantwatch.adapters.service_resources import VOLUMES_PAGE, ServiceResourceReader, table_resource
from grantwatch.adapters.tables import bind
from grantwatch.cli import app
from grantwatch.domain.coverage import Target
from grantwatch.domain.discovery import ServiceRead, discovery_report
from grantwatch.domain.resources import DiscoveredResource
from grantwatch.domain.services import Service
from grantwatch.organization import OrganizationReconciler
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.aws import ACCOUNT, REGION, Aws
from tests.support.iam_contract import SESSION
from tests.support.moto_server import moto_server
from tests.support.samples import EVENTS

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """Clients of moto's server, by service name."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_server() as endpoint:
        yield lambda service: boto3.client(service, region_name=REGION, endpoint_url=endpoint)  # type: ignore[call-overload]


def _offline(service: str) -> Any:
    """A client that is never sent anything unstubbed (no endpoint on this machine answers)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


_EMPTY: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "dynamodb": [("list_tables", {"TableNames": []})],
    "rds": [("describe_db_instances", {"DBInstances": []}), ("describe_db_clusters", {"DBClusters": []})],
    "ec2": [("describe_volumes", {"Volumes": []})],
}


def _empty(service: str) -> Any:
    """A service with nothing in it, as it answers."""
    client = _offline(service)
    stubber = Stubber(client)
    for operation, answer in _EMPTY[service]:
        stubber.add_response(operation, answer)
    stubber.activate()
    return client


def _table(name: str, key: str | None, **extra: Any) -> dict[str, Any]:
    """DescribeTable's `Table` as the DynamoDB API reference shows it, with KMS SSE on `key`."""
    table: dict[str, Any] = {
        "TableName": name,
        "TableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        "TableStatus": "ACTIVE",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "CreationDateTime": datetime(2026, 1, 5, tzinfo=UTC),
        "ItemCount": 0,
        "TableSizeBytes": 0,
    }
    if key:
        table["SSEDescription"] = {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": key}
    return table | extra


def _stubbed_dynamodb(tables: list[dict[str, Any]], missing: str | None = None) -> tuple[Any, Stubber]:
    """ListTables in pages of two (LastEvaluatedTableName), each followed by DescribeTable of its tables."""
    client = _offline("dynamodb")
    stubber = Stubber(client)
    names = [t["TableName"] for t in tables] + ([missing] if missing else [])
    pages = [names[i : i + 2] for i in range(0, len(names), 2)]
    by_name = {t["TableName"]: t for t in tables}
    for i, page in enumerate(pages):
        answer: dict[str, Any] = {"TableNames": page}
        if i < len(pages) - 1:
            answer["LastEvaluatedTableName"] = page[-1]
        stubber.add_response(
            "list_tables", answer, {"ExclusiveStartTableName": pages[i - 1][-1]} if i else {}
        )
        for name in page:
            if name == missing:
                stubber.add_client_error(
                    "describe_table",
                    service_error_code="ResourceNotFoundException",
                    service_message=f"Requested resource not found: Table: {name} not found",
                    http_status_code=400,
                    expected_params={"TableName": name},
                )
            else:
                stubber.add_response("describe_table", {"Table": by_name[name]}, {"TableName": name})
    stubber.activate()
    return client, stubber


def _reader(
    clients: dict[str, Any], fallback: Callable[[str], Any], limit: int = 1000
) -> ServiceResourceReader:
    return ServiceResourceReader(lambda s: clients.get(s) or fallback(s), ACCOUNT, REGION, limit=limit)


def _by_service(reads: list[ServiceRead]) -> dict[Service, ServiceRead]:
    return {read.service: read for read in reads}


def test_tables_databases_and_volumes_on_known_keys_are_found_and_the_others_left_out(
    moto: Callable[[str], Any],
) -> None:
    kms = moto("kms")
    key, other = kms.create_key()["KeyMetadata"]["Arn"], kms.create_key()["KeyMetadata"]["Arn"]
    rds, ec2 = moto("rds"), moto("ec2")
    instance = rds.create_db_instance(
        DBInstanceIdentifier="orders-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1",
        StorageEncrypted=True,
        KmsKeyId=key,
    )["DBInstance"]
    cluster = rds.create_db_cluster(
        DBClusterIdentifier="ledger",
        Engine="aurora-postgresql",
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1",
        StorageEncrypted=True,
        KmsKeyId=key,
    )["DBCluster"]
    rds.create_db_instance(
        DBInstanceIdentifier="elsewhere",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1",
        StorageEncrypted=True,
        KmsKeyId=other,
    )
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=key)[
        "VolumeId"
    ]
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)  # not encrypted
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=other)
    dynamodb, stubber = _stubbed_dynamodb(
        [_table("orders", key), _table("sessions", other), _table("plain", None)], missing="dropped"
    )

    reads = _by_service(_reader({"dynamodb": dynamodb}, moto).read({key}, NOW))

    stubber.assert_no_pending_responses()
    assert all(read.complete for read in reads.values())
    assert [r.resource_id for r in reads[Service.DYNAMODB].resources] == ["orders"]
    assert reads[Service.DYNAMODB].inspected == 4  # the table deleted since it was listed is passed over
    rds_found = {(r.resource_id, r.state) for r in reads[Service.RDS].resources}
    assert rds_found == {
        (instance["DbiResourceId"], "available"),  # the `aws:rds:db-id` its grants name
        (cluster["DbClusterResourceId"], "available"),  # moto: creating when created, then available
    }
    [found] = reads[Service.EBS].resources
    assert (found.resource_id, found.key_arn, found.state) == (volume, key, "available")
    assert {(r.account, r.region, r.observed_at) for read in reads.values() for r in read.resources} == {
        (ACCOUNT, REGION, NOW)
    }


def test_a_table_whose_key_is_inaccessible_carries_since_when_and_an_archived_one_says_so() -> None:
    since = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    inaccessible = _table("orders", KEY, TableStatus="INACCESSIBLE_ENCRYPTION_CREDENTIALS")
    inaccessible["SSEDescription"] |= {"Status": "ENABLED", "InaccessibleEncryptionDateTime": since}
    archived = _table(
        "history",
        KEY,
        TableStatus="ARCHIVED",
        ArchivalSummary={
            "ArchivalDateTime": since + timedelta(days=7),
            "ArchivalReason": "INACCESSIBLE_ENCRYPTION_CREDENTIALS",
            "ArchivalBackupArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/history/backup/"
            "01234567890123-a1b2c3d4",
        },
    )
    dynamodb, _ = _stubbed_dynamodb([inaccessible, archived])

    read = _by_service(_reader({"dynamodb": dynamodb}, _empty).read({KEY}, NOW))[Service.DYNAMODB]

    assert [(r.resource_id, r.state, r.inaccessible_since) for r in read.resources] == [
        ("orders", "INACCESSIBLE_ENCRYPTION_CREDENTIALS", since),
        ("history", "ARCHIVED", None),
    ]
    aes = _table("plain", None, SSEDescription={"Status": "ENABLED", "SSEType": "AES256"})
    assert table_resource(aes, ACCOUNT, REGION, NOW) is None


def test_an_rds_instance_that_lost_its_key_is_found_with_the_status_rds_gives_it() -> None:
    rds = _offline("rds")
    stubber = Stubber(rds)
    instance = {
        "DBInstanceIdentifier": "orders-db",
        "DBInstanceStatus": "inaccessible-encryption-credentials-recoverable",
        "StorageEncrypted": True,
        "KmsKeyId": KEY,
        "DbiResourceId": "db-CQYSMDPBRZ7BPMH7Y3RTDG5QY",
    }
    stubber.add_response("describe_db_instances", {"DBInstances": [instance], "Marker": "page-2"}, {})
    stubber.add_response("describe_db_instances", {"DBInstances": []}, {"Marker": "page-2"})
    stubber.add_response("describe_db_clusters", {"DBClusters": []}, {})
    stubber.activate()

    read = _by_service(_reader({"rds": rds}, _empty).read({KEY}, NOW))[Service.RDS]

    stubber.assert_no_pending_responses()
    [found] = read.resources
    assert (found.resource_id, found.state) == (
        "db-CQYSMDPBRZ7BPMH7Y3RTDG5QY",
        "inaccessible-encryption-credentials-recoverable",
    )


def _denied(client: Any, operation: str, code: str, message: str, status: int) -> Any:
    stubber = Stubber(client)
    stubber.add_client_error(
        operation, service_error_code=code, service_message=message, http_status_code=status
    )
    stubber.activate()
    return client


def test_a_service_the_role_may_not_read_is_reported_and_the_others_are_read(
    moto: Callable[[str], Any],
) -> None:
    key = moto("kms").create_key()["KeyMetadata"]["Arn"]
    volume = moto("ec2").create_volume(AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=key)
    role = f"arn:aws:sts::{ACCOUNT}:assumed-role/grantwatch-member-reader/grantwatch-reconciler"
    dynamodb = _denied(
        _offline("dynamodb"),
        "list_tables",
        "AccessDeniedException",
        f"User: {role} is not authorized to perform: dynamodb:ListTables on resource: "
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/* because no identity-based policy allows the "
        "dynamodb:ListTables action",
        400,
    )
    rds = _denied(
        _offline("rds"),
        "describe_db_instances",
        "AccessDenied",
        f"User: {role} is not authorized to perform: rds:DescribeDBInstances on resource: "
        f"arn:aws:rds:{REGION}:{ACCOUNT}:db:* because no identity-based policy allows the "
        "rds:DescribeDBInstances action",
        403,
    )

    reads = _by_service(_reader({"dynamodb": dynamodb, "rds": rds}, moto).read({key}, NOW))

    assert reads[Service.DYNAMODB].denied and reads[Service.RDS].denied
    assert str(reads[Service.DYNAMODB].error).startswith("AccessDeniedException: User: ")
    assert str(reads[Service.RDS].error).startswith("AccessDenied: User: ")
    assert [r.resource_id for r in reads[Service.EBS].resources] == [volume["VolumeId"]]
    report = discovery_report(reads.values())
    assert report["found"] == {"dynamodb": 0, "rds": 0, "ebs": 1}
    assert set(report["unread"]) == {"dynamodb", "rds"}
    assert report["unread"]["rds"].startswith("not allowed to read: AccessDenied: ")


def test_ec2s_unauthorized_operation_is_a_denial_too() -> None:
    ec2 = _denied(
        _offline("ec2"),
        "describe_volumes",
        "UnauthorizedOperation",
        "You are not authorized to perform this operation.",
        403,
    )
    read = _by_service(_reader({"ec2": ec2}, _empty).read({KEY}, NOW))[Service.EBS]
    assert (
        read.denied
        and read.error == "UnauthorizedOperation: You are not authorized to perform this operation."
    )
    assert not read.complete


def test_volumes_are_asked_for_in_pages_as_aws_recommends() -> None:
    """DescribeVolumes without MaxResults answers every volume at once: throttled or timed out on many."""
    ec2 = _offline("ec2")
    stubber = Stubber(ec2)
    volume = {"VolumeId": "vol-0a1b2c3d4e5f60718", "Encrypted": True, "KmsKeyId": KEY, "State": "in-use"}
    encrypted = [{"Name": "encrypted", "Values": ["true"]}]
    stubber.add_response(
        "describe_volumes",
        {"Volumes": [volume], "NextToken": "page-2"},
        {"Filters": encrypted, "MaxResults": VOLUMES_PAGE},
    )
    stubber.add_response(
        "describe_volumes",
        {"Volumes": [volume | {"VolumeId": "vol-0f1e2d3c4b5a69788"}]},
        {"Filters": encrypted, "MaxResults": VOLUMES_PAGE, "NextToken": "page-2"},
    )
    stubber.activate()
    read = _by_service(_reader({"ec2": ec2}, _empty).read({KEY}, NOW))[Service.EBS]
    stubber.assert_no_pending_responses()
    assert [r.resource_id for r in read.resources] == ["vol-0a1b2c3d4e5f60718", "vol-0f1e2d3c4b5a69788"]
    assert 5 <= VOLUMES_PAGE <= 500  # DescribeVolumes' MaxResults range


def test_a_service_with_more_resources_than_a_run_reads_is_capped_and_says_so(
    moto: Callable[[str], Any],
) -> None:
    key = moto("kms").create_key()["KeyMetadata"]["Arn"]
    ec2 = moto("ec2")
    for _ in range(3):
        ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=key)
    dynamodb, _ = _stubbed_dynamodb([_table("orders", key), _table("sessions", key)])

    capped = _by_service(_reader({"dynamodb": dynamodb}, moto, limit=2).read({key}, NOW))
    assert capped[Service.EBS].capped and len(capped[Service.EBS].resources) == 2
    assert not capped[Service.DYNAMODB].capped and capped[Service.DYNAMODB].complete  # exactly the limit
    assert discovery_report(capped.values())["capped"] == {
        "ebs": "more resources than a run reads: the first 2 read"
    }


def test_nothing_is_asked_of_any_service_when_no_key_is_known() -> None:
    asked: list[str] = []
    reader = ServiceResourceReader(lambda s: asked.append(s), ACCOUNT, REGION)
    assert reader.read(set(), NOW) == [] and asked == []


def _found(resource_id: str, key: str = KEY, **changes: Any) -> DiscoveredResource:
    values: dict[str, Any] = {
        "service": Service.DYNAMODB,
        "resource_id": resource_id,
        "key_arn": key,
        "account": ACCOUNT,
        "region": REGION,
        "state": "ACTIVE",
        "inaccessible_since": None,
        "observed_at": NOW,
    }
    return DiscoveredResource(**(values | changes))


def test_discovered_resources_are_kept_in_their_keys_partition_and_age_out(table_settings: Settings) -> None:
    store = DynamoDiscoveredResources(table_settings)
    since = NOW - timedelta(days=2)
    orders = _found("orders", state="INACCESSIBLE_ENCRYPTION_CREDENTIALS", inaccessible_since=since)
    volume = _found("vol-0123456789abcdef0", service=Service.EBS, state="in-use")
    assert store.record([orders, volume, _found("elsewhere", key=OTHER_KEY)]) == 3

    assert sorted(store.on_key(KEY, NOW), key=lambda r: r.resource_id) == [orders, volume]
    # the next run sees the table again, with its key back: the item is replaced, not added to
    assert store.record([_found("orders", observed_at=NOW + timedelta(hours=1))]) == 1
    # unchanged, it is rewritten (its lifetime renewed) only once its item is twelve hours old
    assert store.record([_found("orders", observed_at=NOW + timedelta(hours=2))]) == 0
    assert store.record([_found("orders", observed_at=NOW + timedelta(hours=13))]) == 1
    [again] = [r for r in store.on_key(KEY, NOW) if r.resource_id == "orders"]
    assert (again.state, again.inaccessible_since) == ("ACTIVE", None)
    # a resource no run saw for the lifetime is gone, whether or not the table's TTL deleted it yet
    assert [r.resource_id for r in store.on_key(KEY, NOW + timedelta(days=2, minutes=1))] == ["orders"]
    assert store.on_key(KEY, NOW + timedelta(days=2, hours=13)) == []

    item = bind(ResourceItem, table_settings).get(key_pk(KEY), resource_sk("ebs", "vol-0123456789abcdef0"))
    assert int(item.expiresAt) == int((NOW + timedelta(days=2)).timestamp())
    raw = item.serialize()
    assert not {"keyArn", "entity", "functionArn", "granteePrincipal"} & set(raw)  # in no index


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_server(monkeypatch, "KMS", "LAMBDA", "IAM", "STS", "RDS", "EC2") as endpoint:
        yield Aws(
            endpoint,
            boto3.client("kms", region_name=REGION),
            boto3.client("lambda", region_name=REGION),
            boto3.client("iam", region_name=REGION),
        )


def test_reconciliation_keeps_what_the_services_show_on_its_keys_and_reports_a_service_it_may_not_read(
    aws: Aws, table_settings: Settings
) -> None:
    """The scheduled reconciler's corridor, as wiring builds it: the read calls are the reconciler
    function's, each allowed by its policy in template.yaml (the IAM contract)."""
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    aws.function("billing", aws.role("billing-role"), key)  # a key the reconciler knows
    ec2 = boto3.client("ec2", region_name=REGION)
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=key)[
        "VolumeId"
    ]
    pipeline = local_pipeline(table_settings)
    reconciler = wiring.reconciler(table_settings, ACCOUNT, scheduler=pipeline.scheduler)
    dynamodb, stubber = _stubbed_dynamodb([_table("orders", key), _table("sessions", OTHER_KEY)])
    rds = _denied(
        boto3.client("rds", region_name=REGION),
        "describe_db_instances",
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/reconciler/run is not authorized to perform: "
        "rds:DescribeDBInstances on resource: arn:aws:rds:us-east-1:123456789012:db:* with an explicit deny "
        "in a service control policy",
        403,
    )
    assert isinstance(reconciler.resources, ServiceResourceReader)
    reconciler.resources._clients.update(dynamodb=dynamodb, rds=rds)  # the stand-ins moto cannot be

    with contextmanager(SESSION.scope)() as checker:
        report = reconciler.run(NOW).as_json()

    stubber.assert_no_pending_responses()
    assert report["errors"] == []  # a service not read does not fail the run
    assert report["resources"]["found"] == {"dynamodb": 1, "rds": 0, "ebs": 1}
    assert list(report["resources"]["unread"]) == ["rds"]
    assert reconciler.discovered is not None
    found = {(r.service, r.resource_id) for r in reconciler.discovered.on_key(key, NOW)}
    assert found == {(Service.DYNAMODB, "orders"), (Service.EBS, volume)}
    assert sorted(checker.violations) == []
    seen = set(checker.calls)
    for call in (
        "dynamodb:ListTables",
        "dynamodb:DescribeTable",
        "rds:DescribeDBInstances",
        "ec2:DescribeVolumes",
    ):
        assert ("ReconcilerFunction", call) in seen


def test_the_organization_worker_reads_a_member_accounts_resources_as_its_read_only_role(
    monkeypatch: pytest.MonkeyPatch, table_settings: Settings
) -> None:
    """A member account's table, database and volume on its key, read through the member role's
    credentials (moto's DynamoDB shows a table's KMS key as AWS does; the grant table stays in DynamoDB
    Local), each call allowed by the member role's policy in member/forwarder.yaml."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_server(monkeypatch, "KMS", "LAMBDA", "STS", "RDS", "EC2", "DYNAMODB"):
        sts = boto3.client("sts", region_name=REGION)
        member = "111122223333"
        credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{member}:role/setup", RoleSessionName="setup")[
            "Credentials"
        ]
        as_member = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        key = as_member.client("kms").create_key()["KeyMetadata"]["Arn"]
        as_member.client("dynamodb").create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key},
        )
        volume = as_member.client("ec2").create_volume(
            AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=key
        )["VolumeId"]
        pipeline = local_pipeline(table_settings)
        worker = OrganizationReconciler(
            grants=pipeline.grants,  # type: ignore[arg-type]
            functions=pipeline.functions,  # type: ignore[arg-type]
            hazards=pipeline.hazards,  # type: ignore[arg-type]
            scheduler=pipeline.scheduler,
            members=MemberRoles("grantwatch-member-reader", "grantwatch-test-external-id", sts),
            coverage=DynamoCoverageStore(table_settings),
            discovered=DynamoDiscoveredResources(table_settings),
        )

        with contextmanager(SESSION.scope)() as checker:
            coverage = worker.run(Target(member, REGION), NOW)

    assert coverage.errors == () and coverage.last_reconciled_at == NOW
    found = DynamoDiscoveredResources(table_settings).on_key(key, NOW)
    assert {(r.service, r.resource_id, r.account) for r in found} == {
        (Service.DYNAMODB, "orders", member),
        (Service.EBS, volume, member),
    }
    assert sorted(checker.violations) == []
    seen = set(checker.calls)
    for call in (
        "dynamodb:DescribeTable",
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "ec2:DescribeVolumes",
    ):
        assert ("OrganizationWorkerFunction", call) in seen


TABLE_KEY = "arn:aws:kms:eu-central-1:210987654321:key/8d2c4b6a-1e3f-4a5b-9c7d-0e1f2a3b4c5d"


def _cli(settings: Settings, *args: str) -> Any:
    where = ["--table", settings.table_name, "--endpoint-url", settings.endpoint_url or ""]
    return CliRunner().invoke(app, [*args, *where])


def test_resources_shows_a_table_on_a_disabled_key_with_its_archival_date(table_settings: Settings) -> None:
    """The samples: DynamoDB's grant for table `payments` (CreateGrant as DynamoDB makes it), then its key
    disabled on 2026-12-01 08:30: the table is archived seven days after, unless the key comes back."""
    replayed = _cli(
        table_settings,
        "replay",
        str(EVENTS / "kms-create-grant-dynamodb-table.json"),
        str(EVENTS / "kms-disable-key-of-dynamodb-table.json"),
    )
    assert replayed.exit_code == 0, replayed.output

    shown = _cli(table_settings, "resources", "--key", TABLE_KEY, "--json")
    assert shown.exit_code == 0, shown.output
    [row] = json.loads(shown.stdout)
    assert (row["service"], row["resourceKind"], row["resourceId"]) == ("dynamodb", "table", "payments")
    assert (row["keyState"], row["seenBy"], row["usableGrants"]) == ("disabled", ["lineage"], 1)
    assert (row["lossStartedAt"], row["irreversibleAt"]) == ("2026-12-01T08:30:00Z", "2026-12-08T08:30:00Z")
    assert "archived" in row["irreversible"]

    text = _cli(table_settings, "resources", "--key", TABLE_KEY)
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"key {TABLE_KEY}  DISABLED since 2026-12-01T08:30:00Z")
    header, table_row = lines[1], lines[2]
    assert header.split()[:3] == ["SERVICE", "KIND", "RESOURCE"]
    assert table_row.index("payments") == header.index("RESOURCE")  # aligned under its column
    assert "since 2026-12-01T08:30:00Z; irreversible after 2026-12-08T08:30:00Z" in table_row


def test_resources_counts_from_when_dynamodb_saw_the_key_inaccessible_and_merges_both_sources(
    table_settings: Settings,
) -> None:
    _cli(
        table_settings,
        "replay",
        str(EVENTS / "kms-create-grant-dynamodb-table.json"),
        str(EVENTS / "kms-disable-key-of-dynamodb-table.json"),
    )
    seen = datetime(2026, 12, 1, 8, 41, tzinfo=UTC)  # DynamoDB noticed eleven minutes after DisableKey
    observed = datetime.now(UTC)
    DynamoDiscoveredResources(table_settings).record(
        [
            _found(
                "payments",
                key=TABLE_KEY,
                account="210987654321",
                region="eu-central-1",
                state="INACCESSIBLE_ENCRYPTION_CREDENTIALS",
                inaccessible_since=seen,
                observed_at=observed,
            ),
            _found(
                "vol-0a1b2c3d4e5f67890",
                key=TABLE_KEY,
                service=Service.EBS,
                state="in-use",
                observed_at=observed,
            ),
        ]
    )
    rows = json.loads(_cli(table_settings, "resources", "--key", TABLE_KEY, "--json").stdout)
    by_id = {row["resourceId"]: row for row in rows}
    assert by_id["payments"]["seenBy"] == ["lineage", "read-api"]
    assert by_id["payments"]["state"] == "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
    assert by_id["payments"]["irreversibleAt"] == "2026-12-08T08:41:00Z"
    assert by_id["vol-0a1b2c3d4e5f67890"]["seenBy"] == ["read-api"]
    assert by_id["vol-0a1b2c3d4e5f67890"]["irreversibleAt"] is None  # EBS documents no deadline


def test_resources_exits_4_when_nothing_is_on_the_key(table_settings: Settings) -> None:
    result = _cli(table_settings, "resources", "--key", TABLE_KEY)
    assert result.exit_code == 4
    assert f"no resource of a covered service is recorded on key {TABLE_KEY}" in result.stderr


def test_the_cli_reconciles_reads_resources_and_warns_of_a_service_it_may_not_read(
    aws: Aws, table_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`grantwatch reconcile` against moto: the volume on the function's key is kept; RDS refusing (its
    AccessDenied, as the RDS API sends it) is a warning, and the run still succeeds."""
    key = aws.kms.create_key()["KeyMetadata"]["Arn"]
    aws.function("billing", aws.role("billing-role"), key)
    volume = boto3.client("ec2", region_name=REGION).create_volume(
        AvailabilityZone=f"{REGION}a", Size=8, Encrypted=True, KmsKeyId=key
    )["VolumeId"]
    refusal = {
        "Error": {
            "Type": "Sender",
            "Code": "AccessDenied",
            "Message": "not authorized: rds:DescribeDBInstances",
        },
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }

    def refused(self: ServiceResourceReader, now: datetime) -> Iterator[Any]:
        raise ClientError(refusal, "DescribeDBInstances")  # type: ignore[arg-type]
        yield

    monkeypatch.setattr(ServiceResourceReader, "_databases", refused)
    where = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]

    text = CliRunner().invoke(app, ["reconcile", "--region", REGION, *where])
    assert text.exit_code == 0, text.output
    assert "warning: rds resources on keys: not allowed to read: AccessDenied: not authorized" in text.stderr
    summary = json.loads(
        CliRunner().invoke(app, ["reconcile", "--json", "--region", REGION, *where]).stdout.splitlines()[-1]
    )["summary"]
    assert summary["resources"]["found"] == {"dynamodb": 0, "rds": 0, "ebs": 1}
    assert [r.resource_id for r in DynamoDiscoveredResources(table_settings).on_key(key)] == [volume]
