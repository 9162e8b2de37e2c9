"""The CLI's exit codes, and the one place that maps an error to its exit code by the error's type."""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

from grantwatch.backfill import BackfillError, MissingSource
from grantwatch.domain.impact import ImpactInputError
from grantwatch.domain.plans import PlanError
from grantwatch.impact import UnknownGrant
from grantwatch.local import LocalDynamoError
from grantwatch.ports import ServiceError


class ExitCode(IntEnum):
    OK = 0
    REJECTED = 1  # some events were rejected; everything else was still processed
    USAGE = 2  # a malformed option, question or plan
    UNAVAILABLE = 3  # the table, endpoint, source or local emulator cannot be used
    NOT_FOUND = 4  # nothing found: a grant, a file, a folder, an open incident
    WOULD_BREAK = 5  # impact: a Lambda function would lose decrypt
    HEAL_REFUSED = 6  # heal: a safety rule refused
    HEAL_FAILED = 7  # heal: attempted and failed
    WIRING = 8  # doctor: the monitor does not hear (trail, rules, IAM forwarder)
    DELIVERY = 9  # doctor: it cannot tell anyone (subscriptions, channels, dead-letter queues)
    SILENCE = 10  # doctor: no recent heartbeat or reconciliation


class CommandError(Exception):
    """A command that cannot go on: printed as `error: <message>`, and the command exits with `exit_code`."""

    exit_code: ClassVar[ExitCode]


class UsageError(CommandError):
    exit_code = ExitCode.USAGE


class Unavailable(CommandError):
    exit_code = ExitCode.UNAVAILABLE


class NotFound(CommandError):
    exit_code = ExitCode.NOT_FOUND


# What the errors of the modules below the CLI mean to someone who runs it. A subclass before its base.
EXIT_CODES: tuple[tuple[type[Exception], ExitCode], ...] = (
    (ImpactInputError, ExitCode.USAGE),
    (PlanError, ExitCode.USAGE),
    (UnknownGrant, ExitCode.NOT_FOUND),
    (MissingSource, ExitCode.NOT_FOUND),
    (FileNotFoundError, ExitCode.NOT_FOUND),
    (BackfillError, ExitCode.UNAVAILABLE),
    (LocalDynamoError, ExitCode.UNAVAILABLE),
    (ServiceError, ExitCode.UNAVAILABLE),  # an AWS service refused or did not answer
)


def exit_code_of(error: Exception) -> ExitCode | None:
    """The exit code an error ends a command with, or None for an error no command expects (a defect)."""
    if isinstance(error, CommandError):
        return error.exit_code
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), None)
