"""Wiring: each corridor built once, from Settings, on the adapters that run it in AWS (or against DynamoDB
Local). The Lambda handlers and the CLI both call these functions, so a corridor is put together in one
place; tests build the same corridors on in-memory fakes of the ports instead.

Each function imports only the adapters its corridor needs, when it is called: a handler pays at cold
start for its own corridor and nothing else. Every AWS client of a corridor, the DynamoDB one its stores
share included, comes from one botocore session (grantwatch.adapters.clients), and the ones an invocation
may not need (SQS, SNS and the other alert channels) are created when first used.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from grantwatch.settings import Settings, required

if TYPE_CHECKING:
    from grantwatch.domain.healing import HealPolicy
    from grantwatch.evaluator import Evaluator
    from grantwatch.fanout import OrganizationFanOut
    from grantwatch.healer import Healer
    from grantwatch.incidents import IncidentKind
    from grantwatch.organization import OrganizationReconciler
    from grantwatch.parallel import ParallelPipeline, Stores
    from grantwatch.pipeline import LocalPipeline
    from grantwatch.ports import DeliveryMonitor, EvaluationScheduler, RejectedEventSink
    from grantwatch.reconciler import Reconciler
    from grantwatch.recorder import Recorder

EVALUATION_QUEUE = "GRANTWATCH_EVALUATION_QUEUE_URL"
ALERT_TOPIC = "GRANTWATCH_ALERT_TOPIC_ARN"
REJECTED_QUEUE = "GRANTWATCH_REJECTED_QUEUE_URL"


def evaluation_scheduler(settings: Settings, queue_url: str | None = None) -> EvaluationScheduler:
    """The delay queue: `queue_url`, else the configured one."""
    from grantwatch.adapters.clients import clients_for
    from grantwatch.adapters.scheduler import SqsEvaluationScheduler

    return SqsEvaluationScheduler(
        queue_url or required(settings.evaluation_queue_url, EVALUATION_QUEUE), clients=clients_for(settings)
    )


def recorder(settings: Settings) -> Recorder:
    """The recorder Lambda function's corridor: events in, facts stored, evaluations queued."""
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.heartbeats import DynamoHeartbeatStore
    from grantwatch.adapters.store import DynamoGrantStore
    from grantwatch.recorder import Recorder

    return Recorder(
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
        evaluation_scheduler(settings),
        canary_key_arn=settings.canary_key_arn,
        heartbeats=DynamoHeartbeatStore(settings),
    )


def canary_kms(settings: Settings) -> Any:
    """The canary's KMS client, from the function's one session."""
    from grantwatch.adapters.clients import clients_for

    return clients_for(settings).client("kms")


def rejected_sink(settings: Settings) -> RejectedEventSink:
    """Where the recorder sends the events it rejects: its dead-letter queue."""
    from grantwatch.adapters.clients import clients_for
    from grantwatch.adapters.rejected import SqsRejectedEventSink

    queue_url = required(settings.rejected_queue_url, REJECTED_QUEUE)
    return SqsRejectedEventSink(queue_url, clients_for(settings).client("sqs"))


def evaluator(settings: Settings, monitor: DeliveryMonitor | None = None) -> Evaluator:
    """The evaluator Lambda function's corridor: evaluations in, incidents and notices out to every
    configured channel; `monitor` counts the channels that fail."""
    from grantwatch.adapters.channels import alert_notifier
    from grantwatch.adapters.clients import clients_for
    from grantwatch.adapters.discovered import DynamoDiscoveredResources
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.resource_incidents import DynamoResourceIncidents
    from grantwatch.adapters.store import DynamoGrantStore
    from grantwatch.evaluator import Evaluator

    return Evaluator(
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
        alert_notifier(settings, required(settings.alert_topic_arn, ALERT_TOPIC), clients_for(settings)),
        evaluation_scheduler(settings),
        temporary_role=settings.heal_temporary_role_arn,
        monitor=monitor,
        resource_incidents=DynamoResourceIncidents(settings),
        discovered=DynamoDiscoveredResources(settings),
    )


def reconciler(
    settings: Settings,
    account: str,
    *,
    queue_url: str | None = None,
    scheduler: EvaluationScheduler | None = None,
) -> Reconciler:
    """Reconciliation against KMS and Lambda in the configured region, for `account`. Its evaluations go
    to `scheduler` if given (`grantwatch reconcile` runs them in-process), else to the delay queue."""
    from grantwatch.adapters.clients import clients_for
    from grantwatch.adapters.discovered import DynamoDiscoveredResources
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.readers import RETRIES, KmsGrantReader, LambdaFunctionReader
    from grantwatch.adapters.service_resources import ServiceResourceReader
    from grantwatch.adapters.store import DynamoGrantStore
    from grantwatch.reconciler import Reconciler

    clients = clients_for(settings)  # both read on every run: created now

    def service_client(service: str) -> object:  # DynamoDB, RDS and EC2: created when first read
        return clients.client(service, region_name=settings.region, config=RETRIES)

    return Reconciler(
        grants=DynamoGrantStore(settings),
        functions=DynamoFunctionStore(settings),
        hazards=DynamoHazardStore(settings),
        kms=KmsGrantReader(clients.client("kms", region_name=settings.region, config=RETRIES)),
        lambda_=LambdaFunctionReader(clients.client("lambda", region_name=settings.region, config=RETRIES)),
        scheduler=scheduler or evaluation_scheduler(settings, queue_url),
        account=account,
        region=settings.region,
        resources=ServiceResourceReader(service_client, account, settings.region),
        discovered=DynamoDiscoveredResources(settings),
    )


def healer(
    settings: Settings,
    *,
    policy: HealPolicy | None = None,
    verify_for: timedelta | None = None,
    topic_arn: str | None = None,
    monitor: DeliveryMonitor | None = None,
) -> Healer:
    """Self-healing on the configured table and AWS account. Without `policy` and `verify_for`, the
    configured ones; its notices go to `topic_arn`, or nowhere without one (`grantwatch heal` may run
    without a topic)."""
    from grantwatch.adapters.channels import alert_notifier
    from grantwatch.adapters.clients import clients_for
    from grantwatch.adapters.functions import DynamoFunctionStore, DynamoHealRecords
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.lambda_healer import AwsFunctionHealer
    from grantwatch.adapters.readers import RETRIES
    from grantwatch.domain.healing import HealPolicy
    from grantwatch.healer import Healer

    clients = clients_for(settings)  # Lambda and KMS: every heal reads both, so created now
    return Healer(
        incidents=DynamoFunctionStore(settings),
        hazards=DynamoHazardStore(settings),
        records=DynamoHealRecords(settings),
        aws=AwsFunctionHealer(
            clients.client("lambda", region_name=settings.region, config=RETRIES),
            clients.client("kms", region_name=settings.region, config=RETRIES),
        ),
        # only the topic's failure fails a heal: a retry after a lost chat card or finding would heal again
        notifier=alert_notifier(settings, topic_arn, clients) if topic_arn else None,
        policy=policy
        or HealPolicy(
            tag=settings.heal_tag,
            max_attempts=settings.heal_max_attempts,
            temporary_role=settings.heal_temporary_role_arn,
        ),
        verify_for=timedelta(seconds=settings.heal_verify_seconds) if verify_for is None else verify_for,
        monitor=monitor,
    )


def remediation_healer(settings: Settings, monitor: DeliveryMonitor | None = None) -> Healer:
    """The remediation Lambda function's healer: the configured policy, notices to the alert channels."""
    return healer(settings, topic_arn=required(settings.alert_topic_arn, ALERT_TOPIC), monitor=monitor)


def local_pipeline(settings: Settings, settle: timedelta | None = None) -> LocalPipeline:
    """The whole service in one process on the configured table (DynamoDB Local, or a deployed table):
    what `grantwatch replay`, `backfill` and `reconcile` run evaluations with."""
    from grantwatch.adapters.discovered import DynamoDiscoveredResources
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.resource_incidents import DynamoResourceIncidents
    from grantwatch.adapters.store import DynamoGrantStore
    from grantwatch.pipeline import DEFAULT_SETTLE, LocalPipeline

    return LocalPipeline(
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
        DEFAULT_SETTLE if settle is None else settle,
        temporary_role=settings.heal_temporary_role_arn,
        resource_incidents=DynamoResourceIncidents(settings),
        canary_key_arn=settings.canary_key_arn,
        discovered=DynamoDiscoveredResources(settings),
    )


def organization_reconciler(
    settings: Settings,
    member_role: str,
    external_id: str,
    *,
    queue_url: str | None = None,
    scheduler: EvaluationScheduler | None = None,
    own_account: str | None = None,
) -> OrganizationReconciler:
    """Reconciliation of member account-regions as their read-only role, `member_role` with
    `external_id`, and of `own_account`'s with this process's credentials; evaluations to `scheduler` if
    given, else to the delay queue."""
    from grantwatch.adapters.accounts import DynamoCoverageStore, MemberRoles
    from grantwatch.adapters.discovered import DynamoDiscoveredResources
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.store import DynamoGrantStore
    from grantwatch.organization import OrganizationReconciler

    return OrganizationReconciler(
        grants=DynamoGrantStore(settings),
        functions=DynamoFunctionStore(settings),
        hazards=DynamoHazardStore(settings),
        scheduler=scheduler or evaluation_scheduler(settings, queue_url),
        members=MemberRoles(member_role, external_id, own_account=own_account),
        coverage=DynamoCoverageStore(settings),
        discovered=DynamoDiscoveredResources(settings),
    )


def fan_out(settings: Settings) -> OrganizationFanOut:
    """The organization's scheduled fan-out: the configured accounts (a list, or an SSM parameter's),
    else the organization's active accounts, and the central account, times the configured regions (else
    the stack's), queued to the organization queue; stale coverage and silent member canaries to the alert
    topic."""
    from datetime import timedelta

    from grantwatch.adapters.accounts import (
        DynamoCoverageStore,
        ListedAccounts,
        OrganizationAccounts,
        ParameterAccounts,
        SqsReconciliationQueue,
    )
    from grantwatch.adapters.heartbeats import DynamoHeartbeatStore
    from grantwatch.adapters.notifier import SnsNotifier
    from grantwatch.domain.coverage import interval_of
    from grantwatch.fanout import OrganizationFanOut
    from grantwatch.ports import AccountLister

    listed = settings.account_id_list
    accounts: AccountLister
    if listed:
        accounts = ListedAccounts(listed)
    elif settings.account_ids_parameter:
        accounts = ParameterAccounts(settings.account_ids_parameter)
    else:
        accounts = OrganizationAccounts()
    return OrganizationFanOut(
        accounts=accounts,
        central=settings.central_account_id,
        regions=settings.region_list or [settings.region],
        queue=SqsReconciliationQueue(
            required(settings.organization_queue_url, "GRANTWATCH_ORGANIZATION_QUEUE_URL")
        ),
        coverage=DynamoCoverageStore(settings),
        notifier=SnsNotifier(required(settings.alert_topic_arn, ALERT_TOPIC)),
        interval=interval_of(settings.reconcile_schedule),
        heartbeats=DynamoHeartbeatStore(settings),
        canary_interval=timedelta(minutes=settings.member_canary_interval_minutes),
        home_region=settings.region,
    )


def dynamo_stores(settings: Settings) -> Stores:
    """The stores on the configured table, shared by the parallel pipeline's workers, and the errors that
    mean the table cannot be used."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pynamodb.exceptions import PynamoDBException

    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.adapters.hazards import DynamoHazardStore
    from grantwatch.adapters.resource_incidents import DynamoResourceIncidents
    from grantwatch.adapters.store import DynamoGrantStore
    from grantwatch.parallel import Stores

    return Stores(
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
        failures=(PynamoDBException, BotoCoreError, ClientError),
        resource_incidents=DynamoResourceIncidents(settings),
    )


def parallel_pipeline(
    settings: Settings, settle: timedelta | None = None, workers: int | None = None
) -> ParallelPipeline[str]:
    """The whole service in one process with `workers` side by side, on the configured table: what
    `grantwatch replay` and `backfill` run; each event tagged with where it came from."""
    from grantwatch.parallel import ParallelPipeline
    from grantwatch.pipeline import DEFAULT_SETTLE

    return ParallelPipeline(
        dynamo_stores(settings),
        DEFAULT_SETTLE if settle is None else settle,
        workers,
        temporary_role=settings.heal_temporary_role_arn,
        canary_key_arn=settings.canary_key_arn,
    )


def incident_kinds(settings: Settings) -> tuple[IncidentKind, ...]:
    """Every kind of incident, each on its store, in the order `grantwatch incidents INCIDENT_ID` asks them:
    a new kind is one more here."""
    from grantwatch.adapters.functions import DynamoFunctionStore
    from grantwatch.incidents import FunctionIncidents

    return (FunctionIncidents(DynamoFunctionStore(settings), settings.heal_temporary_role_arn),)
