"""`batchbox local up|status|down`: background services started once, reported, and stopped by PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import AZURITE_ACCOUNT_KEY, AzuriteProcess, find_free_port

pytestmark = pytest.mark.docker


def _cli(
    home: Path, ports: tuple[int, int], *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    env.update(
        {"BATCHBOX_HOME": str(home), "BATCHBOX_AZURITE_PORT": str(ports[0]), "BATCHBOX_EMULATOR_PORT": str(ports[1])}
    )
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "batchbox.cli.main", *args], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.fixture
def stack_home(tmp_path: Path, node_image: str) -> Iterator[tuple[Path, tuple[int, int]]]:
    home = tmp_path / "home"
    ports = (find_free_port(), find_free_port())
    try:
        yield home, ports
    finally:
        _cli(home, ports, "local", "down", "--remove-nodes")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_up_status_down(stack_home: tuple[Path, tuple[int, int]]) -> None:
    home, ports = stack_home
    up = _cli(home, ports, "local", "up", "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert {"batch_url", "batch_account", "batch_key", "storage_connection_string"} <= set(info)
    assert info["batch_url"] == f"http://127.0.0.1:{ports[1]}"

    client = BatchClient(info["batch_url"], AzureNamedKeyCredential(info["batch_account"], info["batch_key"]))
    assert list(client.list_pools()) == []
    storage = BlobStorage.from_connection_string(info["storage_connection_string"])
    storage.create_container("local-stack-check")
    assert storage.list_blobs("local-stack-check") == []
    storage.close()

    again = _cli(home, ports, "local", "up", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == info  # the running emulator keeps its portal token
    assert info["portal_url"].startswith(f"{info['batch_url']}/portal/?token=")
    with httpx.Client() as browser:
        assert browser.get(info["portal_url"], follow_redirects=True).status_code == 200
    text = _cli(home, ports, "local", "up")
    assert f"Portal:          {info['portal_url']}" in text.stdout.splitlines()

    status = json.loads(_cli(home, ports, "local", "status", "--json").stdout)
    assert status["azurite"]["running"] and status["emulator"]["running"]
    pids = [status["azurite"]["pid"], status["emulator"]["pid"]]
    assert all(_alive(pid) for pid in pids)

    down = _cli(home, ports, "local", "down")
    assert down.returncode == 0
    assert "stopped the emulator" in down.stdout and "stopped Azurite" in down.stdout
    assert not any(_alive(pid) for pid in pids)
    status = json.loads(_cli(home, ports, "local", "status", "--json").stdout)
    assert not status["azurite"]["running"] and not status["emulator"]["running"]


def test_up_uses_a_given_storage_and_starts_no_azurite(
    stack_home: tuple[Path, tuple[int, int]], azurite: AzuriteProcess
) -> None:
    home, ports = stack_home
    given = azurite.connection_string
    up = _cli(home, ports, "local", "up", "--json", "--storage-connection-string", given)
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["storage_connection_string"] == given
    assert "starting Azurite" not in up.stderr and "starting the Batch emulator" in up.stderr
    assert not (home / "azurite" / "azurite.pid").exists()
    status = json.loads(_cli(home, ports, "local", "status", "--json").stdout)
    assert status["emulator"]["running"] and not status["azurite"]["running"]

    down = _cli(home, ports, "local", "down")
    assert "stopped the emulator" in down.stdout and "Azurite" not in down.stdout
    assert azurite.is_running()  # the user's Azurite is left alone


def test_a_storage_that_refuses_the_key_is_one_line(
    stack_home: tuple[Path, tuple[int, int]], azurite: AzuriteProcess
) -> None:
    home, ports = stack_home
    wrong = azurite.connection_string.replace(AZURITE_ACCOUNT_KEY, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=")
    env_given = {"BATCHBOX_STORAGE_CONNECTION_STRING": wrong}
    result = _cli(home, ports, "local", "up", extra_env=env_given)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("batchbox: error: storage is not reachable: the blob service at 127.0.0.1")
    assert "AuthorizationFailure" in lines[-1] or "403" in lines[-1]
    assert "d3Jvbmcta2V5" not in result.stderr  # the key is never printed
    assert not (home / "emulator" / "process.json").exists()


def test_no_docker_engine_is_one_line_saying_what_to_start(tmp_path: Path) -> None:
    ports = (find_free_port(), find_free_port())
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = _cli(tmp_path / "home", ports, "local", "up", extra_env=env)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "no-engine.sock does not answer" in lines[0] and "dockerd --bridge=none" in lines[0]
