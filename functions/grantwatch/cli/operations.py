"""Commands that change what is recorded or deployed: `reconcile`, `heal` and `migrate`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Annotated

import boto3
import typer

from grantwatch import wiring
from grantwatch.adapters.accounts import (
    DEFAULT_MEMBER_ROLE,
    OrganizationAccounts,
)
from grantwatch.cli.errors import ExitCode, Unavailable, UsageError
from grantwatch.cli.options import DEFAULT_SETTLE_SECONDS, JsonOption, SettleOption, table_options
from grantwatch.cli.organization import report_organization
from grantwatch.cli.output import err, out, print_json, print_summary, report_notice
from grantwatch.domain.coverage import targets as coverage_targets
from grantwatch.domain.healing import DEFAULT_MAX_ATTEMPTS, DEFAULT_TAG, HealPolicy
from grantwatch.domain.notices import Notice
from grantwatch.migration import migrate as run_migration
from grantwatch.pipeline import LocalPipeline
from grantwatch.settings import Settings, SettingsError


@table_options()
def reconcile(
    account: Annotated[
        str | None, typer.Option("--account", help="Account to reconcile (default: the caller's, from STS).")
    ] = None,
    queue_url: Annotated[
        str | None,
        typer.Option(
            "--queue-url",
            help="Send the evaluations to this queue (the stack's EvaluationQueue) instead of running them.",
        ),
    ] = None,
    settle_seconds: SettleOption = DEFAULT_SETTLE_SECONDS,
    as_json: JsonOption = False,
    all_accounts: Annotated[
        bool,
        typer.Option(
            "--all-accounts",
            help="Every active account of the organization (or --account), as its read-only member role.",
        ),
    ] = False,
    member_role: Annotated[
        str,
        typer.Option("--member-role", envvar="GRANTWATCH_MEMBER_ROLE_NAME", help="The member role's name."),
    ] = DEFAULT_MEMBER_ROLE,
    external_id: Annotated[
        str | None,
        typer.Option(
            "--external-id",
            envvar="GRANTWATCH_MEMBER_EXTERNAL_ID",
            help="The member role's external id.",
            show_default=False,
        ),
    ] = None,
    *,
    settings: Settings,
) -> None:
    """Compare KMS ListGrants and Lambda ListFunctions with the table, record every difference in the
    lineage (source: reconciliation), and evaluate the functions concerned.

    With --all-accounts: every active account of the organization (Organizations ListAccounts), or only
    --account, in --region, each as its read-only member role (--member-role, --external-id or
    GRANTWATCH_MEMBER_EXTERNAL_ID), your own account with your own credentials, recording each
    account-region's coverage (`grantwatch accounts`).

    The same code as the scheduled function. KMS, Lambda and STS are reached through your AWS
    configuration (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_LAMBDA and AWS_ENDPOINT_URL_STS point them
    elsewhere). Without --queue-url the evaluations run here and their notices are printed, and recorded
    as sent: against a deployed table, pass its evaluation queue so that the alerts go to SNS. Exits 3 if
    the table cannot be used or a key could not be listed.
    """
    pipeline = wiring.local_pipeline(settings, timedelta(seconds=settle_seconds))
    now = datetime.now(UTC)
    if all_accounts:
        if not external_id:
            raise UsageError("--all-accounts needs --external-id or GRANTWATCH_MEMBER_EXTERNAL_ID")
        worker = wiring.organization_reconciler(
            settings,
            member_role,
            external_id,
            queue_url=queue_url,
            scheduler=None if queue_url else pipeline.scheduler,
            own_account=caller_account(settings.region),
        )
        accounts = [account] if account else OrganizationAccounts().active_accounts()
        covered = worker.run_all(coverage_targets(accounts, [settings.region]), now)
        report_organization(covered, _drain(pipeline, now, as_json), as_json)
        return
    caller = account or caller_account(settings.region)
    reconciler = wiring.reconciler(
        settings, caller, queue_url=queue_url, scheduler=None if queue_url else pipeline.scheduler
    )
    report = reconciler.run(now)
    notices = _drain(pipeline, now, as_json)
    summary = report.as_json() | {"account": caller, "region": settings.region, "notices": len(notices)}
    repairs = ", ".join(f"{n} {what}" for what, n in summary["repairs"].items()) or "none"
    print_summary(
        summary,
        as_json,
        f"{report.keys} key(s), {report.grants_listed} grant(s) and {report.functions_listed} "
        f"function(s) listed in {caller} {settings.region}; repairs: {repairs}; {len(notices)} notice(s)",
    )
    if not as_json:
        for error in report.errors:
            err.print(f"error: not reconciled: {error}")
        for service, why in {
            **report.resources.get("unread", {}),
            **report.resources.get("capped", {}),
        }.items():
            err.print(f"warning: {service} resources on keys: {why}")
    if report.errors:
        raise typer.Exit(ExitCode.UNAVAILABLE)


def _drain(pipeline: LocalPipeline, now: datetime, as_json: bool) -> list[Notice]:
    """Run the evaluations scheduled here and print their notices (none when they went to a queue)."""
    pipeline.clock = now
    notices = pipeline.drain()
    for notice in notices:
        report_notice(notice, as_json)
    return notices


def caller_account(region: str) -> str:
    account: str = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    return account


@table_options()
def heal(
    function_arn: Annotated[str, typer.Argument(help="The Lambda function's ARN.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print; change nothing.")] = False,
    tag: Annotated[str, typer.Option("--tag", help="Tag key that opts a function in.")] = DEFAULT_TAG,
    max_attempts: Annotated[int, typer.Option("--max-attempts", min=1, max=5)] = DEFAULT_MAX_ATTEMPTS,
    verify_seconds: Annotated[int, typer.Option("--verify-seconds", min=0, max=600)] = 60,
    temporary_role: Annotated[
        str | None,
        typer.Option(
            "--temporary-role",
            help="Role ARN for the role switch (default: GRANTWATCH_HEAL_TEMPORARY_ROLE_ARN).",
        ),
    ] = None,
    topic_arn: Annotated[
        str | None,
        typer.Option(
            "--topic-arn", help="Also publish the outcome here (default: GRANTWATCH_ALERT_TOPIC_ARN)."
        ),
    ] = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Reset the lost grant of a function's open incident, under the same safety rules as the
    remediation function: tagged TAG=true, a healable alert type, key enabled, role present, attempts left.
    It performs the documented reset (the key switch, or the role switch with a temporary role: two
    UpdateFunctionConfiguration calls, away and back) and waits for the new grant in ListGrants. Exits 4 if
    the function has no open incident, 6 if a rule refused (or Lambda denied access to the function: it
    is not opted in), 7 if the heal failed.
    """
    policy = HealPolicy(
        tag=tag, max_attempts=max_attempts, temporary_role=temporary_role or settings.heal_temporary_role_arn
    )
    healer = wiring.healer(
        settings,
        policy=policy,
        verify_for=timedelta(seconds=verify_seconds),
        topic_arn=topic_arn or settings.alert_topic_arn,
    )
    report = healer.heal(function_arn, dry_run=dry_run)
    if report.notice is not None:
        report_notice(report.notice, as_json)
    if as_json:
        print_json({"heal": report.as_json()})
    else:
        verb = "would heal" if dry_run and report.decision.heal else report.decision.as_json()["decision"]
        out.print(f"{function_arn}: {verb} ({report.decision.reason})")
        for name, value in report.facts.items():
            out.print(f"  {name}: {value}")
        if report.outcome is not None:
            outcome = report.outcome
            result = (
                f"healed: new grant {outcome.grant_id}" if outcome.healed else f"heal failed: {outcome.error}"
            )
            out.print(f"attempt {outcome.attempt} of {outcome.max_attempts}: {result}")
    if not report.found:
        raise typer.Exit(ExitCode.NOT_FOUND)
    if not report.decision.heal:
        raise typer.Exit(ExitCode.HEAL_REFUSED)
    if report.outcome is not None and not report.outcome.healed:
        raise typer.Exit(ExitCode.HEAL_FAILED)


@table_options()
def migrate(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; change nothing.")
    ] = False,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            help="The stack's RetentionDays (else GRANTWATCH_RETENTION_DAYS): also give ended grants, "
            "closed incidents and key and role events recorded before it their expiresAt.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Bring a table written by an earlier version to this version's layout, in place: key and role
    lineage moves from their state items to one item per event, and each grant made for a function gets
    its link in the function's partition. Run it once the new version is deployed. Safe to run again,
    and to interrupt: a second run resumes where the first stopped."""
    if retention_days is not None:
        try:
            settings = dataclasses.replace(settings, retention_days=retention_days)
        except SettingsError as error:
            raise UsageError(f"--retention-days: {error.problem}") from None
    try:
        summary = run_migration(settings, dry_run=dry_run)
    except RuntimeError as error:  # an item that kept changing while it was moved: run it again
        raise Unavailable(str(error)) from None
    if as_json:
        print_json(summary.as_json())
        return
    for line in summary.lines():
        out.print(line)
