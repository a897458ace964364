"""Pool transitions: add, update, resize, stop resize, delete (node creation and removal follow in the background).

Future pool operations belong here too (autoscale enable / disable / evaluate, remove nodes), with their mechanics
in ``runtime/nodes.py`` or a module of their own.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import not_found, resource_exists
from batchbox.emulator.resources.guards import check_pool_not_deleting
from batchbox.emulator.resources.pools import apply_stop_resize
from batchbox.emulator.runtime.documents import pool_deleting
from batchbox.emulator.runtime.nodes import NodeLifecycle

__all__ = ["PoolOperations"]

Doc = dict[str, Any]

_SCHEDULING_SETTINGS = ("taskSlotsPerNode", "taskSchedulingPolicy")


class PoolOperations:
    """What handlers ask of pools (``runtime.pools``)."""

    def __init__(self, lifecycle: NodeLifecycle) -> None:
        self._lifecycle = lifecycle
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
