"""An organization's accounts: the coverage items (one per account and region, their keys and model here
and nowhere else), the account lists (Organizations ListAccounts, or a fixed list), the reconciliation
queue, and the member accounts' read-only role, assumed through STS.

Coverage items share one partition, ``COVERAGE``, sorted by ``ACCOUNT#<account>#REGION#<region>``: the whole
organization's coverage is one Query, one account's a Query on the sort key's prefix. 500 account-regions
of about 300 bytes are 150 KB: 38 RCU for the fan-out's strongly consistent read of all of them. Each run
writes its item once (PutItem, 1 WRU). They are not in any index: they carry no `entity`, `keyArn`,
`functionArn` or `granteePrincipal`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from grantwatch.adapters.aws_errors import service_error
from grantwatch.adapters.readers import RETRIES, KmsGrantReader, LambdaFunctionReader
from grantwatch.domain.coverage import Coverage, Target
from grantwatch.domain.facts import parse_utc_iso, utc_iso
from grantwatch.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_organizations.client import OrganizationsClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sts.client import STSClient

COVERAGE_PK = "COVERAGE"
SESSION_NAME = "grantwatch-reconciler"
SESSION_SECONDS = 900  # the shortest STS allows; a worker runs for at most 300 s
SEND_BATCH = 10  # the most SendMessageBatch takes


def coverage_sk(account: str, region: str | None = None) -> str:
    """The sort key of one account-region, or (without a region) the prefix of one account's items."""
    return f"ACCOUNT#{account}#REGION#{region}" if region else f"ACCOUNT#{account}#"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


class CoverageItem(Model):
    class Meta:
        table_name = "grantwatch-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    account = UnicodeAttribute()
    region = UnicodeAttribute()
    lastRunAt = UnicodeAttribute()
    lastReconciledAt = UnicodeAttribute(null=True)
    keys = NumberAttribute(default=0)
    grants = NumberAttribute(default=0)
    functions = NumberAttribute(default=0)
    evaluations = NumberAttribute(default=0)
    repairs = UnicodeAttribute(default="{}")  # JSON: {"grant-vanished": 1, ...}
    errors = UnicodeAttribute(default="[]")  # JSON: the first MAX_ERRORS_KEPT, `Code: message` each
    errorCount = NumberAttribute(default=0)

    def coverage(self) -> Coverage:
        return Coverage(
            self.account,
            self.region,
            last_run_at=parse_utc_iso(self.lastRunAt),
            last_reconciled_at=parse_utc_iso(self.lastReconciledAt) if self.lastReconciledAt else None,
            keys=int(self.keys),
            grants=int(self.grants),
            functions=int(self.functions),
            evaluations=int(self.evaluations),
            repairs={str(k): int(v) for k, v in json.loads(self.repairs).items()},
            errors=tuple(str(e) for e in json.loads(self.errors)),
            error_count=int(self.errorCount),
        )


class DynamoCoverageStore:
    def __init__(self, settings: Settings) -> None:
        self.items = _bind(settings)

    def get(self, target: Target) -> Coverage | None:
        try:
            item = self.items.get(COVERAGE_PK, coverage_sk(target.account, target.region))
        except self.items.DoesNotExist:
            return None
        return item.coverage()

    def put(self, coverage: Coverage) -> None:
        self.items(
            COVERAGE_PK,
            coverage_sk(coverage.account, coverage.region),
            account=coverage.account,
            region=coverage.region,
            lastRunAt=utc_iso(coverage.last_run_at),
            lastReconciledAt=utc_iso(coverage.last_reconciled_at) if coverage.last_reconciled_at else None,
            keys=coverage.keys,
            grants=coverage.grants,
            functions=coverage.functions,
            evaluations=coverage.evaluations,
            repairs=json.dumps(dict(sorted(coverage.repairs.items()))),
            errors=json.dumps(list(coverage.errors)),
            errorCount=coverage.error_count,
        ).save()

    def all(self, account: str | None = None) -> list[Coverage]:
        condition = self.items.sk.startswith(coverage_sk(account)) if account else None
        return [item.coverage() for item in self.items.query(COVERAGE_PK, condition, consistent_read=True)]


def _bind(settings: Settings) -> type[CoverageItem]:
    from grantwatch.adapters.tables import bind

    return bind(CoverageItem, settings)


class OrganizationAccounts:
    """The organization's ACTIVE accounts (ListAccounts answers only in the management account or a
    delegated administrator)."""

    def __init__(self, client: OrganizationsClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("organizations", config=RETRIES)
        self.client: OrganizationsClient = client

    def active_accounts(self) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_accounts").paginate():
            found.extend(a["Id"] for a in page.get("Accounts", []) if a.get("Status") == "ACTIVE")
        return sorted(found)


class ListedAccounts:
    """A fixed list of accounts (AccountIds), for a central account that cannot call ListAccounts."""

    def __init__(self, accounts: Sequence[str]) -> None:
        self.accounts = sorted(set(accounts))

    def active_accounts(self) -> list[str]:
        return list(self.accounts)


class SqsReconciliationQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sqs", config=RETRIES)
        self.client: SQSClient = client
        self.queue_url = queue_url

    def send(self, queued: Sequence[Target]) -> list[Target]:
        """Queues every target, ten to a request; answers those SQS did not take."""
        failed: list[Target] = []
        for start in range(0, len(queued), SEND_BATCH):
            batch = queued[start : start + SEND_BATCH]
            answer = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": json.dumps(t.as_json())} for i, t in enumerate(batch)],
            )
            failed.extend(batch[int(f["Id"])] for f in answer.get("Failed", []))
        return failed


DEFAULT_MEMBER_ROLE = "grantwatch-member-reader"  # the templates' MemberRoleName default


class MemberRoles:
    """Readers of a member account-region, as the member account's read-only role."""

    def __init__(self, role_name: str, external_id: str, client: STSClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("sts", config=RETRIES)
        self.client: STSClient = client
        self.role_name = role_name
        self.external_id = external_id

    def role_arn(self, account: str, region: str) -> str:
        return f"arn:{partition_of(region)}:iam::{account}:role/{self.role_name}"

    def readers(self, target: Target) -> tuple[KmsGrantReader, LambdaFunctionReader]:
        """Assumes the role (ServiceError: refused, e.g. AccessDenied, or no answer) and builds the two
        readers."""
        import boto3

        try:
            credentials = self.client.assume_role(
                RoleArn=self.role_arn(target.account, target.region),
                RoleSessionName=SESSION_NAME,
                ExternalId=self.external_id,
                DurationSeconds=SESSION_SECONDS,
            )["Credentials"]
        except (ClientError, BotoCoreError) as error:
            raise service_error(error) from None
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=target.region,
        )
        return (
            KmsGrantReader(client=session.client("kms", config=RETRIES)),
            LambdaFunctionReader(client=session.client("lambda", config=RETRIES)),
        )
