"""The two-command setup's files: Makefile, CI entry point, ensure-docker.sh, npm pin and the Azurite compose file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.azurite.yml"
ENSURE_DOCKER = REPO / "batchbox" / "backends" / "local" / "ensure-docker.sh"
DOCKERD_COMMAND = "dockerd --bridge=none --iptables=false --ip-masq=false"


def _azurite_pin() -> str:
    package = json.loads((REPO / "package.json").read_text())
    version: str = package["dependencies"]["azurite"]
    return version


def _compose_service() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    service: dict[str, Any] = document["services"]["azurite"]
    return service


def test_azurite_is_pinned_exactly_and_locked() -> None:
    version = _azurite_pin()
    assert version.count(".") == 2
    assert all(part.isdigit() for part in version.split("."))
    lock = json.loads((REPO / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"]["azurite"] == version
    assert lock["packages"]["node_modules/azurite"]["version"] == version


def test_compose_file_is_valid_for_docker_compose() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    result = subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == {"azurite"}
    assert rendered["services"]["azurite"]["ports"][0]["published"] in (10000, "10000")


def test_compose_service_runs_the_pinned_blob_service() -> None:
    service = _compose_service()
    image, _, tag = service["image"].partition(":")
    assert image == "mcr.microsoft.com/azure-storage/azurite"
    assert tag == _azurite_pin()
    assert service["ports"] == ["10000:10000"]
    command = [str(part) for part in service["command"]]
    assert command[0] == "azurite-blob"
    assert command[command.index("--blobHost") + 1] == "0.0.0.0"
    assert command[command.index("--blobPort") + 1] == "10000"
    assert {"--skipApiVersionCheck", "--loose"} <= set(command)
    location = command[command.index("--location") + 1]
    assert any(volume.endswith(f":{location}") for volume in service["volumes"])


def test_compose_blob_binary_exists_in_the_npm_package() -> None:
    installed = REPO / "node_modules" / "azurite" / "package.json"
    if not installed.exists():
        pytest.skip("node_modules not installed (run `make setup`)")
    package = json.loads(installed.read_text())
    assert package["version"] == _azurite_pin()
    assert _compose_service()["command"][0] in package["bin"]


def test_ci_run_calls_make_test() -> None:
    ci_run = REPO / ".ci" / "run"
    assert os.access(ci_run, os.X_OK)
    lines = [line.strip() for line in ci_run.read_text().splitlines() if line.strip()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert lines[-1] == "make test"


def test_makefile_dry_run_covers_every_setup_step() -> None:
    result = subprocess.run(
        ["make", "-n", "-B", "test"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    plan = result.stdout
    for step in (
        "pip install --quiet -e '.[dev]'",
        "npm ci",
        "batchbox/backends/local/ensure-docker.sh",
        "-m batchbox.backends.local.node_image build",
        "azure-batch==14.2.0",
        "apt-get install -y chromium",
        ".venv/bin/pytest",
    ):
        assert step in plan, step


def test_gitignore_covers_generated_directories() -> None:
    ignored = set((REPO / ".gitignore").read_text().split())
    assert {".venv/", ".venv-sdk14/", "node_modules/", "__pycache__/", "tests/artifacts/"} <= ignored


def test_ensure_docker_is_executable_and_parses() -> None:
    assert os.access(ENSURE_DOCKER, os.X_OK)
    result = subprocess.run(["bash", "-n", str(ENSURE_DOCKER)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_ensure_docker_tells_a_non_root_user_what_to_start(tmp_path: Path) -> None:
    pid_file = tmp_path / "dockerd.pid"
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock",
        "BATCHBOX_ASSUME_NONROOT": "1",
        "BATCHBOX_DOCKERD_PIDFILE": str(pid_file),
        "BATCHBOX_DOCKERD_LOG": str(tmp_path / "dockerd.log"),
    }
    result = subprocess.run([str(ENSURE_DOCKER)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert DOCKERD_COMMAND in result.stderr
    assert "no-such-docker.sock" in result.stderr
    assert not pid_file.exists()


@pytest.mark.docker
def test_ensure_docker_leaves_a_running_engine_alone(tmp_path: Path) -> None:
    pid_file = tmp_path / "dockerd.pid"
    env = {**os.environ, "BATCHBOX_DOCKERD_PIDFILE": str(pid_file)}
    result = subprocess.run([str(ENSURE_DOCKER)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "answers" in result.stderr
    assert not pid_file.exists()
