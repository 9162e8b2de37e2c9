"""Reconciling one member account-region: assume the account's read-only role, run the reconciler's own
corridor with readers built from those credentials (the table, the evaluation queue and the alerts stay
the central account's), and record the run's coverage. An account that cannot be reached (role missing,
SCP denial, region not enabled) is recorded as such; it never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from grantwatch.domain.coverage import Coverage, Target, reconciled, unreachable
from grantwatch.ports import (
    CoverageStore,
    DiscoveredResourceStore,
    EvaluationScheduler,
    FunctionLister,
    GrantLister,
    KnownFunctions,
    KnownGrants,
    KnownHazards,
    MemberAccess,
    ResourceReader,
    ServiceError,
)
from grantwatch.reconciler import Reconciler


@dataclass
class OrganizationReconciler:
    grants: KnownGrants
    functions: KnownFunctions
    hazards: KnownHazards
    scheduler: EvaluationScheduler
    members: MemberAccess
    coverage: CoverageStore
    # where the resources the member's services show on its keys are kept (none: they are not read)
    discovered: DiscoveredResourceStore | None = None

    def run(self, target: Target, now: datetime) -> Coverage:
        previous = self.coverage.get(target)
        try:
            kms, lambda_, resources = self.members.readers(target)
            report = self._reconciler(target, kms, lambda_, resources).run(now)
        except ServiceError as error:
            result = unreachable(target, str(error), now, previous)
        else:
            result = reconciled(target, report.as_json(), now, previous)
        self.coverage.put(result)
        return result

    def run_all(self, queued: Sequence[Target], now: datetime) -> list[Coverage]:
        """Every target in turn, as `grantwatch reconcile --all-accounts` does without the queue."""
        return [self.run(target, now) for target in queued]

    def _reconciler(
        self, target: Target, kms: GrantLister, lambda_: FunctionLister, resources: ResourceReader
    ) -> Reconciler:
        return Reconciler(
            grants=self.grants,
            functions=self.functions,
            hazards=self.hazards,
            kms=kms,
            lambda_=lambda_,
            scheduler=self.scheduler,
            account=target.account,
            region=target.region,
            keys_from_kms=True,  # the table holds every account's grants: never scan it per account
            resources=resources if self.discovered is not None else None,
            discovered=self.discovered,
        )
