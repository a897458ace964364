"""Shared pieces of the pool and node operation tests: an emulator with test-sized floors, waits, pools, tasks."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.backends.local.azurite import find_free_port
from tests.fixtures.emulator import EmulatorProcess

T = TypeVar("T")

VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
FAST_FLOORS = ("--autoscale-min-interval", "5", "--resize-timeout-min", "2")
"""Emulator options lowering Batch's 5-minute floors, so tests see evaluations and timeouts within seconds."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.25) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start_emulator(
    docker_client: docker.DockerClient, node_image: str, base: Path, extra_args: tuple[str, ...] = FAST_FLOORS
) -> Iterator[EmulatorProcess]:
    """An emulator with ``extra_args`` whose state dir is ``<base>/emulator`` (a ``batchbox local`` home layout)."""
    process = EmulatorProcess(
        port=find_free_port(),
        state_dir=base / "emulator",
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
        node_image=node_image,
        docker_client=docker_client,
        extra_args=extra_args,
    )
    try:
        try:
            process.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield process
    finally:
        process.cleanup()


def create_pool(
    client: BatchClient, pool_id: str, *, dedicated: int = 1, low_priority: int = 0, vm_size: str = "Standard_A1_v2",
    **extra: Any,
) -> None:  # fmt: skip
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size=vm_size,
            virtual_machine_configuration=VM,
            target_dedicated_nodes=dedicated,
            target_low_priority_nodes=low_priority,
            **extra,
        )
    )


def nodes_in(client: BatchClient, pool_id: str, state: str, count: int, timeout: float = 90.0) -> list[m.BatchNode]:
    """Wait until the pool lists exactly ``count`` nodes, all in ``state``."""

    def probe() -> list[m.BatchNode] | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes if len(nodes) == count and all(n.state == state for n in nodes) else None

    return wait_for(f"{count} {state} node(s) in pool {pool_id}", probe, timeout)


def task_state(client: BatchClient, job_id: str, task_id: str, state: str, timeout: float = 90.0) -> m.BatchTask:
    def probe() -> m.BatchTask | None:
        task = client.get_task(job_id, task_id)
        return task if task.state == state else None

    return wait_for(f"task {task_id} {state}", probe, timeout)


def node_state(client: BatchClient, pool_id: str, node_id: str, state: str, timeout: float = 90.0) -> m.BatchNode:
    def probe() -> m.BatchNode | None:
        node = client.get_node(pool_id, node_id)
        return node if node.state == state else None

    return wait_for(f"node {node_id} {state}", probe, timeout)


def task_output(client: BatchClient, job_id: str, task_id: str, name: str = "stdout.txt") -> str:
    return b"".join(client.download_task_file(job_id, task_id, name)).decode()


def node_file(client: BatchClient, pool_id: str, node_id: str, path: str) -> str:
    return b"".join(client.download_node_file(pool_id, node_id, path)).decode()


def node_exec(emulator: EmulatorProcess, node_id: str, command: str) -> str:
    """Run ``sh -c command`` as root in the node's container (docker exec); its stdout."""
    for container in emulator.containers():
        if container.labels.get("batchbox.node") == node_id:
            result = subprocess.run(
                ["docker", "exec", container.id, "sh", "-c", command], capture_output=True, text=True, check=False
            )
            return result.stdout
    pytest.fail(f"no container for node {node_id}")
