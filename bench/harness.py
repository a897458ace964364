"""Emulator-side helpers of the benchmarks: a private emulator process, pools, task timestamps, cgroup readings.

Every benchmark that needs compute starts its own emulator (``python -m batchbox.emulator``) on a free loopback
port with a temporary state directory and a unique instance label (``bench-<name>-<random>``); its node
containers carry the extra label ``batchbox.bench=1``. :class:`BenchEmulator` stops the process by its PID and
removes the containers by their instance label on exit, also when the benchmark failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential

from batchbox.backends.local.azurite import find_free_port
from batchbox.backends.local.node_image import ensure_node_image
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.nodes.docker_engine import connect_docker

__all__ = [
    "BENCH_LABEL",
    "BenchEmulator",
    "RequestCounter",
    "TaskTimes",
    "cgroup_cpu_seconds",
    "cgroup_memory_bytes",
    "count_containers",
    "create_pool",
    "node_containers",
    "parse_time",
    "task_times",
    "wait_for",
    "wait_nodes_idle",
]

BENCH_LABEL = "batchbox.bench=1"
"""Extra label on every node container a benchmark's emulator creates."""

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0
_IMAGE_REF = bm.BatchVmImageReference(publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts")


def parse_time(value: Any) -> float:
    """A task timestamp (``datetime`` from the SDK, or an ISO string) as seconds since the epoch."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    """Poll ``condition`` every ``interval`` seconds until it holds.

    Raises:
        TimeoutError: it did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


class BenchEmulator:
    """One emulator process for one benchmark.

    Args:
        name: a short benchmark name, part of the instance label.
        log_level: the emulator's ``--log-level`` (``info`` is what ``batchbox local up`` runs with).
        parent_dir: where its temporary state directory (and so the node directories) goes; the system's
            temporary directory when None.
    """

    def __init__(self, name: str, *, log_level: str = "info", parent_dir: Path | None = None) -> None:
        self.name = name
        self.log_level = log_level
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance_label = f"bench-{name}-{uuid.uuid4().hex[:10]}"
        self._tmp = Path(tempfile.mkdtemp(prefix=f"batchbox-bench-{name}-", dir=parent_dir))
        self.state_dir = self._tmp / "emulator"
        self.log_path = self._tmp / "emulator.log"
        self.docker = connect_docker()
        self.node_image = ensure_node_image(self.docker)
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[BatchClient] = []

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the emulator is not running")
        return self._process.pid

    def __enter__(self) -> BenchEmulator:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the process and wait until it answers HTTP."""
        env = dict(os.environ)
        env["BATCHBOX_NODE_LABELS"] = BENCH_LABEL
        env["BATCHBOX_HOME"] = str(self._tmp)
        env.pop("BATCHBOX_EMULATOR_KEY", None)
        command = [
            sys.executable,
            "-m",
            "batchbox.emulator",
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
            "--instance-label",
            self.instance_label,
            "--node-image",
            self.node_image,
            "--log-level",
            self.log_level,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self._process.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/pools?api-version=2025-06-01", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # an unsigned request is refused: it serves
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"the emulator did not answer within {_START_TIMEOUT:.0f} s")

    def client(self, **options: Any) -> BatchClient:
        """A 15.x BatchClient signing with the emulator's SharedKey (closed on exit)."""
        client = BatchClient(self.url, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY), **options)
        self._clients.append(client)
        return client

    def node_containers(self) -> list[Any]:
        """This emulator's node containers (docker-py objects)."""
        return node_containers(self.docker, self.instance_label)

    def stop(self) -> None:
        """SIGTERM the process by its PID and wait (SIGKILL after a grace period)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)

    def close(self) -> None:
        """Stop the process, remove the node containers by label, delete the state directory."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        try:
            self.stop()
        finally:
            try:
                # The low-level API: listing objects inspects each container, which races with removal.
                for item in self.docker.api.containers(
                    all=True, filters={"label": f"batchbox.emulator={self.instance_label}"}
                ):
                    with contextlib.suppress(docker.errors.APIError):
                        self.docker.api.remove_container(item["Id"], force=True)
            finally:
                self.docker.close()
                shutil.rmtree(self._tmp, ignore_errors=True)


def node_containers(client: docker.DockerClient, instance_label: str) -> list[Any]:
    """Containers labelled ``batchbox.emulator=<instance_label>`` (docker-py objects).

    docker-py inspects each listed container; one removed in between (a pool being deleted) is skipped.
    """
    for _ in range(5):
        try:
            return list(
                client.containers.list(
                    all=True, ignore_removed=True, filters={"label": f"batchbox.emulator={instance_label}"}
                )
            )
        except docker.errors.NotFound:
            time.sleep(0.1)
    listed = client.api.containers(all=True, filters={"label": f"batchbox.emulator={instance_label}"})
    found = []
    for item in listed:
        with contextlib.suppress(docker.errors.NotFound):
            found.append(client.containers.get(item["Id"]))
    return found


def count_containers(client: docker.DockerClient, *labels: str) -> int:
    """How many containers carry all the given ``key=value`` labels (no inspection, so no race with removal)."""
    return len(client.api.containers(all=True, filters={"label": list(labels)}))


def create_pool(
    client: BatchClient,
    pool_id: str,
    nodes: int,
    slots: int,
    *,
    start_task: bm.BatchStartTask | None = None,
) -> None:
    """Create a pool of ``nodes`` dedicated nodes with ``slots`` task slots each (spread fill)."""
    client.create_pool(
        bm.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
            task_scheduling_policy=bm.BatchTaskSchedulingPolicy(node_fill_type=bm.BatchNodeFillType.SPREAD),
            virtual_machine_configuration=bm.VirtualMachineConfiguration(
                image_reference=_IMAGE_REF, node_agent_sku_id="batch.node.ubuntu 22.04"
            ),
            start_task=start_task,
        )
    )


def wait_nodes_idle(client: BatchClient, pool_id: str, nodes: int, timeout: float = 120.0) -> list[str]:
    """Wait until the pool has ``nodes`` idle nodes; return their ids."""
    ids: list[str] = []

    def ready() -> bool:
        listed = list(client.list_nodes(pool_id))
        ids[:] = [n.id for n in listed if str(n.state).lower().endswith("idle")]
        return len(ids) >= nodes

    wait_for(ready, timeout, interval=0.1, what=f"{nodes} idle nodes in {pool_id}")
    return ids


@dataclass(frozen=True)
class TaskTimes:
    """One task's server-side record: node, start and end (epoch seconds), exit code."""

    task_id: str
    node_id: str
    start: float
    end: float
    exit_code: int | None


def task_times(client: BatchClient, job_id: str) -> list[TaskTimes]:
    """Every completed task of a job with its node and its executionInfo start/end times."""
    out = []
    for task in client.list_tasks(job_id, select=["id", "executionInfo", "nodeInfo"]):
        info = task.execution_info
        if info is None or info.start_time is None or info.end_time is None:
            continue
        node = task.node_info.node_id if task.node_info is not None else ""
        out.append(
            TaskTimes(task.id, node or "", parse_time(info.start_time), parse_time(info.end_time), info.exit_code)
        )
    return out


# -- cgroup v1 readings of node containers ----------------------------------------------------------------------

_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_file(controller: str, container_id: str, name: str) -> Path:
    for parent in ("docker", "system.slice"):
        base = _CGROUP / controller / parent
        candidate = base / (container_id if parent == "docker" else f"docker-{container_id}.scope") / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no cgroup v1 {controller} file {name} for container {container_id[:12]}")


def cgroup_cpu_seconds(container_ids: Iterable[str]) -> float:
    """Total CPU seconds (user + system) used so far by the given containers (``cpuacct.usage``)."""
    return sum(int(_cgroup_file("cpuacct", cid, "cpuacct.usage").read_text()) for cid in container_ids) / 1e9


def cgroup_memory_bytes(container_id: str) -> tuple[int, int]:
    """(usage, usage minus page cache) of one container's memory cgroup, in bytes."""
    usage = int(_cgroup_file("memory", container_id, "memory.usage_in_bytes").read_text())
    cache = 0
    for line in _cgroup_file("memory", container_id, "memory.stat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "total_cache":
            cache = int(value)
    return usage, usage - cache


class RequestCounter:
    """Counts the HTTP requests a ``BatchClient`` sends (every try), through its pipeline's custom-hook policy.

    Args:
        client: an azure-batch 15.x ``BatchClient``.
    """

    def __init__(self, client: BatchClient) -> None:
        self.total = 0
        self.by_path: dict[str, int] = {}
        self._lock = threading.Lock()
        hook = client._config.custom_hook_policy  # the pipeline's CustomHookPolicy instance
        previous = hook._request_callback

        def on_request(request: Any) -> None:
            path = urllib.parse.urlsplit(request.http_request.url).path
            with self._lock:
                self.total += 1
                self.by_path[path] = self.by_path.get(path, 0) + 1
            if previous is not None:
                previous(request)

        hook._request_callback = on_request

    def snapshot(self) -> int:
        with self._lock:
            return self.total
