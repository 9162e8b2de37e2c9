"""`grantwatch local start|stop|status`: DynamoDB Local for this checkout, or for the current folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from grantwatch import local as local_dynamo
from grantwatch.cli.errors import ExitCode
from grantwatch.cli.helptext import HelpTyper
from grantwatch.cli.options import TableOption
from grantwatch.cli.output import err
from grantwatch.settings import Settings
from grantwatch.template import PACKAGED_TEMPLATE, find_template

PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        help=f"Port on 127.0.0.1 (start: {local_dynamo.DEFAULT_PORT} unless it runs already). "
        "Exits 3 if this checkout's DynamoDB Local runs on another.",
        show_default=False,
    ),
]
TemplateOption = Annotated[Path | None, typer.Option("--template", help="Path to template.yaml.")]

local_app = HelpTyper(
    help="Run DynamoDB Local for this checkout (needs Java 17 and `make setup`).", no_args_is_help=True
)


def _checkout(template: Path | None) -> tuple[Path, Path]:
    """The template the table is created from, and the folder DynamoDB Local is found under and keeps its
    state in: the template's checkout, or the current folder when the template is the installed copy."""
    path = template or find_template()
    return path, Path.cwd() if path == PACKAGED_TEMPLATE else path.resolve().parent


def _state_dir(root: Path) -> Path:
    return root / ".grantwatch" / "local"


@local_app.command("start")
def local_start(
    port: PortOption = None,
    in_memory: Annotated[bool, typer.Option("--in-memory", help="Keep no data on disk.")] = False,
    table: TableOption = None,
    template: TemplateOption = None,
) -> None:
    """Start DynamoDB Local, wait until it answers, create the table from template.yaml, and print the
    endpoint variable to export."""
    template_path, root = _checkout(template)
    running = local_dynamo.start(root, _state_dir(root), port=port, in_memory=in_memory)
    settings = Settings.from_environ(table_name=table, endpoint_url=running.endpoint_url)
    created = local_dynamo.ensure_table(running.endpoint_url, settings.table_name, template_path)
    err.print(
        f"DynamoDB Local pid {running.pid}; table {settings.table_name!r} "
        f"{'created' if created else 'present'}",
    )
    sys.stdout.write(f"AWS_ENDPOINT_URL_DYNAMODB={running.endpoint_url}\n")


@local_app.command("stop")
def local_stop(port: PortOption = None, template: TemplateOption = None) -> None:
    """Stop the DynamoDB Local this checkout started (with --port, only if it runs on that port)."""
    _, root = _checkout(template)
    stopped = local_dynamo.stop(_state_dir(root), port=port)
    err.print(f"stopped pid {stopped.pid}" if stopped else "not running")


@local_app.command("status")
def local_status(port: PortOption = None, template: TemplateOption = None) -> None:
    """Say whether this checkout's DynamoDB Local runs (with --port, on that port); exit 3 if it does not."""
    _, root = _checkout(template)
    running = local_dynamo.status(_state_dir(root), port=port)
    if running is None:
        err.print("not running")
        raise typer.Exit(ExitCode.UNAVAILABLE)
    sys.stdout.write(f"AWS_ENDPOINT_URL_DYNAMODB={running.endpoint_url}\n")
    err.print(f"running: pid {running.pid}, {'in memory' if running.in_memory else 'data on disk'}")
