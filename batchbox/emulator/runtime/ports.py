"""What the runtime needs from the store and from the node driver, as structural types (its two ports).

``batchbox.emulator.store.Store`` satisfies :class:`StoreLike`; ``batchbox.emulator.nodes.docker_driver.NodeDriver``
satisfies :class:`NodeDriverLike` and lists its containers as :class:`NodeContainer`. The runtime depends on nothing
else of either, so another driver (or a store double in a test) only has to provide these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchbox.emulator.job_tables import JobNodeTaskTable, ScheduleTable
from batchbox.emulator.resources.run_options import RunOptions
from batchbox.emulator.run_history import RunHistory

__all__ = [
    "AllocationGate",
    "ContainerExit",
    "ContainerImageError",
    "ContainerSettingsError",
    "NodeContainer",
    "NodeDriverLike",
    "NodeResources",
    "NodeStats",
    "PoolQuota",
    "RegistryCredential",
    "StoreLike",
    "TaskContainerSpec",
    "TaskContainersLike",
]


AllocationGate = Callable[
    [dict[str, Any], list[bool], Iterable[tuple[str, int, int]]], tuple[list[bool], list[dict[str, Any]]]
]
"""Decides which nodes a resize may create (the fault layer's quotas and allocation failures): given the pool's
document, one entry per node wanted (True: dedicated) and ``(vm size, dedicated, low-priority)`` node counts of
every pool, it returns which nodes are granted and the pool's resize errors."""


PoolQuota = Callable[[], int | None]
"""The account's pool quota now (the fault layer's ``pool_quota``, which may change while the emulator runs); None
when there is none."""


@dataclass(frozen=True)
class NodeContainer:
    """One node container as a driver lists it.

    Attributes:
        container_id: the full container id.
        pool_id: the pool the node belongs to.
        status: the engine's state: ``created``, ``running``, ``exited``, ``restarting``, ``paused``, ``dead`` ...
        name: the container name.
    """

    container_id: str
    pool_id: str
    status: str
    name: str


@dataclass(frozen=True)
class RegistryCredential:
    """A username and password for one registry server (the password comes from the store's secrets)."""

    server: str
    username: str
    password: str


@dataclass
class TaskContainerSpec:
    """Everything the driver needs to run one assignment in a container on a node.

    Paths named ``*_dir``/``*_path`` are relative to the node root (``/mnt/batch/tasks`` inside, the node's host
    directory outside); ``node_mounts`` are ``(relative directory, container path, read only)`` ("" is the root).
    """

    node_id: str
    pool_id: str
    assignment_id: str
    image: str
    command: list[str]
    environment: dict[str, str]
    working_dir: str | None
    options: RunOptions
    node_mounts: list[tuple[str, str, bool]]
    stdout_path: str
    stderr_path: str
    credentials: list[RegistryCredential] = field(default_factory=list)


@dataclass(frozen=True)
class ContainerExit:
    """How a task container ended: its id and exit code (the exit code of the task), and the engine's view of it
    (``state``: the container's status as ``docker inspect`` gives it; ``error``: the engine's error, if any)."""

    container_id: str
    exit_code: int
    state: str = "exited"
    error: str = ""


class ContainerImageError(Exception):
    """An image is missing and could not be pulled; ``image`` names it, the message says why (one line)."""

    def __init__(self, image: str, message: str) -> None:
        super().__init__(message)
        self.image = image


class ContainerSettingsError(Exception):
    """The engine refused to create or start a task container with its settings (one-line message).

    ``program_missing`` is set when the command's program does not exist in the image.
    """

    def __init__(self, message: str, *, program_missing: bool = False) -> None:
        super().__init__(message)
        self.program_missing = program_missing


class TaskContainersLike(Protocol):
    """The task containers of a driver (blocking calls; the runtime runs them in threads of their own)."""

    def ensure_images(self, images: Sequence[str], credentials: Sequence[RegistryCredential]) -> None: ...
    def run(self, spec: TaskContainerSpec, started: Callable[[str], None] | None = None) -> ContainerExit: ...
    def follow(self, node_id: str, assignment_id: str, stdout_path: str, stderr_path: str) -> ContainerExit | None: ...
    def remove(self, container_id: str) -> None: ...
    def kill(self, node_id: str, assignment_id: str) -> bool: ...
    def remove_for_node(self, node_id: str) -> int: ...
    def remove_orphans(self, live_node_ids: Collection[str]) -> int: ...


@dataclass(frozen=True)
class NodeResources:
    """What a node container may use: its pool's VM size, capped to the machine.

    Attributes:
        cpus: CPUs the container sees (``nproc``) and may use (its CPU quota).
        memory_bytes: its memory limit (swap included: the node has no swap beyond it).
    """

    cpus: int
    memory_bytes: int


@dataclass(frozen=True)
class NodeStats:
    """Cumulative resource counters of one node container at one moment (from the engine's cgroup statistics).

    Attributes:
        cpu_seconds: CPU time used since the container started.
        memory_bytes: memory in use now.
        disk_read_bytes / disk_write_bytes / disk_read_ops / disk_write_ops: block I/O since the container started
            (``None`` when the engine reports none).
    """

    cpu_seconds: float
    memory_bytes: float
    disk_read_bytes: float | None = None
    disk_write_bytes: float | None = None
    disk_read_ops: float | None = None
    disk_write_ops: float | None = None


class StoreLike(Protocol):
    """What the runtime calls on the store (``batchbox.emulator.store.Store`` documents each method)."""

    runs: RunHistory
    schedules: ScheduleTable
    job_node_tasks: JobNodeTaskTable

    def transaction(self) -> AbstractContextManager[Any]: ...
    def insert_pool(self, doc: dict[str, Any]) -> bool: ...
    def get_pool(self, pool_id: str) -> dict[str, Any] | None: ...
    def list_pools(self) -> list[dict[str, Any]]: ...
    def update_pool(self, doc: dict[str, Any]) -> dict[str, Any]: ...
    def delete_pool(self, pool_id: str) -> None: ...
    def upsert_node(
        self, pool_id: str, doc: dict[str, Any], *, secret: str | None = None, container_id: str | None = None
    ) -> None: ...
    def get_node_secret(self, node_id: str) -> str | None: ...
    def get_secret(self, name: str) -> str | None: ...
    def find_secret(self, names: list[str]) -> str | None: ...
    def put_secret(self, name: str, value: str) -> None: ...
    def secret_names(self, prefix: str) -> list[str]: ...
    def delete_secrets(self, prefix: str) -> None: ...
    def copy_secrets(self, source_owner: str, target_owner: str) -> None: ...
    def meta_get(self, key: str) -> str | None: ...
    def meta_set(self, key: str, value: str) -> None: ...
    def meta_items(self, prefix: str) -> list[tuple[str, str]]: ...
    def get_node_container(self, node_id: str) -> str | None: ...
    def list_nodes(self, pool_id: str | None = None) -> list[dict[str, Any]]: ...
    def delete_node(self, node_id: str) -> None: ...
    def insert_job(self, doc: dict[str, Any]) -> bool: ...
    def get_job(self, job_id: str) -> dict[str, Any] | None: ...
    def list_jobs(self) -> list[dict[str, Any]]: ...
    def update_job(self, doc: dict[str, Any]) -> dict[str, Any]: ...
    def delete_job(self, job_id: str) -> None: ...
    def insert_tasks(self, job_id: str, docs: list[dict[str, Any]]) -> list[bool]: ...
    def get_task(self, job_id: str, task_id: str) -> dict[str, Any] | None: ...
    def update_task(self, job_id: str, doc: dict[str, Any]) -> dict[str, Any]: ...
    def update_tasks(self, job_id: str, docs: list[dict[str, Any]]) -> None: ...
    def delete_task(self, job_id: str, task_id: str) -> None: ...
    def put_subtasks(self, job_id: str, task_id: str, subtasks: list[dict[str, Any]]) -> None: ...
    def get_subtasks(self, job_id: str, task_id: str) -> list[dict[str, Any]]: ...
    def delete_subtasks(self, job_id: str, task_id: str) -> None: ...
    def list_tasks(
        self,
        job_id: str,
        *,
        states: Sequence[str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...
    def list_tasks_page(
        self,
        job_id: str,
        *,
        states: Sequence[str] | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]: ...
    def queued_tasks(self, job_id: str, limit: int = 1) -> list[tuple[str, int]]: ...
    def set_held(self, job_id: str, task_ids: Sequence[str], held: bool) -> None: ...
    def unfinished_tasks(self, job_id: str) -> int: ...
    def task_counts(self, job_id: str) -> dict[str, Any]: ...


class NodeDriverLike(Protocol):
    """The container side of the nodes (blocking calls; the runtime runs them in worker threads)."""

    def create_node(
        self,
        pool_id: str,
        node_id: str,
        secret: str,
        *,
        resources: NodeResources | None = None,
        wipe_root: bool = False,
    ) -> str: ...
    def remove_node(self, node_id: str) -> None: ...
    def list_nodes(self) -> Mapping[str, NodeContainer]: ...
    @property
    def task_containers(self) -> TaskContainersLike: ...
    def host_capacity(self) -> tuple[int, int]: ...
    def restart_node(self, node_id: str) -> None: ...
    def stop_node(self, node_id: str) -> None: ...
    def start_node(self, node_id: str) -> None: ...
    def exec_node(
        self, node_id: str, argv: Sequence[str], environment: Mapping[str, str] | None = None
    ) -> tuple[int, str]: ...
    def node_stats(self, node_id: str) -> NodeStats | None: ...
