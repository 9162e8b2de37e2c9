"""Tests share helpers through tests/support only: a test module or a conftest imported by another module
runs its fixtures, hooks and module-level setup twice or in the wrong place, and ties unrelated tests."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_or_conftest(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def imported_test_modules(source: str) -> list[str]:
    """The test modules and conftests a module's source imports (at any depth, in any form)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_test_or_conftest(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tests":
            if _is_test_or_conftest(node.module):
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if _is_test_or_conftest(a.name)]
    return found


def test_the_check_sees_every_form_of_importing_a_test_module() -> None:
    source = (
        "from tests.conftest import ROOT\n"
        "import tests.unit.test_normalise\n"
        "from tests.integration import test_store\n"
        "def f():\n    from tests.reliability.conftest import report\n"
        "from tests.support.samples import ROOT\n"
        "from grantwatch import recorder\n"
    )
    assert imported_test_modules(source) == [
        "tests.conftest",
        "tests.unit.test_normalise",
        "tests.integration.test_store",
        "tests.reliability.conftest",
    ]


def test_no_module_under_tests_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): imported
        for path in sorted(TESTS.rglob("*.py"))
        if (imported := imported_test_modules(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "move what they share into tests/support/"
