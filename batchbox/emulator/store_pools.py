"""The pools and nodes tables of the state database.

A pool row keeps the pool's document; a node row keeps the node's document, the secret its agent signs in with
(sealed apart from the document) and the id of the container that runs it. Writing and removing node rows also
records the node's lifetime in ``usage`` (the pool usage metrics).
"""

from __future__ import annotations

import time
from typing import Any

from batchbox.emulator.sealing import SealError
from batchbox.emulator.secret_owners import owned, pool_owner
from batchbox.emulator.store_schema import StoreError
from batchbox.emulator.store_secrets import SecretRows

__all__ = ["PoolRows"]


class PoolRows(SecretRows):
    """Pools by id and the nodes of each pool, in creation order (deleting a pool deletes its secrets too)."""

    # -- pools ------------------------------------------------------------------------------------------------

    def insert_pool(self, doc: dict[str, Any]) -> bool:
        """Store a new pool document (stamping its eTag); False when the id exists."""
        self._stamp(doc, keep_last_modified=True)
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO pools (key, id, doc, etag, last_modified) VALUES (?, ?, ?, ?, ?)",
            (doc["id"].lower(), doc["id"], self._dump("pools", doc), doc["eTag"], doc["lastModified"]),
        )
        return cursor.rowcount == 1

    def get_pool(self, pool_id: str) -> dict[str, Any] | None:
        """The pool's document, or None when there is no such pool."""
        return self._fetch_doc("pools", "SELECT doc FROM pools WHERE key = ?", pool_id.lower())

    def list_pools(self) -> list[dict[str, Any]]:
        """Every pool, in creation order."""
        return [self._load("pools", r[0]) for r in self._conn.execute("SELECT doc FROM pools ORDER BY rowid")]

    def update_pool(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Replace a pool document; a new eTag and lastModified are written into ``doc``, which is returned."""
        self._stamp(doc)
        self._conn.execute(
            "UPDATE pools SET doc = ?, etag = ?, last_modified = ? WHERE key = ?",
            (self._dump("pools", doc), doc["eTag"], doc["lastModified"], doc["id"].lower()),
        )
        return doc

    def delete_pool(self, pool_id: str) -> None:
        """Remove a pool and any node rows still recorded for it."""
        key = pool_id.lower()
        with self.transaction():
            for (node_id,) in self._conn.execute("SELECT id FROM nodes WHERE pool_key = ?", (key,)).fetchall():
                self.usage.ended(str(node_id), time.time())
            self._conn.execute("DELETE FROM nodes WHERE pool_key = ?", (key,))
            self._conn.execute("DELETE FROM pools WHERE key = ?", (key,))
            self.delete_secrets(owned(pool_owner(pool_id), ""))

    # -- nodes ------------------------------------------------------------------------------------------------

    def upsert_node(
        self, pool_id: str, doc: dict[str, Any], *, secret: str | None = None, container_id: str | None = None
    ) -> None:
        """Insert or replace a node document; ``secret`` / ``container_id`` are kept when passed as None."""
        self._conn.execute(
            "INSERT INTO nodes (id, pool_key, doc, secret, container_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET pool_key = excluded.pool_key, doc = excluded.doc, "
            "secret = COALESCE(excluded.secret, nodes.secret), "
            "container_id = COALESCE(excluded.container_id, nodes.container_id)",
            (doc["id"].lower(), pool_id.lower(), self._dump("nodes", doc), self._seal_secret(secret), container_id),
        )
        self.usage.started(doc["id"], pool_id, str(doc.get("vmSize") or ""), time.time())

    def get_node(self, node_id: str) -> dict[str, Any] | None:
        """The node's document, or None when there is no such node."""
        return self._fetch_doc("nodes", "SELECT doc FROM nodes WHERE id = ?", node_id.lower())

    def get_node_secret(self, node_id: str) -> str | None:
        """The secret the node's agent signs in with, or None when none is kept."""
        row = self._conn.execute("SELECT secret FROM nodes WHERE id = ?", (node_id.lower(),)).fetchone()
        if not row or row[0] is None:
            return None
        try:
            return self._sealer.open(row[0], "nodes.secret")
        except SealError:
            raise StoreError(f"the secret of node {node_id} in the state database {self._path} is corrupt") from None

    def get_node_container(self, node_id: str) -> str | None:
        """The id of the container that runs the node, or None when none is recorded."""
        row = self._conn.execute("SELECT container_id FROM nodes WHERE id = ?", (node_id.lower(),)).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def list_nodes(self, pool_id: str | None = None) -> list[dict[str, Any]]:
        """Nodes of one pool (or of all pools), in creation order."""
        if pool_id is None:
            rows = self._conn.execute("SELECT doc FROM nodes ORDER BY rowid")
        else:
            rows = self._conn.execute("SELECT doc FROM nodes WHERE pool_key = ? ORDER BY rowid", (pool_id.lower(),))
        return [self._load("nodes", r[0]) for r in rows]

    def delete_node(self, node_id: str) -> None:
        """Remove a node's row and record the end of its lifetime."""
        self._conn.execute("DELETE FROM nodes WHERE id = ?", (node_id.lower(),))
        self.usage.ended(node_id, time.time())

    def _seal_secret(self, secret: str | None) -> bytes | None:
        return None if secret is None else self._sealer.seal(secret, "nodes.secret")
