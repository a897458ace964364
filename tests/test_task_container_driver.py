"""The task containers of the Docker node driver against the real engine: the node's limits and directories, output
into the task directory, the exit code, labels; kills and removals by node; sources outside the node refused."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest

from batchbox.emulator.nodes.docker_driver import NodeDriver
from batchbox.emulator.resources.run_options import parse_run_options
from batchbox.emulator.runtime.ports import ContainerExit, ContainerSettingsError, TaskContainerSpec
from tests.fixtures.task_images import MARKER_PATH, MARKER_TEXT

pytestmark = pytest.mark.docker

_MEMORY = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
_CPU = "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"


def spec(node_id: str, image: str, script: str, options: str = "", **extra: object) -> TaskContainerSpec:
    values: dict[str, object] = {
        "node_id": node_id,
        "pool_id": "pool-a",
        "assignment_id": f"job/{uuid.uuid4().hex[:6]}/0",
        "image": image,
        "command": ["/bin/sh", "-c", script],
        "environment": {"AZ_BATCH_TASK_ID": "t"},
        "working_dir": "/mnt/batch/tasks/t/wd",
        "options": parse_run_options(options),
        "node_mounts": [("", "/mnt/batch/tasks", False)],
        "stdout_path": "t/stdout.txt",
        "stderr_path": "t/stderr.txt",
        **extra,
    }
    return TaskContainerSpec(**values)  # type: ignore[arg-type]


def started_node(driver: NodeDriver) -> str:
    node_id = f"tvmps_{uuid.uuid4().hex[:24]}_d"
    driver.create_node("pool-a", node_id, "secret")
    (driver.node_root(node_id) / "t" / "wd").mkdir(parents=True)
    return node_id


def test_a_task_container_has_the_node_limits_mounts_output_and_exit_code(
    node_driver: NodeDriver, docker_client: docker.DockerClient, task_image: str
) -> None:
    node_id = started_node(node_driver)
    node = docker_client.containers.get(node_driver.container_name(node_id))
    node.update(mem_limit="256m", memswap_limit="256m", cpu_quota=50_000, cpu_period=100_000)
    script = f"cat {MARKER_PATH}; {_MEMORY}; {_CPU}; pwd; echo $AZ_BATCH_TASK_ID; echo oops >&2; touch made; exit 4"
    task = spec(node_id, task_image, script, "--memory 128m")
    ended = node_driver.task_containers.run(task)
    root = node_driver.node_root(node_id)
    try:
        assert ended.exit_code == 4
        out = (root / "t" / "stdout.txt").read_text().split()
        assert out[0 : len(MARKER_TEXT.split())] == MARKER_TEXT.split()
        memory, quota, cwd, task_id = out[len(MARKER_TEXT.split()) :]
        assert (int(memory), int(quota)) == (128 * 1024**2, 50_000)  # the task's lower memory, the node's CPU
        assert (cwd, task_id) == ("/mnt/batch/tasks/t/wd", "t")
        assert (root / "t" / "stderr.txt").read_text() == "oops\n"
        assert (root / "t" / "wd" / "made").exists()
        info = docker_client.api.inspect_container(ended.container_id)
        labels = info["Config"]["Labels"]
        assert labels["batchbox.role"] == "task"
        assert labels["batchbox.task-node"] == node_id
        assert labels["batchbox.assignment"] == task.assignment_id
        assert labels["batchbox.test"] == "1"
        assert "batchbox.node" not in labels  # so it is never taken for a node container
        assert info["HostConfig"]["NetworkMode"] == "host"
        assert node_id in node_driver.list_nodes() and len(node_driver.list_nodes()) == 1
    finally:
        node_driver.task_containers.remove(ended.container_id)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(ended.container_id)


def test_kill_and_node_removal_leave_no_task_container(node_driver: NodeDriver, task_image: str) -> None:
    node_id = started_node(node_driver)
    tasks = node_driver.task_containers
    killed, orphan = spec(node_id, task_image, "sleep 120"), spec(node_id, task_image, "sleep 120")
    results: dict[str, ContainerExit] = {}

    def run(which: str, task: TaskContainerSpec) -> None:
        results[which] = tasks.run(task)

    threads = [threading.Thread(target=run, args=item) for item in (("killed", killed), ("orphan", orphan))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(tasks._listed(node_id)) < 2:
        assert time.monotonic() < deadline, "the two task containers did not start"
        time.sleep(0.1)
    assert tasks.kill(node_id, killed.assignment_id)
    threads[0].join(30)
    assert results["killed"].exit_code == 137
    node_driver.remove_node(node_id)  # the node goes: its task containers with it
    threads[1].join(30)
    assert not threads[1].is_alive()
    tasks.remove(results["killed"].container_id)
    assert tasks._listed(node_id) == []
    assert not tasks.kill(node_id, killed.assignment_id)


def test_sources_that_resolve_outside_the_node_are_refused(node_driver: NodeDriver, task_image: str) -> None:
    node_id = started_node(node_driver)
    root = node_driver.node_root(node_id)
    (root / "shared").mkdir(exist_ok=True)
    os.symlink("/etc", root / "shared" / "escape")  # what a task on the node could make
    task = spec(node_id, task_image, "ls /x", "-v /mnt/batch/tasks/shared/escape:/x")
    with pytest.raises(ContainerSettingsError, match="outside the node's directory"):
        node_driver.task_containers.run(task)
    assert node_driver.task_containers._listed(node_id) == []
    stdout = Path(root / "t" / "stdout.txt")
    assert not stdout.exists() or stdout.read_text() == ""
