"""The import graph points one way (docs/architecture.md): the domain imports nothing of the outside world;
the corridors import ports, never adapters; only the outer layer (wiring, handlers, the CLI and what only
it uses) imports adapters; adapters never import what sits above them. Read from the source with `ast`, so
an import inside a function counts too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "grantwatch"
SDKS = ("boto3", "botocore", "pynamodb", "aws_lambda_powertools", "mypy_boto3")
CORRIDORS = (
    "recorder",
    "evaluator",
    "reconciler",
    "healer",
    "impact",
    "backfill",
    "pipeline",
    "parallel",
    "organization",
    "fanout",
)
# The outer layer: what builds corridors on adapters, and the CLI's own helpers (its queries, the one-off
# migration, DynamoDB Local).
OUTER = ("wiring", "handlers", "cli", "local", "queries", "migration", "__main__")
ABOVE_ADAPTERS = (*CORRIDORS, *OUTER)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool = False) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def modules(*layers: str) -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if module_name(path).removeprefix("grantwatch.").split(".")[0] in layers
    )


def within(name: str, *layers: str) -> bool:
    return any(name == f"grantwatch.{layer}" or name.startswith(f"grantwatch.{layer}.") for layer in layers)


def sdk(name: str) -> bool:
    return name.split(".")[0] in SDKS


@pytest.mark.parametrize("path", modules("domain"), ids=module_name)
def test_the_domain_imports_only_the_domain_and_no_sdk(path: Path) -> None:
    outside = [
        name
        for name in imports(path)
        if sdk(name) or (name.startswith("grantwatch.") and not within(name, "domain"))
    ]
    assert outside == []


@pytest.mark.parametrize("path", modules(*CORRIDORS, "ports"), ids=module_name)
def test_corridors_and_ports_import_no_adapter_and_nothing_above_them(path: Path) -> None:
    above = [n for n in imports(path) if within(n, "adapters", *OUTER)]
    assert above == []
    assert [n for n in imports(path, top_level_only=True) if sdk(n)] == []


@pytest.mark.parametrize("path", modules("adapters"), ids=module_name)
def test_adapters_import_nothing_above_them(path: Path) -> None:
    assert [n for n in imports(path) if within(n, *ABOVE_ADAPTERS)] == []


def test_only_the_outer_layer_imports_adapters() -> None:
    importers = {
        module_name(path).removeprefix("grantwatch.").split(".")[0]
        for path in PACKAGE.rglob("*.py")
        if any(within(n, "adapters") for n in imports(path))
    }
    assert "wiring" in importers
    assert importers - {"adapters"} <= set(OUTER)


def test_the_handlers_build_corridors_only_through_wiring() -> None:
    for path in modules("handlers"):
        assert [n for n in imports(path) if within(n, "adapters")] == [], module_name(path)


def test_a_corridor_that_imported_an_adapter_would_be_caught(tmp_path: Path) -> None:
    source = tmp_path / "corridor.py"
    source.write_text(
        "from grantwatch.ports import GrantStore\n"
        "def build():\n    from grantwatch.adapters.store import DynamoGrantStore\n",
        encoding="utf-8",
    )
    assert [n for n in imports(source) if within(n, "adapters")] == [
        "grantwatch.adapters.store",
        "grantwatch.adapters.store.DynamoGrantStore",
    ]
