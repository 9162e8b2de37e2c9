"""The `grantwatch` command: its command groups, `--version`, and errors turned into exit codes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from grantwatch import __version__
from grantwatch.cli import (
    alerts,
    doctor,
    impact,
    ingest,
    listing,
    local,
    operations,
    organization,
    resources,
)
from grantwatch.cli.errors import exit_code_of
from grantwatch.cli.helptext import HelpGroup, HelpTyper
from grantwatch.cli.output import err


class _Commands(HelpGroup):
    """Ends a command that raised an error the CLI expects with `error: <message>` and that error's exit
    code (grantwatch.cli.errors); any other error is a defect and shows its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except Exception as error:
            code = exit_code_of(error)
            if code is None:
                raise
            err.print(f"error: {error}")
            raise typer.Exit(code) from None


app = HelpTyper(  # plain help, rewrapped to the terminal (grantwatch.cli.helptext)
    cls=_Commands,
    help="Record and query the lineage of AWS KMS grants. "
    "Table and endpoint: --table/--endpoint-url, else GRANTWATCH_TABLE and AWS_ENDPOINT_URL_DYNAMODB, "
    "else table 'grantwatch' in your default AWS region.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"grantwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


for command in (
    ingest.replay,
    listing.functions,
    listing.incidents,
    listing.lineage,
    impact.impact,
    ingest.backfill,
    operations.reconcile,
    organization.accounts,
    operations.heal,
    listing.grants,
    listing.history,
    resources.resources,
    operations.migrate,
):
    app.command()(command)
app.command("notify-test")(alerts.notify_test)
app.command()(doctor.doctor)
app.add_typer(local.local_app, name="local")


def main() -> None:
    app()
