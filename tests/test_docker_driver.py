"""The emulator's Docker node driver against the real engine and the real node image."""

from __future__ import annotations

import secrets
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY
from batchbox.emulator.nodes.docker_driver import (
    AGENT_COMMAND,
    AGENT_MOUNT,
    NODE_ROOT_MOUNT,
    NodeDriver,
    NodeImageMissingError,
    agent_dir,
)
from tests.fixtures.docker import TEST_LABELS

pytestmark = pytest.mark.docker


def _node_id() -> str:
    return f"tvmps_{uuid.uuid4().hex[:24]}_d"


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_create_node_runs_a_labelled_host_network_container(
    node_driver: NodeDriver, docker_client: docker.DockerClient
) -> None:
    node_id = _node_id()
    secret = secrets.token_hex(16)
    container_id = node_driver.create_node("pool-a", node_id, secret)

    info = docker_client.api.inspect_container(container_id)
    labels = info["Config"]["Labels"]
    assert labels["batchbox.emulator"] == node_driver.instance_label
    assert labels["batchbox.pool"] == "pool-a"
    assert labels["batchbox.node"] == node_id
    assert labels["batchbox.test"] == "1"
    assert info["Name"] == f"/batchbox-{node_driver.instance_label}-{node_id}"
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["Init"] is True
    assert not info["HostConfig"]["RestartPolicy"].get("Name")
    assert info["Config"]["Cmd"] == AGENT_COMMAND

    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert Path(mounts[NODE_ROOT_MOUNT]["Source"]) == node_driver.node_root(node_id)
    assert mounts[NODE_ROOT_MOUNT]["RW"] is True
    assert Path(mounts[AGENT_MOUNT]["Source"]) == agent_dir()
    assert mounts[AGENT_MOUNT]["RW"] is False

    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env["BATCHBOX_NODE_ID"] == node_id
    assert env["BATCHBOX_NODE_SECRET"] == secret
    assert env["BATCHBOX_NODE_ROOT"] == NODE_ROOT_MOUNT
    assert env["BATCHBOX_AGENT_URL"].startswith("http://127.0.0.1:")
    assert env["BATCHBOX_AGENT_URL"].endswith("/_agent/v1")
    assert not any(DEFAULT_ACCOUNT_KEY in value for value in env.values())
    assert {name for name in env if name.startswith("BATCHBOX_")} == {
        "BATCHBOX_AGENT_URL",
        "BATCHBOX_NODE_ID",
        "BATCHBOX_NODE_SECRET",
        "BATCHBOX_NODE_ROOT",
    }

    assert node_driver.node_status(node_id) == "running"
    listed = node_driver.list_nodes()
    assert set(listed) == {node_id}
    assert listed[node_id].container_id == container_id
    assert listed[node_id].pool_id == "pool-a"
    assert listed[node_id].status == "running"
    assert stat.S_IMODE(node_driver.node_root(node_id).stat().st_mode) == 0o755


def test_agent_directory_is_mounted_read_only(node_driver: NodeDriver, docker_client: docker.DockerClient) -> None:
    container_id = node_driver.create_node("pool-a", _node_id(), "s3cret")
    container = docker_client.containers.get(container_id)

    readable = container.exec_run(["test", "-r", f"{AGENT_MOUNT}/agent.py"])
    assert readable.exit_code == 0
    write = container.exec_run(["touch", f"{AGENT_MOUNT}/written-by-test"], demux=True)
    assert write.exit_code != 0
    assert b"Read-only file system" in (write.output[1] or b"")
    assert not (agent_dir() / "written-by-test").exists()


def test_agent_prepares_the_node_root_and_never_logs_the_secret(
    node_driver: NodeDriver, docker_client: docker.DockerClient
) -> None:
    node_id = _node_id()
    secret = secrets.token_hex(16)
    container_id = node_driver.create_node("pool-a", node_id, secret)
    root = node_driver.node_root(node_id)
    log_file = root / "agent.log"

    # Nobody listens on the agent URL: the agent retries and says so in its log.
    assert _wait_for(lambda: log_file.exists() and "unreachable" in log_file.read_text())
    for name in ("shared", "startup", "workitems", "applications", "fsmounts"):
        assert (root / name).is_dir()
    assert stat.S_IMODE((root / "shared").stat().st_mode) == 0o777
    container_log = docker_client.containers.get(container_id).logs().decode()
    assert "unreachable" in container_log
    assert secret not in log_file.read_text()
    assert secret not in container_log
    assert node_driver.node_status(node_id) == "running"


def test_remove_node_removes_the_container_and_keeps_the_files(node_driver: NodeDriver) -> None:
    node_id = _node_id()
    node_driver.create_node("pool-a", node_id, "s3cret")
    root = node_driver.node_root(node_id)

    node_driver.remove_node(node_id)

    assert node_driver.node_status(node_id) is None
    assert node_driver.list_nodes() == {}
    assert root.is_dir()
    node_driver.remove_node(node_id)  # removing a missing node is fine


def test_list_nodes_sees_only_its_own_instance(node_driver_factory: Callable[..., NodeDriver]) -> None:
    first, second = node_driver_factory(), node_driver_factory()
    a, b = _node_id(), _node_id()
    first.create_node("pool-1", a, "s1")
    second.create_node("pool-2", b, "s2")

    assert set(first.list_nodes()) == {a}
    assert set(second.list_nodes()) == {b}
    assert second.node_status(a) is None


def test_status_shows_a_stopped_container(node_driver: NodeDriver, docker_client: docker.DockerClient) -> None:
    node_id = _node_id()
    container_id = node_driver.create_node("pool-a", node_id, "s3cret")
    docker_client.api.kill(container_id)

    assert _wait_for(lambda: node_driver.node_status(node_id) == "exited")
    assert node_driver.list_nodes()[node_id].status == "exited"


def test_create_replaces_a_leftover_container_of_the_same_node(node_driver: NodeDriver) -> None:
    node_id = _node_id()
    old = node_driver.create_node("pool-a", node_id, "s1")
    new = node_driver.create_node("pool-a", node_id, "s2")

    assert new != old
    assert node_driver.list_nodes()[node_id].container_id == new


def test_remove_all_removes_every_container_of_the_instance(
    node_driver_factory: Callable[..., NodeDriver],
) -> None:
    driver, other = node_driver_factory(), node_driver_factory()
    for _ in range(2):
        driver.create_node("pool-a", _node_id(), "s")
    kept = _node_id()
    other.create_node("pool-b", kept, "s")

    assert driver.remove_all() == 2
    assert driver.list_nodes() == {}
    assert set(other.list_nodes()) == {kept}
    assert driver.remove_all() == 0


def test_remove_all_in_the_fixture_cleans_up_after_a_failed_test(
    node_driver_factory: Callable[..., NodeDriver], docker_client: docker.DockerClient
) -> None:
    # What the fixture's finally does when a test body raised: run it by hand around a failing block.
    driver = node_driver_factory()
    node_id = _node_id()
    with pytest.raises(RuntimeError):
        try:
            driver.create_node("pool-a", node_id, "s")
            raise RuntimeError("the test failed here")
        finally:
            driver.remove_all()
    remaining = docker_client.api.containers(all=True, filters={"label": f"batchbox.emulator={driver.instance_label}"})
    assert remaining == []


def test_missing_image_fails_fast_with_a_hint(node_driver_factory: Callable[..., NodeDriver]) -> None:
    image = f"batchbox-node:missing-{uuid.uuid4().hex[:8]}"
    driver = node_driver_factory(image)

    with pytest.raises(NodeImageMissingError) as caught:
        driver.create_node("pool-a", _node_id(), "s")

    message = str(caught.value)
    assert image in message
    assert "make node-image" in message
    assert "\n" not in message
    assert driver.list_nodes() == {}


def test_follow_removes_a_task_container_that_was_created_but_never_started(
    node_driver: NodeDriver, docker_client: docker.DockerClient, node_image: str
) -> None:
    # An emulator killed between creating a task's container and starting it leaves it in "created": the next
    # emulator must start the run afresh rather than wait for that container to exit (it never would).
    node_id = _node_id()
    node_driver.create_node("pool-a", node_id, "s3cret")
    containers = node_driver.task_containers
    name = containers.container_name(node_id, "job-1/task-1/0")
    created = docker_client.api.create_container(node_image, command=["/bin/true"], name=name, labels=TEST_LABELS)
    assert docker_client.api.inspect_container(created["Id"])["State"]["Status"] == "created"

    assert containers.follow(node_id, "job-1/task-1/0", "stdout.txt", "stderr.txt") is None
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(created["Id"])


def test_follow_rewrites_the_whole_output_of_a_running_task_container(
    node_driver: NodeDriver, docker_client: docker.DockerClient, node_image: str
) -> None:
    node_id = _node_id()
    node_driver.create_node("pool-a", node_id, "s3cret")
    containers = node_driver.task_containers
    name = containers.container_name(node_id, "job-1/task-1/0")
    script = "echo before; echo oops >&2; sleep 2; echo after"
    created = docker_client.api.create_container(
        node_image, command=["/bin/sh", "-c", script], name=name, labels=TEST_LABELS
    )
    docker_client.api.start(created["Id"])
    assert _wait_for(lambda: b"oops" in docker_client.api.logs(created["Id"], stdout=False, stderr=True))

    ended = containers.follow(node_id, "job-1/task-1/0", "stdout.txt", "stderr.txt")
    assert ended is not None and ended.exit_code == 0
    root = node_driver.node_root(node_id)
    assert (root / "stdout.txt").read_text() == "before\nafter\n"
    assert (root / "stderr.txt").read_text() == "oops\n"
    containers.remove(ended.container_id)
