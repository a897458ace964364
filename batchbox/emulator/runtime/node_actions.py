"""What node operations do to a node and its container: reboot, reimage, deallocate, start, scheduling, preemption.

Each operation first deals with the node's running tasks by its option (:meth:`NodeActions.settle_tasks`):
``requeue`` (back to the queue, ``requeueCount`` + 1), ``terminate`` (completed with ``TaskEnded``), or
``taskcompletion`` / ``retaineddata`` (the node takes no new work and the operation waits for the tasks to end). Then
the container changes in a worker thread while the node shows the transient state, and the node comes back through
its agent's registration (``starting`` -> ``waitingforstarttask`` -> ``idle``), running the start task again:

* reboot: the container restarts (its disk and its users stay);
* reimage: the container is removed and created again from the image, its disk wiped (users are gone, the pool's
  accounts are made again);
* deallocate / start: the container stops and stays (``deallocating`` -> ``deallocated``), then starts;
* preempt (low-priority nodes): the node goes ``preempted``, its tasks are requeued, its container is removed; the
  pool creates a replacement at once and the preempted node leaves the list after :data:`PREEMPTED_LINGER` seconds.

While an operation runs the node is in :attr:`NodeActions.busy`, which the node monitor leaves alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from batchbox.emulator.clock import now_iso
from batchbox.emulator.runtime.model import TASK_KINDS, NodeRuntime
from batchbox.emulator.runtime.node_containers import DRAIN_POLL, WAITING_OPTIONS
from batchbox.emulator.runtime.nodes import NodeLifecycle

__all__ = ["PREEMPTED_LINGER", "NodeActions"]

log = logging.getLogger(__name__)

PREEMPTED_LINGER = 60.0
"""Seconds a preempted node stays listed (state ``preempted``) before it leaves the pool."""
PREEMPT_CHECK = 60.0
"""Seconds between two draws of ``--preempt-rate``."""


class NodeActions:
    """Carries out node operations in the background; ``runtime.nodes`` checks and starts them."""

    def __init__(self, lifecycle: NodeLifecycle) -> None:
        self.lifecycle = lifecycle
        self.sched = lifecycle.sched
        self.trans = lifecycle.trans
        self.store = lifecycle.store
        self.driver = lifecycle.driver
        self.busy = lifecycle.busy_nodes
        self.restarted: Callable[[str, bool], None] | None = None
        """Told ``(node id, disk wiped)`` when a node's container runs again (job preparation tasks rerun)."""

    # ----------------------------------------------------------------- running tasks
    def settle_tasks(self, node: NodeRuntime, option: str, reason: str) -> None:
        """Requeue or terminate the node's running tasks now (the waiting options leave them running)."""
        if option in WAITING_OPTIONS:
            return
        with self.sched.batch():
            for held in list(node.running.values()):
                if held.kind not in TASK_KINDS or held.cancelled:
                    continue
                if option == "terminate":
                    self.trans.end_run(node, held, f"The task was terminated because its node was {reason}")
                else:
                    self.trans.requeue(node, held)
            self.sched.touch_node(node)
            self.sched.dispatch(node.pool_key)

    def _begin(self, node: NodeRuntime, option: str, reason: str, transient: str) -> None:
        """The node takes no new work; its tasks are settled by ``option``; unless it waits for them, the node
        shows ``transient`` at once."""
        node.draining = True
        self.settle_tasks(node, option, reason)
        if option not in WAITING_OPTIONS:
            self._set_state(node, transient)

    async def _tasks_done(self, node: NodeRuntime) -> None:
        while any(a.kind in TASK_KINDS and not a.cancelled for a in node.running.values()):
            await asyncio.sleep(DRAIN_POLL)

    def _set_state(self, node: NodeRuntime, state: str) -> None:
        with self.sched.batch():
            self.sched.touch_node(node, state)

    def _start(self, node: NodeRuntime, name: str, work: Callable[[], Awaitable[None]]) -> None:
        self.busy.add(node.node_id)

        async def run() -> None:
            try:
                await work()
            except Exception as exc:
                log.warning("%s of node %s failed: %s", name, node.node_id, exc)
                self.lifecycle.lose(node, f"{name} failed: {exc}")
            finally:
                self.busy.discard(node.node_id)

        self.lifecycle.spawn(run(), f"{name}-{node.node_id}")

    def _coming_back(self, node: NodeRuntime, wiped: bool = False) -> None:
        """The container runs again: the agent registers anew and the start task runs again."""
        if self.restarted is not None:
            self.restarted(node.node_id, wiped)
        node.registered = False
        node.draining = False
        node.last_contact = time.monotonic()
        node.doc.pop("startTaskInfo", None)
        node.doc["lastBootTime"] = now_iso()
        self._set_state(node, "starting")

    # ----------------------------------------------------------------- operations
    def reboot(self, node: NodeRuntime, option: str) -> None:
        """Restart the node's container after settling its tasks by ``option``."""
        self._begin(node, option, "rebooted", "rebooting")

        async def work() -> None:
            await self._tasks_done(node)
            self._set_state(node, "rebooting")
            await asyncio.to_thread(self.driver.restart_node, node.node_id)
            self._coming_back(node)

        self._start(node, "reboot", work)

    def reimage(self, node: NodeRuntime, option: str) -> None:
        """Recreate the node's container from the image with an empty disk after settling its tasks."""
        self._begin(node, option, "reimaged", "reimaging")

        async def work() -> None:
            await self._tasks_done(node)
            self._set_state(node, "reimaging")
            pool = self.sched.pools.get(node.pool_key)
            if pool is None:
                return
            sizing = await self.lifecycle.containers.sizing(pool)
            await asyncio.to_thread(self.driver.remove_node, node.node_id)
            node.container_id = await asyncio.to_thread(
                self.driver.create_node,
                node.pool_id,
                node.node_id,
                node.secret,
                resources=sizing.resources,
                wipe_root=True,
            )
            node.seen_events.clear()
            self._coming_back(node, wiped=True)

        self._start(node, "reimage", work)

    def deallocate(self, node: NodeRuntime, option: str) -> None:
        """Stop the node's container (kept, with its disk) after settling its tasks: ``deallocated``."""
        self._begin(node, option, "deallocated", "deallocating")

        async def work() -> None:
            await self._tasks_done(node)
            self._set_state(node, "deallocating")
            await asyncio.to_thread(self.driver.stop_node, node.node_id)
            node.draining = False
            self._set_state(node, "deallocated")

        self._start(node, "deallocate", work)

    def start(self, node: NodeRuntime) -> None:
        """Start a deallocated node's container again."""

        async def work() -> None:
            self._set_state(node, "starting")
            await asyncio.to_thread(self.driver.start_node, node.node_id)
            self._coming_back(node)

        self._start(node, "start", work)

    def disable_scheduling(self, node: NodeRuntime, option: str) -> None:
        """The node takes no new tasks; its running ones are settled by ``option``."""
        if option not in WAITING_OPTIONS:
            self.settle_tasks(node, option, "disabled for scheduling")
        with self.sched.batch():
            node.doc["schedulingState"] = "disabled"
            self.sched.touch_node(node)

    def enable_scheduling(self, node: NodeRuntime) -> None:
        """The node takes tasks again."""
        with self.sched.batch():
            node.doc["schedulingState"] = "enabled"
            self.sched.touch_node(node)
            self.sched.dispatch(node.pool_key)

    # ----------------------------------------------------------------- preemption
    def preempt(self, node: NodeRuntime) -> None:
        """A low-priority node is taken away: ``preempted``, tasks requeued, container removed, pool refilled."""
        log.info("node %s of pool %s is preempted", node.node_id, node.pool_id)
        self.busy.add(node.node_id)
        node.removing = True
        node.shutdown = True
        node.wake.set()
        with self.sched.batch():
            for held in list(node.running.values()):
                self.trans.requeue(node, held)
            node.doc["state"] = "preempted"
            node.doc["stateTransitionTime"] = now_iso()
            node.doc["runningTasksCount"] = 0
            node.doc["runningTaskSlotsCount"] = 0
            self.store.upsert_node(node.pool_id, node.doc, secret=node.secret, container_id=node.container_id)
            self.sched.dispatch(node.pool_key)
        self.lifecycle.pool_changed(node.pool_id)

        async def linger() -> None:
            try:
                await asyncio.to_thread(self.driver.remove_node, node.node_id)
                await asyncio.sleep(PREEMPTED_LINGER)
                await self.lifecycle.containers.discard(node)
            finally:
                self.busy.discard(node.node_id)

        self.lifecycle.spawn(linger(), f"preempted-{node.node_id}")

    def start_chaos(self, rate: float) -> None:
        """``--preempt-rate``: every minute each low-priority node is preempted with probability ``rate``."""
        if rate <= 0:
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(PREEMPT_CHECK)
                for node in list(self.sched.nodes.values()):
                    if (
                        not node.dedicated
                        and not node.removing
                        and not node.lost
                        and node.node_id not in self.busy
                        and random.random() < rate
                    ):
                        self.preempt(node)

        self.lifecycle.spawn(loop(), "preempt-rate")
