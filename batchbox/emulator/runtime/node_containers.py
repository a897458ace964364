"""One node's container: created (the pool's images pulled, its mounts synced, sized by its ``vmSize``) and
removed (its running tasks handled by the pool's ``nodeDeallocationOption``).

``requeue`` (the default) and ``terminate`` deal with a removed node's running tasks at once; ``taskcompletion``
and ``retaineddata`` let them end first, unless the pool's ``resizeTimeout`` passes: the node then stays and the
resize stops with ``ResizeTimedOut``. :class:`~batchbox.emulator.runtime.nodes.NodeLifecycle` decides which nodes
come and go.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from batchbox.emulator.clock import now_iso
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.container_payload import CONTAINER_INVALID_IMAGE, container_failure
from batchbox.emulator.runtime.documents import new_node_doc, new_node_id
from batchbox.emulator.runtime.model import NodeRuntime, PoolRuntime
from batchbox.emulator.runtime.mount_sync import MountSync
from batchbox.emulator.runtime.node_sizes import NodeSizing, pool_vm_size, size_node
from batchbox.emulator.runtime.pool_allocation import write_allocation
from batchbox.emulator.runtime.ports import ContainerImageError, NodeDriverLike
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.task_containers import pool_images, pool_registries, registry_credentials
from batchbox.emulator.runtime.transitions import Transitions
from batchbox.emulator.secret_owners import pool_owner

__all__ = ["CREATE_CONCURRENCY", "DRAIN_POLL", "WAITING_OPTIONS", "NodeContainers"]

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 4
"""Node containers Docker creates at once (in worker threads)."""
DRAIN_POLL = 0.5
"""Seconds between checks of a node waiting for its running tasks to end."""
WAITING_OPTIONS = frozenset({"taskcompletion", "retaineddata"})
"""``nodeDeallocationOption`` values that let running tasks finish before the node goes."""


class NodeContainers:
    """Creates and removes the containers of single nodes, keeping the scheduler's nodes and the store in step."""

    def __init__(
        self,
        config: EmulatorConfig,
        driver: NodeDriverLike,
        scheduler: Scheduler,
        transitions: Transitions,
        *,
        mounts: MountSync | None = None,
    ) -> None:
        self.config = config
        self.driver = driver
        self.sched = scheduler
        self.trans = transitions
        self.store = scheduler.store
        self.mounts = mounts
        self._create_slots: asyncio.Semaphore | None = None
        self._capped_pools: set[str] = set()
        self.resize_deadlines: dict[str, float] = {}
        """Pool keys -> the monotonic time their resize times out (nodes draining for it stop waiting then)."""

    async def create(self, pool: PoolRuntime, dedicated: bool) -> None:
        """Add a node to ``pool``: its document at once, its container once the pool's images and mounts are ready
        (at most :data:`CREATE_CONCURRENCY` at a time). A failed container creation removes the node and stops the
        pool's allocation with the error."""
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
                self.begin_removal(node)
                await self.finish_removal(node)
                write_allocation(self.sched, pool, "steady", error=f"Creating a node container failed: {exc}")
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

    def begin_removal(self, node: NodeRuntime, state: str = "leavingpool", option: str = "requeue") -> None:
        """Stop scheduling to a node and deal with its runs by ``option``; tell its agent to shut down unless the
        runs may finish first (``taskcompletion``, ``retaineddata``: :meth:`finish_removal` waits for them)."""
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
            deadline = self.resize_deadlines.get(node.pool_key)
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(DRAIN_POLL)
        return True

    async def finish_removal(self, node: NodeRuntime) -> None:
        """Remove a node :meth:`begin_removal` let go: a draining node first waits for its tasks (up to the resize
        timeout), then its container, mounts, document and runtime entry go."""
        if node.draining:
            drained = await self._drain(node)
            node.draining = False
            if not drained:
                self._resize_timed_out(node)
                return
            self.begin_removal(node)
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
        await self.finish_removal(node)

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
            write_allocation(
                self.sched, pool, "steady", errors=[{"code": "ResizeTimedOut", "message": message, "values": []}]
            )
