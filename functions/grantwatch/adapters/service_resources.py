"""Which resources are on which key, as the services that own them say: DynamoDB ListTables and
DescribeTable (`SSEDescription`), RDS DescribeDBInstances and DescribeDBClusters (`KmsKeyId`), EC2
DescribeVolumes (`KmsKeyId`). Read during reconciliation, with the reconciler's role or a member account's
read-only role.

Only resources on a key the reconciler knows are kept. Each service is read on its own: one the role may
not call (AccessDeniedException, AccessDenied, UnauthorizedOperation) or that does not answer is reported
as unread and the others are read all the same. Each reads at most `limit` resources a run (DescribeTable
is one request per table): a service with more is reported as capped, with what was read until then.

Resources are named as their grants' encryption context names them, so that what a service lists and what
the grant lineage shows are the same resource: a table by its name (`aws:dynamodb:tableName`), an RDS
instance by its `DbiResourceId` (`aws:rds:db-id`), an Aurora cluster by its `DbClusterResourceId`, a volume
by its id (`aws:ebs:id`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.adapters.aws_errors import code_of, describe
from grantwatch.domain.discovery import ServiceRead
from grantwatch.domain.resources import DiscoveredResource
from grantwatch.domain.services import Service

# At most this many resources of one service are read per account-region and run: 1,000 DescribeTable
# requests take about 30 s, within the worker's 300 s with everything else it does.
MAX_RESOURCES_PER_SERVICE = 1000
# The answers of a caller the role does not allow, per service: DynamoDB's (JSON protocol), RDS's (query
# protocol) and EC2's.
ACCESS_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
SERVICE_NAMES = {Service.DYNAMODB: "dynamodb", Service.RDS: "rds", Service.EBS: "ec2"}


@dataclass
class _Scan:
    service: Service
    keys: Collection[str]
    found: list[DiscoveredResource] = field(default_factory=list)
    inspected: int = 0
    capped: bool = False

    def keep(self, resource: DiscoveredResource | None) -> None:
        self.inspected += 1
        if resource is not None and resource.key_arn in self.keys:
            self.found.append(resource)

    def done(self, error: Exception | None = None) -> ServiceRead:
        return ServiceRead(
            self.service,
            tuple(self.found),
            self.inspected,
            describe(error) if error else None,
            denied=isinstance(error, ClientError) and code_of(error) in ACCESS_DENIED,
            capped=self.capped,
        )


# One resource as a service lists it, read into a resource (DescribeTable: one more request) when wanted.
type Candidate = Callable[[], DiscoveredResource | None]


class ServiceResourceReader:
    """Reads DynamoDB, RDS and EC2 in one account and region with the clients given (created lazily by
    `clients`, one per service, when first read)."""

    def __init__(
        self,
        client: Callable[[str], Any],
        account: str,
        region: str,
        *,
        limit: int = MAX_RESOURCES_PER_SERVICE,
    ) -> None:
        self._client = client
        self._clients: dict[str, Any] = {}
        self.account = account
        self.region = region
        self.limit = limit

    def client(self, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self._client(name)
        return self._clients[name]

    def read(self, keys: Collection[str], now: datetime) -> list[ServiceRead]:
        """Every service's resources on `keys` (key ARNs); nothing is asked when no key is known."""
        if not keys:
            return []
        known = frozenset(keys)
        return [
            self._read(Service.DYNAMODB, known, self._tables(now)),
            self._read(Service.RDS, known, self._databases(now)),
            self._read(Service.EBS, known, self._volumes(now)),
        ]

    def _read(self, service: Service, keys: frozenset[str], listed: Iterator[Candidate]) -> ServiceRead:
        scan = _Scan(service, keys)
        try:
            for candidate in listed:
                if scan.inspected >= self.limit:
                    scan.capped = True
                    break
                scan.keep(candidate())
        except (ClientError, BotoCoreError) as error:
            return scan.done(error)
        return scan.done()

    def _tables(self, now: datetime) -> Iterator[Candidate]:
        dynamodb = self.client(SERVICE_NAMES[Service.DYNAMODB])
        for page in dynamodb.get_paginator("list_tables").paginate():
            for name in page.get("TableNames", []):
                yield partial(self._table, dynamodb, name, now)

    def _table(self, dynamodb: Any, name: str, now: datetime) -> DiscoveredResource | None:
        try:
            table = dynamodb.describe_table(TableName=name)["Table"]
        except ClientError as error:
            if code_of(error) == "ResourceNotFoundException":  # deleted since it was listed
                return None
            raise
        return table_resource(table, self.account, self.region, now)

    def _databases(self, now: datetime) -> Iterator[Candidate]:
        rds = self.client(SERVICE_NAMES[Service.RDS])
        for page in rds.get_paginator("describe_db_instances").paginate():
            for instance in page.get("DBInstances", []):
                yield partial(instance_resource, instance, self.account, self.region, now)
        for page in rds.get_paginator("describe_db_clusters").paginate():
            for cluster in page.get("DBClusters", []):
                yield partial(cluster_resource, cluster, self.account, self.region, now)

    def _volumes(self, now: datetime) -> Iterator[Candidate]:
        ec2 = self.client(SERVICE_NAMES[Service.EBS])
        pages = ec2.get_paginator("describe_volumes").paginate(
            Filters=[{"Name": "encrypted", "Values": ["true"]}],
            PaginationConfig={"PageSize": VOLUMES_PAGE},
        )
        for page in pages:
            for volume in page.get("Volumes", []):
                yield partial(volume_resource, volume, self.account, self.region, now)


# DescribeVolumes answers everything at once unless asked for pages (MaxResults, 5 to 500), and AWS
# recommends only paginated requests: an unpaginated one is throttled or times out on many volumes.
VOLUMES_PAGE = 500


def table_resource(
    table: Mapping[str, Any], account: str, region: str, now: datetime
) -> DiscoveredResource | None:
    """A DescribeTable `Table` encrypted with a KMS key (SSEType KMS), else None. Its state is its
    TableStatus (INACCESSIBLE_ENCRYPTION_CREDENTIALS, ARCHIVING, ARCHIVED, ...), and since when its key has
    been inaccessible is SSEDescription's InaccessibleEncryptionDateTime."""
    sse = table.get("SSEDescription") or {}
    key_arn = sse.get("KMSMasterKeyArn")
    if sse.get("SSEType") != "KMS" or not isinstance(key_arn, str):
        return None
    archival = table.get("ArchivalSummary") or {}
    state = table.get("TableStatus")
    if archival.get("ArchivalReason") and state not in ("ARCHIVING", "ARCHIVED"):
        state = "ARCHIVED"
    return DiscoveredResource(
        service=Service.DYNAMODB,
        resource_id=str(table["TableName"]),
        key_arn=key_arn,
        account=account,
        region=region,
        state=str(state) if state else None,
        inaccessible_since=_utc(sse.get("InaccessibleEncryptionDateTime")),
        observed_at=now,
    )


def instance_resource(
    instance: Mapping[str, Any], account: str, region: str, now: datetime
) -> DiscoveredResource | None:
    """A DescribeDBInstances instance with encrypted storage, else None; an Aurora cluster's instance
    too (its storage is the cluster's, but its DbiResourceId is the `aws:rds:db-id` of its own grants)."""
    key_arn = instance.get("KmsKeyId")
    if not instance.get("StorageEncrypted") or not isinstance(key_arn, str):
        return None
    return DiscoveredResource(
        service=Service.RDS,
        resource_id=str(instance.get("DbiResourceId") or instance["DBInstanceIdentifier"]),
        key_arn=key_arn,
        account=account,
        region=region,
        state=instance.get("DBInstanceStatus"),
        inaccessible_since=None,  # RDS says that it is, not since when
        observed_at=now,
    )


def cluster_resource(
    cluster: Mapping[str, Any], account: str, region: str, now: datetime
) -> DiscoveredResource | None:
    """A DescribeDBClusters cluster with encrypted storage, else None."""
    key_arn = cluster.get("KmsKeyId")
    if not cluster.get("StorageEncrypted") or not isinstance(key_arn, str):
        return None
    return DiscoveredResource(
        service=Service.RDS,
        resource_id=str(cluster.get("DbClusterResourceId") or cluster["DBClusterIdentifier"]),
        key_arn=key_arn,
        account=account,
        region=region,
        state=cluster.get("Status"),
        inaccessible_since=None,
        observed_at=now,
    )


def volume_resource(
    volume: Mapping[str, Any], account: str, region: str, now: datetime
) -> DiscoveredResource | None:
    """A DescribeVolumes volume that is encrypted, else None. Its state is the volume's State."""
    key_arn = volume.get("KmsKeyId")
    if not volume.get("Encrypted") or not isinstance(key_arn, str):
        return None
    return DiscoveredResource(
        service=Service.EBS,
        resource_id=str(volume["VolumeId"]),
        key_arn=key_arn,
        account=account,
        region=region,
        state=volume.get("State"),
        inaccessible_since=None,
        observed_at=now,
    )


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None
