"""Job schedule transitions: add, update (patch / replace), disable, enable, terminate, delete.

When jobs are created, and what terminate and delete do to them, is ``runtime/schedules.py`` (``ScheduleRunner``).
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import conflict, not_found, resource_exists
from batchbox.emulator.resources.schedules import check_schedule_updatable
from batchbox.emulator.runtime.documents import set_state
from batchbox.emulator.runtime.schedules import ScheduleRunner

__all__ = ["ScheduleOperations"]

Doc = dict[str, Any]


class ScheduleOperations:
    """What handlers ask of job schedules (``runtime.schedules``)."""

    def __init__(self, runner: ScheduleRunner) -> None:
        self._runner = runner
        self._sched = runner.sched
        self._store = runner.store

    def get(self, schedule_id: str) -> Doc:
        """The stored schedule.

        Raises:
            BatchError: ``JobScheduleNotFound`` (404).
        """
        doc = self._store.schedules.get(schedule_id)
        if doc is None:
            raise not_found("jobschedule", schedule_id)
        return doc

    def add(self, doc: Doc) -> Doc:
        """Store a new schedule (built by ``resources.schedules.build_schedule``); its first job is due at once or
        at ``doNotRunUntil``.

        Raises:
            BatchError: ``JobScheduleExists`` / ``JobWithSameIdExists`` (409).
        """
        if self._store.get_job(doc["id"]) is not None:
            raise conflict(
                "JobWithSameIdExists",
                "A job with the specified job schedule id exists. Job and job schedule cannot have the same id.",
                {"JobScheduleId": str(doc["id"])},
            )
        self._runner.scheduled(doc)
        with self._sched.batch():
            if not self._store.schedules.insert(doc):
                raise resource_exists("jobschedule", doc["id"])
        self._runner.wake()
        return doc

    def update(self, before: Doc, doc: Doc) -> Doc:
        """Store a patched or replaced schedule; a changed ``schedule`` is timed again from now on."""
        if doc.get("schedule") != before.get("schedule"):
            self._runner.scheduled(doc)
        with self._sched.batch():
            stored = self._store.schedules.update(doc)
        self._runner.wake()
        return stored

    def disable(self, schedule_id: str) -> Doc:
        """``disabled``: no job is created until it is enabled (a disabled schedule stays as it is).

        Raises:
            BatchError: ``JobScheduleNotFound`` (404); ``JobScheduleBeingDeleted`` / ``JobScheduleBeingTerminated`` /
                ``JobScheduleCompleted`` (409).
        """
        doc = self.get(schedule_id)
        check_schedule_updatable(doc)
        if doc.get("state") == "disabled":
            return doc
        return self._set_state(doc, "disabled")

    def enable(self, schedule_id: str) -> Doc:
        """A disabled schedule is ``active`` again.

        Raises:
            BatchError: ``JobScheduleNotFound`` (404); ``JobScheduleBeingDeleted`` / ``JobScheduleBeingTerminated`` /
                ``JobScheduleCompleted`` / ``OperationInvalidForCurrentState`` (not disabled) (409).
        """
        doc = self.get(schedule_id)
        check_schedule_updatable(doc)
        if doc.get("state") != "disabled":
            raise conflict(
                "OperationInvalidForCurrentState",
                "The specified operation is not valid for the current state of the resource.",
                {"JobScheduleId": str(doc["id"]), "Reason": "Only a disabled job schedule can be enabled."},
            )
        return self._set_state(doc, "active")

    def _set_state(self, doc: Doc, state: str) -> Doc:
        set_state(doc, state, now_iso())
        with self._sched.batch():
            stored = self._store.schedules.update(doc)
        self._runner.wake()
        return stored

    def terminate(self, schedule_id: str) -> Doc:
        """Terminate: its active job is terminated, then it is ``completed``.

        Raises:
            BatchError: ``JobScheduleNotFound`` (404); ``JobScheduleBeingDeleted`` / ``JobScheduleBeingTerminated`` /
                ``JobScheduleCompleted`` (409).
        """
        doc = self.get(schedule_id)
        check_schedule_updatable(doc)
        with self._sched.batch():
            return self._runner.terminate(doc)

    def delete(self, schedule_id: str) -> Doc:
        """Delete: its jobs are deleted, then the schedule.

        Raises:
            BatchError: ``JobScheduleNotFound`` (404); ``JobScheduleBeingDeleted`` (409).
        """
        doc = self.get(schedule_id)
        if doc.get("state") == "deleting":
            check_schedule_updatable(doc)
        with self._sched.batch():
            return self._runner.delete(doc)
