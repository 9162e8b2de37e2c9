"""What `sam build` packs: each function's package and the dependencies layer with their bytecode compiled
ahead, as unchecked-hash .pyc files Lambda's read-only file system can use as they are (else every cold start
compiles every module it imports)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.support.samples import ROOT
from tests.support.templates import load_template

UNCHECKED_HASH = 0b01  # the .pyc header's flags (PEP 552): hash-based, not checked against the source


def test_every_function_is_built_by_the_makefile_that_compiles_its_bytecode() -> None:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    makefile = (ROOT / "functions" / "Makefile").read_text()
    assert functions
    for name in functions:
        assert resources[name]["Metadata"]["BuildMethod"] == "makefile", name
        assert name in makefile, name  # its build-<name> target
    layer = resources["DependenciesLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "--invalidation-mode unchecked-hash" in (ROOT / "layers" / "deps" / "Makefile").read_text()


def test_a_functions_build_holds_the_package_and_an_unchecked_pyc_for_each_module(tmp_path: Path) -> None:
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "functions"),
            "build-RecorderFunction",
            f"ARTIFACTS_DIR={tmp_path}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        capture_output=True,
    )
    sources = sorted((tmp_path / "grantwatch").rglob("*.py"))
    assert len(sources) > 50 and not list(tmp_path.glob("*.egg-info"))
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        header = compiled.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH, source
