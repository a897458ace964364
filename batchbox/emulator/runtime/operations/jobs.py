"""Job transitions: add, update (patch / replace), terminate, delete.

Future job operations belong here too (disable / enable with ``disableTasks``); their mechanics on running tasks go
next to ``end_job`` in ``runtime/transitions.py``.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import not_found, resource_exists
from batchbox.emulator.resources.guards import check_job_not_deleting, check_job_updatable
from batchbox.emulator.runtime.documents import DEFAULT_TERMINATE_REASON, job_terminating, set_state
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["JobOperations"]

Doc = dict[str, Any]


class JobOperations:
    """What handlers ask of jobs (``runtime.jobs``)."""

    def __init__(self, transitions: Transitions) -> None:
        self._trans = transitions
        self._sched = transitions.sched
        self._store = transitions.store

    def _get(self, job_id: str) -> Doc:
        doc = self._store.get_job(job_id)
        if doc is None:
            raise not_found("job", job_id)
        return doc

    def add(self, doc: Doc) -> Doc:
        """Store a new job (built by ``resources.build_job``); its tasks wait until its pool has free slots.

        Raises:
            BatchError: ``JobExists`` (409).
        """
        if not self._store.insert_job(doc):
            raise resource_exists("job", doc["id"])
        self._sched.job_from_doc(doc)
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
