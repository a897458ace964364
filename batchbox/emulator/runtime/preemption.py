"""``allowTaskPreemption``: a higher-priority job's task that finds no room may stop a lower-priority one.

After each dispatch of a pool: when the highest-priority job with a queued task cannot place it, and a job of lower
priority that allows task preemption runs a task on a node where the waiting task would then fit, that run is
stopped and its task goes back to the queue (``requeueCount`` + 1, like a task of a node that left). The slots come
free when the agent reports the process gone; the next dispatch places the waiting task. One run is preempted at a
time per pool, so a waiting task never stops more runs than it needs.
"""

from __future__ import annotations

import logging

from batchbox.emulator.clock import now_iso
from batchbox.emulator.run_history import run_from_doc
from batchbox.emulator.runtime.documents import task_requeued
from batchbox.emulator.runtime.model import Assignment, JobRuntime, NodeRuntime, PoolRuntime
from batchbox.emulator.runtime.placement import choose_node, occupancy
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["Preemption"]

log = logging.getLogger(__name__)


class Preemption:
    """Stops preemptible lower-priority runs for waiting higher-priority tasks (the scheduler's ``preempt`` hook)."""

    def __init__(self, transitions: Transitions) -> None:
        self.trans = transitions
        self.sched = transitions.sched
        self.store = transitions.store
        self._in_flight: dict[str, list[tuple[NodeRuntime, Assignment]]] = {}
        self.sched.preempt = self.check

    def check(self, pool: PoolRuntime) -> None:
        """Preempt one run in ``pool`` when a waiting task of a higher-priority job needs its slots."""
        jobs = list(self.sched.jobs_by_pool.get(pool.key, {}).values())
        preemptible = [j for j in jobs if j.preemptible and j.running]
        if not preemptible:
            return
        in_flight = [(n, h) for n, h in self._in_flight.get(pool.key, []) if n.running.get(h.assignment_id) is h]
        self._in_flight[pool.key] = in_flight
        if in_flight:
            return
        waiting = [j for j in jobs if j.schedulable()]
        if not waiting:
            return
        top = max(waiting, key=lambda j: (j.priority, -j.order))
        task_key = self.sched.queued_head(top)
        if task_key is None:
            return
        nodes = [n for n in pool.nodes.values() if n.schedulable()]
        if choose_node(top, task_key, [n for n in nodes if n.free_slots > 0], pool) is not None:
            return
        need = occupancy(top, task_key, pool)
        for job in sorted((j for j in preemptible if j.priority < top.priority), key=lambda j: j.priority):
            victim = self._victim(job, nodes, need)
            if victim is not None:
                self._preempt(pool, job, *victim)
                return

    def _victim(
        self, job: JobRuntime, nodes: list[NodeRuntime], need: int
    ) -> tuple[NodeRuntime, Assignment, str] | None:
        """The latest-queued running task of ``job`` whose node would then have ``need`` free slots."""
        schedulable = {n.node_id for n in nodes}
        for key in sorted(job.running, key=lambda k: job.task_order.get(k, 0), reverse=True):
            placed = self.sched.placements.get((job.key, key))
            if placed is None:
                continue
            node, held = placed
            if node.node_id in schedulable and node.free_slots + held.slots >= need and node.capacity >= need:
                return node, held, key
        return None

    def _preempt(self, pool: PoolRuntime, job: JobRuntime, node: NodeRuntime, held: Assignment, key: str) -> None:
        doc = self.store.get_task(job.job_id, key)
        if doc is None:
            return
        log.info("preempting task %s of job %s on node %s", held.task_id, job.job_id, node.node_id)
        self.sched.cancel_run(node, held)
        now = now_iso()
        if doc.get("state") == "running":
            self.store.runs.record(job.job_id, run_from_doc(doc, "requeued", end=now))
        task_requeued(doc, now)
        self.store.update_task(job.job_id, doc)
        job.enqueue(key, job.task_slots.get(key, 1))
        self.trans.run_ended(job)
        self._in_flight.setdefault(pool.key, []).append((node, held))
