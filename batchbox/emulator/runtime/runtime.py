"""The runtime facade: what handlers call for every lifecycle transition, and the node-agent API.

Handlers store resources and plain property changes themselves, then call one of the notification methods
(``pool_added``, ``tasks_added``, ...); the runtime makes things move: it creates node containers, places
tasks on node slots, follows the agents' events and writes the resulting states back to the store. All of it
runs on the event loop; Docker calls go to worker threads.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.model import JobRuntime, NodeRuntime
from batchbox.emulator.runtime.nodes import NodeLifecycle
from batchbox.emulator.runtime.ports import NodeDriverLike, StoreLike
from batchbox.emulator.runtime.recovery import restore
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.sessions import AgentSessions
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["Runtime"]

log = logging.getLogger(__name__)

_GONE_POLL = {"assignments": [], "cancel": [], "shutdown": True}


class Runtime:
    """Schedules tasks onto node containers and keeps the stored states moving.

    Args:
        config: the emulator settings.
        store: the state store (``batchbox.emulator.store.Store``).
        driver: the node container driver (``batchbox.emulator.nodes.docker_driver.NodeDriver``).
    """

    def __init__(self, config: EmulatorConfig, store: StoreLike, driver: NodeDriverLike) -> None:
        self.config = config
        self.store = store
        self.driver = driver
        self.scheduler = Scheduler(config, store)
        self.transitions = Transitions(self.scheduler)
        self.nodes = NodeLifecycle(config, driver, self.scheduler, self.transitions)
        self.sessions = AgentSessions(config, self.scheduler, self.transitions)
        self._running = False

    # ----------------------------------------------------------------- lifecycle of the runtime itself
    async def start(self) -> None:
        """Re-adopt containers, reload queues from the store and start the node monitor."""
        if self._running:
            return
        self._running = True
        await restore(self.nodes)
        self.nodes.start_monitor()

    async def stop(self) -> None:
        """Stop the background work; node containers keep running and are re-adopted at the next start."""
        self.release_polls()
        if not self._running:
            return
        self._running = False
        await self.nodes.stop()

    def release_polls(self) -> None:
        """Answer every held long poll now (empty) and every later one at once: the server is shutting down.

        Call it when a stop signal arrives, before the server waits for open requests to finish; agents simply
        poll again (and re-register with the next emulator process).
        """
        self.sessions.closing = True
        for node in self.scheduler.nodes.values():
            node.poll_generation += 1
            node.wake.set()

    # ----------------------------------------------------------------- pools
    def pool_added(self, pool_id: str) -> None:
        """A pool was stored: create its nodes."""
        self.nodes.pool_changed(pool_id, resized=True)

    def pool_resized(self, pool_id: str) -> None:
        """The pool's target node counts changed: add or remove nodes."""
        self.nodes.pool_changed(pool_id, resized=True)

    def pool_deleting(self, pool_id: str) -> None:
        """The pool is ``deleting``: requeue its running tasks, remove its nodes, then delete it from the store."""
        pool = self.scheduler.pools.get(pool_id.lower())
        if pool is not None:
            pool.deleting = True
        self.nodes.pool_changed(pool_id)

    # ----------------------------------------------------------------- jobs
    def _job(self, job_id: str) -> JobRuntime | None:
        job = self.scheduler.jobs.get(job_id.lower())
        if job is None:
            doc = self.store.get_job(job_id)
            if doc is None:
                return None
            job = self.scheduler.job_from_doc(doc)
        return job

    def job_added(self, job_id: str) -> None:
        """A job was stored; its tasks wait until its pool has idle nodes."""
        doc = self.store.get_job(job_id)
        if doc is not None:
            self.scheduler.job_from_doc(doc)

    def job_updated(self, job_id: str) -> None:
        """Priority, constraints, state or ``onAllTasksComplete`` changed: requeue by priority, maybe end the job."""
        doc = self.store.get_job(job_id)
        if doc is None:
            return
        with self.scheduler.batch():
            job = self.scheduler.job_from_doc(doc)
            self.transitions.check_job_end(job)
            self.scheduler.dispatch(job.pool_key)

    def job_terminating(self, job_id: str, reason: str) -> None:
        """Stop the job's running tasks, complete its active ones, then the job is ``completed`` with ``reason``."""
        job = self._job(job_id)
        if job is None:
            return
        with self.scheduler.batch():
            self.transitions.end_job(job, reason or "UserTerminate")

    def job_deleting(self, job_id: str) -> None:
        """Stop the job's running tasks, then delete the job and its tasks from the store."""
        job = self._job(job_id)
        with self.scheduler.batch():
            if job is None:
                self.store.delete_job(job_id)
            else:
                self.transitions.delete_job(job)

    # ----------------------------------------------------------------- tasks
    def tasks_added(self, job_id: str, task_ids: list[str], docs: list[dict[str, Any]] | None = None) -> None:
        """Tasks were stored (in this order): queue them and place what fits now.

        ``docs``, the documents just stored (same order), spares reading each one back from the store.
        """
        job = self._job(job_id)
        if job is None:
            return
        with self.scheduler.batch():
            for index, task_id in enumerate(task_ids):
                doc = docs[index] if docs is not None else self.store.get_task(job.job_id, task_id)
                if doc is not None and doc.get("state") == "active":
                    self.scheduler.activate(job, doc)
            self.scheduler.dispatch(job.pool_key)

    def task_terminating(self, job_id: str, task_id: str) -> None:
        """Terminate one task: cancelled if running, completed with ``TaskEnded`` either way."""
        job = self._job(job_id)
        if job is None:
            return
        with self.scheduler.batch():
            self.transitions.terminate_task(job, task_id)
            self.scheduler.dispatch(job.pool_key)

    def task_deleted(self, job_id: str, task_id: str) -> None:
        """The task was deleted from the store: stop it if it runs, drop it from the queue."""
        job = self._job(job_id)
        if job is None:
            return
        with self.scheduler.batch():
            self.transitions.task_deleted(job, task_id)
            self.scheduler.dispatch(job.pool_key)

    def task_reactivated(self, job_id: str, task_id: str) -> None:
        """A completed, failed task becomes active again (``retryCount`` reset to 0) and is queued."""
        job = self._job(job_id)
        if job is None:
            return
        with self.scheduler.batch():
            self.transitions.reactivate(job, task_id)
            self.scheduler.dispatch(job.pool_key)

    # ----------------------------------------------------------------- node agents
    def authenticate_node(self, node_id: str, secret: str) -> bool:
        """Constant-time check of a node's secret; unknown nodes never authenticate."""
        node = self.scheduler.nodes.get(node_id)
        expected = node.secret if node is not None else "\x00unknown-node"
        ok = hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
        return ok and node is not None

    def _node(self, node_id: str) -> NodeRuntime | None:
        return self.scheduler.nodes.get(node_id)

    async def agent_register(self, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/register``: returns ``{"startTask": ..., "pollWait": ...}``."""
        node = self._node(node_id)
        if node is None:
            return {"startTask": None, "pollWait": self.config.node_poll_wait}
        return self.sessions.register(node, body)

    async def agent_poll(self, node_id: str, body: dict[str, Any], wait: float) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/poll``: held until there is work for the node or ``wait`` passed."""
        node = self._node(node_id)
        if node is None:
            return dict(_GONE_POLL)
        return await self.sessions.poll(node, body, wait)

    async def agent_events(self, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/events``: applies the events; the answer acks them and carries new work."""
        node = self._node(node_id)
        if node is None:
            events = body.get("events")
            acked = (
                [e["eventId"] for e in events if isinstance(e, dict) and isinstance(e.get("eventId"), str)]
                if isinstance(events, list)
                else []
            )
            return {"ack": acked, "assignments": [], "cancel": []}
        return self.sessions.events(node, body)
