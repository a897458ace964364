"""Pure functions that validate Batch REST bodies and build the stored REST documents (pool, job, task).

Nothing here touches the store or the runtime: handlers call these, then hand the result to the store (plain
property changes) or to the runtime (transitions). ``guards`` holds the state rules both use.
"""

from __future__ import annotations

from batchbox.emulator.resources.common import check_id
from batchbox.emulator.resources.guards import check_job_updatable
from batchbox.emulator.resources.jobs import apply_job_patch, apply_job_replace, build_job
from batchbox.emulator.resources.pool_fields import DEFAULT_MAX_NODES
from batchbox.emulator.resources.pool_updates import (
    apply_pool_patch,
    apply_pool_replace,
    apply_resize,
    apply_stop_resize,
)
from batchbox.emulator.resources.pools import build_pool
from batchbox.emulator.resources.tasks import (
    MAX_TASKS_PER_COLLECTION,
    apply_task_update,
    build_task,
    check_job_accepts_tasks,
    collection_bodies,
)

__all__ = [
    "DEFAULT_MAX_NODES",
    "MAX_TASKS_PER_COLLECTION",
    "apply_job_patch",
    "apply_job_replace",
    "apply_pool_patch",
    "apply_pool_replace",
    "apply_resize",
    "apply_stop_resize",
    "apply_task_update",
    "build_job",
    "build_pool",
    "build_task",
    "check_id",
    "check_job_accepts_tasks",
    "check_job_updatable",
    "collection_bodies",
]
