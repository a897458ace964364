"""Tasks -> node slots: dispatch from the store's queue, node accounting, mailboxes and long polls.

Each pool has the jobs bound to it (``poolInfo.poolId``); a job's queue is its active tasks that wait for no
parent, in insertion order, read from the store's queue index (``Store.queued_tasks``), so it needs no memory
here and cannot disagree with the tasks' states. Dispatch walks jobs by priority (then the pool's
``jobDefaultOrder``) and places each task on the node ``placement.choose_node`` picks (fill type, affinity, job
manager flags). A dispatch step costs O(jobs + nodes) plus one index read, one task read and one task write: the
tasks table is never scanned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from batchbox.emulator.clock import duration_seconds, now_iso, parse_time
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.resources.multi_instance import instance_count
from batchbox.emulator.runtime.dependencies import admit, resolve
from batchbox.emulator.runtime.documents import record_recent_task, task_preparing, task_running
from batchbox.emulator.runtime.environment import job_environment_doc, task_assignment, task_dir
from batchbox.emulator.runtime.model import (
    TASK_KINDS,
    Assignment,
    Gang,
    JobRuntime,
    NodeRuntime,
    PoolRuntime,
    task_assignment_id,
)
from batchbox.emulator.runtime.placement import choose_node, job_order_key, manager_settings, occupancy
from batchbox.emulator.runtime.ports import StoreLike

__all__ = ["REDELIVER_AFTER", "GangPlacer", "Gate", "Scheduler", "empty_answer", "node_info", "pool_doc_cache"]

REDELIVER_AFTER = 15.0
"""Seconds after which an assignment the agent never acknowledged is sent again (its answer was lost)."""
ZOMBIE_GRACE = 2.0
"""Seconds a cancelled run keeps its slot at least, so a poll sent before the cancel cannot free it."""
_LOOKAHEAD = 16


def empty_answer() -> dict[str, Any]:
    """A poll answer with nothing in it."""
    return {"assignments": [], "cancel": [], "shutdown": False}


Gate = Callable[[JobRuntime, NodeRuntime, Assignment], bool]
"""``gate(job, node, held)``: may the run just placed start now?"""
GangPlacer = Callable[[PoolRuntime, JobRuntime, dict[str, Any], NodeRuntime, list[NodeRuntime]], bool]
"""``place(pool, job, task doc, first node, free nodes)``: place a multi-instance task on its nodes now (False: it
waits)."""


def node_info(node: NodeRuntime, pool: PoolRuntime, directory: str) -> dict[str, Any]:
    """A placed task's ``nodeInfo``."""
    node_url = str(node.doc.get("url") or "")
    return {
        "affinityId": node.doc.get("affinityId", f"TVM:{node.node_id}"),
        "nodeUrl": node_url,
        "poolId": pool.pool_id,
        "nodeId": node.node_id,
        "taskRootDirectory": directory,
        "taskRootDirectoryUrl": f"{node_url}/files/{directory}",
    }


def _object(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) else None


def _int(value: object, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


class Scheduler:
    """Owns the registries (pools, nodes, jobs) and places queued tasks on free node slots.

    Args:
        config: the emulator settings (for URLs and environment values).
        store: the persistence layer; every write happens inside :meth:`batch`.
    """

    def __init__(self, config: EmulatorConfig, store: StoreLike) -> None:
        self.config = config
        self.store = store
        self.pools: dict[str, PoolRuntime] = {}
        self.nodes: dict[str, NodeRuntime] = {}
        self.jobs: dict[str, JobRuntime] = {}
        self.jobs_by_pool: dict[str, dict[str, JobRuntime]] = {}
        self.placements: dict[tuple[str, str], tuple[NodeRuntime, Assignment]] = {}
        self.attempt_floor: dict[tuple[str, str], int] = {}
        self._dirty_nodes: set[str] = set()
        self._next_job_order = 0
        self._placements_made = 0
        # Hooks: may a placed task start now, or wait `preparing` (job_tasks.py); a job registered (job_tasks.py);
        # after each dispatch of a pool, stop a lower-priority run for a waiting task (preemption.py).
        self.gate: Gate | None = None
        self.job_registered: Callable[[JobRuntime], None] | None = None
        self.preempt: Callable[[PoolRuntime], None] | None = None
        # Multi-instance tasks (multi_instance.py): place one on its nodes; its primary's run is over.
        self.place_gang: GangPlacer | None = None
        self.gang_ended: Callable[[Gang], None] | None = None

    # ----------------------------------------------------------------- persistence of node documents
    @contextmanager
    def batch(self) -> Iterator[None]:
        """One store transaction; node documents changed inside it are written at its end."""
        with self.store.transaction():
            yield
            self.flush()

    def flush(self) -> None:
        """Write every node document changed since the last flush."""
        dirty, self._dirty_nodes = self._dirty_nodes, set()
        for node_id in dirty:
            node = self.nodes.get(node_id)
            if node is not None and not node.removing:
                self.store.upsert_node(node.pool_id, node.doc, secret=node.secret, container_id=node.container_id)

    def touch_node(self, node: NodeRuntime, state: str | None = None) -> None:
        """Recompute a node's running counters (and idle/running state), optionally set a new state."""
        doc = node.doc
        tasks = [a for a in node.running.values() if a.kind in TASK_KINDS]
        doc["runningTasksCount"] = len(tasks)
        doc["runningTaskSlotsCount"] = sum(a.slots for a in tasks)
        new_state = state
        if new_state is None and node.state in ("idle", "running"):
            new_state = "running" if tasks else "idle"
        if new_state is not None and new_state != node.state:
            doc["state"] = new_state
            doc["stateTransitionTime"] = now_iso()
        self._dirty_nodes.add(node.node_id)

    def add_node(
        self, pool: PoolRuntime, doc: dict[str, Any], secret: str, *, dedicated: bool, container_id: str | None = None
    ) -> NodeRuntime:
        """Register a node of ``pool`` (its document, secret and container) with the pool's slots per node."""
        node = NodeRuntime(
            node_id=str(doc["id"]),
            pool_id=pool.pool_id,
            secret=secret,
            doc=doc,
            capacity=pool.slots_per_node,
            dedicated=dedicated,
            container_id=container_id,
        )
        pool.nodes[node.node_id] = node
        self.nodes[node.node_id] = node
        return node

    # ----------------------------------------------------------------- jobs and queues
    def job_from_doc(self, doc: dict[str, Any]) -> JobRuntime:
        """Register (or refresh) a job from its document and file it under its pool."""
        key = str(doc["id"]).lower()
        job = self.jobs.get(key)
        new = job is None
        if job is None:
            job = JobRuntime(job_id=str(doc["id"]), order=self._next_job_order)
            self._next_job_order += 1
            self.jobs[key] = job
        old_pool = job.pool_key
        pool_id = (doc.get("poolInfo") or {}).get("poolId") or (doc.get("executionInfo") or {}).get("poolId")
        job.pool_key = pool_id.lower() if isinstance(pool_id, str) and pool_id else None
        job.priority = _int(doc.get("priority"), 0)
        job.state = str(doc.get("state") or "active")
        job.max_parallel = _int(doc.get("maxParallelTasks"), -1)
        job.on_all_tasks_complete = str(doc.get("onAllTasksComplete") or "noaction").lower()
        job.uses_dependencies = bool(doc.get("usesTaskDependencies"))
        job.common_environment = list(doc.get("commonEnvironmentSettings") or [])
        job.on_task_failure = str(doc.get("onTaskFailure") or "noaction").lower()
        job.preemptible = doc.get("allowTaskPreemption") is True
        job.manager = manager_settings(doc.get("jobManagerTask"))
        job.preparation = _object(doc.get("jobPreparationTask"))
        job.release = _object(doc.get("jobReleaseTask"))
        constraints = doc.get("constraints") or {}
        job.max_task_retry_count = _int(constraints.get("maxTaskRetryCount"), 0)
        limit = duration_seconds(constraints.get("maxWallClockTime"))
        created = parse_time(doc.get("creationTime"))
        job.deadline = created.timestamp() + limit if limit is not None and created is not None else None
        if old_pool != job.pool_key:
            if old_pool is not None:
                self.jobs_by_pool.get(old_pool, {}).pop(key, None)
            if job.pool_key is not None:
                self.jobs_by_pool.setdefault(job.pool_key, {})[key] = job
        if new and self.job_registered is not None:
            self.job_registered(job)
        return job

    def job_of(self, job_id: str) -> JobRuntime | None:
        """The job's runtime view: the registered one, else registered now from its stored document (``None``
        when the job does not exist)."""
        job = self.jobs.get(job_id.lower())
        if job is None:
            doc = self.store.get_job(job_id)
            if doc is None:
                return None
            job = self.job_from_doc(doc)
        return job

    def drop_job(self, job: JobRuntime) -> None:
        """Forget a job entirely (deleted)."""
        self.jobs.pop(job.key, None)
        if job.pool_key is not None:
            self.jobs_by_pool.get(job.pool_key, {}).pop(job.key, None)

    def pool_of(self, job: JobRuntime) -> PoolRuntime | None:
        return self.pools.get(job.pool_key) if job.pool_key else None

    def activate(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """An active task enters the runtime: queued, or held until the tasks it depends on satisfy it."""
        key = str(doc["id"]).lower()
        slots = max(1, _int(doc.get("requiredSlots"), 1))
        affinity = (doc.get("affinityInfo") or {}).get("affinityId")
        if isinstance(affinity, str) and affinity:
            job.affinity[key] = affinity.lower()
        job.enqueue(key, slots)
        queued = admit(job, doc)
        if job.uses_dependencies:
            self.store.set_held(job.job_id, [key], not queued)

    def release_dependents(self, job: JobRuntime, doc: dict[str, Any]) -> None:
        """A task completed: queue the dependents it was the last pending parent of."""
        released = resolve(job, doc)
        if released:
            self.store.set_held(job.job_id, released, False)

    def unfinished(self, job: JobRuntime) -> int:
        """How many tasks of the job are active or running (from the store's maintained counts)."""
        return self.store.unfinished_tasks(job.job_id)

    # ----------------------------------------------------------------- dispatch
    def dispatch(self, pool_key: str | None) -> int:
        """Place as many queued tasks of the pool's jobs as fit on its nodes (see ``placement``); returns how many
        were placed. Then the preemption hook may free slots for a higher-priority job's task."""
        pool = self.pools.get(pool_key) if pool_key else None
        if pool is None or pool.deleting:
            return 0
        placed = self._place(pool)
        if self.preempt is not None:
            self.preempt(pool)
        return placed

    def _place(self, pool: PoolRuntime) -> int:
        nodes = [n for n in pool.nodes.values() if n.schedulable() and n.free_slots > 0]
        if not nodes:
            return 0
        order = job_order_key(pool)
        jobs = sorted((j for j in self.jobs_by_pool.get(pool.key, {}).values() if j.schedulable()), key=order)
        placed = 0
        drained: set[str] = set()
        while jobs and nodes:
            max_free = max(n.free_slots for n in nodes)
            chosen: tuple[JobRuntime, str, NodeRuntime] | None = None
            for job in jobs:
                candidates = self._candidates(job, max_free)
                if candidates is None:
                    drained.add(job.key)
                    continue
                for task_key, _slots in candidates:
                    node = choose_node(job, task_key, nodes, pool)
                    if node is not None:
                        chosen = (job, task_key, node)
                        break
                if chosen is not None:
                    break
            if chosen is None:
                break
            job, task_key, node = chosen
            if self._assign(pool, job, task_key, node, nodes):
                placed += 1
            else:  # a multi-instance task waits for its nodes (or the queue index disagreed): the job waits too
                drained.add(job.key)
            jobs = sorted((j for j in jobs if j.key not in drained and j.schedulable()), key=order)
            nodes = [n for n in nodes if n.free_slots > 0]
        return placed

    def dispatch_all(self) -> int:
        return sum(self.dispatch(key) for key in list(self.pools))

    def _candidates(self, job: JobRuntime, max_free: int) -> list[tuple[str, int]] | None:
        """The queued tasks of ``job`` worth trying on nodes with at most ``max_free`` free slots, in order: the
        head when it fits, else up to 16 that fit from the front of the queue; None when the queue is empty. Their
        slots are noted on the job (``placement.occupancy`` reads them there)."""
        head = self.store.queued_tasks(job.job_id, 1)
        if not head:
            return None
        found = head if head[0][1] <= max_free else self.store.queued_tasks(job.job_id, _LOOKAHEAD)
        fitting = [(key, slots) for key, slots in found if slots <= max_free]
        for key, slots in fitting:
            job.task_slots[key] = slots
        return fitting

    def queued_head(self, job: JobRuntime) -> str | None:
        """The first task of the job's queue (its slots noted on the job), or None."""
        head = self.store.queued_tasks(job.job_id, 1)
        if not head:
            return None
        job.task_slots[head[0][0]] = head[0][1]
        return head[0][0]

    def next_attempt(self, job: JobRuntime, task_key: str, doc: dict[str, Any]) -> int:
        info = doc.get("executionInfo") or {}
        attempt = _int(info.get("retryCount"), 0) + _int(info.get("requeueCount"), 0)
        return max(attempt, self.attempt_floor.get((job.key, task_key), 0))

    def _assign(
        self, pool: PoolRuntime, job: JobRuntime, task_key: str, node: NodeRuntime, nodes: list[NodeRuntime]
    ) -> bool:
        doc = self.store.get_task(job.job_id, task_key)
        if doc is None or doc.get("state") != "active":  # the queue index says otherwise: never expected
            return False
        if instance_count(doc) is not None:
            return self.place_gang is not None and self.place_gang(pool, job, doc, node, nodes)
        now = now_iso()
        task_id = str(doc["id"])
        attempt = self.next_attempt(job, task_key, doc)
        self.attempt_floor.pop((job.key, task_key), None)
        assignment_id = task_assignment_id(job.job_id, task_id, attempt)
        directory = task_dir(job.job_id, task_id)
        placed_on = node_info(node, pool, directory)
        retries = _int((doc.get("constraints") or {}).get("maxTaskRetryCount"), job.max_task_retry_count)
        payload = task_assignment(
            self.config,
            assignment_id=assignment_id,
            attempt=attempt,
            job_doc=job_environment_doc(job),
            task_doc=doc,
            pool_doc=pool_doc_cache(self.store, pool),
            node_id=node.node_id,
            dedicated=node.dedicated,
            max_task_retry_count=retries,
        )
        held = Assignment(
            assignment_id=assignment_id,
            kind="task",
            job_id=job.job_id,
            task_id=task_id,
            attempt=attempt,
            slots=occupancy(job, task_key, pool),
            payload=payload,
        )
        ready = self.gate is None or self.gate(job, node, held)
        (task_running if ready else task_preparing)(doc, placed_on, now)
        self.store.update_task(job.job_id, doc)
        record_recent_task(node.doc, doc, job.job_id)
        node.running[assignment_id] = held
        self.placements[(job.key, task_key)] = (node, held)
        job.take(task_key)
        self.count_placement(job)
        self.touch_node(node)
        if ready:
            node.deliver(payload)
        return True

    def count_placement(self, job: JobRuntime) -> None:
        """A task of ``job`` was placed (equal-priority jobs take turns by their latest placement)."""
        self._placements_made += 1
        job.last_placed = self._placements_made

    def release(self, node: NodeRuntime, held: Assignment) -> None:
        """Free the slots of a run that ended (or was abandoned); a multi-instance primary's subtasks are ended."""
        node.running.pop(held.assignment_id, None)
        key = (held.job_key, held.task_key)
        placed = self.placements.get(key)
        if placed is not None and placed[1] is held:
            del self.placements[key]
        self.touch_node(node)
        self._end_gang(held)

    def cancel_run(self, node: NodeRuntime, held: Assignment) -> None:
        """Detach a run from its task and ask the agent to stop it (a multi-instance primary's subtasks too); its
        slots stay busy until it is gone."""
        key = (held.job_key, held.task_key)
        placed = self.placements.get(key)
        if placed is not None and placed[1] is held:
            del self.placements[key]
        self.attempt_floor[key] = max(self.attempt_floor.get(key, 0), held.attempt + 1)
        self._stop(node, held)
        self._end_gang(held)

    def _stop(self, node: NodeRuntime, held: Assignment) -> None:
        """Take back a run not sent yet, else ask the agent to kill it (its slots stay busy until it is gone)."""
        if held.delivered_at is None and not held.confirmed:
            node.mailbox = [p for p in node.mailbox if p.get("assignmentId") != held.assignment_id]
            self.release(node, held)
            return
        held.cancelled = True
        held.cancelled_at = time.monotonic()
        node.cancel(held.assignment_id)

    def _end_gang(self, held: Assignment) -> None:
        """The primary of a multi-instance task stopped holding its task: stop its subtasks (once)."""
        gang = held.gang
        if gang is None or gang.ended or gang.primary[1] is not held:
            return
        gang.ended = True
        for node, subtask in gang.members[1:]:
            if not subtask.cancelled and node.running.get(subtask.assignment_id) is subtask:
                self._stop(node, subtask)
        if self.gang_ended is not None:
            self.gang_ended(gang)

    # ----------------------------------------------------------------- the agent session
    def reconcile_running(self, node: NodeRuntime, running: set[str]) -> None:
        """Compare a poll's ``running`` list with what the node holds: confirm, redeliver, free gone runs."""
        now = time.monotonic()
        for held in list(node.running.values()):
            if held.assignment_id in running:
                held.confirmed = True
                held.orphan_since = None
                continue
            if held.cancelled:
                if held.cancelled_at is not None and now - held.cancelled_at > ZOMBIE_GRACE:
                    self.release(node, held)
            elif (
                not held.confirmed
                and held.orphan_since is None
                and held.delivered_at is not None
                and now - held.delivered_at > REDELIVER_AFTER
                and held.payload
            ):
                held.delivered_at = None
                node.deliver(held.payload)

    async def poll(self, node: NodeRuntime, wait: float) -> dict[str, Any]:
        """The long poll: answer as soon as the node has work (or a cancel, or must shut down), else after ``wait``."""
        node.last_contact = time.monotonic()
        node.poll_generation += 1
        generation = node.poll_generation
        node.wake.set()  # an older poll of this node (if any) returns empty
        deadline = time.monotonic() + max(0.0, wait)
        node.polls_waiting += 1
        try:
            while True:
                if generation != node.poll_generation:
                    return empty_answer()
                if node.mailbox or node.cancels or node.shutdown or node.removals:
                    assignments, cancels = node.drain()
                    removals, node.removals = node.removals, []
                    answer = {"assignments": assignments, "cancel": cancels, "shutdown": node.shutdown}
                    return {**answer, "remove": removals} if removals else answer
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return empty_answer()
                node.wake.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(node.wake.wait(), remaining)
        finally:
            node.polls_waiting -= 1
            node.last_contact = time.monotonic()


def pool_doc_cache(store: StoreLike, pool: PoolRuntime) -> dict[str, Any]:
    """The pool document, read once and kept on the pool runtime (its relevant parts never change)."""
    if pool.doc is None:
        pool.doc = store.get_pool(pool.pool_id) or {"id": pool.pool_id}
    return pool.doc
