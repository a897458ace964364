"""A job's preparation and release tasks on the nodes.

* Preparation: the first time a task of the job is placed on a node, the job's preparation task is sent to that
  node; with ``waitForSuccess`` (the default) the task waits there in state ``preparing`` (it holds its slots) and
  starts once the preparation succeeded. A preparation that fails is retried up to its ``maxTaskRetryCount``; when it
  fails for good the waiting tasks go back to the queue and none of the job's tasks is placed on that node again.
  Without ``waitForSuccess`` tasks start at once, beside it. A node runs it once per job: again after a reboot when
  ``rerunOnNodeRebootAfterSuccess``, and after a reimage in any case (:meth:`JobTasks.node_rebooted`).
* Release: when the job ends (terminated, completed, deleted), the release task runs on every node that ran the
  preparation task (a preparation still running there is stopped first); the job shows ``terminating`` or
  ``deleting`` until every release has finished (or its node is gone), within the release's ``maxWallClockTime``.

The per-node status of both is kept in ``store.job_node_tasks`` (see ``job_task_status``); this module keeps the
runs in flight and the tasks waiting for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.runtime.documents import is_retryable, set_state, task_ended_failure, task_running
from batchbox.emulator.runtime.environment import job_environment_doc
from batchbox.emulator.runtime.job_task_status import (
    INFO_FIELDS,
    PREPARATION,
    RELEASE,
    new_status,
    own_task_dir,
    own_task_run,
    run_finished,
    run_result,
    run_started,
)
from batchbox.emulator.runtime.model import Assignment, JobRuntime, NodeRuntime
from batchbox.emulator.runtime.retention import Retention
from batchbox.emulator.runtime.scheduler import pool_doc_cache
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["JobTasks"]

log = logging.getLogger(__name__)

Doc = dict[str, Any]


@dataclass
class _Preparation:
    """The preparation task of one job on one node."""

    state: str  # running | succeeded | failed
    attempt: int = 0
    held: Assignment | None = None
    waiting: list[Assignment] = field(default_factory=list)


@dataclass
class _Releases:
    """The release runs a job waits for before it completes (or is deleted)."""

    pending: set[str]
    then: Callable[[], None]


class JobTasks:
    """Runs jobs' preparation and release tasks; the scheduler's gate and the transitions' ``own_tasks``."""

    def __init__(self, transitions: Transitions, retention: Retention) -> None:
        self.trans = transitions
        self.retention = retention
        self.sched = transitions.sched
        self.store = transitions.store
        self.config = transitions.sched.config
        self._preparations: dict[tuple[str, str], _Preparation] = {}
        self._releases: dict[str, _Releases] = {}
        transitions.own_tasks = self
        transitions.job_end_hooks.append(self._job_ended)
        self.sched.gate = self.gate
        self.sched.job_registered = self.exclusions

    # ----------------------------------------------------------------- restart
    def load(self) -> None:
        """Take up the statuses stored before a restart: finished preparations count; unfinished runs are forgotten
        (a preparation runs again, a release is sent again when its job's end is finished)."""
        for job_key, status in self.store.job_node_tasks.list_all():
            info = status.get(INFO_FIELDS[PREPARATION]) or {}
            if info.get("state") == "completed":
                state = "succeeded" if info.get("result") == "success" else "failed"
                self._preparations[(job_key, str(status["nodeId"]))] = _Preparation(state)

    def exclusions(self, job: JobRuntime) -> None:
        """Mark the nodes where ``job``'s waited-for preparation failed (for a job registered after a restart)."""
        if job.preparation is None or job.preparation.get("waitForSuccess") is False:
            return
        for (job_key, node_id), prep in self._preparations.items():
            if job_key == job.key and prep.state == "failed":
                job.excluded_nodes.add(node_id)

    # ----------------------------------------------------------------- preparation
    def gate(self, job: JobRuntime, node: NodeRuntime, held: Assignment) -> bool:
        """A task of ``job`` was placed on ``node``: may it start now? Starts the preparation task when needed."""
        spec = job.preparation
        if spec is None:
            return True
        prep = self._preparations.get((job.key, node.node_id))
        if prep is None:
            prep = self._preparations[(job.key, node.node_id)] = _Preparation("running")
            self._start(job, node, prep, PREPARATION, spec)
        if prep.state != "running" or spec.get("waitForSuccess") is False:
            return True
        prep.waiting.append(held)
        return False

    def _status(self, job: JobRuntime, node: NodeRuntime) -> Doc:
        return self.store.job_node_tasks.get(job.job_id, node.node_id) or new_status(node.pool_id, node)

    def _start(self, job: JobRuntime, node: NodeRuntime, prep: _Preparation | None, kind: str, spec: Doc) -> None:
        attempt = prep.attempt if prep is not None else 0
        pool = self.sched.pools.get(node.pool_key)
        held = own_task_run(
            self.config,
            kind=kind,
            spec=spec,
            job_doc=job_environment_doc(job),
            pool_doc=pool_doc_cache(self.store, pool) if pool is not None else None,
            node=node,
            attempt=attempt,
        )
        if prep is not None:
            prep.held = held
        status = self._status(job, node)
        run_started(status, kind, str(node.doc.get("url") or ""), own_task_dir(job.job_id, spec), now_iso(), attempt)
        self.store.job_node_tasks.put(job.job_id, node.node_id, status)
        node.running[held.assignment_id] = held
        self.sched.touch_node(node)
        node.deliver(held.payload)

    def run_completed(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None:
        """A preparation or release run on ``node`` completed (the transitions route them here)."""
        self.sched.release(node, held)
        if held.cancelled:
            return
        job = self.sched.jobs.get(held.job_key)
        exit_code, failure = run_result(event)
        status = self.store.job_node_tasks.get(held.job_id, node.node_id)
        if status is not None:
            run_finished(status, held.kind, now_iso(), exit_code, failure)
            self.store.job_node_tasks.put(held.job_id, node.node_id, status)
        spec = self._spec(job, held.kind)
        if spec is not None:
            self.retention.own_task_completed(held.job_id, node.node_id, spec, datetime.now(timezone.utc))
        if held.kind == RELEASE:
            self._release_done(held.job_key, node.node_id)
            return
        prep = self._preparations.get((held.job_key, node.node_id))
        if job is None or prep is None or prep.held is not held:
            return
        spec = spec or {}
        limit = (spec.get("constraints") or {}).get("maxTaskRetryCount", 0)
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else 0
        if failure is not None and is_retryable(exit_code, failure) and (limit < 0 or prep.attempt < limit):
            prep.attempt += 1
            self._start(job, node, prep, PREPARATION, spec)
            return
        prep.held = None
        if failure is None:
            prep.state = "succeeded"
            self._start_waiting(node, prep)
        else:
            prep.state = "failed"
            log.warning("job %s: the preparation task failed on node %s", job.job_id, node.node_id)
            if spec.get("waitForSuccess") is not False:
                job.excluded_nodes.add(node.node_id)
            self._requeue_waiting(job, node, prep)

    @staticmethod
    def _spec(job: JobRuntime | None, kind: str) -> Doc | None:
        if job is None:
            return None
        return job.preparation if kind == PREPARATION else job.release

    def _placed(self, held: Assignment) -> Doc | None:
        """The document of a parked task run that is still bound to its task and still ``preparing``."""
        placed = self.sched.placements.get((held.job_key, held.task_key))
        if placed is None or placed[1] is not held:
            return None
        doc = self.store.get_task(held.job_id, held.task_id)
        return doc if doc is not None and doc.get("state") == "preparing" else None

    def _start_waiting(self, node: NodeRuntime, prep: _Preparation) -> None:
        waiting, prep.waiting = prep.waiting, []
        for held in waiting:
            doc = self._placed(held)
            if doc is None:
                continue
            task_running(doc, dict(doc.get("nodeInfo") or {}), now_iso())
            self.store.update_task(held.job_id, doc)
            node.deliver(held.payload)

    def _requeue_waiting(self, job: JobRuntime, node: NodeRuntime, prep: _Preparation) -> None:
        waiting, prep.waiting = prep.waiting, []
        for held in waiting:
            doc = self._placed(held)
            if doc is None:
                continue
            set_state(doc, "active", now_iso())
            doc.pop("nodeInfo", None)
            self.store.update_task(held.job_id, doc)
            self.sched.release(node, held)
            job.enqueue(held.task_key, job.task_slots.get(held.task_key, 1))
        self.sched.dispatch(node.pool_key)

    def node_rebooted(self, node_id: str, wiped: bool = False) -> None:
        """A node's container runs again: after a reboot the preparations that ask for it
        (``rerunOnNodeRebootAfterSuccess``) run again there; after a reimage (``wiped``) every one does, and jobs
        whose preparation failed there may use the node again."""
        for (job_key, prep_node), prep in list(self._preparations.items()):
            if prep_node != node_id:
                continue
            job = self.sched.jobs.get(job_key)
            rerun = job is not None and (job.preparation or {}).get("rerunOnNodeRebootAfterSuccess") is not False
            if wiped or (prep.state == "succeeded" and rerun):
                del self._preparations[(job_key, prep_node)]
                if job is not None:
                    job.excluded_nodes.discard(node_id)

    # ----------------------------------------------------------------- release
    def begin_release(self, job: JobRuntime, then: Callable[[], None]) -> bool:
        """The job ends: stop its preparations still running, send its release task to every node that ran the
        preparation; ``then`` is called once they all finished. False (and nothing sent) when there is none to
        wait for."""
        ran = [node_id for (job_key, node_id) in self._preparations if job_key == job.key]
        for node_id in ran:
            self._stop_preparation(job, node_id)
        spec = job.release
        if spec is None:
            return False
        pending: set[str] = set()
        for node_id in ran:
            node = self.sched.nodes.get(node_id)
            if node is None or node.removing or node.lost or not node.registered:
                continue
            self._start(job, node, None, RELEASE, spec)
            pending.add(node_id)
        if not pending:
            return False
        self._releases[job.key] = _Releases(pending, then)
        return True

    def _stop_preparation(self, job: JobRuntime, node_id: str) -> None:
        prep = self._preparations.get((job.key, node_id))
        node = self.sched.nodes.get(node_id)
        if prep is None or prep.held is None or node is None:
            return
        self.sched.cancel_run(node, prep.held)
        prep.held = None
        prep.state = "failed"
        status = self.store.job_node_tasks.get(job.job_id, node_id)
        if status is not None:
            reason = "The job preparation task was stopped because its job ended"
            run_finished(status, PREPARATION, now_iso(), None, task_ended_failure(reason))
            self.store.job_node_tasks.put(job.job_id, node_id, status)

    def _release_done(self, job_key: str, node_id: str) -> None:
        releases = self._releases.get(job_key)
        if releases is None:
            return
        releases.pending.discard(node_id)
        if not releases.pending:
            del self._releases[job_key]
            releases.then()

    def run_lost(self, node: NodeRuntime, held: Assignment) -> None:
        """The node of a preparation or release run is lost or removed: the run is over, without a result."""
        self.sched.release(node, held)
        if held.kind == RELEASE:
            self._release_done(held.job_key, node.node_id)
            return
        prep = self._preparations.get((held.job_key, node.node_id))
        if prep is not None and prep.held is held:
            del self._preparations[(held.job_key, node.node_id)]

    def _job_ended(self, job_id: str, how: str) -> None:
        key = job_id.lower()
        for pair in [p for p in self._preparations if p[0] == key]:
            del self._preparations[pair]
        self._releases.pop(key, None)
