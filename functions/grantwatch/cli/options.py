"""Options several commands share, and the table every query and import command reads: its settings from
--table, --endpoint-url and --region (declared once, here), and its failures reported as one line."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException, TableDoesNotExist

from grantwatch.adapters.aws_errors import code_of
from grantwatch.cli.errors import Unavailable
from grantwatch.cli.table import Column
from grantwatch.pipeline import DEFAULT_SETTLE
from grantwatch.settings import Settings

TableOption = Annotated[str | None, typer.Option("--table", help="DynamoDB table name.", show_default=False)]
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="DynamoDB endpoint, e.g. DynamoDB Local.", show_default=False),
]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
SettleOption = Annotated[int, typer.Option("--settle-seconds", min=0)]
AccountFilter = Annotated[
    str | None, typer.Option("--account", help="Only this account's (from the ARNs).", show_default=False)
]
InRegionFilter = Annotated[
    str | None,
    typer.Option(
        "--in-region",
        help="Only this region's (from the ARNs; --region names the table's region).",
        show_default=False,
    ),
]
LongOption = Annotated[
    bool, typer.Option("--long", help="Each item as a block of every field, with ARNs in full.")
]
DEFAULT_SETTLE_SECONDS = int(DEFAULT_SETTLE.total_seconds())

Command = Callable[..., None]


def sort_option(columns: tuple[Column, ...], default: str) -> Any:
    """`--sort COLUMN`, one of the table's columns (ascending; ties keep the default order), for the table,
    --long and --json alike. An unknown column is a usage error that names the ones there are."""
    names = [c.name for c in columns]

    def known(value: str | None) -> str | None:
        if value is not None and value not in names:
            raise typer.BadParameter(f"{value!r} is not a column: choose from {', '.join(names)}")
        return value

    return typer.Option(
        "--sort",
        metavar=f"[{'|'.join(names)}]",
        callback=known,
        show_default=False,
        help=f"Sort by this column, ascending (default: {default}).",
    )


def resolve_settings(table: str | None, endpoint_url: str | None, region: str | None) -> Settings:
    """Flags, then the environment, then the AWS configuration's default region."""
    settings = Settings.from_environ(table_name=table, endpoint_url=endpoint_url, region=region)
    if region or _region_in_environment():
        return settings
    configured = boto3.session.Session().region_name
    return dataclasses.replace(settings, region=configured) if configured else settings


def _region_in_environment() -> bool:
    return bool(os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


@contextmanager
def table_errors(settings: Settings) -> Iterator[None]:
    """Turn AWS and connection failures into one clear line and exit code 3."""
    where = settings.endpoint_url or f"DynamoDB in {settings.region}"
    try:
        yield
    except (PynamoDBException, BotoCoreError, ClientError) as error:
        cause = getattr(error, "cause", None) or error
        text = str(cause)
        if _table_is_missing(error, cause):
            text = (
                f"table {settings.table_name!r} does not exist at {where}: start it with "
                "`grantwatch local start`, or set --table / GRANTWATCH_TABLE"
            )
        raise Unavailable(f"cannot use table {settings.table_name!r} at {where}: {text}") from None


def _table_is_missing(error: Exception, cause: object) -> bool:
    """Read from DynamoDB's answer (its error code), never from the text of a message."""
    if isinstance(error, TableDoesNotExist):
        return True
    return isinstance(cause, ClientError) and code_of(cause) == "ResourceNotFoundException"


def _option(name: str, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def table_options(*, region: bool = True) -> Callable[[Command], Command]:
    """Give a command that reads the table the --table and --endpoint-url options (and --region unless the
    command declares its own), after its own options, and call it with the resolved `settings` instead.
    A failure to use the table anywhere in the command is one line and exit code 3."""
    shared = [_option("table", TableOption), _option("endpoint_url", EndpointOption)]
    if region:
        shared.append(_option("region", RegionOption))

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        parameters = [p for p in own.parameters.values() if p.name != "settings"] + shared

        @functools.wraps(command)
        def run(*args: Any, table: str | None = None, endpoint_url: str | None = None, **kwargs: Any) -> None:
            chosen_region = kwargs.pop("region", None) if region else None
            settings = resolve_settings(table, endpoint_url, chosen_region)
            with table_errors(settings):
                command(*args, settings=settings, **kwargs)

        # Typer reads a command's options from its signature and type hints: these are the ones it takes.
        run.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return run

    return decorate
