"""The compute contract: pools of nodes, jobs and tasks, as Azure Batch shapes them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchbox.core.errors import PoolAllocationError, StartTaskFailedError
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
from batchbox.core.polling import FIRST_POLL_DELAY, poll_until, wait_until_gone
from batchbox.core.states import AllocationState, ComputeNodeState, JobState, TaskState

__all__ = ["FIRST_POLL_DELAY", "AddTasksResult", "ComputeBackend"]


@dataclass(frozen=True)
class AddTasksResult:
    """Outcome of a bulk task submission: tasks newly added, and tasks that already existed (a rerun)."""

    added: tuple[str, ...]
    already_existed: tuple[str, ...]


class ComputeBackend(ABC):
    """Pools, jobs and tasks. Both the Azure Batch service and the local emulator are driven through it.

    Every method raises :class:`~batchbox.core.errors.BackendUnavailableError` when the service does not answer
    and :class:`~batchbox.core.errors.AuthenticationError` when the credential is refused.
    """

    @abstractmethod
    def create_pool(self, spec: PoolSpec) -> None:
        """Create a pool.

        Raises:
            ResourceExistsError: a pool with that id exists.
            InvalidRequestError: the service rejected the specification.
        """

    @abstractmethod
    def get_pool(self, pool_id: str) -> PoolInfo:
        """Return a pool's state.

        Raises:
            ResourceNotFoundError: no such pool.
        """

    @abstractmethod
    def pool_exists(self, pool_id: str) -> bool:
        """True when the pool exists (in any state but deleting)."""

    @abstractmethod
    def list_pools(self) -> list[PoolInfo]:
        """Every pool of the account (not those being deleted)."""

    @abstractmethod
    def resize_pool(self, pool_id: str, dedicated_nodes: int) -> None:
        """Ask for a new number of dedicated nodes.

        Raises:
            ResourceNotFoundError: no such pool.
        """

    @abstractmethod
    def update_start_task(self, pool_id: str, start_task: StartTask) -> None:
        """Replace the pool's start task (for nodes that join, restart or are reimaged from now on).

        Raises:
            ResourceNotFoundError: no such pool.
        """

    @abstractmethod
    def delete_pool(self, pool_id: str) -> None:
        """Delete a pool; does nothing when it does not exist."""

    @abstractmethod
    def list_nodes(self, pool_id: str) -> list[ComputeNodeInfo]:
        """The nodes of a pool with their states.

        Raises:
            ResourceNotFoundError: no such pool.
        """

    @abstractmethod
    def create_job(self, spec: JobSpec) -> None:
        """Create a job on its pool.

        Raises:
            ResourceExistsError: a job with that id exists.
        """

    @abstractmethod
    def list_jobs(self) -> list[tuple[str, JobState]]:
        """Every job of the account as ``(id, state)`` pairs."""

    @abstractmethod
    def job_exists(self, job_id: str) -> bool:
        """True when the job exists and is not being deleted."""

    @abstractmethod
    def job_state(self, job_id: str) -> JobState:
        """The job's state.

        Raises:
            ResourceNotFoundError: no such job.
        """

    @abstractmethod
    def terminate_job(self, job_id: str) -> None:
        """Terminate a job, stopping its running tasks; does nothing when it is already completed."""

    @abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Delete a job and its tasks; does nothing when it does not exist."""

    @abstractmethod
    def add_tasks(self, job_id: str, tasks: Sequence[TaskSpec], *, max_concurrency: int = 4) -> AddTasksResult:
        """Add tasks in chunks of at most 100, concurrently. A task that already exists counts as added before.

        Raises:
            ResourceNotFoundError: no such job.
            InvalidRequestError: the service refused a task (the error names it).
        """

    @abstractmethod
    def task_counts(self, job_id: str) -> TaskCounts:
        """Task counts of a job in ONE request, whatever the number of tasks.

        Raises:
            ResourceNotFoundError: no such job.
        """

    @abstractmethod
    def list_tasks(self, job_id: str, *, state: TaskState | None = None, failed_only: bool = False) -> list[TaskInfo]:
        """List a job's tasks, filtered on the server.

        Raises:
            ResourceNotFoundError: no such job.
        """

    @abstractmethod
    def get_task(self, job_id: str, task_id: str) -> TaskInfo:
        """One task's state.

        Raises:
            ResourceNotFoundError: no such job or task (``kind`` says which).
        """

    @abstractmethod
    def read_task_file(self, job_id: str, task_id: str, path: str) -> bytes:
        """A file of a task's directory on its node, e.g. ``stdout.txt``, ``stderr.txt`` or ``wd/out.txt``.

        Raises:
            ResourceNotFoundError: the task or the file does not exist.
        """

    @abstractmethod
    def terminate_task(self, job_id: str, task_id: str) -> None:
        """Stop a task; it completes with failure information."""

    def wait_for_nodes(
        self,
        pool_id: str,
        *,
        timeout: float = 900.0,
        poll_interval: float = 1.0,
        on_poll: Callable[[list[ComputeNodeInfo]], None] | None = None,
    ) -> list[ComputeNodeInfo]:
        """Wait until the pool has at least one usable node and every node has settled.

        Each poll reads the pool (its target, allocation state and resize errors) and lists its nodes. A pool
        that is ``steady`` with resize errors gets no more nodes: the wait ends with what it has.

        Args:
            pool_id: the pool.
            timeout: seconds to wait before giving up.
            poll_interval: the longest wait between two polls (they start :data:`FIRST_POLL_DELAY` apart).
            on_poll: called with the node list after every poll (progress display).

        Returns:
            The usable nodes (idle or running); fewer than the target when the pool's resize fell short.

        Raises:
            StartTaskFailedError: no node is usable and some nodes failed their start task (names them).
            PoolAllocationError: no node is usable and the pool's resize failed (its resize error codes and
                messages: core quota, allocation failure, ...).
            WaitTimeoutError: the nodes did not settle in time.
        """

        def probe() -> tuple[PoolInfo, list[ComputeNodeInfo]]:
            pool = self.get_pool(pool_id)
            nodes = self.list_nodes(pool_id)
            if on_poll is not None:
                on_poll(nodes)
            return pool, nodes

        def ready(seen: tuple[PoolInfo, list[ComputeNodeInfo]]) -> bool:
            pool, nodes = seen
            usable = any(n.state.is_usable for n in nodes)
            fell_short = pool.allocation_state is AllocationState.STEADY and bool(pool.resize_errors)
            settled = all(n.state.is_settled for n in nodes) and (
                len(nodes) >= pool.target_dedicated_nodes or fell_short
            )
            if settled and not usable:
                failed = {n.id: _start_task_failure(n) for n in nodes if n.state is ComputeNodeState.START_TASK_FAILED}
                if failed:
                    raise StartTaskFailedError(pool_id, failed)
                if fell_short:
                    raise PoolAllocationError(pool_id, [(e.code, e.message) for e in pool.resize_errors])
            return usable and settled

        def too_late(seen: tuple[PoolInfo, list[ComputeNodeInfo]]) -> str:
            pool, nodes = seen
            states = ", ".join(f"{n.id}={n.state.value}" for n in nodes) or "no nodes"
            return (
                f"pool '{pool_id}' has no usable node after {timeout:.0f} s "
                f"({states}; allocation {pool.allocation_state.value})"
            )

        _, nodes = poll_until(probe, ready, timeout=timeout, poll_interval=poll_interval, timeout_message=too_late)
        return [n for n in nodes if n.state.is_usable]

    def wait_for_steady(self, pool_id: str, *, timeout: float = 900.0, poll_interval: float = 1.0) -> PoolInfo:
        """Wait until the pool's allocation state is ``steady`` (Batch refuses to resize a pool while it resizes).

        Raises:
            ResourceNotFoundError: no such pool.
            WaitTimeoutError: the pool is still resizing after ``timeout`` seconds.
        """
        return poll_until(
            lambda: self.get_pool(pool_id),
            lambda pool: pool.allocation_state is AllocationState.STEADY,
            timeout=timeout,
            poll_interval=poll_interval,
            timeout_message=lambda pool: (
                f"pool '{pool_id}' is still {pool.allocation_state.value} after {timeout:.0f} s"
            ),
        )

    def wait_for_pool_deleted(self, pool_id: str, *, timeout: float = 900.0, poll_interval: float = 2.0) -> None:
        """Wait until the pool is gone (Batch deletes pools asynchronously: ``deleting`` first, then not found).

        Raises:
            WaitTimeoutError: the pool still exists after ``timeout`` seconds.
        """
        wait_until_gone(
            "pool", pool_id, lambda: self.get_pool(pool_id).state, timeout=timeout, poll_interval=poll_interval
        )

    def wait_for_job_deleted(self, job_id: str, *, timeout: float = 300.0, poll_interval: float = 1.0) -> None:
        """Wait until the job is gone (it stays ``deleting`` while its tasks are stopped).

        Raises:
            WaitTimeoutError: the job still exists after ``timeout`` seconds.
        """
        wait_until_gone("job", job_id, lambda: self.job_state(job_id), timeout=timeout, poll_interval=poll_interval)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default does nothing."""


def _start_task_failure(node: ComputeNodeInfo) -> str:
    failure = node.start_task_failure
    return (failure.message or failure.code or "start task failed") if failure else "start task failed"
