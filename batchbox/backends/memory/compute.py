"""ComputeBackend in one Python process: nodes are directories, tasks are local processes.

Requests take effect at once: a pool has its nodes as soon as it is created or resized (the start task then runs
on each), a deleted pool or job is gone when the call returns, a terminated job is completed. What the tasks do
takes the time their processes take. Errors are the ones the Azure backend raises for the same faults.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from batchbox.backends.memory._cluster import Cluster
from batchbox.backends.memory._records import JobRecord, PoolRecord, TaskRecord, utc_now
from batchbox.backends.memory._sas import is_memory_url
from batchbox.backends.memory.storage import DEFAULT_ACCOUNT, MemoryStorage
from batchbox.core.compute import AddTasksResult, ComputeBackend
from batchbox.core.errors import InvalidRequestError, ResourceExistsError, ResourceNotFoundError
from batchbox.core.models import (
    ComputeNodeInfo,
    JobSpec,
    PoolInfo,
    PoolSpec,
    StartTask,
    TaskCounts,
    TaskInfo,
    TaskSpec,
)
from batchbox.core.states import JobState, TaskExecutionResult, TaskState

__all__ = ["MAX_TASK_SLOTS_PER_NODE", "MemoryCompute"]

MAX_TASK_SLOTS_PER_NODE = 256
"""Batch's upper bound of ``taskSlotsPerNode`` (the emulator's too)."""


def _check_url(task_id: str, what: str, url: str) -> None:
    if not (is_memory_url(url) or url.startswith(("http://", "https://"))):
        raise InvalidRequestError("task", task_id, f"task '{task_id}': {what} {url.split('?')[0]!r} is not a URL")


def _check_task(task: TaskSpec) -> None:
    for resource in task.resource_files:
        _check_url(task.id, "resource file URL", resource.http_url or resource.storage_container_url or "")
    for output in task.output_files:
        _check_url(task.id, "output container URL", output.container_url)


class MemoryCompute(ComputeBackend):
    """Pools, jobs and tasks run on this machine by this process, for tests.

    Args:
        storage: the storage whose ``memory://`` SAS URLs tasks may read from and write to.
        root: where node directories are made (it must exist; it is left in place by :meth:`close`).
        account_name: the account name tasks see.
    """

    def __init__(self, storage: MemoryStorage, root: Path, *, account_name: str = DEFAULT_ACCOUNT) -> None:
        self._cluster = Cluster(storage, Path(root), account_name)
        self._lock = self._cluster.lock

    # -- lookups (call with the lock held) -------------------------------------------------------------------

    def _pool(self, pool_id: str) -> PoolRecord:
        pool = self._cluster.pools.get(pool_id.lower())
        if pool is None:
            raise ResourceNotFoundError("pool", pool_id)
        return pool

    def _job(self, job_id: str) -> JobRecord:
        job = self._cluster.jobs.get(job_id.lower())
        if job is None:
            raise ResourceNotFoundError("job", job_id)
        return job

    def _task(self, job_id: str, task_id: str) -> tuple[JobRecord, TaskRecord]:
        job = self._job(job_id)
        task = job.tasks.get(task_id.lower())
        if task is None:
            raise ResourceNotFoundError("task", task_id)
        return job, task

    # -- pools ---------------------------------------------------------------------------------------------

    def create_pool(self, spec: PoolSpec) -> None:
        if spec.task_slots_per_node > MAX_TASK_SLOTS_PER_NODE:
            raise InvalidRequestError(
                "pool",
                spec.id,
                f"the request about pool '{spec.id}' was rejected: InvalidPropertyValue (taskSlotsPerNode="
                f"{spec.task_slots_per_node}; at most {MAX_TASK_SLOTS_PER_NODE})",
            )
        with self._lock:
            if spec.id.lower() in self._cluster.pools:
                raise ResourceExistsError("pool", spec.id)
            pool = PoolRecord(spec, spec.dedicated_nodes, spec.low_priority_nodes)
            self._cluster.pools[spec.id.lower()] = pool
            self._cluster.resize(pool)

    def get_pool(self, pool_id: str) -> PoolInfo:
        with self._lock:
            return self._pool(pool_id).info()

    def pool_exists(self, pool_id: str) -> bool:
        with self._lock:
            return pool_id.lower() in self._cluster.pools

    def list_pools(self) -> list[PoolInfo]:
        with self._lock:
            return [pool.info() for pool in self._cluster.pools.values()]

    def resize_pool(self, pool_id: str, dedicated_nodes: int) -> None:
        if dedicated_nodes < 0:
            raise ValueError(f"pool '{pool_id}': dedicated_nodes cannot be negative")
        with self._lock:
            pool = self._pool(pool_id)
            pool.dedicated_target = dedicated_nodes
            self._cluster.resize(pool)

    def update_start_task(self, pool_id: str, start_task: StartTask) -> None:
        with self._lock:
            pool = self._pool(pool_id)
            pool.spec = dataclasses.replace(pool.spec, start_task=start_task)

    def delete_pool(self, pool_id: str) -> None:
        with self._lock:
            pool = self._cluster.pools.pop(pool_id.lower(), None)
            if pool is None:
                return
            for node in list(pool.nodes.values()):
                self._cluster.remove_node(pool, node)
            self._cluster.dispatch()

    def list_nodes(self, pool_id: str) -> list[ComputeNodeInfo]:
        with self._lock:
            return [node.info() for node in self._pool(pool_id).nodes.values()]

    # -- jobs ----------------------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec) -> None:
        with self._lock:
            if spec.id.lower() in self._cluster.jobs:
                raise ResourceExistsError("job", spec.id)
            job = JobRecord(spec, next(self._cluster.sequence))
            self._cluster.jobs[spec.id.lower()] = job
            limit = spec.constraints.max_wall_clock_time
            if limit is not None:
                job.deadline_timer = threading.Timer(limit.total_seconds(), self._cluster.expire_job, (job,))
                job.deadline_timer.daemon = True
                job.deadline_timer.start()

    def list_jobs(self) -> list[tuple[str, JobState]]:
        with self._lock:
            return [(job.spec.id, job.state) for job in self._cluster.jobs.values()]

    def job_exists(self, job_id: str) -> bool:
        with self._lock:
            return job_id.lower() in self._cluster.jobs

    def job_state(self, job_id: str) -> JobState:
        with self._lock:
            return self._job(job_id).state

    def terminate_job(self, job_id: str) -> None:
        with self._lock:
            self._cluster.end_job(self._job(job_id), "UserTerminate")
            self._cluster.dispatch()

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            job = self._cluster.jobs.pop(job_id.lower(), None)
            if job is None:
                return
            if job.deadline_timer is not None:
                job.deadline_timer.cancel()
            for task in job.tasks.values():
                if task.run is not None:
                    task.run.cancel()
            self._cluster.dispatch()

    # -- tasks ---------------------------------------------------------------------------------------------

    def add_tasks(self, job_id: str, tasks: Sequence[TaskSpec], *, max_concurrency: int = 4) -> AddTasksResult:
        seen: set[str] = set()
        for task in tasks:
            if task.id.lower() in seen:
                raise InvalidRequestError("task", task.id, f"task '{task.id}' is given twice for job '{job_id}'")
            seen.add(task.id.lower())
            _check_task(task)
        added: list[str] = []
        existed: list[str] = []
        with self._lock:
            job = self._job(job_id)
            if job.state is not JobState.ACTIVE:
                raise InvalidRequestError(
                    "job", job_id, f"job '{job_id}' is {job.state.value}: no task can be added (JobCompleted)"
                )
            for task in tasks:
                key = task.id.lower()
                if key in job.tasks:
                    existed.append(task.id)
                    continue
                job.tasks[key] = TaskRecord.new(task, job.spec.id)
                job.queue[key] = None
                added.append(task.id)
            self._cluster.dispatch()
        return AddTasksResult(added=tuple(added), already_existed=tuple(existed))

    def task_counts(self, job_id: str) -> TaskCounts:
        with self._lock:
            states = [(task.info.state, task.info.result) for task in self._job(job_id).tasks.values()]
        completed = [result for state, result in states if state is TaskState.COMPLETED]
        return TaskCounts(
            active=sum(1 for state, _ in states if state is TaskState.ACTIVE),
            running=sum(1 for state, _ in states if state in (TaskState.PREPARING, TaskState.RUNNING)),
            completed=len(completed),
            succeeded=sum(1 for result in completed if result is TaskExecutionResult.SUCCESS),
            failed=sum(1 for result in completed if result is TaskExecutionResult.FAILURE),
        )

    def list_tasks(self, job_id: str, *, state: TaskState | None = None, failed_only: bool = False) -> list[TaskInfo]:
        with self._lock:
            infos = [task.info for task in self._job(job_id).tasks.values()]
        return [info for info in infos if (state is None or info.state is state) and (not failed_only or info.failed)]

    def get_task(self, job_id: str, task_id: str) -> TaskInfo:
        with self._lock:
            return self._task(job_id, task_id)[1].info

    def read_task_file(self, job_id: str, task_id: str, path: str) -> bytes:
        with self._lock:
            job, task = self._task(job_id, task_id)
            directory, node = task.directory, task.node
            expired = task.retention_expired(utc_now())
        about = f"file '{path}' of task '{task.spec.id}' of job '{job.spec.id}'"
        if directory is not None and expired:  # Batch deletes the directory once the retention time is over
            shutil.rmtree(directory, ignore_errors=True)
        if directory is None or expired or (node is not None and node.removed):
            raise ResourceNotFoundError("file", path, f"{about} does not exist (the task's directory is gone)")
        target = (directory / path).resolve()
        if not target.is_relative_to(directory.resolve()):
            raise InvalidRequestError("file", path, f"{about} is outside the task directory")
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ResourceNotFoundError("file", path, f"{about} does not exist") from None

    def terminate_task(self, job_id: str, task_id: str) -> None:
        with self._lock:
            job, task = self._task(job_id, task_id)
            if task.state is TaskState.COMPLETED:
                return
            self._cluster.end_task(job, task, "the task was terminated by a terminate task request")
            self._cluster.check_job_end(job)
            self._cluster.dispatch()

    # -- lifetime ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every task process still running and wait for them to end."""
        self._cluster.close()
