"""Pool transitions: add, update, resize, stop resize, delete, remove nodes, autoscale enable / disable / evaluate
(node creation and removal follow in the background: ``runtime/nodes.py``; formulas: ``runtime/autoscale.py``).
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import not_found, resource_exists
from batchbox.emulator.resources.autoscale import check_not_autoscaling
from batchbox.emulator.resources.guards import check_pool_not_deleting, check_pool_steady
from batchbox.emulator.resources.nodes import RemoveNodes
from batchbox.emulator.resources.pool_updates import apply_stop_resize
from batchbox.emulator.runtime.autoscale import AutoScaler
from batchbox.emulator.runtime.documents import pool_deleting
from batchbox.emulator.runtime.nodes import NodeLifecycle

__all__ = ["PoolOperations"]

Doc = dict[str, Any]

_SCHEDULING_SETTINGS = ("taskSlotsPerNode", "taskSchedulingPolicy")


class PoolOperations:
    """What handlers ask of pools (``runtime.pools``)."""

    def __init__(self, lifecycle: NodeLifecycle, autoscaler: AutoScaler) -> None:
        self._lifecycle = lifecycle
        self._autoscaler = autoscaler
        self._sched = lifecycle.sched
        self._store = lifecycle.store

    def _get(self, pool_id: str) -> Doc:
        doc = self._store.get_pool(pool_id)
        if doc is None:
            raise not_found("pool", pool_id)
        return doc

    def add(self, doc: Doc) -> Doc:
        """Store a new pool (built by ``resources.build_pool``) and start creating its nodes.

        Raises:
            BatchError: ``PoolExists`` (409).
        """
        if not self._store.insert_pool(doc):
            raise resource_exists("pool", doc["id"])
        self._lifecycle.pool_changed(doc["id"], resized=True)
        if doc.get("enableAutoScale"):
            self._autoscaler.enabled(doc["id"])
        return doc

    def update(self, doc: Doc) -> Doc:
        """Store a patched pool (``resources.apply_pool_patch``); changed scheduling settings (slots per node, fill
        type) are taken up at once."""
        before = self._get(doc["id"])
        stored = self._store.update_pool(doc)
        if any(before.get(name) != stored.get(name) for name in _SCHEDULING_SETTINGS):
            self._lifecycle.pool_changed(stored["id"], resized=True)
        return stored

    def resize(self, doc: Doc) -> Doc:
        """Store new targets (``resources.apply_resize``) and add or remove nodes to reach them."""
        stored = self._store.update_pool(doc)
        self._lifecycle.pool_changed(stored["id"], resized=True)
        return stored

    def stop_resize(self, pool_id: str) -> Doc:
        """Stop a resize: the targets become the current counts and the pool is steady; a steady pool stays as is.

        Raises:
            BatchError: ``PoolNotFound`` (404), ``PoolBeingDeleted`` (409).
        """
        doc = self._get(pool_id)
        updated = apply_stop_resize(doc)
        if doc.get("allocationState") == "steady":
            return doc
        stored = self._store.update_pool(updated)
        self._lifecycle.pool_changed(stored["id"], resized=True)
        return stored

    def delete(self, pool_id: str) -> Doc:
        """Mark the pool ``deleting``; its running tasks are requeued, its nodes removed, then it is deleted.

        Raises:
            BatchError: ``PoolNotFound`` (404), ``PoolBeingDeleted`` (409).
        """
        doc = self._get(pool_id)
        check_pool_not_deleting(doc)
        pool_deleting(doc, now_iso())
        stored = self._store.update_pool(doc)
        pool = self._sched.pools.get(pool_id.lower())
        if pool is not None:
            pool.deleting = True
        self._lifecycle.pool_changed(stored["id"])
        return stored

    # ----------------------------------------------------------------- autoscale
    def enable_autoscale(self, doc: Doc) -> Doc:
        """Store a pool with autoscale enabled or its formula / interval changed (``resources.apply_enable_autoscale``);
        the formula is evaluated at once, then every interval."""
        stored = self._store.update_pool(doc)
        self._autoscaler.enabled(stored["id"])
        return stored

    def disable_autoscale(self, doc: Doc) -> Doc:
        """Store a pool with autoscale disabled (``resources.apply_disable_autoscale``); its targets stay."""
        stored = self._store.update_pool(doc)
        self._autoscaler.disabled(stored["id"])
        return stored

    def evaluate_autoscale(self, pool_id: str, formula: str) -> dict[str, Any]:
        """Evaluate a formula against the pool's samples without applying it: the ``autoScaleRun`` body."""
        return self._autoscaler.evaluate(self._get(pool_id), formula).to_rest()

    # ----------------------------------------------------------------- remove nodes
    def remove_nodes(self, pool_id: str, request: RemoveNodes) -> Doc:
        """Remove the named nodes: the targets drop by as many, and those nodes go first (their tasks by
        ``nodeDeallocationOption``).

        Raises:
            BatchError: PoolNotFound / NodeNotFound (404); PoolBeingDeleted / PoolBeingResized /
                OperationInvalidForCurrentState (autoscale) (409).
        """
        doc = self._get(pool_id)
        check_pool_not_deleting(doc)
        check_not_autoscaling(doc, "remove nodes")
        check_pool_steady(doc)
        pool = self._sched.pools.get(pool_id.lower())
        nodes = {n.node_id.lower(): n for n in (pool.live_nodes() if pool is not None else [])}
        chosen = []
        for node_id in request.node_ids:
            node = nodes.get(node_id.lower())
            if node is None:
                raise not_found("node", node_id)
            chosen.append(node)
        dedicated = sum(1 for n in chosen if n.dedicated)
        doc["targetDedicatedNodes"] = max(0, int(doc.get("targetDedicatedNodes") or 0) - dedicated)
        doc["targetLowPriorityNodes"] = max(0, int(doc.get("targetLowPriorityNodes") or 0) - (len(chosen) - dedicated))
        doc["nodeDeallocationOption"] = request.option
        if request.resize_timeout is not None:
            doc["resizeTimeout"] = request.resize_timeout
        doc["allocationState"] = "resizing"
        doc["allocationStateTransitionTime"] = now_iso()
        doc.pop("resizeErrors", None)
        self._lifecycle.removal_requests.update(n.node_id for n in chosen)
        stored = self._store.update_pool(doc)
        self._lifecycle.pool_changed(stored["id"], resized=True)
        return stored
