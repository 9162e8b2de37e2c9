"""What each Lambda handler module imports: Lambda bills the INIT phase, so a handler imports no library
and no domain module that its path never calls. Checked in a fresh interpreter, as Lambda starts one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Handler module -> modules it must not import. pydantic: the edge is parsed by grantwatch.domain.records.
# Incidents and their notices and fixes: only the evaluator and the healer open, read or close one.
_INCIDENTS = ("grantwatch.domain.alerts", "grantwatch.domain.fixes", "grantwatch.domain.risk")
NEVER_IMPORTED = {
    "grantwatch.handlers.recorder": ("pydantic", *_INCIDENTS),
    # Powertools' batch utility imports asyncio and every event data class: the evaluator reports its
    # batch item failures itself.
    "grantwatch.handlers.evaluator": ("pydantic", "aws_lambda_powertools.utilities.batch", "asyncio"),
    "grantwatch.handlers.reconciler": ("pydantic", *_INCIDENTS),
}


def imported_by(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(completed.stdout))


@pytest.mark.parametrize(("handler", "never"), NEVER_IMPORTED.items())
def test_a_handler_imports_only_what_its_path_calls(handler: str, never: tuple[str, ...]) -> None:
    modules = imported_by(handler)
    assert handler in modules
    assert not modules & set(never)
