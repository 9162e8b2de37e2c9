"""An organization's accounts: the coverage items (one per account and region, their keys and model here
and nowhere else), the account lists (Organizations ListAccounts, or a fixed list), the reconciliation
queue, and the member accounts' read-only role, assumed through STS (the central account's own
account-regions are read with the worker's own credentials: no StackSet reaches a management account).

Coverage items share one partition, ``COVERAGE``, sorted by ``ACCOUNT#<account>#REGION#<region>``: the whole
organization's coverage is one Query, one account's a Query on the sort key's prefix. 500 account-regions
of about 300 bytes are 150 KB: 38 RCU for the fan-out's strongly consistent read of all of them. Each run
writes its item once (PutItem, 1 WRU). They are not in any index: they carry no `entity`, `keyArn`,
`functionArn` or `granteePrincipal`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from grantwatch.adapters.aws_errors import service_error
from grantwatch.adapters.readers import RETRIES, KmsGrantReader, LambdaFunctionReader
from grantwatch.adapters.service_resources import ServiceResourceReader
from grantwatch.domain.coverage import Coverage, Target
from grantwatch.domain.facts import parse_utc_iso, utc_iso
from grantwatch.ports import AccountSourceError
from grantwatch.settings import Settings

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_organizations.client import OrganizationsClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_ssm.client import SSMClient
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
    coveredSince = UnicodeAttribute(null=True)

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
            covered_since=parse_utc_iso(self.coveredSince) if self.coveredSince else None,
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
            coveredSince=utc_iso(coverage.covered_since) if coverage.covered_since else None,
        ).save()

    def all(self, account: str | None = None) -> list[Coverage]:
        condition = self.items.sk.startswith(coverage_sk(account)) if account else None
        return [item.coverage() for item in self.items.query(COVERAGE_PK, condition, consistent_read=True)]


def _bind(settings: Settings) -> type[CoverageItem]:
    from grantwatch.adapters.tables import bind

    return bind(CoverageItem, settings)


KEPT_STATE = "ACTIVE"
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_SEPARATORS = re.compile(r"[\s,]+")


def account_state(account: Mapping[str, Any]) -> str | None:
    """An account's state in a ListAccounts answer: `State` (ACTIVE, PENDING_ACTIVATION, SUSPENDED,
    PENDING_CLOSURE, CLOSED), or, from an SDK older than its introduction, the `Status` it replaced
    (retired by Organizations on 2026-09-09)."""
    state = account.get("State") or account.get("Status")
    return str(state) if state else None


class OrganizationAccounts:
    """The organization's ACTIVE accounts (ListAccounts answers only in the management account or a
    delegated administrator). A listing of which no account is ACTIVE is an error, not an empty estate:
    the organization has at least its management account, so it means the answer's shape is not the one
    read here."""

    def __init__(self, client: OrganizationsClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("organizations", config=RETRIES)
        self.client: OrganizationsClient = client

    def active_accounts(self) -> list[str]:
        found: list[str] = []
        states: Counter[str] = Counter()
        for page in self.client.get_paginator("list_accounts").paginate():
            for account in page.get("Accounts", []):
                state = account_state(account)
                states[state or "none"] += 1
                if state == KEPT_STATE:
                    found.append(account["Id"])
        if states and not found:
            listed = sum(states.values())
            raise AccountSourceError(
                "none-active",
                f"ListAccounts listed {listed} account(s) and none is {KEPT_STATE} "
                f"(states: {', '.join(f'{s} {n}' for s, n in sorted(states.items()))})",
                listed=listed,
                states=dict(sorted(states.items())),
                # a botocore whose model predates State drops it, and Status is gone: the runtime's SDK
                botocore=_botocore_version(),
            )
        return sorted(found)


class ListedAccounts:
    """A fixed list of accounts (AccountIds), for a central account that cannot call ListAccounts."""

    def __init__(self, accounts: Sequence[str]) -> None:
        self.accounts = sorted(set(accounts))

    def active_accounts(self) -> list[str]:
        return list(self.accounts)


class ParameterAccounts:
    """The accounts listed in an SSM parameter (AccountIdsParameter), read at each run: a String or
    StringList of account ids separated by commas, spaces or new lines. One parameter holds at most 4 KB
    (8 KB in the advanced tier), about 300 (600) accounts: a longer list is split into parameters directly
    under its name (`/grantwatch/accounts/1`, `/2`, ...), read with it by GetParametersByPath, which IAM
    authorizes against the same name. Either may be absent, not both."""

    def __init__(self, name: str, client: SSMClient | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("ssm", config=RETRIES)
        self.client: SSMClient = client
        self.name = name

    def active_accounts(self) -> list[str]:
        values = [*self._own(), *self._below()]
        if not values:
            raise AccountSourceError(
                "parameter-missing",
                f"SSM parameter {self.name} does not exist and has no parameter under it",
                parameter=self.name,
            )
        entries = [e for value in values for e in _SEPARATORS.split(value) if e]
        invalid = [e for e in entries if not _ACCOUNT_ID.fullmatch(e)]
        if invalid:
            shown = ", ".join(repr(e[:20]) for e in invalid[:3])
            raise AccountSourceError(
                "parameter-invalid",
                f"SSM parameter {self.name}: {len(invalid)} entr{'y is' if len(invalid) == 1 else 'ies are'} "
                f"not a 12-digit account id ({shown})",
                parameter=self.name,
                invalid=len(invalid),
            )
        if not entries:
            raise AccountSourceError(
                "parameter-empty", f"SSM parameter {self.name} lists no account", parameter=self.name
            )
        return sorted(set(entries))

    def _own(self) -> list[str]:
        try:
            return self._values([self.client.get_parameter(Name=self.name)["Parameter"]])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return []
            raise self._unreadable(error) from None
        except BotoCoreError as error:
            raise self._unreadable(error) from None

    def _below(self) -> Iterable[str]:
        try:
            pages = self.client.get_paginator("get_parameters_by_path").paginate(Path=self.name)
            return self._values([p for page in pages for p in sorted(page["Parameters"], key=_name)])
        except (ClientError, BotoCoreError) as error:
            raise self._unreadable(error) from None

    def _values(self, parameters: Sequence[Mapping[str, Any]]) -> list[str]:
        """Their values; a SecureString's is ciphertext (it is not decrypted: an account id is no secret)."""
        secure = [str(p["Name"]) for p in parameters if p.get("Type") == "SecureString"]
        if secure:
            raise AccountSourceError(
                "parameter-invalid",
                f"SSM parameter {secure[0]} is a SecureString: list the accounts in a String or StringList",
                parameter=self.name,
                invalid=len(secure),
            )
        return [str(p["Value"]) for p in parameters]

    def _unreadable(self, error: ClientError | BotoCoreError) -> AccountSourceError:
        return AccountSourceError(
            "parameter-unreadable",
            f"SSM parameter {self.name}: {service_error(error)}",
            parameter=self.name,
        )


def _name(parameter: Mapping[str, Any]) -> str:
    return str(parameter["Name"])


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
    """Readers of a member account-region, as the member account's read-only role; of the central
    account's own account-regions (`own_account`), with this process's own credentials. A service-managed
    StackSet never deploys to the organization's management account, so a central stack there has no
    member role to assume in its own account; its worker's role may read that account's keys and
    functions itself (template.yaml), which works the same in a delegated administrator account."""

    def __init__(
        self,
        role_name: str,
        external_id: str,
        client: STSClient | None = None,
        *,
        own_account: str | None = None,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("sts", config=RETRIES)
        self.client: STSClient = client
        self.role_name = role_name
        self.external_id = external_id
        self.own_account = own_account

    def role_arn(self, account: str, region: str) -> str:
        return f"arn:{partition_of(region)}:iam::{account}:role/{self.role_name}"

    def readers(self, target: Target) -> tuple[KmsGrantReader, LambdaFunctionReader, ServiceResourceReader]:
        """Assumes the role (ServiceError: refused, e.g. AccessDenied, or no answer) and builds the
        readers (the services' resource readers create their clients when first read); in the own
        account, builds them with the process's credentials."""
        import boto3

        if target.account == self.own_account:
            session = boto3.session.Session(region_name=target.region)
        else:
            session = self._assumed(target)
        return (
            KmsGrantReader(client=session.client("kms", config=RETRIES)),
            LambdaFunctionReader(client=session.client("lambda", config=RETRIES)),
            ServiceResourceReader(
                lambda service: session.client(service, config=RETRIES),  # type: ignore[call-overload]
                target.account,
                target.region,
            ),
        )

    def _assumed(self, target: Target) -> boto3.session.Session:
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
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=target.region,
        )


def _botocore_version() -> str:
    import botocore

    return str(botocore.__version__)
