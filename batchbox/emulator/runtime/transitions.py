"""Task and job state changes: runs that start, complete, are retried or requeued; terminate, delete, reactivate;
job ends (``onAllTasksComplete`` and ``constraints.maxWallClockTime``).

Every method runs synchronously on the event loop inside the caller's :meth:`Scheduler.batch`, so a read-modify-write
of a document cannot interleave with a handler's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from batchbox.emulator.clock import now_iso, valid_time
from batchbox.emulator.run_history import run_from_doc
from batchbox.emulator.runtime.documents import (
    exit_code_failure,
    is_retryable,
    job_completed,
    job_terminating,
    parse_exit_code,
    parse_failure_info,
    record_recent_task,
    task_completed,
    task_ended_failure,
    task_reactivated,
    task_requeued,
    task_retried,
)
from batchbox.emulator.runtime.model import Assignment, JobRuntime, NodeRuntime
from batchbox.emulator.runtime.scheduler import Scheduler

__all__ = ["OwnTasks", "Subtasks", "Transitions"]

log = logging.getLogger(__name__)

_UNFINISHED = ("running", "active", "preparing")
_END_PAGE = 1000


class OwnTasks(Protocol):
    """A job's preparation and release tasks, as transitions see them (``runtime/job_tasks.py``)."""

    def run_completed(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None: ...
    def run_lost(self, node: NodeRuntime, held: Assignment) -> None: ...
    def begin_release(self, job: JobRuntime, then: Callable[[], None]) -> bool: ...


class Subtasks(Protocol):
    """The subtasks of multi-instance tasks, as transitions see them (``runtime/multi_instance.py``)."""

    def subtask_completed(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None: ...
    def subtask_lost(self, node: NodeRuntime, held: Assignment, end_message: str | None) -> None: ...
    def coordinated(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None: ...
    def subtasks(self, job_id: str, task_id: str) -> list[dict[str, Any]]: ...
    def forget(self, job_id: str, task_id: str) -> None: ...


class Transitions:
    """Applies lifecycle changes to task and job documents and keeps the scheduler's queues in step."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.sched = scheduler
        self.store = scheduler.store
        self.own_tasks: OwnTasks | None = None
        """The job preparation and release tasks (``runtime/job_tasks.py``): their runs, and releases at job end."""
        self.multi: Subtasks | None = None
        """The subtasks of multi-instance tasks (``runtime/multi_instance.py``): their runs and their information."""
        self.task_done_hooks: list[Callable[[JobRuntime, dict[str, Any]], None]] = []
        """Called when a task completes for good (after its dependents are released, before the job-end check)."""
        self.run_end_hooks: list[Callable[[JobRuntime], None]] = []
        """Called when a run of the job stops holding its task (completed, retried, requeued, ended)."""
        self.job_end_hooks: list[Callable[[str, str], None]] = []
        """Called with ``(job id, "completed" | "deleted")`` when a job has ended."""
        self.container_info: Callable[[str, str], dict[str, str] | None] = lambda _node, _assignment: None
        """The ``containerInfo`` of a run's container as it ended, by node and assignment id (set by the runtime)."""
        self.completed_hooks: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with ``(job id, task document)`` whenever a task document becomes ``completed``, however."""
        self.deleted_hooks: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with ``(job id, task document as it was)`` when a task is deleted on its own (not with its job)."""

    # ----------------------------------------------------------------- runs reported by agents
    def _release(self, node: NodeRuntime, held: Assignment) -> dict[str, Any] | None:
        """Free the run's slots on ``node``; the task's document when the run is still its current one (not
        cancelled, the task running or preparing on this node), else None."""
        self.sched.release(node, held)
        if held.cancelled:
            return None
        return self._current_doc(node, held)

    def _current_doc(self, node: NodeRuntime, held: Assignment) -> dict[str, Any] | None:
        doc = self.store.get_task(held.job_id, held.task_id)
        if doc is None or doc.get("state") not in ("running", "preparing"):
            return None
        if (doc.get("nodeInfo") or {}).get("nodeId") != node.node_id:
            return None
        return doc

    def container_started(self, node_id: str, assignment_id: str, info: dict[str, str]) -> None:
        """A run's container started: its running task shows ``executionInfo.containerInfo``."""
        node = self.sched.nodes.get(node_id)
        held = node.running.get(assignment_id) if node is not None else None
        if node is None or held is None or held.kind != "task":
            return
        doc = self._current_doc(node, held)
        if doc is None or doc.get("state") != "running":
            return
        doc.setdefault("executionInfo", {})["containerInfo"] = info
        self.store.update_task(held.job_id, doc)

    @staticmethod
    def run_started(held: Assignment) -> None:
        """A ``started`` event confirms the run; no write: ``executionInfo.startTime`` was set when the task went
        running (Batch counts resource-file downloads as running) and the ``completed`` event carries the agent's
        own start time."""
        held.confirmed = True
        held.orphan_since = None

    def run_coordinated(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None:
        """A ``coordinated`` event: a subtask of a multi-instance task ran its coordination command."""
        if held.kind == "subtask" and self.multi is not None:
            self.multi.coordinated(node, held, event)

    def run_completed(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None:
        """A ``completed`` event: success, a retry, or a final failure."""
        if held.kind == "subtask" and self.multi is not None:
            self.multi.subtask_completed(node, held, event)
            return
        if held.kind != "task" and self.own_tasks is not None:
            self.own_tasks.run_completed(node, held, event)
            return
        doc = self._release(node, held)
        if doc is None:
            return
        self.apply_result(node, held, doc, event)

    def apply_result(self, node: NodeRuntime, held: Assignment, doc: dict[str, Any], event: Mapping[str, Any]) -> None:
        """The run ``held`` of the task ``doc`` (running on ``node``) ended with ``event``'s result: the task is
        retried or completes."""
        job = self.sched.jobs.get(held.job_key)
        now = now_iso()
        exit_code = parse_exit_code(event.get("exitCode"))
        failure = parse_failure_info(event.get("failureInfo"))
        if failure is None and (exit_code is None or exit_code != 0 or event.get("result") == "failure"):
            failure = exit_code_failure(exit_code)
        info = doc.get("executionInfo") or {}
        start = valid_time(event.get("startTime"), str(info.get("startTime") or now))
        end = valid_time(event.get("endTime") or event.get("time"), now)
        node.doc["totalTasksRun"] = int(node.doc.get("totalTasksRun") or 0) + 1
        if failure is None:
            node.doc["totalTasksSucceeded"] = int(node.doc.get("totalTasksSucceeded") or 0) + 1
        task_key = held.task_key
        if failure is not None and is_retryable(exit_code, failure) and self._retries_left(job, doc):
            self._record_run(held.job_id, doc, "retried", end, start=start, exit_code=exit_code)
            task_retried(doc, now)
            self.store.update_task(held.job_id, doc)
            record_recent_task(node.doc, doc, held.job_id)
            if job is not None:
                job.enqueue(task_key, job.task_slots.get(task_key, held.slots))
                self.run_ended(job)
            return
        outcome = "succeeded" if failure is None else "failed"
        self._record_run(held.job_id, doc, outcome, end, start=start, exit_code=exit_code)
        task_completed(doc, now, exit_code=exit_code, failure_info=failure, start_time=start, end_time=end)
        container = self.container_info(node.node_id, held.assignment_id)
        if container is not None:
            doc["executionInfo"]["containerInfo"] = container
        self.store.update_task(held.job_id, doc)
        record_recent_task(node.doc, doc, held.job_id)
        self.completed(held.job_id, doc)
        if job is not None:
            job.forget(task_key)
            self.task_done(job, doc)

    def task_done(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """A task of ``job`` completed for good: release its dependents, tell the hooks, check the job's end."""
        self.sched.release_dependents(job, doc)
        self.run_ended(job)
        for hook in self.task_done_hooks:
            hook(job, doc)
        self.check_job_end(job)

    def completed(self, job_id: str, doc: dict[str, Any]) -> None:
        """Tell the hooks a task document became ``completed`` (e.g. its retention time starts)."""
        for hook in self.completed_hooks:
            hook(job_id, doc)

    def run_ended(self, job: JobRuntime) -> None:
        """Tell the hooks a run of ``job`` stopped holding its task (e.g. a disabling job may now be disabled)."""
        for hook in self.run_end_hooks:
            hook(job)

    def _record_run(
        self,
        job_id: str,
        doc: Mapping[str, Any],
        outcome: str,
        end: str,
        *,
        start: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Append the run ``doc`` describes (still ``running``) to the run history, before the doc changes."""
        self.store.runs.record(job_id, run_from_doc(doc, outcome, end=end, start=start, exit_code=exit_code))

    @staticmethod
    def _retries_left(job: JobRuntime | None, doc: Mapping[str, Any]) -> bool:
        limit = (doc.get("constraints") or {}).get("maxTaskRetryCount")
        if isinstance(limit, bool) or not isinstance(limit, int):
            limit = job.max_task_retry_count if job is not None else 0
        if limit < 0:
            return True
        retries = int((doc.get("executionInfo") or {}).get("retryCount") or 0)
        return retries < limit

    def requeue(self, node: NodeRuntime, held: Assignment) -> None:
        """The node of a run is lost or removed: the task goes back to active, ``requeueCount`` + 1."""
        if held.kind == "subtask" and self.multi is not None:
            self.multi.subtask_lost(node, held, None)
            return
        if held.kind != "task" and self.own_tasks is not None:
            self.own_tasks.run_lost(node, held)
            return
        doc = self._release(node, held)
        if doc is None:
            return
        now = now_iso()
        self._record_run(held.job_id, doc, "requeued", now)
        task_requeued(doc, now)
        self.store.update_task(held.job_id, doc)
        job = self.sched.jobs.get(held.job_key)
        if job is not None:
            job.enqueue(held.task_key, job.task_slots.get(held.task_key, held.slots))
            self.run_ended(job)

    def end_run(self, node: NodeRuntime, held: Assignment, message: str) -> None:
        """The node of a run goes away and its task must not run again (``nodeDeallocationOption: terminate``): the
        task completes with ``TaskEnded``."""
        if held.kind == "subtask" and self.multi is not None:
            self.multi.subtask_lost(node, held, message)
            return
        doc = self._release(node, held)
        if doc is None:
            return
        self.end_doc(held.job_id, doc, message)

    def end_doc(self, job_id: str, doc: dict[str, Any], message: str) -> None:
        """A running task whose run was stopped must not run again: it completes with ``TaskEnded``."""
        job = self.sched.jobs.get(job_id.lower())
        now = now_iso()
        self._record_run(job_id, doc, "terminated", now)
        task_completed(doc, now, exit_code=None, failure_info=task_ended_failure(message))
        self.store.update_task(job_id, doc)
        if job is not None:
            job.forget(str(doc["id"]).lower())
            self.sched.release_dependents(job, doc)
            self.check_job_end(job)

    def requeue_doc(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """Requeue a running task found in the store whose node is gone (used at restart)."""
        now = now_iso()
        self._record_run(job.job_id, doc, "requeued", now)
        task_requeued(doc, now)
        self.store.update_task(job.job_id, doc)
        job.enqueue(str(doc["id"]).lower(), int(doc.get("requiredSlots") or 1))

    # ----------------------------------------------------------------- requests (from runtime/operations)
    def _stop_run(self, job: JobRuntime, task_key: str) -> None:
        placed = self.sched.placements.get((job.key, task_key))
        if placed is not None:
            self.sched.cancel_run(*placed)

    def terminate_task(self, job: JobRuntime, task_id: str) -> None:
        """End a task now: a running one is cancelled on its node; either way it completes with ``TaskEnded``."""
        doc = self.store.get_task(job.job_id, task_id)
        if doc is None or doc.get("state") == "completed":
            return
        key = str(doc["id"]).lower()
        self._stop_run(job, key)
        now = now_iso()
        if doc.get("state") == "running":
            self._record_run(job.job_id, doc, "terminated", now)
        task_completed(
            doc,
            now,
            exit_code=None,
            failure_info=task_ended_failure("The task was terminated by a terminate task request"),
        )
        self.store.update_task(job.job_id, doc)
        self.completed(job.job_id, doc)
        job.forget(key)
        self.sched.release_dependents(job, doc)
        self.run_ended(job)
        self.check_job_end(job)

    def task_deleted(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """The task (its document as it was) is gone from the store: stop its run, drop it from the queue."""
        key = str(doc["id"]).lower()
        self._stop_run(job, key)
        job.forget(key)
        for hook in self.deleted_hooks:
            hook(job.job_id, doc)
        self.run_ended(job)
        self.check_job_end(job)

    def reactivate(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """A completed (failed) task becomes active again with ``retryCount`` reset to 0, and is queued."""
        task_reactivated(doc, now_iso())
        self.store.update_task(job.job_id, doc)
        job.satisfied.discard(str(doc["id"]).lower())
        self.sched.activate(job, doc)

    def end_job(self, job: JobRuntime, reason: str) -> None:
        """Terminate a job: stop its running tasks, complete every unfinished task; then (after its release tasks,
        if it has some, while it shows ``terminating``) job -> completed."""
        doc = self.store.get_job(job.job_id)
        if doc is None:
            self.sched.drop_job(job)
            return
        if doc.get("state") in ("completed", "deleting"):
            job.state = str(doc["state"])
            return
        job.ending = True
        self._end_tasks(job, reason)
        if self.own_tasks is not None and self.own_tasks.begin_release(job, lambda: self._complete_job(job, reason)):
            if doc.get("state") != "terminating":
                job_terminating(doc, now_iso(), reason)
                self.store.update_job(doc)
            job.state = "terminating"
            return
        self._complete_job(job, reason)

    def _end_tasks(self, job: JobRuntime, reason: str) -> None:
        for key in list(job.running):
            self._stop_run(job, key)
        now = now_iso()
        message = f"The task was ended because its job was terminated ({reason})"
        after: int | None = None
        while True:  # a page at a time: a job may hold a million unfinished tasks
            page = self.store.list_tasks_page(job.job_id, states=_UNFINISHED, after_seq=after, limit=_END_PAGE)
            ended = [task_doc for _, task_doc in page]
            for task_doc in ended:
                if task_doc.get("state") == "running":
                    self._record_run(job.job_id, task_doc, "terminated", now)
                task_completed(task_doc, now, exit_code=None, failure_info=task_ended_failure(message))
            if ended:
                self.store.update_tasks(job.job_id, ended)
                for task_doc in ended:
                    self.completed(job.job_id, task_doc)
            if len(page) < _END_PAGE:
                break
            after = page[-1][0]
        for key in list(job.running):
            job.forget(key)
        job.waiting.clear()
        job.affinity.clear()

    def _complete_job(self, job: JobRuntime, reason: str) -> None:
        doc = self.store.get_job(job.job_id)
        if doc is not None and doc.get("state") not in ("completed", "deleting"):
            job_completed(doc, now_iso(), reason)
            self.store.update_job(doc)
        job.state = "completed"
        job.ending = False
        self.sched.drop_job(job)  # a completed job never runs anything again; keep dispatch scans short
        for hook in self.job_end_hooks:
            hook(job.job_id, "completed")

    def delete_job(self, job: JobRuntime) -> None:
        """Stop the job's running tasks, run its release tasks if it has some, then delete the job and its tasks
        from the store."""
        job.ending = True
        for key in list(job.running):
            self._stop_run(job, key)
        if self.own_tasks is not None and self.own_tasks.begin_release(job, lambda: self._finish_delete(job)):
            return
        self._finish_delete(job)

    def _finish_delete(self, job: JobRuntime) -> None:
        self.store.delete_job(job.job_id)
        self.sched.drop_job(job)
        for hook in self.job_end_hooks:
            hook(job.job_id, "deleted")

    def check_job_end(self, job: JobRuntime) -> None:
        """``onAllTasksComplete: terminatejob`` and nothing active or running: the job completes."""
        if (
            job.on_all_tasks_complete == "terminatejob"
            and job.state == "active"
            and not job.ending
            and self.sched.unfinished(job) == 0
        ):
            self.end_job(job, "AllTasksComplete")

    def expire_jobs(self) -> None:
        """Terminate jobs past their ``constraints.maxWallClockTime`` (reason ``MaxWallClockTimeExpiry``)."""
        now = time.time()
        for job in list(self.sched.jobs.values()):
            live = job.state in ("active", "disabling", "disabled")
            if job.deadline is not None and live and now >= job.deadline and not job.ending:
                log.info("job %s exceeded its maxWallClockTime", job.job_id)
                self.end_job(job, "MaxWallClockTimeExpiry")
