"""One version for the package, the command and the SAM application, and a CHANGELOG entry for it."""

from __future__ import annotations

import re
import tomllib

from typer.testing import CliRunner

from grantwatch import __version__
from grantwatch.cli import app
from tests.support.samples import ROOT, TEMPLATE
from tests.support.templates import load_template

SEMVER = re.compile(r"\d+\.\d+\.\d+")


def test_the_package_takes_its_version_from_grantwatch_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "grantwatch.__version__"}
    assert SEMVER.fullmatch(__version__)


def test_grantwatch_version_prints_it() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"grantwatch {__version__}\n"


def test_the_template_publishes_the_same_version() -> None:
    application = load_template(TEMPLATE)["Metadata"]["AWS::ServerlessRepo::Application"]
    assert application["SemanticVersion"] == __version__


def test_the_changelog_has_the_version_and_an_unreleased_section() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert headings[:2] == ["Unreleased", __version__]


def test_the_application_metadata_is_publishable() -> None:
    """What the Serverless Application Repository requires: files `sam package` can upload, its name,
    author and label patterns, a description within 256 characters, and web addresses."""
    application = load_template(TEMPLATE)["Metadata"]["AWS::ServerlessRepo::Application"]
    assert (ROOT / application["LicenseUrl"]).is_file()
    assert (ROOT / application["ReadmeUrl"]).is_file()
    assert application["SpdxLicenseId"] == "Apache-2.0"
    assert re.fullmatch(r"[a-zA-Z0-9-]{1,140}", application["Name"])
    assert re.fullmatch(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?", application["Author"])
    assert 1 <= len(application["Description"]) <= 256
    assert 1 <= len(application["Labels"]) <= 10
    assert all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label) for label in application["Labels"])
    assert all(application[url].startswith("https://") for url in ("HomePageUrl", "SourceCodeUrl"))
