"""The older azure-batch 14.x (msrest) SDK drives the emulator too, from the second venv `make setup` creates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.emulator import EmulatorProcess

REPO = Path(__file__).resolve().parents[1]
SDK14_PYTHON = REPO / ".venv-sdk14" / "bin" / "python"
DRIVER = REPO / "tests" / "sdk14" / "drive_sdk14.py"
NODES_DRIVER = REPO / "tests" / "sdk14" / "drive_sdk14_nodes.py"

pytestmark = pytest.mark.docker


@pytest.mark.skipif(not SDK14_PYTHON.exists(), reason=".venv-sdk14 is missing: run `make setup`")
def test_sdk14_pool_job_tasks_counts_files_delete(emulator: EmulatorProcess) -> None:
    version = subprocess.run(
        [str(SDK14_PYTHON), "-c", "import azure.batch; print(azure.batch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith("14."), version
    done = subprocess.run(
        [str(SDK14_PYTHON), str(DRIVER), emulator.url, emulator.account_name, emulator.account_key, "sdk14"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["pool_exists"] is True
    assert seen["added"] == ["task0", "task1", "task2"]
    assert seen["states"] == ["task0:completed:0", "task1:completed:0", "task2:completed:0"]
    assert seen["counts"] == {"completed": 3, "succeeded": 3, "failed": 0, "active": 0}
    assert seen["stdout"] == "sdk14 says 1\n"
    assert seen["job_after_delete"] == "JobNotFound"


@pytest.mark.skipif(not SDK14_PYTHON.exists(), reason=".venv-sdk14 is missing: run `make setup`")
def test_sdk14_pool_and_node_operations(emulator: EmulatorProcess) -> None:
    done = subprocess.run(
        [str(SDK14_PYTHON), str(NODES_DRIVER), emulator.url, emulator.account_name, emulator.account_key, "sdk14"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["jammy_sku"] == ["batch.node.ubuntu 22.04"]
    assert seen["after_reboot"] == "idle"
    assert seen["scheduling"] == "disabled"
    assert seen["user_deleted_twice"] == "NodeUserNotFound"
    assert seen["evaluated"] == "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    assert seen["target_after_remove"] == 1
    assert seen["usage_pools"] == ["sdk14-nodes"]


@pytest.mark.skipif(not SDK14_PYTHON.exists(), reason=".venv-sdk14 is missing: run `make setup`")
def test_sdk14_job_side_preparation_release_disable_enable_and_schedules(emulator: EmulatorProcess) -> None:
    driver = REPO / "tests" / "sdk14" / "drive_sdk14_jobs.py"
    done = subprocess.run(
        [str(SDK14_PYTHON), str(driver), emulator.url, emulator.account_name, emulator.account_key, "sdk14j"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["subtasks"] == []
    assert (seen["disabled"], seen["enabled"], seen["enable_again"]) == (
        "disabled",
        "active",
        "OperationInvalidForCurrentState",
    )
    assert seen["statuses"] == [["completed", "completed"]]
    assert seen["exists"] is True
    assert seen["schedule_jobs"] == ["sdk14j-once:job-1"]
    assert seen["patch_completed"] == "JobScheduleCompleted"
    assert seen["schedule_disabled"] == "disabled"
    assert seen["schedule_metadata"] == [["k", "v"]]
    assert seen["listed"] == ["sdk14j-later", "sdk14j-once"]
    assert seen["terminated"] == "completed"
    assert seen["missing"] == "JobScheduleNotFound"
