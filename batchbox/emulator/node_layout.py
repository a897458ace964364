"""The directory layout of a node, as Batch lays out Linux nodes (paths inside the node and its task containers).

``/mnt/batch/tasks`` (``AZ_BATCH_NODE_ROOT_DIR``) holds ``shared``, ``startup`` (the start task), ``applications``
(extracted application packages), ``fsmounts`` (mounted file systems) and ``workitems/<job>/job-1/<task>`` (a
task's directory, its working directory ``wd`` below it). Pure: no I/O.
"""

from __future__ import annotations

__all__ = [
    "APPLICATIONS_DIR",
    "BIND_MOUNT_SOURCES",
    "JOB_PREPARATION_TASK",
    "MOUNTS_DIR",
    "NODE_ROOT",
    "SHARED_DIR",
    "START_TASK_DIR",
    "bind_mount_directory",
    "job_preparation_dir",
    "task_bind_roots",
    "task_dir",
]

NODE_ROOT = "/mnt/batch/tasks"
SHARED_DIR = "shared"
START_TASK_DIR = "startup"
APPLICATIONS_DIR = "applications"
MOUNTS_DIR = "fsmounts"
JOB_PREPARATION_TASK = "jobpreparation"

BIND_MOUNT_SOURCES = ("Shared", "Startup", "VfsMounts", "Task", "JobPrep", "Applications")
"""The ``containerHostBatchBindMounts`` sources of the Batch API, in its spelling."""


def task_dir(job_id: str, task_id: str) -> str:
    """A task's directory relative to the node root: ``workitems/<job>/job-1/<task>``."""
    return f"workitems/{job_id}/job-1/{task_id}"


def job_preparation_dir(job_id: str) -> str:
    """The directory of a job's preparation task on a node, relative to the node root."""
    return task_dir(job_id, JOB_PREPARATION_TASK)


def bind_mount_directory(source: str, directory: str, job_id: str | None) -> str | None:
    """The node-root-relative directory a ``containerHostBatchBindMounts`` source names for one task.

    Args:
        source: one of :data:`BIND_MOUNT_SOURCES`.
        directory: the task's own directory (relative to the node root).
        job_id: the task's job (``None`` for a start task, which has no job preparation directory).

    Returns:
        The directory, or ``None`` when the source names nothing for this task.
    """
    fixed = {"Shared": SHARED_DIR, "Startup": START_TASK_DIR, "VfsMounts": MOUNTS_DIR, "Applications": APPLICATIONS_DIR}
    if source in fixed:
        return fixed[source]
    if source == "Task":
        return directory
    if source == "JobPrep" and job_id is not None:
        return job_preparation_dir(job_id)
    return None


def task_bind_roots(directory: str, job_id: str | None) -> list[str]:
    """The node paths a task's container may bind-mount from: its own directory and the node's shared ones."""
    relative = [SHARED_DIR, START_TASK_DIR, APPLICATIONS_DIR, MOUNTS_DIR, directory]
    if job_id is not None:
        relative.append(job_preparation_dir(job_id))
    return [f"{NODE_ROOT}/{path}" for path in relative]
