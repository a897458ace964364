"""Two more tables of the state database, beside the pools, nodes, jobs and tasks of ``store.py``.

* ``job_schedules``: job schedule documents (sealed, like every REST document) with their state and the number of
  jobs each has created so far (the ``n`` of ``{scheduleId}:job-{n}``, never a REST property);
* ``job_node_tasks``: for each job and node, the status of the job's preparation and release tasks there, as
  ``GET /jobs/{id}/jobpreparationandreleasetaskstatus`` returns it (sealed).

Both use the store's connection (event-loop thread only), its sealer and its eTag stamping; ``Store`` builds them
as ``store.schedules`` and ``store.job_node_tasks`` and documents are corrupt for them as for the store.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchbox.emulator.sealing import Sealer, SealError

__all__ = ["JobNodeTaskTable", "ScheduleTable"]

Doc = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_schedules (
    key TEXT PRIMARY KEY, id TEXT NOT NULL, state TEXT NOT NULL, seq INTEGER NOT NULL, jobs_created INTEGER NOT NULL,
    doc BLOB NOT NULL, etag TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_node_tasks (
    job_key TEXT NOT NULL, node_id TEXT NOT NULL, seq INTEGER NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (job_key, node_id));
"""


class _Sealed:
    """Documents of one table, sealed under the store's key."""

    def __init__(
        self, conn: sqlite3.Connection, sealer: Sealer, table: str, path: Path, corrupt: type[Exception]
    ) -> None:
        self._conn = conn
        self._sealer = sealer
        self._table = table
        self._path = path
        self._corrupt = corrupt

    def _dump(self, doc: Doc) -> bytes:
        return self._sealer.seal(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), self._table)

    def _load(self, sealed: bytes) -> Doc:
        try:
            value = json.loads(self._sealer.open(sealed, self._table))
        except (SealError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise self._corrupt(f"a {self._table} document in the state database {self._path} is corrupt")
        return value


class ScheduleTable(_Sealed):
    """Job schedule documents by id (unique ignoring case), in creation order."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        sealer: Sealer,
        path: Path,
        corrupt: type[Exception],
        stamp: Callable[..., None],
    ) -> None:
        super().__init__(conn, sealer, "job_schedules", path, corrupt)
        conn.executescript(_SCHEMA)
        self._stamp = stamp
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM job_schedules").fetchone()
        self._seq = int(row[0])

    def insert(self, doc: Doc) -> bool:
        """Store a new schedule (its eTag stamped, its lastModified kept); False when the id exists."""
        self._stamp(doc, keep_last_modified=True)
        seq = self._seq + 1
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO job_schedules (key, id, state, seq, jobs_created, doc, etag, last_modified) "
            "VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
            (doc["id"].lower(), doc["id"], doc["state"], seq, self._dump(doc), doc["eTag"], doc["lastModified"]),
        )
        if cursor.rowcount != 1:
            return False
        self._seq = seq
        return True

    def get(self, schedule_id: str) -> Doc | None:
        row = self._conn.execute("SELECT doc FROM job_schedules WHERE key = ?", (schedule_id.lower(),)).fetchone()
        return self._load(row[0]) if row else None

    def list(self) -> builtins.list[Doc]:
        """Every schedule, in creation order."""
        return [self._load(r[0]) for r in self._conn.execute("SELECT doc FROM job_schedules ORDER BY seq")]

    def update(self, doc: Doc) -> Doc:
        """Replace a schedule's document (a new eTag and lastModified are written into ``doc``)."""
        self._stamp(doc)
        self._conn.execute(
            "UPDATE job_schedules SET doc = ?, state = ?, etag = ?, last_modified = ? WHERE key = ?",
            (self._dump(doc), doc["state"], doc["eTag"], doc["lastModified"], doc["id"].lower()),
        )
        return doc

    def delete(self, schedule_id: str) -> None:
        self._conn.execute("DELETE FROM job_schedules WHERE key = ?", (schedule_id.lower(),))

    def next_job_number(self, schedule_id: str) -> int:
        """Count one more job for the schedule and return its number (1 for the first)."""
        key = schedule_id.lower()
        self._conn.execute("UPDATE job_schedules SET jobs_created = jobs_created + 1 WHERE key = ?", (key,))
        row = self._conn.execute("SELECT jobs_created FROM job_schedules WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0


class JobNodeTaskTable(_Sealed):
    """Per job and node: the preparation / release task status document, in the order nodes first ran one."""

    def __init__(self, conn: sqlite3.Connection, sealer: Sealer, path: Path, corrupt: type[Exception]) -> None:
        super().__init__(conn, sealer, "job_node_tasks", path, corrupt)
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM job_node_tasks").fetchone()
        self._seq = int(row[0])

    def put(self, job_id: str, node_id: str, doc: Doc) -> None:
        """Insert or replace the status of one node (its place in the list is kept)."""
        self._seq += 1
        self._conn.execute(
            "INSERT INTO job_node_tasks (job_key, node_id, seq, doc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(job_key, node_id) DO UPDATE SET doc = excluded.doc",
            (job_id.lower(), node_id, self._seq, self._dump(doc)),
        )

    def get(self, job_id: str, node_id: str) -> Doc | None:
        row = self._conn.execute(
            "SELECT doc FROM job_node_tasks WHERE job_key = ? AND node_id = ?", (job_id.lower(), node_id)
        ).fetchone()
        return self._load(row[0]) if row else None

    def list(self, job_id: str) -> builtins.list[Doc]:
        """The statuses of one job, one per node that ran its preparation task."""
        rows = self._conn.execute("SELECT doc FROM job_node_tasks WHERE job_key = ? ORDER BY seq", (job_id.lower(),))
        return [self._load(r[0]) for r in rows]

    def list_all(self) -> builtins.list[tuple[str, Doc]]:
        """``(job key, status)`` of every job (for the runtime's restart)."""
        rows = self._conn.execute("SELECT job_key, doc FROM job_node_tasks ORDER BY seq")
        return [(str(key), self._load(doc)) for key, doc in rows]

    def delete(self, job_id: str, node_id: str) -> None:
        self._conn.execute("DELETE FROM job_node_tasks WHERE job_key = ? AND node_id = ?", (job_id.lower(), node_id))

    def delete_job(self, job_id: str) -> None:
        self._conn.execute("DELETE FROM job_node_tasks WHERE job_key = ?", (job_id.lower(),))
