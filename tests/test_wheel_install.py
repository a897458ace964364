"""From an empty folder: pip install of the wheel, then `batchbox local up`, then one task end to end.

The wheel is built from this checkout and installed into a fresh venv (tests/fixtures/wheel.py); nothing of the
checkout is on the path of these commands, so the wheel must carry everything: the node image recipe, the Azurite
pin, ensure-docker.sh and the node agent.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import docker
import pytest

from batchbox.backends.local.azurite import find_free_port
from batchbox.backends.local.azurite_container import azurite_image_present
from tests.fixtures.wheel import InstalledWheel, WheelStack

pytestmark = pytest.mark.docker

_WORKLOAD = """
from pathlib import Path

from batchbox.core import TaskSpec
from batchbox.core.workload import StagedFiles, Workload


class Shout(Workload):
    job_id = "wheel-shout"
    pool_id = "wheel-shout-pool"

    def input_files(self):
        return [Path("words.txt")]

    def tasks(self, staged: StagedFiles):
        return [
            TaskSpec(
                id="shout",
                command_line="/bin/sh -c 'tr a-z A-Z < words.txt > loud.txt'",
                resource_files=(staged.input_file("words.txt"),),
                output_files=staged.output_files("loud.txt"),
            )
        ]


WORKLOAD = Shout()
"""


def test_wheel_carries_the_files_the_stack_needs(installed_wheel: InstalledWheel) -> None:
    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    assert {
        "batchbox/node/image/Dockerfile",
        "batchbox/node/image/packages.txt",
        "batchbox/node/image/setup-node.sh",
        "batchbox/node/agent.py",
        "batchbox/backends/local/ensure-docker.sh",
        "batchbox/backends/local/azurite-npm/package.json",
        "batchbox/backends/local/azurite-npm/package-lock.json",
        "batchbox/testing/plugin.py",
    } <= names
    entry_points = zipfile.ZipFile(installed_wheel.wheel).read("batchbox-0.1.0.dist-info/entry_points.txt").decode()
    assert "[pytest11]" in entry_points and "batchbox.testing.plugin" in entry_points


def test_local_up_provisions_azurite_with_npm_into_the_home(
    installed_wheel: InstalledWheel, wheel_stack: WheelStack
) -> None:
    info = wheel_stack.endpoints
    assert info["batch_url"] == f"http://127.0.0.1:{installed_wheel.ports[1]}"
    assert info["state_dir"] == str(installed_wheel.home)
    progress = wheel_stack.first_up_stderr
    assert "installing Azurite 3.37.0 with npm into" in progress
    assert f"starting Azurite on 127.0.0.1:{installed_wheel.ports[0]}" in progress
    assert "starting the Batch emulator" in progress

    azurite_dir = installed_wheel.home / "azurite"
    assert (azurite_dir / "node_modules" / "azurite" / "package.json").is_file()
    record = json.loads((azurite_dir / "azurite.pid").read_text())
    assert record["program"].startswith(str(azurite_dir / "node_modules"))

    again = installed_wheel.run("batchbox", "local", "up", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == info
    assert again.stderr == ""  # nothing to provision or start the second time


def test_installed_tool_runs_a_task_end_to_end(installed_wheel: InstalledWheel, wheel_stack: WheelStack) -> None:
    project = installed_wheel.project_dir
    (project / "shout.py").write_text(_WORKLOAD)
    (project / "words.txt").write_text("batch in a box\n")
    run = installed_wheel.run("batchbox", "run", "shout.py", "--yes", "--keep-pool")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 succeeded, 0 failed of 1" in run.stdout
    assert (project / "outputs" / "wheel-shout" / "loud.txt").read_text() == "BATCH IN A BOX\n"

    # The node agent the node container runs is the installed package's, not a checkout's.
    client = docker.from_env()
    try:
        containers = client.containers.list(
            all=True, ignore_removed=True, filters={"label": "batchbox.pool=wheel-shout-pool"}
        )
        assert containers, "the kept pool has no node container"
        mounts = {m["Destination"]: m["Source"] for m in containers[0].attrs["Mounts"]}
    finally:
        client.close()
    assert Path(mounts["/opt/batchbox/node"]).is_relative_to(installed_wheel.venv)
    cleanup = installed_wheel.run("batchbox", "cleanup", "--pool", "wheel-shout-pool", "--yes")
    assert cleanup.returncode == 0, cleanup.stderr


def test_missing_npm_is_one_line_naming_the_choices(installed_wheel: InstalledWheel, node_image: str) -> None:
    client = docker.from_env()
    try:
        if azurite_image_present(client):
            pytest.skip("the Azurite image is in the engine: without npm, local up would run it instead")
    finally:
        client.close()
    home = installed_wheel.root / "home-without-npm"
    env = installed_wheel.env(
        PATH=str(installed_wheel.bin),
        BATCHBOX_HOME=str(home),
        BATCHBOX_AZURITE_PORT=str(find_free_port()),
        BATCHBOX_EMULATOR_PORT=str(find_free_port()),
    )
    result = installed_wheel.run("batchbox", "local", "up", env=env)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("batchbox: error: Azurite is not reachable: npm is not installed: install Node.js")
    assert "--storage-connection-string" in lines[0] and "--azurite image" in lines[0]
    assert not (home / "emulator" / "process.json").exists()  # nothing was started


def test_plugin_is_active_in_the_installed_venv(installed_wheel: InstalledWheel) -> None:
    result = installed_wheel.run("pytest", "--help")
    assert result.returncode == 0, result.stderr
    assert "--batchbox-backend" in result.stdout


def test_no_checkout_on_the_path(installed_wheel: InstalledWheel) -> None:
    probe = "import batchbox, sys; print(batchbox.__file__)"
    result = installed_wheel.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(installed_wheel.venv)
