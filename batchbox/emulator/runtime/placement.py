"""Where a queued task goes (pure): the order of a pool's jobs and the node chosen for one task.

* Jobs: highest ``priority`` first. Among equal priorities the pool's ``taskSchedulingPolicy.jobDefaultOrder``
  decides: ``creationtime`` takes the older job first; ``none`` (Batch's default) lets them take turns, the job that
  was given a slot least recently first.
* Nodes: the node must have the slots the task occupies (``requiredSlots``; a job manager with ``runExclusive``
  takes a whole node), must not be one where the job's preparation task failed, and must be dedicated for a job
  manager with ``allowLowPriorityNode`` false. A task's ``affinityInfo`` names the node it prefers: that node when it
  has room, else the pool's ``nodeFillType`` (``spread``: most free slots; ``pack``: fewest that still fit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from batchbox.emulator.runtime.model import JobRuntime, ManagerSettings, NodeRuntime, PoolRuntime

__all__ = ["choose_node", "job_order_key", "manager_settings", "occupancy"]


def manager_settings(spec: object) -> ManagerSettings | None:
    """The scheduling flags of a job's ``jobManagerTask`` (``None`` when the job has none)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
        return None
    return ManagerSettings(
        key=str(spec["id"]).lower(),
        run_exclusive=spec.get("runExclusive") is not False,
        allow_low_priority=spec.get("allowLowPriorityNode") is not False,
        kill_job_on_completion=spec.get("killJobOnCompletion") is not False,
    )


def job_order_key(pool: PoolRuntime) -> Callable[[JobRuntime], tuple[int, int, int]]:
    """The sort key of the pool's jobs (smallest first)."""
    if pool.job_order == "creationtime":
        return lambda job: (-job.priority, job.order, 0)
    return lambda job: (-job.priority, job.last_placed, job.order)


def occupancy(job: JobRuntime, task_key: str, pool: PoolRuntime) -> int:
    """The node slots a task takes while it runs."""
    manager = job.manager
    if manager is not None and manager.run_exclusive and manager.key == task_key:
        return max(1, pool.slots_per_node)
    return job.task_slots.get(task_key, 1)


def _eligible(job: JobRuntime, task_key: str, node: NodeRuntime) -> bool:
    if node.node_id in job.excluded_nodes:
        return False
    manager = job.manager
    if manager is None or manager.key != task_key:
        return True
    return manager.allow_low_priority or node.dedicated


def choose_node(job: JobRuntime, task_key: str, nodes: Sequence[NodeRuntime], pool: PoolRuntime) -> NodeRuntime | None:
    """The node for one task of ``job`` among ``nodes`` (schedulable, with free slots), or ``None``."""
    need = occupancy(job, task_key, pool)
    fits = [n for n in nodes if n.free_slots >= need and _eligible(job, task_key, n)]
    if not fits:
        return None
    preferred = job.affinity.get(task_key)
    if preferred is not None:
        for node in fits:
            if str(node.doc.get("affinityId") or "").lower() == preferred:
                return node
    if pool.fill_type == "pack":
        return min(fits, key=lambda n: n.free_slots)
    return max(fits, key=lambda n: n.free_slots)
