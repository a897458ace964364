"""Job state changes beyond termination: disable / enable, and what a finished task may do to its job.

* Disable (``disableTasks``): the job goes ``disabling``; its running tasks are requeued (back to active,
  ``requeueCount`` + 1), terminated (completed with ``TaskEnded``) or left to finish (``wait``); once none runs it is
  ``disabled``. While it is disabling or disabled the scheduler starts none of its tasks (only ``active`` jobs are
  dispatched) and its ``poolInfo`` may be changed.
* Enable: ``disabled`` -> ``enabling`` -> ``active``, and its queued tasks are dispatched again.
* A task that completes for good may end or disable its job: a job manager task with ``killJobOnCompletion``
  terminates it (reason ``JMComplete``), and with ``onTaskFailure: performexitoptionsjobaction`` the task's exit
  options' ``jobAction`` applies (``terminate``: reason ``TaskFailed``; ``disable``: as a disable with requeue).
"""

from __future__ import annotations

import logging
from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.run_history import run_from_doc
from batchbox.emulator.runtime.documents import set_state, task_completed, task_ended_failure, task_requeued
from batchbox.emulator.runtime.exit_conditions import job_action
from batchbox.emulator.runtime.model import JobRuntime
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["DISABLE_TASKS", "JobControl"]

log = logging.getLogger(__name__)

DISABLE_TASKS = ("requeue", "terminate", "wait")
"""The ``disableTasks`` values of a disable request."""
JOB_MANAGER_COMPLETE = "JMComplete"
TASK_FAILED = "TaskFailed"


class JobControl:
    """Disable / enable and the job actions of finished tasks; registers itself as a hook of ``transitions``."""

    def __init__(self, transitions: Transitions) -> None:
        self.trans = transitions
        self.sched = transitions.sched
        self.store = transitions.store
        transitions.task_done_hooks.append(self.task_done)
        transitions.run_end_hooks.append(self._run_ended)

    # ----------------------------------------------------------------- disable / enable
    def _set_job_state(self, job: JobRuntime, state: str) -> dict[str, Any] | None:
        doc = self.store.get_job(job.job_id)
        if doc is None:
            return None
        set_state(doc, state, now_iso())
        stored = self.store.update_job(doc)
        job.state = state
        return stored

    def disable(self, job: JobRuntime, disable_tasks: str) -> dict[str, Any] | None:
        """``active`` -> ``disabling``; its running tasks are handled by ``disable_tasks``; ``disabled`` once none
        runs. Returns the stored job document."""
        stored = self._set_job_state(job, "disabling")
        now = now_iso()
        for key in list(job.running):
            placed = self.sched.placements.get((job.key, key))
            doc = self.store.get_task(job.job_id, key)
            if disable_tasks == "wait" or doc is None:
                continue
            if placed is not None:
                self.sched.cancel_run(*placed)
            if doc.get("state") == "running":
                outcome = "requeued" if disable_tasks == "requeue" else "terminated"
                self.store.runs.record(job.job_id, run_from_doc(doc, outcome, end=now))
            if disable_tasks == "requeue":
                task_requeued(doc, now)
                self.store.update_task(job.job_id, doc)
                job.enqueue(key, job.task_slots.get(key, 1))
            else:
                reason = "The task was terminated because its job was disabled"
                task_completed(doc, now, exit_code=None, failure_info=task_ended_failure(reason))
                self.store.update_task(job.job_id, doc)
                self.trans.completed(job.job_id, doc)
                job.forget(key)
                self.sched.release_dependents(job, doc)
        return self.settle(job) or stored

    def _run_ended(self, job: JobRuntime) -> None:
        self.settle(job)

    def settle(self, job: JobRuntime) -> dict[str, Any] | None:
        """A ``disabling`` job with nothing running becomes ``disabled`` (returns the stored document then)."""
        if job.state != "disabling" or job.running:
            return None
        return self._set_job_state(job, "disabled")

    def enable(self, job: JobRuntime) -> dict[str, Any] | None:
        """``disabled`` -> ``enabling`` -> ``active``; its tasks are dispatched again. Returns the stored job."""
        self._set_job_state(job, "enabling")
        stored = self._set_job_state(job, "active")
        self.trans.check_job_end(job)
        self.sched.dispatch(job.pool_key)
        return stored

    # ----------------------------------------------------------------- job actions of finished tasks
    def task_done(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """A task completed for good: a job manager's completion and the task's exit options act on the job."""
        if job.state not in ("active", "disabling", "disabled") or job.ending:
            return
        manager = job.manager
        if manager is not None and manager.key == str(doc["id"]).lower() and manager.kill_job_on_completion:
            log.info("job %s: its job manager task completed", job.job_id)
            self.trans.end_job(job, JOB_MANAGER_COMPLETE)
            return
        if job.on_task_failure != "performexitoptionsjobaction":
            return
        action = job_action(doc)
        if action == "terminate":
            log.info("job %s: task %s asks to terminate it", job.job_id, doc["id"])
            self.trans.end_job(job, TASK_FAILED)
        elif action == "disable" and job.state == "active":
            log.info("job %s: task %s asks to disable it", job.job_id, doc["id"])
            self.disable(job, "requeue")
