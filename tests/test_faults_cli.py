"""`batchbox local up --faults FILE` and `local status` with faults on, and the sample's one-line error on a timeout
(its job never finishes as far as lagging task counts tell)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import find_free_port
from batchbox.emulator.faults import load_fault_file
from tests.test_readme import _block

pytestmark = [pytest.mark.docker, pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path, ports: tuple[int, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    env.update(
        {"BATCHBOX_HOME": str(home), "BATCHBOX_AZURITE_PORT": str(ports[0]), "BATCHBOX_EMULATOR_PORT": str(ports[1])}
    )
    return env


def _cli(home: Path, ports: tuple[int, int], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchbox.cli.main", *args],
        capture_output=True,
        text=True,
        env=_env(home, ports),
        timeout=180,
    )


@pytest.fixture
def stack_home(tmp_path: Path, node_image: str) -> Iterator[tuple[Path, tuple[int, int]]]:
    home = tmp_path / "home"
    ports = (find_free_port(), find_free_port())
    try:
        yield home, ports
    finally:
        _cli(home, ports, "local", "down", "--remove-nodes")


def test_local_up_with_faults_says_so_and_routes_storage_through_the_proxy(
    stack_home: tuple[Path, tuple[int, int]], tmp_path: Path
) -> None:
    home, ports = stack_home
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[faults]\nthrottle_rate = 3\n")
    refused = _cli(home, ports, "local", "up", "--faults", str(wrong))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "batchbox: error: --faults: faults: throttle_rate must be between 0 and 1, got 3"
    )
    assert not (home / "emulator" / "process.json").exists()  # nothing started

    faults = tmp_path / "faults.toml"
    faults.write_text(_block("Rehearse Azure's failures locally", "toml", "[faults]"))  # the README's example
    described = load_fault_file(faults).describe()
    assert described.startswith("seed 7; throttle 30% 429, 50% with Retry-After 1 s; connection resets 2%;")
    assert "storage: ContainerBeingDeleted for 30 s" in described
    up = _cli(home, ports, "local", "up", "--faults", str(faults))
    assert up.returncode == 0, up.stderr
    assert f"Faults:          {described}" in up.stdout.splitlines()
    status = _cli(home, ports, "local", "status")
    assert f"faults    ON: {described}" in status.stdout.splitlines()
    assert json.loads(_cli(home, ports, "local", "status", "--json").stdout)["emulator"]["faults"] == described

    info = json.loads(_cli(home, ports, "local", "up", "--json").stdout)
    assert f":{ports[0]}/" not in info["storage_connection_string"]  # clients reach Azurite through the proxy
    with BlobStorage.from_connection_string(info["storage_connection_string"], container_delete_wait=1) as storage:
        storage.create_container("through-the-proxy")
        storage.delete_container("through-the-proxy")
        with pytest.raises(TimeoutError, match="ContainerBeingDeleted"):
            storage.create_container("through-the-proxy")

    again = _cli(home, ports, "local", "up", "--faults", str(faults))
    assert again.returncode == 2 and "the emulator runs already" in again.stderr

    _cli(home, ports, "local", "down")
    assert "faults    ON" not in _cli(home, ports, "local", "status").stdout


def test_the_sample_prints_one_line_when_it_times_out_and_still_cleans_up(
    stack_home: tuple[Path, tuple[int, int]], tmp_path: Path
) -> None:
    home, ports = stack_home
    faults = tmp_path / "faults.toml"
    faults.write_text("[faults]\ntask_counts_lag = 3600\n")  # the counts never show the tasks done
    up = _cli(home, ports, "local", "up", "--json", "--faults", str(faults))
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    demo = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "topn_words" / "run_demo.py"), "--timeout", "5"],
        capture_output=True,
        text=True,
        env=_env(home, ports),
        cwd=tmp_path,
        timeout=300,
    )
    assert demo.returncode == 2
    assert "Traceback" not in demo.stderr and "Traceback" not in demo.stdout
    last = demo.stderr.strip().splitlines()[-1]
    expected = r"demo: error: job 'topn-words-job' did not finish within 5 s \(\d+ active, \d+ running\)"
    assert re.fullmatch(expected, last)
    client = BatchClient(info["batch_url"], AzureNamedKeyCredential(info["batch_account"], info["batch_key"]))
    assert [job.id for job in client.list_jobs()] == []  # clean-up ran after the timeout
    assert all(pool.state == "deleting" for pool in client.list_pools())
    client.close()
