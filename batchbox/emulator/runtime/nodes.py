"""Node lifecycle: pool targets <-> nodes, node loss (container gone or agent silent) and replacement.

A pool's nodes are reconciled by one asyncio task per pool at a time: it creates missing nodes and removes surplus
ones (idle nodes first, then the least busy); creating and removing one node's container, by the pool's
``nodeDeallocationOption`` and within its ``resizeTimeout``, is :mod:`~batchbox.emulator.runtime.node_containers`.
A lost node goes ``unusable``, its running tasks are requeued, and it is removed and replaced so the pool
keeps its target size. An :data:`~batchbox.emulator.runtime.ports.AllocationGate` (the fault layer) may grant fewer
nodes than a resize asks for: the pool then settles short of its target with resize errors, as on Azure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from batchbox.emulator.clock import duration_seconds
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.model import NodeRuntime, PoolRuntime
from batchbox.emulator.runtime.mount_sync import MountSync
from batchbox.emulator.runtime.node_containers import NodeContainers
from batchbox.emulator.runtime.pool_allocation import choose_victims, gate_allocation, pool_settings, write_allocation
from batchbox.emulator.runtime.ports import AllocationGate, NodeContainer, NodeDriverLike
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["MONITOR_INTERVAL", "ORPHAN_GRACE", "NodeLifecycle"]

log = logging.getLogger(__name__)

MONITOR_INTERVAL = 2.0
ORPHAN_GRACE = 10.0
"""Seconds a run the agent did not list at re-registration stays bound, waiting for its buffered result."""
ZOMBIE_LIMIT = 120.0
START_FAILURES_LIMIT = 3
"""Nodes of a pool lost before their agent ever registered, in a row, after which replacements stop."""


class NodeLifecycle:
    """Keeps the nodes of the pools in the scheduler's registry at their targets (their containers through
    :class:`~batchbox.emulator.runtime.node_containers.NodeContainers`), watches them and replaces lost ones."""

    def __init__(
        self,
        config: EmulatorConfig,
        driver: NodeDriverLike,
        scheduler: Scheduler,
        transitions: Transitions,
        allocation_gate: AllocationGate | None = None,
        *,
        mounts: MountSync | None = None,
    ) -> None:
        self.config = config
        self.mounts = mounts
        self.driver = driver
        self.allocation_gate = allocation_gate
        self.sched = scheduler
        self.trans = transitions
        self.store = scheduler.store
        self.containers = NodeContainers(config, driver, scheduler, transitions, mounts=mounts)
        """Creates and removes the containers of single nodes."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self.busy_nodes: set[str] = set()
        """Nodes a node operation (reboot, reimage, deallocate, start, preemption) is changing: not monitored."""
        self.removal_requests: set[str] = set()
        """Node ids a ``removenodes`` request named: the next reconciliation removes these first."""

    # ----------------------------------------------------------------- background work
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a coroutine in the background; failures are logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("runtime task %s failed", task.get_name(), exc_info=task.exception())

    def start_monitor(self) -> None:
        if self._monitor is None:
            self._monitor = self.spawn(self._monitor_loop(), "node-monitor")

    async def stop(self) -> None:
        """Cancel the monitor and every pending reconciliation (containers keep running)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._monitor = None
        for pool in self.sched.pools.values():
            pool.reconciler = None

    # ----------------------------------------------------------------- pools
    def pool_changed(self, pool_id: str, *, resized: bool = False) -> None:
        """Re-read a pool and reconcile its nodes with its targets (or delete them when it is deleting)."""
        key = pool_id.lower()
        pool = self.sched.pools.get(key)
        doc = self.store.get_pool(pool_id)
        if pool is None:
            if doc is None:
                return
            pool = PoolRuntime(pool_id=str(doc["id"]))
            self.sched.pools[key] = pool
        if doc is not None:
            pool_settings(pool, doc)
        if resized:
            pool.allocation_failed = False
            pool.start_failures = 0
            timeout = duration_seconds((doc or {}).get("resizeTimeout"))
            self.containers.resize_deadlines[key] = time.monotonic() + (timeout if timeout is not None else 900.0)
        pool.dirty = True
        if pool.reconciler is None:
            pool.reconciler = self.spawn(self._reconcile(pool), f"reconcile-{pool.pool_id}")

    async def _reconcile(self, pool: PoolRuntime) -> None:
        try:
            while pool.dirty:
                pool.dirty = False
                try:
                    await self._reconcile_once(pool)
                except Exception:
                    log.exception("reconciling pool %s failed", pool.pool_id)
        finally:
            pool.reconciler = None

    async def _reconcile_once(self, pool: PoolRuntime) -> None:
        doc = self.store.get_pool(pool.pool_id)
        if doc is None or pool.deleting or doc.get("state") == "deleting":
            await self._delete_pool(pool, exists=doc is not None)
            return
        pool_settings(pool, doc)
        create: list[bool] = []
        remove: list[NodeRuntime] = []
        live = pool.live_nodes()
        for dedicated, field in ((True, "targetDedicatedNodes"), (False, "targetLowPriorityNodes")):
            target = doc.get(field)
            target = target if isinstance(target, int) and not isinstance(target, bool) and target > 0 else 0
            mine = [n for n in live if n.dedicated == dedicated]
            if len(mine) < target and not pool.allocation_failed:
                create += [dedicated] * (target - len(mine))
            elif len(mine) > target and not pool.allocation_failed:
                remove += choose_victims(mine, len(mine) - target, self.removal_requests)
        if create or remove:
            write_allocation(self.sched, pool, "resizing")
        refused: list[dict[str, Any]] = []
        if create and self.allocation_gate is not None:
            create, refused = gate_allocation(self.allocation_gate, self.sched.pools.values(), doc, create)
            pool.allocation_failed = pool.allocation_failed or bool(refused)
        option = str(doc.get("nodeDeallocationOption") or "requeue").lower()
        for node in remove:
            self.containers.begin_removal(node, option=option)
        await asyncio.gather(
            *(self.containers.finish_removal(n) for n in remove), *(self.containers.create(pool, d) for d in create)
        )
        if refused:
            write_allocation(self.sched, pool, "steady", errors=refused)
        elif not pool.dirty:
            write_allocation(self.sched, pool, "steady")

    async def _delete_pool(self, pool: PoolRuntime, *, exists: bool) -> None:
        pool.deleting = True
        nodes = list(pool.nodes.values())
        for node in nodes:
            if not node.removing:
                self.containers.begin_removal(node)
        await asyncio.gather(*(self.containers.finish_removal(n) for n in nodes))
        with self.sched.batch():
            for node_doc in self.store.list_nodes(pool.pool_id):
                self.store.delete_node(str(node_doc["id"]))
            if exists:
                self.store.delete_pool(pool.pool_id)
        if self.sched.pools.get(pool.key) is pool:
            del self.sched.pools[pool.key]

    # ----------------------------------------------------------------- node loss
    def lose(self, node: NodeRuntime, reason: str) -> None:
        """A node died: ``unusable``, its runs requeued; then it is removed and the pool replaces it."""
        if node.lost or node.removing:
            return
        log.warning("node %s of pool %s is lost: %s", node.node_id, node.pool_id, reason)
        node.lost = True
        pool = self.sched.pools.get(node.pool_key)
        if pool is not None and not node.registered:
            pool.start_failures += 1
            if pool.start_failures >= START_FAILURES_LIMIT:
                pool.allocation_failed = True
                write_allocation(self.sched, pool, "steady", error=f"Nodes do not start: {reason}")
        self.containers.begin_removal(node, state="unusable")
        self.spawn(self._retire(node), f"retire-{node.node_id}")

    async def _retire(self, node: NodeRuntime) -> None:
        await self.containers.finish_removal(node)
        if node.pool_key in self.sched.pools:
            self.pool_changed(node.pool_id)

    # ----------------------------------------------------------------- the monitor
    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            try:
                await self.check()
            except Exception:
                log.exception("node monitor pass failed")

    async def check(self) -> None:
        """One monitor pass: container states, heartbeats, orphaned and stuck runs, job deadlines."""
        try:
            containers: dict[str, NodeContainer] | None = dict(await asyncio.to_thread(self.driver.list_nodes))
        except Exception as exc:
            log.warning("listing node containers failed: %s", exc)
            containers = None
        now = time.monotonic()
        for node in list(self.sched.nodes.values()):
            if (
                node.removing
                or node.lost
                or node.container_id is None
                or node.node_id in self.busy_nodes
                or node.state == "deallocated"
            ):
                continue
            if containers is not None:
                info = containers.get(node.node_id)
                status = "missing" if info is None else info.status
                if status != "running":
                    self.lose(node, f"its container is {status}")
                    continue
            if node.polls_waiting == 0 and now - node.last_contact > self.config.heartbeat_timeout:
                self.lose(node, f"its agent has not polled for {now - node.last_contact:.0f} s")
        with self.sched.batch():
            for node in list(self.sched.nodes.values()):
                for held in list(node.running.values()):
                    if held.cancelled and held.cancelled_at is not None and now - held.cancelled_at > ZOMBIE_LIMIT:
                        self.sched.release(node, held)
                    elif held.orphan_since is not None and now - held.orphan_since > ORPHAN_GRACE:
                        self.trans.requeue(node, held)
            self.trans.expire_jobs()
            self.sched.dispatch_all()
