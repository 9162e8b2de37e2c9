"""Exit codes come from the type of an error, in one table, never from its wording."""

from __future__ import annotations

import pytest

from grantwatch.backfill import BackfillError, MissingSource
from grantwatch.cli.errors import CommandError, ExitCode, NotFound, Unavailable, UsageError, exit_code_of
from grantwatch.domain.impact import ImpactInputError
from grantwatch.domain.plans import PlanError
from grantwatch.impact import UnknownGrant
from grantwatch.local import LocalDynamoError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("give exactly one of --function and --key"), ExitCode.USAGE),
        (ImpactInputError("not a grant id"), ExitCode.USAGE),
        (PlanError("not a plan"), ExitCode.USAGE),
        (Unavailable("cannot use table"), ExitCode.UNAVAILABLE),
        (LocalDynamoError("java is not on PATH"), ExitCode.UNAVAILABLE),
        (BackfillError("cannot read the checkpoint /no such folder/x.json"), ExitCode.UNAVAILABLE),
        (MissingSource("a folder"), ExitCode.NOT_FOUND),
        (NotFound("nothing"), ExitCode.NOT_FOUND),
        (UnknownGrant("f" * 64), ExitCode.NOT_FOUND),
        (FileNotFoundError("no such file or folder: x"), ExitCode.NOT_FOUND),
    ],
)
def test_an_expected_error_ends_with_the_exit_code_of_its_type(error: Exception, code: ExitCode) -> None:
    assert exit_code_of(error) == code


def test_an_unexpected_error_has_no_exit_code_so_it_shows_as_the_defect_it_is() -> None:
    assert exit_code_of(RuntimeError("no such folder")) is None
    assert exit_code_of(KeyError("ResourceNotFoundException")) is None


def test_every_command_error_declares_its_exit_code() -> None:
    for kind in CommandError.__subclasses__():
        assert isinstance(kind("x").exit_code, ExitCode), kind
