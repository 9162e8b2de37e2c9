"""Reconciling one member account-region: assume the account's read-only role, run the reconciler's own
corridor with readers built from those credentials (the table, the evaluation queue and the alerts stay
the central account's), and record the run's coverage. An account that cannot be reached (role missing,
SCP denial, region not enabled) is recorded as such; it never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.adapters.aws_errors import describe
from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.domain.coverage import Coverage, Target, reconciled, unreachable
from grantwatch.domain.lineage import GrantState, GrantStatus
from grantwatch.reconciler import FunctionLister, GrantLister, Reconciler
from grantwatch.recorder import EvaluationScheduler


class MemberAccess(Protocol):
    def readers(self, target: Target) -> tuple[GrantLister, FunctionLister]: ...


class CoverageStore(Protocol):
    def get(self, target: Target) -> Coverage | None: ...

    def put(self, coverage: Coverage) -> None: ...

    def all(self, account: str | None = None) -> list[Coverage]: ...


@dataclass
class OrganizationReconciler:
    grants: DynamoGrantStore
    functions: DynamoFunctionStore
    hazards: DynamoHazardStore
    scheduler: EvaluationScheduler
    members: MemberAccess
    coverage: CoverageStore

    def run(self, target: Target, now: datetime) -> Coverage:
        previous = self.coverage.get(target)
        try:
            kms, lambda_ = self.members.readers(target)
            report = self._reconciler(target, kms, lambda_).run(now)
        except (ClientError, BotoCoreError) as error:
            result = unreachable(target, describe(error), now, previous)
        else:
            result = reconciled(target, report.as_json(), now, previous)
        self.coverage.put(result)
        return result

    def run_all(self, queued: Sequence[Target], now: datetime) -> list[Coverage]:
        """Every target in turn, as `grantwatch reconcile --all-accounts` does without the queue."""
        return [self.run(target, now) for target in queued]

    def _reconciler(self, target: Target, kms: GrantLister, lambda_: FunctionLister) -> Reconciler:
        return Reconciler(
            grants=self.grants,
            functions=self.functions,
            hazards=self.hazards,
            kms=kms,
            lambda_=lambda_,
            scheduler=self.scheduler,
            account=target.account,
            region=target.region,
        )


def coverage_rows(
    coverage: Iterable[Coverage], open_incident_functions: Iterable[str]
) -> list[dict[str, Any]]:
    """`grantwatch accounts`: each account-region's coverage with its open incidents, counted from the
    function ARNs of the open incidents (an ARN carries account and region)."""
    counts: dict[tuple[str, str], int] = {}
    for function_arn in open_incident_functions:
        parts = function_arn.split(":")
        if len(parts) > 4:
            counts[(parts[4], parts[3])] = counts.get((parts[4], parts[3]), 0) + 1
    return [
        c.as_json() | {"openIncidents": counts.get((c.account, c.region), 0)}
        for c in sorted(coverage, key=lambda c: (c.account, c.region))
    ]


def placed(arn: str | None, account: str | None, region: str | None) -> bool:
    """Whether an ARN (a function's, a key's: both carry them) is in the account and region asked for."""
    parts = (arn or "").split(":")
    if len(parts) < 6:
        return account is None and region is None
    return (account is None or parts[4] == account) and (region is None or parts[3] == region)


def grants_placed(
    grants: DynamoGrantStore,
    account: str | None,
    region: str | None,
    *,
    key: str | None = None,
    status: GrantStatus | None = None,
) -> Iterator[GrantState]:
    """The grants on the keys of an account and region: the keys from the keys-only by-key index (a key
    ARN carries its account and region), then each key's grants by the same index. No new index, no scan
    of the table."""
    keys = [key] if key else sorted(grants.key_arns())
    for key_arn in keys:
        if placed(key_arn, account, region):
            yield from grants.grants(key=key_arn, status=status)
