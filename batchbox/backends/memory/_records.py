"""The in-memory compute's state: pools, nodes, jobs and tasks as mutable records, and their core views.

Ids are matched without regard to case, as Batch does: the dictionaries holding records are keyed by the
lower-cased id, and each record keeps the id as it was given.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from batchbox.core.models import ComputeNodeInfo, FailureInfo, JobSpec, PoolInfo, PoolSpec, TaskInfo, TaskSpec
from batchbox.core.states import AllocationState, ComputeNodeState, JobState, PoolState, TaskState

__all__ = ["JobRecord", "NodeRecord", "PoolRecord", "Run", "TaskRecord", "utc_now"]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


class Run:
    """One run of a task or a start task on a node: lets another thread kill its process or stop it starting."""

    def __init__(self, node: NodeRecord, slots: int, task: TaskRecord | None = None) -> None:
        self.node = node
        self.slots = slots
        self.task = task
        self.cancelled = False
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def attach(self, process: subprocess.Popen[bytes]) -> bool:
        """Record the started process; False (and the process killed) when the run was cancelled first."""
        with self._lock:
            self._process = process
            if self.cancelled:
                _kill_group(process)
                return False
            return True

    def cancel(self) -> None:
        """Kill the process group now, or make the process never start."""
        with self._lock:
            self.cancelled = True
            if self._process is not None:
                _kill_group(self._process)

    def kill(self) -> None:
        """Kill the process group (a wall-clock limit): the run still completes normally, as a failure."""
        with self._lock:
            if self._process is not None:
                _kill_group(self._process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class NodeRecord:
    """One node: a directory standing for its disk, and the runs it holds."""

    id: str
    pool_id: str
    dedicated: bool
    root: Path
    state: ComputeNodeState = ComputeNodeState.STARTING
    start_task_failure: FailureInfo | None = None
    runs: list[Run] = field(default_factory=list)
    removed: bool = False

    @property
    def used_slots(self) -> int:
        return sum(run.slots for run in self.runs if run.task is not None)

    def info(self) -> ComputeNodeInfo:
        running = sum(1 for run in self.runs if run.task is not None)
        state = self.state
        if state is ComputeNodeState.IDLE and running:
            state = ComputeNodeState.RUNNING
        return ComputeNodeInfo(self.id, state, self.start_task_failure, running)


@dataclass
class PoolRecord:
    """A pool and its nodes (keyed by node id)."""

    spec: PoolSpec
    dedicated_target: int
    low_priority_target: int
    created: datetime = field(default_factory=utc_now)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)

    def info(self) -> PoolInfo:
        return PoolInfo(
            id=self.spec.id,
            vm_size=self.spec.vm_size,
            state=PoolState.ACTIVE,
            allocation_state=AllocationState.STEADY,
            target_dedicated_nodes=self.dedicated_target,
            current_dedicated_nodes=sum(1 for node in self.nodes.values() if node.dedicated),
            task_slots_per_node=self.spec.task_slots_per_node,
        )


@dataclass
class TaskRecord:
    """A task: what was asked (``spec``), what is reported (``info``) and where it runs."""

    spec: TaskSpec
    job_id: str
    info: TaskInfo
    node: NodeRecord | None = None
    directory: Path | None = None
    run: Run | None = None

    @classmethod
    def new(cls, spec: TaskSpec, job_id: str) -> TaskRecord:
        """A task just added: active, never run."""
        return cls(spec, job_id, TaskInfo(id=spec.id, state=TaskState.ACTIVE))

    @property
    def state(self) -> TaskState:
        return self.info.state

    def report(self, **changes: Any) -> None:
        """Change what is reported about the task (fields of :class:`~batchbox.core.models.TaskInfo`)."""
        self.info = replace(self.info, **changes)

    def retention_expired(self, now: datetime) -> bool:
        """True when the task completed longer ago than its ``retention_time``."""
        retention = self.spec.constraints.retention_time
        end = self.info.end_time
        return retention is not None and end is not None and now - end >= retention


@dataclass
class JobRecord:
    """A job and its tasks (keyed by lower-cased task id, in the order they were added); ``sequence`` orders jobs
    of the same priority by age."""

    spec: JobSpec
    sequence: int
    state: JobState = JobState.ACTIVE
    created: datetime = field(default_factory=utc_now)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    queue: dict[str, None] = field(default_factory=dict)
    """Active tasks waiting for a slot, in the order they run (an ordered set of lower-cased ids)."""
    deadline_timer: threading.Timer | None = None

    def retry_limit(self, task: TaskRecord) -> int:
        """The task's ``max_task_retry_count``, else the job's, else 0 (-1: unlimited)."""
        own = task.spec.constraints.max_task_retry_count
        if own is not None:
            return own
        return self.spec.constraints.max_task_retry_count or 0

    def wall_clock(self) -> timedelta | None:
        return self.spec.constraints.max_wall_clock_time
