"""Job transitions: add (with its job manager task), update (patch / replace), disable, enable, terminate, delete.

The mechanics of disable / enable are ``runtime/job_control.py``; of termination ``runtime/transitions.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.errors import BatchError, conflict, not_found, resource_exists
from batchbox.emulator.resources import build_task
from batchbox.emulator.resources.containers import ValidationContext
from batchbox.emulator.resources.guards import check_job_not_deleting, check_job_updatable
from batchbox.emulator.resources.job_tasks import manager_task_body
from batchbox.emulator.runtime.documents import DEFAULT_TERMINATE_REASON, job_terminating, set_state
from batchbox.emulator.runtime.job_control import JobControl
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["JobOperations", "stored_body_context"]

Doc = dict[str, Any]


def stored_body_context(config: EmulatorConfig) -> ValidationContext:
    """The validation context of a body the emulator validated and stored before (a job manager becoming its job's
    task, a schedule's job specification becoming a job): its registry passwords are store secrets already."""
    return ValidationContext(
        allow_privileged=config.allow_privileged_containers, storage_account=config.storage_account_name, stored=True
    )


class JobOperations:
    """What handlers ask of jobs (``runtime.jobs``)."""

    def __init__(self, transitions: Transitions, control: JobControl) -> None:
        self._trans = transitions
        self._control = control
        self._sched = transitions.sched
        self._store = transitions.store
        self.added_hooks: list[Callable[[Doc], None]] = []
        """Called with each new job's document once it is stored (an auto pool job gets its pool)."""

    def _get(self, job_id: str) -> Doc:
        doc = self._store.get_job(job_id)
        if doc is None:
            raise not_found("job", job_id)
        return doc

    def add(self, doc: Doc) -> Doc:
        """Store a new job (built by ``resources.build_job``) with its job manager task, if it has one (that task
        is queued first); its tasks wait until its pool has free slots.

        Raises:
            BatchError: ``JobExists`` / ``JobScheduleWithSameIdExists`` (409).
        """
        if self._store.schedules.get(doc["id"]) is not None:
            raise conflict(
                "JobScheduleWithSameIdExists",
                "A job schedule with the specified job id exists. Job and job schedule cannot have the same id.",
                {"JobId": str(doc["id"])},
            )
        manager = doc.get("jobManagerTask")
        config = self._sched.config
        task = (
            build_task(
                manager_task_body(manager), job=doc, base_url=config.base_url, context=stored_body_context(config)
            )
            if isinstance(manager, dict)
            else None
        )
        with self._sched.batch():
            if not self._store.insert_job(doc):
                raise resource_exists("job", doc["id"])
            job = self._sched.job_from_doc(doc)
            if task is not None:
                self._store.insert_tasks(doc["id"], [task])
                self._sched.activate(job, task)
                self._sched.dispatch(job.pool_key)
        for hook in self.added_hooks:
            hook(doc)
        return doc

    def update(self, doc: Doc) -> Doc:
        """Store a patched or replaced job (``resources.apply_job_patch`` / ``apply_job_replace``): its tasks are
        requeued by the new priority, and a job that now has ``onAllTasksComplete: terminatejob`` with nothing left
        to run ends."""
        with self._sched.batch():
            stored = self._store.update_job(doc)
            job = self._sched.job_from_doc(stored)
            self._trans.check_job_end(job)
            self._sched.dispatch(job.pool_key)
        return stored

    def disable(self, job_id: str, disable_tasks: str) -> Doc:
        """Disable a job: no task of it starts until it is enabled; its running tasks are requeued, terminated or
        left to finish (``disable_tasks``). A job already disabling or disabled stays as it is.

        Returns:
            The job as stored (``disabling``, or already ``disabled``).

        Raises:
            BatchError: ``JobNotFound`` (404); ``JobBeingDeleted`` / ``JobBeingTerminated`` / ``JobCompleted`` /
                ``OperationInvalidForCurrentState`` (enabling) (409).
        """
        doc = self._get(job_id)
        check_job_updatable(doc)
        state = doc.get("state")
        if state in ("disabling", "disabled"):
            return doc
        if state != "active":
            raise _wrong_state(doc, "Only an active job can be disabled.")
        with self._sched.batch():
            job = self._sched.job_of(job_id)
            stored = self._control.disable(job, disable_tasks) if job is not None else None
        return stored or doc

    def enable(self, job_id: str) -> Doc:
        """Enable a disabled job: ``enabling``, then ``active``; its tasks are scheduled again.

        Raises:
            BatchError: ``JobNotFound`` (404); ``JobBeingDeleted`` / ``JobBeingTerminated`` / ``JobCompleted`` /
                ``OperationInvalidForCurrentState`` (a job that is not disabled) (409).
        """
        doc = self._get(job_id)
        check_job_updatable(doc)
        if doc.get("state") != "disabled":
            raise _wrong_state(doc, "Only a disabled job can be enabled.")
        with self._sched.batch():
            job = self._sched.job_of(job_id)
            stored = self._control.enable(job) if job is not None else None
        return stored or doc

    def terminate(self, job_id: str, reason: str | None = None) -> Doc:
        """Terminate a job: its running tasks are stopped, its unfinished tasks complete, then the job completes.

        Args:
            job_id: the job.
            reason: ``executionInfo.terminateReason`` (default ``UserTerminate``).

        Returns:
            The job as the request stored it (``terminating``; it completes within the same call).

        Raises:
            BatchError: ``JobNotFound`` (404); ``JobBeingDeleted`` / ``JobBeingTerminated`` / ``JobCompleted`` (409).
        """
        doc = self._get(job_id)
        check_job_updatable(doc)
        reason = reason or DEFAULT_TERMINATE_REASON
        with self._sched.batch():
            job_terminating(doc, now_iso(), reason)
            stored = self._store.update_job(doc)
            job = self._sched.job_of(job_id)
            if job is not None:
                self._trans.end_job(job, reason)
        return stored

    def delete(self, job_id: str) -> Doc:
        """Delete a job: its running tasks are stopped, then the job and its tasks leave the store.

        Returns:
            The job as the request stored it (``deleting``), for the answer's headers.

        Raises:
            BatchError: ``JobNotFound`` (404), ``JobBeingDeleted`` (409).
        """
        doc = self._get(job_id)
        check_job_not_deleting(doc)
        with self._sched.batch():
            set_state(doc, "deleting", now_iso())
            stored = self._store.update_job(doc)
            job = self._sched.job_of(job_id)
            if job is None:
                self._store.delete_job(job_id)
            else:
                self._trans.delete_job(job)
        return stored


def _wrong_state(doc: Doc, reason: str) -> BatchError:
    return conflict(
        "OperationInvalidForCurrentState",
        "The specified operation is not valid for the current state of the resource.",
        {"JobId": str(doc["id"]), "JobState": str(doc.get("state")), "Reason": reason},
    )
