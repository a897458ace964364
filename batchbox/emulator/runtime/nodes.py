"""Node lifecycle: pool targets <-> containers, node loss (container gone or agent silent) and replacement.

A pool's nodes are reconciled by one asyncio task per pool at a time: it creates missing nodes (at most
:data:`CREATE_CONCURRENCY` Docker creations at once, in worker threads, each sized by the pool's ``vmSize``) and
removes surplus ones (idle nodes first, then the least busy), handling their running tasks by the pool's
``nodeDeallocationOption``: ``requeue`` (the default) and ``terminate`` at once, ``taskcompletion`` and
``retaineddata`` after the tasks end. A resize not done within the pool's ``resizeTimeout`` stops with
``ResizeTimedOut`` in ``resizeErrors``.
A lost node goes ``unusable``, its running tasks are requeued, and it is removed and replaced so the pool
keeps its target size. An :data:`~batchbox.emulator.runtime.ports.AllocationGate` (the fault layer) may grant fewer
nodes than a resize asks for: the pool then settles short of its target with resize errors, as on Azure.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from batchbox.emulator.clock import duration_seconds, now_iso
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.container_payload import CONTAINER_INVALID_IMAGE, container_failure
from batchbox.emulator.runtime.documents import new_node_doc, new_node_id
from batchbox.emulator.runtime.model import NodeRuntime, PoolRuntime
from batchbox.emulator.runtime.mount_sync import MountSync
from batchbox.emulator.runtime.node_sizes import NodeSizing, pool_vm_size, size_node
from batchbox.emulator.runtime.ports import AllocationGate, ContainerImageError, NodeContainer, NodeDriverLike
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.task_containers import pool_images, pool_registries, registry_credentials
from batchbox.emulator.runtime.transitions import Transitions
from batchbox.emulator.secret_owners import pool_owner

__all__ = ["CREATE_CONCURRENCY", "MONITOR_INTERVAL", "ORPHAN_GRACE", "NodeLifecycle", "pool_settings"]

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 4
MONITOR_INTERVAL = 2.0
ORPHAN_GRACE = 10.0
"""Seconds a run the agent did not list at re-registration stays bound, waiting for its buffered result."""
ZOMBIE_LIMIT = 120.0
START_FAILURES_LIMIT = 3
"""Nodes of a pool lost before their agent ever registered, in a row, after which replacements stop."""
DRAIN_POLL = 0.5
"""Seconds between checks of a node waiting for its running tasks to end."""
WAITING_OPTIONS = frozenset({"taskcompletion", "retaineddata"})
"""``nodeDeallocationOption`` values that let running tasks finish before the node goes."""


def pool_settings(pool: PoolRuntime, doc: dict[str, Any]) -> None:
    """Copy a pool document's scheduling settings onto its runtime."""
    pool.doc = doc
    slots = doc.get("taskSlotsPerNode")
    pool.slots_per_node = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1
    policy = doc.get("taskSchedulingPolicy") or {}
    pool.fill_type = "pack" if str(policy.get("nodeFillType") or "spread").lower() == "pack" else "spread"
    pool.job_order = "creationtime" if str(policy.get("jobDefaultOrder") or "").lower() == "creationtime" else "none"
    if doc.get("state") == "deleting":
        pool.deleting = True


class NodeLifecycle:
    """Creates, watches and removes node containers for the pools in the scheduler's registry."""

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
        self._create_slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._capped_pools: set[str] = set()
        self.busy_nodes: set[str] = set()
        """Nodes a node operation (reboot, reimage, deallocate, start, preemption) is changing: not monitored."""
        self.removal_requests: set[str] = set()
        """Node ids a ``removenodes`` request named: the next reconciliation removes these first."""
        self._resize_deadlines: dict[str, float] = {}

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
            self._resize_deadlines[key] = time.monotonic() + (timeout if timeout is not None else 900.0)
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
                remove += self._victims(mine, len(mine) - target)
        if create or remove:
            self._write_allocation(pool, "resizing")
        refused: list[dict[str, Any]] = []
        if create and self.allocation_gate is not None:
            create, refused = self._gate(doc, create)
            pool.allocation_failed = pool.allocation_failed or bool(refused)
        option = str(doc.get("nodeDeallocationOption") or "requeue").lower()
        for node in remove:
            self._begin_removal(node, option=option)
        await asyncio.gather(*(self._finish_removal(n) for n in remove), *(self._create(pool, d) for d in create))
        if refused:
            self._write_allocation(pool, "steady", errors=refused)
        elif not pool.dirty:
            self._write_allocation(pool, "steady")

    def _gate(self, doc: dict[str, Any], wanted: list[bool]) -> tuple[list[bool], list[dict[str, Any]]]:
        """The nodes of ``wanted`` the allocation gate grants, and the resize errors of those it refuses."""
        assert self.allocation_gate is not None
        pools = [
            (
                str((p.doc or {}).get("vmSize") or ""),
                sum(1 for n in p.live_nodes() if n.dedicated),
                sum(1 for n in p.live_nodes() if not n.dedicated),
            )
            for p in self.sched.pools.values()
            if not p.deleting
        ]
        granted, errors = self.allocation_gate(doc, wanted, pools)
        return [dedicated for dedicated, ok in zip(wanted, granted, strict=True) if ok], errors

    def _victims(self, nodes: list[NodeRuntime], count: int) -> list[NodeRuntime]:
        def busy(node: NodeRuntime) -> tuple[int, int, int]:
            runs = sum(1 for a in node.running.values() if not a.cancelled)
            return (0 if node.node_id in self.removal_requests else 1, 1 if runs else 0, node.used_slots)

        chosen = sorted(nodes, key=busy)[:count]
        self.removal_requests.difference_update(n.node_id for n in chosen)
        return chosen

    def _write_allocation(
        self, pool: PoolRuntime, state: str, error: str | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        with self.sched.batch():
            doc = self.store.get_pool(pool.pool_id)
            if doc is None:
                return
            live = pool.live_nodes()
            values: dict[str, Any] = {
                "allocationState": state,
                "currentDedicatedNodes": sum(1 for n in live if n.dedicated),
                "currentLowPriorityNodes": sum(1 for n in live if not n.dedicated),
            }
            if errors:
                values["resizeErrors"] = errors
            elif error is not None:
                values["resizeErrors"] = [{"code": "AllocationFailed", "message": error, "values": []}]
            elif state == "resizing" and not pool.allocation_failed:
                values["resizeErrors"] = None
            changed = {k: v for k, v in values.items() if doc.get(k) != v}
            if not changed:
                return
            if "allocationState" in changed:
                doc["allocationStateTransitionTime"] = now_iso()
            for name, value in changed.items():
                if value is None:
                    doc.pop(name, None)
                else:
                    doc[name] = value
            pool.doc = self.store.update_pool(doc)

    async def _delete_pool(self, pool: PoolRuntime, *, exists: bool) -> None:
        pool.deleting = True
        nodes = list(pool.nodes.values())
        for node in nodes:
            if not node.removing:
                self._begin_removal(node)
        await asyncio.gather(*(self._finish_removal(n) for n in nodes))
        with self.sched.batch():
            for node_doc in self.store.list_nodes(pool.pool_id):
                self.store.delete_node(str(node_doc["id"]))
            if exists:
                self.store.delete_pool(pool.pool_id)
        if self.sched.pools.get(pool.key) is pool:
            del self.sched.pools[pool.key]

    # ----------------------------------------------------------------- nodes
    async def _create(self, pool: PoolRuntime, dedicated: bool) -> None:
        if self._create_slots is None:
            self._create_slots = asyncio.Semaphore(CREATE_CONCURRENCY)
        node_id = new_node_id(dedicated)
        secret = secrets.token_urlsafe(32)
        doc = new_node_doc(self.config.base_url, pool.doc or {"id": pool.pool_id}, node_id, now_iso(), dedicated)
        node = self.sched.add_node(pool, doc, secret, dedicated=dedicated)
        with self.sched.batch():
            self.store.upsert_node(pool.pool_id, doc, secret=secret, container_id=None)
        async with self._create_slots:
            if node.removing or not await self._prepare(pool, node):
                return
            try:
                sizing = await self.sizing(pool)
                if sizing.capped is not None:
                    node.doc["errors"] = [sizing.capped]
                container_id = await asyncio.to_thread(
                    self.driver.create_node, pool.pool_id, node_id, secret, resources=sizing.resources
                )
            except Exception as exc:
                log.warning("creating node %s of pool %s failed: %s", node_id, pool.pool_id, exc)
                pool.allocation_failed = True
                self._begin_removal(node)
                await self._finish_removal(node)
                self._write_allocation(pool, "steady", error=f"Creating a node container failed: {exc}")
                return
        node.container_id = container_id
        node.last_contact = time.monotonic()
        if node.removing:
            await asyncio.to_thread(self.driver.remove_node, node_id)
            return
        with self.sched.batch():
            now = now_iso()
            if node.state == "creating":
                node.doc["state"] = "starting"
                node.doc["stateTransitionTime"] = now
            node.doc["lastBootTime"] = now
            self.sched.touch_node(node)

    async def _prepare(self, pool: PoolRuntime, node: NodeRuntime) -> bool:
        """Make the pool's container images present and its mounts synced before the node starts; a missing image
        or a failed mount makes the node unusable (with the node error), and it is not replaced."""
        error = None
        images = pool_images(pool.doc)
        if images:
            credentials = registry_credentials(self.store, pool_registries(pool.doc), [pool_owner(pool.pool_id)])
            try:
                await asyncio.to_thread(self.driver.task_containers.ensure_images, images, credentials)
            except ContainerImageError as exc:
                failure = container_failure(CONTAINER_INVALID_IMAGE, {"ContainerImage": exc.image, "Message": str(exc)})
                error = {"code": failure["code"], "message": failure["message"], "errorDetails": failure["details"]}
        if error is None and self.mounts is not None and pool.doc is not None:
            error = await self.mounts.attach(pool.doc, node.node_id)
        if error is None:
            return True
        log.warning("node %s of pool %s is unusable: %s", node.node_id, pool.pool_id, error["errorDetails"])
        with self.sched.batch():
            node.doc["errors"] = [error]
            self.sched.touch_node(node, "unusable")
        return False

    async def sizing(self, pool: PoolRuntime) -> NodeSizing:
        """The CPUs and memory a node of ``pool`` gets (its ``vmSize``, capped to the machine; logged once)."""
        vm_size = pool_vm_size(pool.doc)
        if not self.config.vm_size_limits:
            return NodeSizing(None)
        host = await asyncio.to_thread(self.driver.host_capacity)
        sizing = size_node(vm_size, host, limits=True)
        if sizing.capped is not None and pool.key not in self._capped_pools:
            self._capped_pools.add(pool.key)
            log.warning("pool %s: %s", pool.pool_id, sizing.capped["message"])
        return sizing

    def _begin_removal(self, node: NodeRuntime, state: str = "leavingpool", option: str = "requeue") -> None:
        """Stop scheduling to a node and deal with its runs by ``option``; tell its agent to shut down unless the
        runs may finish first (``taskcompletion``, ``retaineddata``: :meth:`_finish_removal` waits for them)."""
        if option in WAITING_OPTIONS and any(not a.cancelled for a in node.running.values()):
            node.draining = True
            with self.sched.batch():
                self.sched.touch_node(node, state)
            return
        node.removing = True
        node.shutdown = True
        node.wake.set()
        with self.sched.batch():
            for held in list(node.running.values()):
                if option == "terminate":
                    self.trans.end_run(node, held, "The task was terminated because its node was removed")
                else:
                    self.trans.requeue(node, held)
            node.doc["state"] = state
            node.doc["stateTransitionTime"] = now_iso()
            self.store.upsert_node(node.pool_id, node.doc, secret=node.secret, container_id=node.container_id)
            self.sched.dispatch(node.pool_key)

    async def _drain(self, node: NodeRuntime) -> bool:
        """Wait until a draining node runs no task; False when the pool's resize timeout passed first."""
        while any(not a.cancelled for a in node.running.values()):
            deadline = self._resize_deadlines.get(node.pool_key)
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(DRAIN_POLL)
        return True

    async def _finish_removal(self, node: NodeRuntime) -> None:
        if node.draining:
            drained = await self._drain(node)
            node.draining = False
            if not drained:
                self._resize_timed_out(node)
                return
            self._begin_removal(node)
        try:
            await asyncio.to_thread(self.driver.remove_node, node.node_id)
        except Exception as exc:
            log.warning("removing the container of node %s failed: %s", node.node_id, exc)
        if self.mounts is not None:
            await self.mounts.detach(node.node_id)
        with self.sched.batch():
            self.store.delete_node(node.node_id)
        self.sched.nodes.pop(node.node_id, None)
        pool = self.sched.pools.get(node.pool_key)
        if pool is not None:
            pool.nodes.pop(node.node_id, None)

    async def discard(self, node: NodeRuntime) -> None:
        """Remove a node for good: its container (if any), its document, its runtime entry."""
        node.draining = False
        await self._finish_removal(node)

    def _resize_timed_out(self, node: NodeRuntime) -> None:
        """The pool's resize timeout passed while ``node`` waited for its tasks: it stays, the resize stops."""
        pool = self.sched.pools.get(node.pool_key)
        with self.sched.batch():
            self.sched.touch_node(node, "running" if node.running else "idle")
            self.sched.dispatch(node.pool_key)
        if pool is not None:
            pool.allocation_failed = True
            message = (
                "The resize did not complete within the pool's resizeTimeout: nodes waiting for their running tasks "
                "(nodeDeallocationOption taskcompletion) stay in the pool."
            )
            self._write_allocation(
                pool, "steady", errors=[{"code": "ResizeTimedOut", "message": message, "values": []}]
            )

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
                self._write_allocation(pool, "steady", error=f"Nodes do not start: {reason}")
        self._begin_removal(node, state="unusable")
        self.spawn(self._retire(node), f"retire-{node.node_id}")

    async def _retire(self, node: NodeRuntime) -> None:
        await self._finish_removal(node)
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
