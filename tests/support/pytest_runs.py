"""A pytest run of a test file a test wrote, in its own process, with one of the contract plugins: how the
contracts' own tests see what a whole run (and its xdist workers) reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.samples import ROOT


def run_pytest(plugin: str, tests: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "--rootdir", str(tests.parent), *options, str(tests)],
        capture_output=True,
        text=True,
        cwd=tests.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
