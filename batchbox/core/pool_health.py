"""Whether a pool can still run a job's waiting tasks, and how to say why not.

Task counts alone cannot tell a queue that moves slowly from one that never will: when every node of the pool is
``unusable``, ``starttaskfailed`` or ``preempted``, or the pool is gone, tasks stay ``active`` for ever. The
workflow's monitor asks :class:`NodeWatch` every so often, while tasks wait and none runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from batchbox.core.compute import ComputeBackend
from batchbox.core.errors import NoNodeCanRunError, ResourceNotFoundError
from batchbox.core.models import ComputeNodeInfo, PoolInfo, TaskCounts
from batchbox.core.states import AllocationState, ComputeNodeState, PoolState

__all__ = ["NodeWatch", "describe_node", "may_run_tasks", "why_nothing_can_run"]

_NEVER_AGAIN = frozenset(
    {
        ComputeNodeState.START_TASK_FAILED,
        ComputeNodeState.UNUSABLE,
        ComputeNodeState.OFFLINE,
        ComputeNodeState.PREEMPTED,
        ComputeNodeState.LEAVING_POOL,
        ComputeNodeState.DEALLOCATED,
        ComputeNodeState.DEALLOCATING,
    }
)


def may_run_tasks(state: ComputeNodeState) -> bool:
    """True when a node in ``state`` runs tasks, or may without outside action (it is still starting, say)."""
    return state not in _NEVER_AGAIN


def describe_node(node: ComputeNodeInfo) -> str:
    """``starttaskfailed (BlobNotFound: ...)``: the node's state and what Batch says went wrong on it."""
    details: list[str] = []
    failure = node.start_task_failure
    if failure is not None and node.state is ComputeNodeState.START_TASK_FAILED:
        details.append(": ".join(part for part in (failure.code, failure.message) if part) or "start task failed")
    details.extend(node.errors)
    return node.state.value + (f" ({'; '.join(details)})" if details else "")


def why_nothing_can_run(pool: PoolInfo, nodes: list[ComputeNodeInfo]) -> str | None:
    """Why no node of ``pool`` can run tasks, or None when some node can (or may soon: the pool still resizes)."""
    if pool.state is PoolState.DELETING:
        return "the pool is being deleted"
    if any(may_run_tasks(node.state) for node in nodes) or pool.allocation_state is not AllocationState.STEADY:
        return None
    if nodes:
        parts = ["its nodes are " + ", ".join(f"{node.id} {describe_node(node)}" for node in nodes)]
    else:
        parts = [f"it has no nodes (target {pool.target_dedicated_nodes})"]
    if pool.resize_errors:
        parts.append("resize errors: " + "; ".join(str(error) for error in pool.resize_errors))
    return "; ".join(parts)


class NodeWatch:
    """Looks at a pool's nodes at most every ``interval`` seconds while a job's tasks wait and none runs.

    The verdict "nothing can run" must hold at two looks in a row (nodes pass through ``unusable`` while they
    are replaced), and then :meth:`check` raises.

    Args:
        compute: the backend.
        pool_id / job_id: the job's pool, and the job (named in the error).
        interval: seconds between two looks.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        compute: ComputeBackend,
        pool_id: str,
        job_id: str,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.compute = compute
        self.pool_id = pool_id
        self.job_id = job_id
        self.interval = interval
        self._clock = clock
        self._next_look = clock() + interval
        self._suspect: str | None = None
        self.looks = 0

    def check(self, counts: TaskCounts) -> None:
        """Look at the nodes when it is time and ``counts`` show waiting tasks and none running.

        Raises:
            NoNodeCanRunError: two looks in a row found no node able to run tasks (states and errors named),
                or the pool gone.
        """
        if counts.active == 0 or counts.running > 0:
            self._suspect = None
            return
        now = self._clock()
        if now < self._next_look:
            return
        self._next_look = now + self.interval
        self.looks += 1
        why, states = self._look()
        if why is None:
            self._suspect = None
            return
        if self._suspect is None:
            self._suspect = why
            return
        raise NoNodeCanRunError(self.pool_id, self.job_id, f"{why} ({counts.active} task(s) waiting)", states)

    def _look(self) -> tuple[str | None, dict[str, str]]:
        try:
            pool = self.compute.get_pool(self.pool_id)
            nodes = self.compute.list_nodes(self.pool_id)
        except ResourceNotFoundError as exc:
            if exc.kind != "pool":
                raise
            return "the pool no longer exists", {}
        return why_nothing_can_run(pool, nodes), {node.id: describe_node(node) for node in nodes}
