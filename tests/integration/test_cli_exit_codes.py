"""The CLI decides what went wrong from the error's type and DynamoDB's error code, so that the wording of
a message (a path, an endpoint) cannot change the exit code or the explanation."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from grantwatch.cli import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, app
from grantwatch.local import free_port
from grantwatch.settings import Settings

runner = CliRunner()


def test_a_checkpoint_that_cannot_be_read_exits_3_whatever_its_path_says(
    table_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "no such folder"
    folder.mkdir()
    (folder / "checkpoint.json").write_text("{not json", encoding="utf-8")
    args = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    result = runner.invoke(
        app, ["backfill", str(tmp_path), "--checkpoint", str(folder / "checkpoint.json"), *args]
    )
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "cannot read the checkpoint" in result.stderr


def test_a_missing_folder_exits_4(table_settings: Settings, tmp_path: Path) -> None:
    args = ["--table", table_settings.table_name, "--endpoint-url", table_settings.endpoint_url or ""]
    result = runner.invoke(app, ["backfill", str(tmp_path / "absent"), "--json", *args])
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert result.stderr.startswith("error: no such folder")


def test_an_unreachable_endpoint_is_not_called_a_missing_table_whatever_its_address_says() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/ResourceNotFoundException"
    result = runner.invoke(app, ["grants", "--endpoint-url", endpoint])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "cannot use table 'grantwatch'" in result.stderr
    assert "does not exist" not in result.stderr


def test_a_missing_table_is_named_from_dynamodbs_error_code(table_settings: Settings) -> None:
    result = runner.invoke(
        app, ["history", "f" * 64, "--table", "absent", "--endpoint-url", table_settings.endpoint_url or ""]
    )
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "table 'absent' does not exist at" in result.stderr
