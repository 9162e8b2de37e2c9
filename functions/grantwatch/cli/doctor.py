"""`grantwatch doctor`: is everything a deployed stack needs wired? One line per check, with the fix of
each that fails; exit 8 (wiring), 9 (delivery) or 10 (silence) for the first kind that fails."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from grantwatch.cli.errors import ExitCode, NotFound, Unavailable
from grantwatch.cli.options import JsonOption, RegionOption, resolve_settings
from grantwatch.cli.output import out, print_json
from grantwatch.domain.doctor import Check, Diagnosis, Kind, Status

if TYPE_CHECKING:
    from grantwatch.doctor import DoctorReads

DEFAULT_STACK = "grantwatch"  # samconfig.toml's stack_name
STACK_VARIABLE = "GRANTWATCH_STACK"
EXIT_OF_KIND = {
    Kind.WIRING: ExitCode.WIRING,
    Kind.DELIVERY: ExitCode.DELIVERY,
    Kind.SILENCE: ExitCode.SILENCE,
}
AWS_CHECKS = (
    "trail", "rules", "decrypt-rule", "iam-forwarder", "subscriptions", "security-hub", "alert-bus",
    "pagerduty", "dead-letter-queues", "heartbeats", "reconciliation",
)  # fmt: skip


def doctor_reads(region: str, timeout_seconds: float) -> DoctorReads:
    """The AWS reads (grantwatch.adapters.doctor); the tests replace this to stub a call moto lacks."""
    from grantwatch.adapters.doctor import AwsDoctorReads

    return AwsDoctorReads(region, timeout_seconds=timeout_seconds)


def doctor(
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            help=f"The stack's name (default: {STACK_VARIABLE}, else {DEFAULT_STACK!r}).",
            show_default=False,
        ),
    ] = None,
    region: RegionOption = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local", help="Check the local setup (DynamoDB Local and its table) instead of a stack."
        ),
    ] = False,
    timeout_seconds: Annotated[
        float, typer.Option("--timeout-seconds", min=1, max=120, help="How long each AWS read may take.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Is everything wired? Reads the stack's outputs and parameters and checks the trail, the rules, the
    IAM forwarder, the alert subscriptions and channels, the dead-letter queues, the canary's heartbeats
    and the last reconciliation; each failure with its fix. Exits 8 (wiring), 9 (delivery) or 10 (silence)
    for the first kind that fails, 3 if a check could not be read, 4 if there is no such stack."""
    from grantwatch.adapters.doctor import StackNotFound
    from grantwatch.doctor import diagnose
    from grantwatch.ports import ServiceError

    settings = resolve_settings(None, None, region)
    if local:
        diagnosis = local_diagnosis(settings.table_name, settings.endpoint_url)
    else:
        name = stack or os.environ.get(STACK_VARIABLE) or DEFAULT_STACK
        reads = doctor_reads(settings.region, timeout_seconds)
        try:
            diagnosis = diagnose(reads, name, datetime.now(UTC))
        except StackNotFound as error:
            raise NotFound(
                f"no stack {name!r} in {settings.region} ({error}): give --stack or {STACK_VARIABLE}"
            ) from None
        except ServiceError as error:
            raise Unavailable(f"cannot read the stack {name!r} in {settings.region}: {error}") from None
    report(diagnosis, as_json)
    raise typer.Exit(exit_code(diagnosis))


def exit_code(diagnosis: Diagnosis) -> ExitCode:
    """The first kind that fails (wiring, delivery, silence); else 3 if a check could not be read."""
    failing = diagnosis.failing_kinds()
    if failing:
        return EXIT_OF_KIND[failing[0]]
    return ExitCode.UNAVAILABLE if diagnosis.unread else ExitCode.OK


def report(diagnosis: Diagnosis, as_json: bool) -> None:
    if as_json:
        print_json(diagnosis.as_json())
        return
    out.print(f"doctor: stack {diagnosis.stack} ({diagnosis.region})")
    for check in diagnosis.checks:
        out.print(f"  {check.status.value:<8}{check.name:<20}{check.found}")
        if check.fix and check.status is not Status.OK:
            out.print(f"  {'':<8}{'':<20}fix: {check.fix}")
    summary = diagnosis.as_json()["summary"]
    failing = ", ".join(summary["failing"]) or "none"
    out.print(
        f"{summary['ok']} ok, {summary['warn']} warn, {summary['fail']} fail, {summary['error']} unread, "
        f"{summary['skipped']} skipped; failing: {failing}"
    )


def local_diagnosis(table: str, endpoint_url: str | None) -> Diagnosis:
    """The local setup: DynamoDB Local and the table answer; every other check needs a deployed stack."""
    aws = Check(
        "deployed-stack",
        Kind.WIRING,
        Status.SKIPPED,
        f"{', '.join(AWS_CHECKS)}: need a deployed stack "
        "(grantwatch doctor --stack NAME, with AWS credentials)",
    )
    return Diagnosis(
        stack="local", region=endpoint_url or "-", checks=[local_table_check(table, endpoint_url), aws]
    )


def local_table_check(table: str, endpoint_url: str | None) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    from grantwatch.adapters.aws_errors import describe
    from grantwatch.local import dynamodb_client

    fix = "grantwatch local start, then export the AWS_ENDPOINT_URL_DYNAMODB=… line it prints"
    if not endpoint_url:
        return Check("local-table", Kind.WIRING, Status.FAIL, "AWS_ENDPOINT_URL_DYNAMODB is not set", fix)
    try:
        status = dynamodb_client(endpoint_url).describe_table(TableName=table)["Table"]["TableStatus"]
    except (BotoCoreError, ClientError) as error:
        return Check(
            "local-table",
            Kind.WIRING,
            Status.FAIL,
            f"table {table!r} at {endpoint_url}: {describe(error)}",
            fix,
        )
    return Check("local-table", Kind.WIRING, Status.OK, f"table {table!r} is {status} at {endpoint_url}")
