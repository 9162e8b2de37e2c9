"""`grantwatch impact`: what breaks if a role, key or grant changes, before it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from grantwatch.adapters.functions import DynamoFunctionStore
from grantwatch.adapters.hazards import DynamoHazardStore
from grantwatch.adapters.store import DynamoGrantStore
from grantwatch.cli.errors import ExitCode
from grantwatch.cli.options import JsonOption, table_options
from grantwatch.cli.output import out, print_json
from grantwatch.impact import affects_anything, assess_impact, impact_json, impact_lines, scenario_of
from grantwatch.settings import Settings

RepeatedOption = list[str] | None


@table_options()
def impact(
    delete_role: Annotated[RepeatedOption, typer.Option("--delete-role", help="Role name or ARN.")] = None,
    replace_role: Annotated[
        RepeatedOption, typer.Option("--replace-role", help="Role deleted and re-created under its name.")
    ] = None,
    disable_key: Annotated[RepeatedOption, typer.Option("--disable-key", help="Key ARN or id.")] = None,
    schedule_key_deletion: Annotated[
        RepeatedOption, typer.Option("--schedule-key-deletion", help="Key ARN or id.")
    ] = None,
    retire_grant: Annotated[RepeatedOption, typer.Option("--retire-grant", help="Grant id.")] = None,
    revoke_grant: Annotated[RepeatedOption, typer.Option("--revoke-grant", help="Grant id.")] = None,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="`terraform show -json` output or a describe-change-set output."),
    ] = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """What breaks if …: the Lambda functions that would lose decrypt, why, and what to do instead; and
    other services' resources on a key that is disabled or deleted, with what their service does to them.

    Changes nothing. Options repeat and combine with --plan. Exits 5 if a function would lose decrypt or
    a resource its key, 0 if none would, 2 for a malformed question or plan, 4 for a grant grantwatch has
    not recorded.
    """
    scenario = scenario_of(
        delete_roles=delete_role or [],
        replace_roles=replace_role or [],
        disable_keys=disable_key or [],
        delete_keys=schedule_key_deletion or [],
        retire_grants=retire_grant or [],
        revoke_grants=revoke_grant or [],
        plan=plan,
    )
    found = assess_impact(
        scenario,
        DynamoGrantStore(settings),
        DynamoFunctionStore(settings),
        DynamoHazardStore(settings),
        now=datetime.now(UTC),
        temporary_role=settings.heal_temporary_role_arn,
    )
    report = impact_json(found)
    if as_json:
        print_json(report)
    else:
        for line, heading in impact_lines(report):
            out.print(line, style="bold" if heading else None)
    if affects_anything(found):
        raise typer.Exit(ExitCode.WOULD_BREAK)
