"""The CLI's contract without services: one-line errors, exit codes, complete --help, settings checked first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchbox.cli.main import cli

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess, with a clean BATCHBOX_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from batchbox.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["status"],
        ["logs"],
        ["cleanup"],
        ["local"],
        ["local", "up"],
        ["local", "status"],
        ["local", "down"],
        ["emulator"],
    ],
)
def test_every_command_has_complete_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"], obj={})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "Show this message and exit." in result.output


def test_missing_workload_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("run", str(tmp_path / "nope.py"), "--backend", "local")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"batchbox: error: workload: no such workload file: {tmp_path / 'nope.py'}"]
    assert "Traceback" not in result.stderr


def test_azure_backend_without_settings_names_the_variable_before_any_work() -> None:
    result = run_cli("run", "examples/topn_words/workload.py", "--backend", "azure")
    assert result.returncode == 2
    assert result.stderr.strip() == "batchbox: error: BATCHBOX_BATCH_URL: not set; the azure backend needs it"


def test_azure_backend_missing_storage_setting_is_named() -> None:
    env = {
        "BATCHBOX_BATCH_URL": "https://acct.region.batch.azure.com",
        "BATCHBOX_BATCH_ACCOUNT": "acct",
        "BATCHBOX_BATCH_KEY": "a2V5",
    }
    result = run_cli("status", "--backend", "azure", env=env)
    assert result.returncode == 2
    assert "BATCHBOX_STORAGE_CONNECTION_STRING: not set" in result.stderr
    assert "a2V5" not in result.stderr + result.stdout


def test_workload_file_with_an_error_is_reported_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    result = run_cli("run", str(broken))
    assert result.returncode == 2
    assert result.stderr.strip() == f"batchbox: error: workload: {broken} failed to load: RuntimeError: boom"


def test_unknown_backend_in_environment_is_refused() -> None:
    result = run_cli("status", env={"BATCHBOX_BACKEND": "gcp"})
    assert result.returncode == 2
    assert "unknown backend 'gcp'" in result.stderr


def test_cleanup_needs_a_target() -> None:
    result = run_cli("cleanup")
    assert result.returncode == 2
    assert "name what to delete" in result.stderr
