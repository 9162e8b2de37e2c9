"""Reconciliation's one corridor: list what AWS has now, compare it with the table (pure), record each
difference as a fact with `source: reconciliation` through the same stores the recorder uses, and ask
for the functions concerned to be evaluated. With a resource reader, it also reads which resources the
services' own APIs show on the keys it knows (DynamoDB tables, RDS instances and clusters, EBS volumes)
and keeps them by key; a service it may not read is reported and does not fail the run. The scheduled
Lambda function and `grantwatch reconcile` both run `Reconciler.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grantwatch.domain.discovery import discovery_report
from grantwatch.domain.facts import KEY_ARN_PATTERN
from grantwatch.domain.functions import FunctionState
from grantwatch.domain.reconcile import (
    ListedFunction,
    function_repairs,
    grant_repairs,
    in_scope,
)
from grantwatch.domain.records import EvaluationRequest
from grantwatch.ports import (
    DiscoveredResourceStore,
    EvaluationScheduler,
    FunctionLister,
    GrantLister,
    KeyNotFound,
    KnownFunctions,
    KnownGrants,
    KnownHazards,
    RecordResult,
    ResourceReader,
    ServiceError,
)


@dataclass
class ReconcileReport:
    """What one reconciliation found and repaired; `errors` names the keys it could not list."""

    keys: int = 0
    grants_listed: int = 0
    functions_listed: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    evaluations: int = 0
    errors: list[str] = field(default_factory=list)
    # what the services' read APIs showed on the keys: found per service, and the services not read whole
    resources: dict[str, Any] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.repairs[what] = self.repairs.get(what, 0) + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "grantsListed": self.grants_listed,
            "functionsListed": self.functions_listed,
            "repairs": dict(sorted(self.repairs.items())),
            "evaluationsScheduled": self.evaluations,
            "errors": self.errors,
            "resources": self.resources,
        }


@dataclass
class Reconciler:
    grants: KnownGrants
    functions: KnownFunctions
    hazards: KnownHazards
    kms: GrantLister
    lambda_: FunctionLister
    scheduler: EvaluationScheduler
    account: str
    region: str
    # Where the keys with grants come from: the table's by-key index (its whole extent, which is this
    # account's when the table is), or, for one member account-region of an organization's table, KMS's own
    # list of the account's keys (docs/organizations.md).
    keys_from_kms: bool = False
    # The services' own read APIs, and where what they show is kept: both, or neither.
    resources: ResourceReader | None = None
    discovered: DiscoveredResourceStore | None = None

    def run(self, now: datetime) -> ReconcileReport:
        report = ReconcileReport()
        listed = list(self.lambda_.list_functions())
        report.functions_listed = len(listed)
        to_evaluate = {f.function_arn for f in listed if f.kms_key_arn}
        to_evaluate |= self._reconcile_functions(listed, now, report)
        keys = self._keys(listed)
        for key_arn in sorted(keys):
            report.keys += 1
            try:
                to_evaluate |= self._reconcile_key(key_arn, now, report)
            except ServiceError as error:
                report.errors.append(f"{key_arn}: {error}")
        for function_arn in sorted(to_evaluate):
            self.scheduler.schedule(
                EvaluationRequest.about(function_arn, f"reconciliation:{now.isoformat()}", now)
            )
            report.evaluations += 1
        self._discover(keys, now, report)
        return report

    def _discover(self, keys: set[str], now: datetime, report: ReconcileReport) -> None:
        """Which resources the services show on the keys, kept by key; each service read on its own."""
        if self.resources is None or self.discovered is None:
            return
        reads = self.resources.read(keys, now)
        self.discovered.record(r for read in reads for r in read.resources)
        report.resources = discovery_report(reads)

    def _reconcile_functions(
        self, listed: list[ListedFunction], now: datetime, report: ReconcileReport
    ) -> set[str]:
        recorded: dict[str, FunctionState] = {
            state.function_arn: state
            for state in self.functions.functions_in(self.account, self.region)
            if in_scope(state.function_arn, self.account, self.region)
        }
        listed_arns = {f.function_arn for f in listed}
        missing = [arn for arn, state in recorded.items() if arn not in listed_arns and not state.deleted]
        gone = [arn for arn in missing if self.lambda_.get_function(arn) is None]
        touched: set[str] = set()
        for fact in function_repairs(recorded, listed, gone, now):
            if self.functions.record(fact):
                report.count(f"function-{fact.change.value}")
                touched.add(fact.function_arn)
        return touched

    def _keys(self, listed: list[ListedFunction]) -> set[str]:
        """Keys in this region with tracked grants, keys the table knows, and keys functions are on."""
        with_grants = self.kms.list_keys() if self.keys_from_kms else self.grants.key_arns()
        keys = set(with_grants) | set(self.hazards.keys_in(self.account, self.region))
        keys |= {f.kms_key_arn for f in listed if f.kms_key_arn}
        return {
            k
            for k in keys
            if (m := KEY_ARN_PATTERN.match(k)) is not None
            and (m["account"], m["region"]) == (self.account, self.region)
        }

    def _reconcile_key(self, key_arn: str, now: datetime, report: ReconcileReport) -> set[str]:
        try:
            listed = list(self.kms.list_grants(key_arn))
        except KeyNotFound:
            listed = []  # the key is gone, and every grant on it with it
        report.grants_listed += len(listed)
        recorded = list(self.grants.grants(key=key_arn))
        touched: set[str] = set()
        for fact in grant_repairs(key_arn, recorded, listed, now):
            recorded_fact = self.grants.record(fact)
            if recorded_fact.result is RecordResult.RECORDED:
                report.count(f"grant-{fact.kind.value}")
                if recorded_fact.function_arn:
                    touched.add(recorded_fact.function_arn)
        self.hazards.mark_verified(key_arn, now)
        return touched
