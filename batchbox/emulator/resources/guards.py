"""The state rules of pools, jobs and tasks: whether a document's state allows a change (409 when it does not).

Pure checks of stored documents, shared by the property edits of ``resources`` (patch, resize, update) and by the
lifecycle transitions of the runtime (delete, terminate, reactivate). Each raises a ``BatchError`` with the code
and values the service answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchbox.emulator.errors import BatchError, conflict

__all__ = [
    "check_job_not_deleting",
    "check_job_updatable",
    "check_pool_not_deleting",
    "check_pool_steady",
    "check_task_not_completed",
    "check_task_reactivatable",
]

Doc = Mapping[str, Any]

_JOB_STATE_CONFLICTS = {
    "deleting": ("JobBeingDeleted", "The specified job is being deleted."),
    "terminating": ("JobBeingTerminated", "The specified job is being terminated."),
    "completed": ("JobCompleted", "The specified job is already in a completed state."),
}


def check_pool_not_deleting(pool: Doc) -> None:
    """Raises ``PoolBeingDeleted`` (409) for a pool that is being deleted."""
    if pool.get("state") == "deleting":
        raise conflict("PoolBeingDeleted", "The specified pool is being deleted.", {"PoolId": str(pool["id"])})


def check_pool_steady(pool: Doc) -> None:
    """Raises ``PoolBeingResized`` (409) unless the pool's ``allocationState`` is ``steady``."""
    if pool.get("allocationState") != "steady":
        raise BatchError(
            409,
            "PoolBeingResized",
            "The specified pool is already being resized.",
            {"PoolId": str(pool["id"]), "AllocationState": str(pool.get("allocationState"))},
        )


def _refuse_job_in(job: Doc, states: tuple[str, ...]) -> None:
    state = job.get("state")
    if state in states:
        code, message = _JOB_STATE_CONFLICTS[str(state)]
        raise conflict(code, message, {"JobId": str(job["id"])})


def check_job_not_deleting(job: Doc) -> None:
    """Raises ``JobBeingDeleted`` (409) for a job that is being deleted."""
    _refuse_job_in(job, ("deleting",))


def check_job_updatable(job: Doc) -> None:
    """Refuse changes to a job that is being deleted, being terminated or completed (409)."""
    _refuse_job_in(job, tuple(_JOB_STATE_CONFLICTS))


def check_task_not_completed(task: Doc) -> None:
    """Raises ``TaskCompleted`` (409) for a completed task."""
    if task.get("state") == "completed":
        raise conflict(
            "TaskCompleted", "The specified task is already in a completed state.", {"TaskId": str(task["id"])}
        )


def check_task_reactivatable(job: Doc, task: Doc) -> None:
    """Only a task that completed with a failure, in a job that is active, can be reactivated.

    Raises:
        BatchError: JobCompleted / JobBeingTerminated / JobBeingDeleted / OperationInvalidForCurrentState (409).
    """
    check_job_updatable(job)
    info = task.get("executionInfo")
    result = info.get("result") if isinstance(info, Mapping) else None
    if task.get("state") != "completed" or result == "success":
        raise BatchError(
            409,
            "OperationInvalidForCurrentState",
            "The specified operation is not valid for the current state of the resource.",
            {"TaskId": str(task["id"]), "Reason": "Only a task that completed with a failure can be reactivated."},
        )
