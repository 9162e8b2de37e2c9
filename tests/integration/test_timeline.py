"""The lineage as a picture, rendered in headless Chromium: the seed story's grant and alert are on the page.
A screenshot is kept in build/artifacts/ as a build artefact."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from grantwatch.cli import app
from grantwatch.settings import Settings
from grantwatch.wiring import local_pipeline
from tests.support.samples import ROOT, SEED_GRANT, load_event

ARTIFACTS = ROOT / "build" / "artifacts"
SEED_FUNCTION = "arn:aws:lambda:eu-central-1:210987654321:function:invoice-renderer"


def chromium(tmp_path: Path, *args: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "headless Chromium is missing: `make test` installs Debian's chromium package"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    done = subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_the_seed_story_timeline_renders_with_its_grant_and_alert(
    table_settings: Settings, tmp_path: Path
) -> None:
    pipeline = local_pipeline(table_settings)
    for name in (
        "lambda-create-function.json",
        "kms-create-grant-lambda.json",
        "kms-retire-grant-by-admin.json",
    ):
        pipeline.feed(load_event(name))
    pipeline.drain()
    page = tmp_path / "timeline.html"
    result = CliRunner().invoke(
        app,
        [
            "lineage",
            "--function",
            SEED_FUNCTION,
            "--html",
            str(page),
            "--json",
            "--table",
            table_settings.table_name,
            "--endpoint-url",
            table_settings.endpoint_url or "",
        ],
    )
    assert result.exit_code == 0, result.output
    source = page.read_text()
    assert "http://" not in source and "https://" not in source  # self-contained: nothing to fetch

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert 'data-rendered="1 grants"' in dom  # the page's own script ran in the browser
    assert f'class="grant retired" data-grant-id="{SEED_GRANT}"' in dom
    assert 'class="marker alert"' in dom and "type: grant-retired" in dom
    assert "by arn:aws:sts::210987654321:assumed-role/kms-administrators/dana" in dom

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "timeline-seed-story.png"
    screenshot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1200,360", page.as_uri())
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
