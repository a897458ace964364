"""Task transitions: add (one or a collection), terminate, delete, reactivate; the subtasks of a task."""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import not_found
from batchbox.emulator.resources.guards import (
    check_job_not_deleting,
    check_task_not_completed,
    check_task_reactivatable,
)
from batchbox.emulator.runtime.model import JobRuntime
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["TaskOperations"]

Doc = dict[str, Any]


class TaskOperations:
    """What handlers ask of tasks (``runtime.tasks``)."""

    def __init__(self, transitions: Transitions) -> None:
        self._trans = transitions
        self._sched = transitions.sched
        self._store = transitions.store

    def _get(self, job_id: str, task_id: str) -> tuple[Doc, Doc, JobRuntime]:
        job_doc = self._store.get_job(job_id)
        if job_doc is None:
            raise not_found("job", job_id)
        doc = self._store.get_task(job_id, task_id)
        if doc is None:
            raise not_found("task", task_id)
        job = self._sched.job_of(job_id)
        if job is None:  # the job document was read just above
            raise not_found("job", job_id)
        return job_doc, doc, job

    def add(self, job_id: str, docs: list[Doc]) -> list[bool]:
        """Store new tasks (built by ``resources.build_task``, in this order), queue them and place what fits now.

        Returns:
            One flag per document: False when a task with that id exists (that document is not stored).
        """
        with self._sched.batch():
            flags = self._store.insert_tasks(job_id, docs)
            job = self._sched.job_of(job_id)
            if job is not None:
                for doc, added in zip(docs, flags, strict=True):
                    if added and doc.get("state") == "active":
                        self._sched.activate(job, doc)
                self._sched.dispatch(job.pool_key)
        return flags

    def terminate(self, job_id: str, task_id: str) -> Doc:
        """End a task now: a running one is cancelled on its node; it completes with ``TaskEnded``.

        Returns:
            The task as stored after the change.

        Raises:
            BatchError: ``JobNotFound`` / ``TaskNotFound`` (404); ``TaskCompleted`` / ``JobBeingDeleted`` (409).
        """
        job_doc, doc, job = self._get(job_id, task_id)
        check_task_not_completed(doc)
        check_job_not_deleting(job_doc)
        with self._sched.batch():
            self._trans.terminate_task(job, doc["id"])
            self._sched.dispatch(job.pool_key)
        return self._store.get_task(job_id, task_id) or doc

    def delete(self, job_id: str, task_id: str) -> None:
        """Delete a task: it leaves the store; a running one is stopped on its node.

        Raises:
            BatchError: ``JobNotFound`` / ``TaskNotFound`` (404), ``JobBeingDeleted`` (409).
        """
        job_doc, doc, job = self._get(job_id, task_id)
        check_job_not_deleting(job_doc)
        with self._sched.batch():
            self._store.delete_task(job.job_id, doc["id"])
            self._trans.task_deleted(job, doc)
            if self._trans.multi is not None:
                self._trans.multi.forget(job.job_id, doc["id"])
            self._sched.dispatch(job.pool_key)

    def subtasks(self, job_id: str, task_id: str) -> list[Doc]:
        """The subtasks of a multi-instance task's latest run (none for other tasks).

        Raises:
            BatchError: ``JobNotFound`` / ``TaskNotFound`` (404).
        """
        _job_doc, doc, _job = self._get(job_id, task_id)
        return self._trans.multi.subtasks(job_id, doc["id"]) if self._trans.multi is not None else []

    def reactivate(self, job_id: str, task_id: str) -> Doc:
        """Make a task that completed with a failure active again (``retryCount`` reset to 0) and queue it.

        Returns:
            The task as stored after the change.

        Raises:
            BatchError: ``JobNotFound`` / ``TaskNotFound`` (404); ``JobCompleted`` / ``JobBeingTerminated`` /
                ``JobBeingDeleted`` / ``OperationInvalidForCurrentState`` (409).
        """
        job_doc, doc, job = self._get(job_id, task_id)
        check_task_reactivatable(job_doc, doc)
        with self._sched.batch():
            self._trans.reactivate(job, doc)
            self._sched.dispatch(job.pool_key)
        return doc
