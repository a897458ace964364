"""Batch-shaped descriptions of the work: pools, start tasks, jobs, tasks and their files.

These are plain frozen dataclasses that depend on no SDK. Backends map them to their own models. Ids are
checked here, on construction, so a bad id fails before any call reaches a service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from batchbox.core.ids import validate_id
from batchbox.core.states import (
    AllocationState,
    ComputeNodeState,
    ElevationLevel,
    NodeFillType,
    OnAllTasksComplete,
    OutputFileUploadCondition,
    PoolState,
    TaskExecutionResult,
    TaskState,
)

__all__ = [
    "ComputeNodeInfo",
    "EnvironmentSetting",
    "FailureInfo",
    "ImageReference",
    "JobConstraints",
    "JobSpec",
    "OutputFile",
    "PoolInfo",
    "PoolSpec",
    "ResizeError",
    "ResourceFile",
    "StartTask",
    "TaskConstraints",
    "TaskCounts",
    "TaskInfo",
    "TaskSpec",
]


@dataclass(frozen=True)
class EnvironmentSetting:
    """One environment variable given to a task."""

    name: str
    value: str = ""

    def __post_init__(self) -> None:
        if not self.name or "=" in self.name or "\0" in self.name:
            raise ValueError(f"invalid environment variable name {self.name!r}")


@dataclass(frozen=True)
class ResourceFile:
    """A file (or a container's blobs) downloaded into the task's working directory before it runs.

    Exactly one of ``http_url`` and ``storage_container_url`` is set. With ``http_url``, ``file_path`` is the
    file's path relative to the working directory; with ``storage_container_url`` (a SAS allowing read and
    list), ``file_path`` is a directory and ``blob_prefix`` filters the blobs.
    """

    file_path: str | None = None
    http_url: str | None = None
    storage_container_url: str | None = None
    blob_prefix: str | None = None
    file_mode: str | None = None

    def __post_init__(self) -> None:
        if (self.http_url is None) == (self.storage_container_url is None):
            raise ValueError("a resource file needs exactly one of http_url and storage_container_url")
        if self.http_url is not None and not self.file_path:
            raise ValueError("a resource file with http_url needs file_path")
        if self.file_mode is not None and not _is_octal_mode(self.file_mode):
            raise ValueError(f"invalid file_mode {self.file_mode!r}: use an octal mode such as '0644'")


def _is_octal_mode(text: str) -> bool:
    return 1 <= len(text) <= 4 and all(ch in "01234567" for ch in text)


@dataclass(frozen=True)
class OutputFile:
    """Files matched by ``file_pattern`` (relative to the working dir) uploaded after the task ends.

    ``container_url`` is a container SAS allowing create and write; ``path`` is the blob name (for a single
    file) or a virtual directory (for a pattern with wildcards).
    """

    file_pattern: str
    container_url: str
    path: str | None = None
    upload_condition: OutputFileUploadCondition = OutputFileUploadCondition.TASK_COMPLETION

    def __post_init__(self) -> None:
        if not self.file_pattern:
            raise ValueError("an output file needs a file_pattern")


def _check_limits(max_wall_clock_time: timedelta | None, max_task_retry_count: int | None) -> None:
    if max_task_retry_count is not None and max_task_retry_count < -1:
        raise ValueError("max_task_retry_count must be -1 (unlimited) or >= 0")
    if max_wall_clock_time is not None and max_wall_clock_time <= timedelta(0):
        raise ValueError("max_wall_clock_time must be positive")


@dataclass(frozen=True)
class TaskConstraints:
    """Limits of one task. ``max_task_retry_count`` -1 means unlimited."""

    max_wall_clock_time: timedelta | None = None
    max_task_retry_count: int | None = None
    retention_time: timedelta | None = None

    def __post_init__(self) -> None:
        _check_limits(self.max_wall_clock_time, self.max_task_retry_count)


@dataclass(frozen=True)
class JobConstraints:
    """Limits of a job: ``max_wall_clock_time`` bounds the whole job; ``max_task_retry_count`` is the default of
    its tasks (-1 means unlimited)."""

    max_wall_clock_time: timedelta | None = None
    max_task_retry_count: int | None = None

    def __post_init__(self) -> None:
        _check_limits(self.max_wall_clock_time, self.max_task_retry_count)


@dataclass(frozen=True)
class StartTask:
    """The command every node of a pool runs when it joins, before it takes tasks."""

    command_line: str
    resource_files: tuple[ResourceFile, ...] = ()
    environment: tuple[EnvironmentSetting, ...] = ()
    elevation: ElevationLevel = ElevationLevel.NON_ADMIN
    max_task_retry_count: int = 0
    wait_for_success: bool = True


@dataclass(frozen=True)
class ImageReference:
    """The marketplace image of a pool's nodes (recorded locally; every image maps to the local node image)."""

    publisher: str = "canonical"
    offer: str = "0001-com-ubuntu-server-jammy"
    sku: str = "22_04-lts"
    version: str = "latest"
    node_agent_sku_id: str = "batch.node.ubuntu 22.04"


@dataclass(frozen=True)
class PoolSpec:
    """What a pool should look like."""

    id: str
    vm_size: str = "standard_d2s_v3"
    dedicated_nodes: int = 1
    low_priority_nodes: int = 0
    task_slots_per_node: int = 1
    node_fill_type: NodeFillType = NodeFillType.SPREAD
    start_task: StartTask | None = None
    image: ImageReference = field(default_factory=ImageReference)
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        validate_id("pool", self.id)
        if self.dedicated_nodes < 0 or self.low_priority_nodes < 0:
            raise ValueError(f"pool '{self.id}': node counts cannot be negative")
        if self.task_slots_per_node < 1:
            raise ValueError(f"pool '{self.id}': task_slots_per_node must be >= 1")


@dataclass(frozen=True)
class JobSpec:
    """A job bound to a pool; its environment settings are common to all its tasks."""

    id: str
    pool_id: str
    priority: int = 0
    constraints: JobConstraints = field(default_factory=JobConstraints)
    environment: tuple[EnvironmentSetting, ...] = ()
    on_all_tasks_complete: OnAllTasksComplete = OnAllTasksComplete.NO_ACTION
    display_name: str | None = None

    def __post_init__(self) -> None:
        validate_id("job", self.id)
        validate_id("pool", self.pool_id)
        if not -1000 <= self.priority <= 1000:
            raise ValueError(f"job '{self.id}': priority must be between -1000 and 1000")


@dataclass(frozen=True)
class TaskSpec:
    """One command to run on a node. The command line is not run in a shell: wrap it in ``/bin/sh -c``."""

    id: str
    command_line: str
    resource_files: tuple[ResourceFile, ...] = ()
    output_files: tuple[OutputFile, ...] = ()
    environment: tuple[EnvironmentSetting, ...] = ()
    constraints: TaskConstraints = field(default_factory=TaskConstraints)
    elevation: ElevationLevel = ElevationLevel.NON_ADMIN
    required_slots: int = 1
    display_name: str | None = None

    def __post_init__(self) -> None:
        validate_id("task", self.id)
        if not self.command_line.strip():
            raise ValueError(f"task '{self.id}': command_line is empty")
        if self.required_slots < 1:
            raise ValueError(f"task '{self.id}': required_slots must be >= 1")


@dataclass(frozen=True)
class FailureInfo:
    """Why a task (or start task) failed, as Batch reports it."""

    category: str
    code: str | None
    message: str | None


@dataclass(frozen=True)
class TaskInfo:
    """What a backend knows about one task."""

    id: str
    state: TaskState
    exit_code: int | None = None
    result: TaskExecutionResult | None = None
    failure: FailureInfo | None = None
    retry_count: int = 0
    requeue_count: int = 0
    node_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def failed(self) -> bool:
        """True when the task completed and did not succeed."""
        return self.state is TaskState.COMPLETED and self.result is TaskExecutionResult.FAILURE


@dataclass(frozen=True)
class TaskCounts:
    """Task counts of a job, as the task-counts call returns them (``running`` includes preparing)."""

    active: int = 0
    running: int = 0
    completed: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.active + self.running + self.completed


@dataclass(frozen=True)
class ComputeNodeInfo:
    """One node of a pool. ``errors`` are the node's own errors as Batch reports them (``code: message``)."""

    id: str
    state: ComputeNodeState
    start_task_failure: FailureInfo | None = None
    running_tasks: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResizeError:
    """Why the last resize of a pool did not reach its target (Batch sets these once the pool is ``steady``).

    ``code`` is Batch's (``AccountCoreQuotaReached``, ``AccountVMSeriesCoreQuotaReached``, ``AllocationFailed``,
    ...); ``values`` are its details as name/value pairs.
    """

    code: str
    message: str
    values: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        details = "; ".join(f"{name}: {value}" for name, value in self.values)
        return f"{self.code}: {self.message}" + (f" ({details})" if details else "")


@dataclass(frozen=True)
class PoolInfo:
    """What a backend knows about a pool."""

    id: str
    vm_size: str
    state: PoolState
    allocation_state: AllocationState
    target_dedicated_nodes: int
    current_dedicated_nodes: int
    task_slots_per_node: int
    resize_errors: tuple[ResizeError, ...] = ()
