"""Persistence of the emulator: SQLite (WAL) under the state dir, the only place state lives.

Resources are stored as their REST JSON documents (camelCase, what GET returns minus ``odata.metadata``) next to a
few indexed columns. Documents and node secrets are sealed (:mod:`batchbox.emulator.sealing`): the plain columns hold
only ids, states, results, counts and times. Ids are unique case-insensitively: every key column holds ``id.lower()``.
One connection, used from the event-loop thread only; every call is short and synchronous.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.crash_points import crash_point
from batchbox.emulator.disk_space import StateDisk, is_disk_full
from batchbox.emulator.job_tables import JobNodeTaskTable, ScheduleTable
from batchbox.emulator.node_usage import NodeUsage
from batchbox.emulator.run_history import RunHistory
from batchbox.emulator.sealing import Sealer, SealError
from batchbox.emulator.secret_owners import job_owner, job_tasks_prefix, owned, pool_owner, task_owner
from batchbox.emulator.store_schema import (
    COUNT_BUCKETS,
    SCHEMA_VERSION,
    StoreError,
    open_schema,
    read_task_counts,
    refuse_newer_schema,
)

__all__ = [
    "SCHEMA_VERSION",
    "TASK_COLUMNS",
    "Store",
    "StoreError",
]

log = logging.getLogger(__name__)

_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000
""".NET ticks (100 ns since 0001-01-01) at 1970-01-01: Batch eTags are these ticks in hex."""

_COUNT_NAMES = ("active", "running", "completed", "succeeded", "failed")

TASK_COLUMNS = {"id": "id", "state": "state", "eTag": "etag", "lastModified": "last_modified"}
"""Task properties that are plain columns too (REST name -> column): a listing that selects only these is read
without opening any document."""

_CACHE_KIB = 4 * 1024
"""SQLite's page cache of the store's one connection. It fills up as tasks are read and stays full, so it is memory
the emulator holds for good; pages beyond it are read again from the operating system's file cache. Listing a
million-task job (plain columns), reading its queue and fetching random tasks took no longer with 4 MiB than with
16 MiB (store-level timings); 2 MiB made random fetches slower."""


def _task_result(doc: dict[str, Any]) -> str | None:
    info = doc.get("executionInfo")
    if isinstance(info, dict):
        result = info.get("result")
        if isinstance(result, str):
            return result
    return None


def _task_slots(doc: dict[str, Any]) -> int:
    slots = doc.get("requiredSlots", 1)
    return slots if isinstance(slots, int) and not isinstance(slots, bool) else 1


def _pool_key_of_job(doc: dict[str, Any]) -> str | None:
    """The job's pool: the one it names, else the auto pool created for it (``executionInfo.poolId``)."""
    for info in (doc.get("poolInfo"), doc.get("executionInfo")):
        if isinstance(info, dict) and isinstance(info.get("poolId"), str):
            return str(info["poolId"]).lower()
    return None


class Store:
    """The emulator's state in one SQLite database.

    Args:
        path: the database file (created with its directory when missing).
        sealer: seals documents and node secrets; built from the account key the state belongs to.
        disk: checked before every transaction starts (a full disk refuses it with nothing changed); the store
            keeps ``disk.room`` bytes allocated in its write-ahead log for a commit the disk fills up under.
            None: no checks.

    Attributes:
        runs: the history of the runs of tasks that ended (the portal's timeline; in no REST document).
        schedules: the job schedules (``job_tables.ScheduleTable``).
        job_node_tasks: per job and node, its preparation and release task status (``job_tables.JobNodeTaskTable``).

    Raises:
        StoreError: the database was written with a newer schema version or under another account key.
    """

    def __init__(self, path: Path, sealer: Sealer, *, disk: StateDisk | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._sealer = sealer
        self._disk = disk
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._depth = 0
        self._last_ticks = 0
        try:
            refuse_newer_schema(self._conn, path)  # before the pragmas below write to the file
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._open_schema()
            self.runs = RunHistory(self._conn)
            self.usage = NodeUsage(self._conn)
            self.schedules = ScheduleTable(self._conn, sealer, path, StoreError, self._stamp)
            self.job_node_tasks = JobNodeTaskTable(self._conn, sealer, path, StoreError)
            if disk is not None:
                self._keep_room(disk.room)
        except BaseException:
            self._conn.close()
            raise
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()
        self._task_seq: int = int(row[0])
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        self._job_seq: int = int(row[0])

    def _open_schema(self) -> None:
        open_schema(self._conn, self._sealer, self._path)

    def _keep_room(self, size: int) -> None:
        """Write ``size`` bytes through the write-ahead log and free them: the log keeps them allocated (SQLite
        reuses it from its start after a checkpoint and never shrinks it), so a commit needs no new disk space."""
        try:
            self._conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('disk-room', zeroblob(?))", (size,))
            self._conn.execute("DELETE FROM meta WHERE k = 'disk-room'")
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._conn.execute("PRAGMA shrink_memory")  # the reserve's pages are free pages: no use in the cache
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            log.warning("no room for the state database's write-ahead log reserve: %s", exc)

    # -- sealed values --------------------------------------------------------------------------------------

    def _dump(self, table: str, doc: dict[str, Any]) -> bytes:
        crash_point("store.seal", table)
        return self._sealer.seal(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), table)

    def _load(self, table: str, sealed: bytes) -> dict[str, Any]:
        try:
            value = json.loads(self._sealer.open(sealed, table))
        except (SealError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise StoreError(f"a {table} document in the state database {self._path} is corrupt")
        return value

    def _fetch_doc(self, table: str, sql: str, *params: Any) -> dict[str, Any] | None:
        """The document of the one row ``sql`` selects (its first column), or None."""
        row = self._conn.execute(sql, params).fetchone()
        return self._load(table, row[0]) if row else None

    def _seal_secret(self, secret: str | None) -> bytes | None:
        return None if secret is None else self._sealer.seal(secret, "nodes.secret")

    def close(self) -> None:
        """Close the connection (a pending outer transaction is rolled back by SQLite)."""
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes in one transaction; nested use joins the outer one, which commits (or rolls back).

        Raises:
            BatchError: 503 ``StateDiskFull`` before the outer transaction starts, when the disk is full.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self._disk is not None:
            self._disk.check()
        self._conn.execute("BEGIN")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._rollback_if_open()
            raise
        self._depth = 0
        self._commit()

    def _commit(self) -> None:
        crash_point("store.commit")
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback_if_open()
            raise
        crash_point("store.committed")

    def _rollback_if_open(self) -> None:
        if self._conn.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
            self._conn.execute("ROLLBACK")

    # -- stamps -----------------------------------------------------------------------------------------------

    def _stamp(self, doc: dict[str, Any], *, keep_last_modified: bool = False) -> None:
        """Write a fresh, strictly increasing eTag (and lastModified) into ``doc``."""
        now = time.time_ns()
        ticks = max(now // 100 + _TICKS_AT_UNIX_EPOCH, self._last_ticks + 1)
        self._last_ticks = ticks
        doc["eTag"] = f"0x{ticks:X}"
        if not (keep_last_modified and isinstance(doc.get("lastModified"), str)):
            doc["lastModified"] = now_iso()

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
        return self._fetch_doc("nodes", "SELECT doc FROM nodes WHERE id = ?", node_id.lower())

    def get_node_secret(self, node_id: str) -> str | None:
        row = self._conn.execute("SELECT secret FROM nodes WHERE id = ?", (node_id.lower(),)).fetchone()
        if not row or row[0] is None:
            return None
        try:
            return self._sealer.open(row[0], "nodes.secret")
        except SealError:
            raise StoreError(f"the secret of node {node_id} in the state database {self._path} is corrupt") from None

    def get_node_container(self, node_id: str) -> str | None:
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
        self._conn.execute("DELETE FROM nodes WHERE id = ?", (node_id.lower(),))
        self.usage.ended(node_id, time.time())

    # -- jobs -------------------------------------------------------------------------------------------------

    def insert_job(self, doc: dict[str, Any]) -> bool:
        """Store a new job document (stamping its eTag); False when the id exists."""
        self._stamp(doc, keep_last_modified=True)
        seq = self._job_seq + 1
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO jobs (key, id, pool_key, state, seq, doc, etag, last_modified) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                doc["id"].lower(),
                doc["id"],
                _pool_key_of_job(doc),
                doc.get("state", "active"),
                seq,
                self._dump("jobs", doc),
                doc["eTag"],
                doc["lastModified"],
            ),
        )
        if cursor.rowcount == 1:
            self._job_seq = seq
            return True
        return False

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return self._fetch_doc("jobs", "SELECT doc FROM jobs WHERE key = ?", job_id.lower())

    def list_jobs(self) -> list[dict[str, Any]]:
        """Every job, in creation order."""
        return [self._load("jobs", r[0]) for r in self._conn.execute("SELECT doc FROM jobs ORDER BY seq")]

    def update_job(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Replace a job document; a new eTag and lastModified are written into ``doc``, which is returned."""
        self._stamp(doc)
        self._conn.execute(
            "UPDATE jobs SET doc = ?, state = ?, pool_key = ?, etag = ?, last_modified = ? WHERE key = ?",
            (
                self._dump("jobs", doc),
                doc.get("state", "active"),
                _pool_key_of_job(doc),
                doc["eTag"],
                doc["lastModified"],
                doc["id"].lower(),
            ),
        )
        return doc

    def delete_job(self, job_id: str) -> None:
        """Remove a job and all its tasks."""
        key = job_id.lower()
        with self.transaction():
            self._conn.execute("DELETE FROM tasks WHERE job_key = ?", (key,))
            self._conn.execute("DELETE FROM task_counts WHERE job_key = ?", (key,))
            self._conn.execute("DELETE FROM jobs WHERE key = ?", (key,))
            self.runs.delete_job(job_id)
            self.job_node_tasks.delete_job(job_id)
            self.delete_secrets(owned(job_owner(job_id), ""))
            self.delete_secrets(job_tasks_prefix(job_id))

    # -- tasks ------------------------------------------------------------------------------------------------

    def _task_row(self, job_key: str, doc: dict[str, Any], seq: int) -> tuple[Any, ...]:
        return (
            job_key,
            doc["id"].lower(),
            doc["id"],
            seq,
            doc.get("state", "active"),
            _task_result(doc),
            _task_slots(doc),
            self._dump("tasks", doc),
            doc["eTag"],
            doc["lastModified"],
        )

    def insert_tasks(self, job_id: str, docs: list[dict[str, Any]]) -> list[bool]:
        """Store new task documents in one transaction, stamping each eTag.

        Returns:
            One flag per document: False when a task with that id already exists in the job (or appeared earlier
            in ``docs``); those documents are not stored.
        """
        job_key = job_id.lower()
        keys = [d["id"].lower() for d in docs]
        existing: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            existing.update(
                r[0]
                for r in self._conn.execute(
                    f"SELECT key FROM tasks WHERE job_key = ? AND key IN ({marks})", (job_key, *chunk)
                )
            )
        flags: list[bool] = []
        rows: list[tuple[Any, ...]] = []
        seq = self._task_seq
        for key, doc in zip(keys, docs, strict=True):
            if key in existing:
                flags.append(False)
                continue
            existing.add(key)
            seq += 1
            self._stamp(doc, keep_last_modified=True)
            rows.append(self._task_row(job_key, doc, seq))
            flags.append(True)
        if rows:
            with self.transaction():
                self._conn.executemany(
                    "INSERT INTO tasks (job_key, key, id, seq, state, result, slots, doc, etag, last_modified) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self._task_seq = seq
        return flags

    def get_task(self, job_id: str, task_id: str) -> dict[str, Any] | None:
        return self._fetch_doc(
            "tasks", "SELECT doc FROM tasks WHERE job_key = ? AND key = ?", job_id.lower(), task_id.lower()
        )

    def update_task(self, job_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Replace a task document; a new eTag and lastModified are written into ``doc``, which is returned."""
        self.update_tasks(job_id, [doc])
        return doc

    def update_tasks(self, job_id: str, docs: list[dict[str, Any]]) -> None:
        """Replace several task documents in one transaction (each gets a new eTag and lastModified)."""
        job_key = job_id.lower()
        rows = []
        for doc in docs:
            self._stamp(doc)
            rows.append(
                (
                    doc.get("state", "active"),
                    _task_result(doc),
                    _task_slots(doc),
                    self._dump("tasks", doc),
                    doc["eTag"],
                    doc["lastModified"],
                    job_key,
                    doc["id"].lower(),
                )
            )
        with self.transaction():
            self._conn.executemany(
                "UPDATE tasks SET state = ?, result = ?, slots = ?, doc = ?, etag = ?, last_modified = ? "
                "WHERE job_key = ? AND key = ?",
                rows,
            )

    def delete_task(self, job_id: str, task_id: str) -> None:
        """Remove a task and the history of its runs."""
        with self.transaction():
            self._conn.execute("DELETE FROM tasks WHERE job_key = ? AND key = ?", (job_id.lower(), task_id.lower()))
            self.runs.delete_task(job_id, task_id)
            self.delete_secrets(owned(task_owner(job_id, task_id), ""))

    def list_tasks(
        self,
        job_id: str,
        *,
        states: Sequence[str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Tasks of a job in insertion order.

        Args:
            job_id: the job.
            states: only tasks in one of these states.
            after_key: only tasks added after the task with this id (nothing when that task is gone).
            limit: at most this many.
        """
        after_seq = None
        if after_key is not None:
            row = self._conn.execute(
                "SELECT seq FROM tasks WHERE job_key = ? AND key = ?", (job_id.lower(), after_key.lower())
            ).fetchone()
            if row is None:
                return []
            after_seq = int(row[0])
        return [doc for _, doc in self.list_tasks_page(job_id, states=states, after_seq=after_seq, limit=limit)]

    def list_tasks_page(
        self,
        job_id: str,
        *,
        states: Sequence[str] | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """A job's tasks in insertion order with their sequence numbers, for cursor paging that survives deletes.

        Args:
            job_id: the job.
            states: only tasks in one of these states.
            after_seq: only tasks whose sequence number is above this (the cursor of the previous page).
            limit: at most this many.

        Returns:
            ``(seq, document)`` pairs.
        """
        sql = "SELECT seq, doc FROM tasks WHERE job_key = ?"
        params: list[Any] = [job_id.lower()]
        if states is not None:
            if not states:
                return []
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        if after_seq is not None:
            sql += " AND seq > ?"
            params.append(after_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        return [(int(seq), self._load("tasks", text)) for seq, text in self._conn.execute(sql, params)]

    def find_tasks(
        self,
        job_id: str,
        *,
        states: Sequence[str] | None = None,
        result: str | None = None,
        id_prefix: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of a job's tasks in insertion order, filtered by state, ``executionInfo.result`` (``success``
        / ``failure``) and id prefix (case-insensitive).

        Returns:
            (how many tasks match in all, the documents of the page).
        """
        where = "job_key = ?"
        params: list[Any] = [job_id.lower()]
        if states is not None:
            if not states:
                return 0, []
            where += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        if result is not None:
            where += " AND result = ?"
            params.append(result)
        if id_prefix:
            low = id_prefix.lower()
            where += " AND key >= ? AND key < ?"
            params.extend([low, low + "\U0010ffff"])
        total = int(self._conn.execute(f"SELECT COUNT(*) FROM tasks WHERE {where}", params).fetchone()[0])
        rows = self._conn.execute(
            f"SELECT doc FROM tasks WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*params, max(0, limit), max(0, offset)],
        )
        return total, [self._load("tasks", text) for (text,) in rows]

    def task_counts(self, job_id: str) -> dict[str, Any]:
        """Task counts of a job, as the database keeps them (``store_schema``: O(1), whatever the job's size).

        Returns:
            ``{"active", "running", "completed", "succeeded", "failed"}`` (``running`` includes ``preparing``;
            ``succeeded`` / ``failed`` split ``completed`` by ``executionInfo.result``) plus ``"slots"``: the same
            five keys counting ``requiredSlots`` instead of tasks.
        """
        kept = read_task_counts(self._conn, job_id.lower())
        counts = {name: kept.get(name, (0, 0))[0] for name in COUNT_BUCKETS}
        slots = {name: kept.get(name, (0, 0))[1] for name in COUNT_BUCKETS}
        counts["completed"] = counts["succeeded"] + counts["failed"]
        slots["completed"] = slots["succeeded"] + slots["failed"]
        return {**{name: counts[name] for name in _COUNT_NAMES}, "slots": {name: slots[name] for name in _COUNT_NAMES}}

    def unfinished_tasks(self, job_id: str) -> int:
        """How many tasks of the job are active (queued or held) or running (O(1))."""
        kept = read_task_counts(self._conn, job_id.lower())
        return kept.get("active", (0, 0))[0] + kept.get("running", (0, 0))[0]

    # -- the dispatch queue -----------------------------------------------------------------------------------

    def queued_tasks(self, job_id: str, limit: int = 1) -> list[tuple[str, int]]:
        """The first ``limit`` tasks of a job's queue: active and not held, in insertion order.

        Returns:
            ``(task key, required slots)`` pairs (from the ``tasks_queued`` index: no document is opened).
        """
        rows = self._conn.execute(
            "SELECT key, slots FROM tasks WHERE job_key = ? AND state = 'active' AND held = 0 ORDER BY seq LIMIT ?",
            (job_id.lower(), limit),
        )
        return [(str(key), int(slots)) for key, slots in rows]

    def set_held(self, job_id: str, task_ids: Sequence[str], held: bool) -> None:
        """Take active tasks out of the job's queue (``held``: they wait for the tasks they depend on) or put them
        back; the flag is not part of any document and does not change the eTag."""
        job_key = job_id.lower()
        self._conn.executemany(
            "UPDATE tasks SET held = ? WHERE job_key = ? AND key = ? AND held != ?",
            [(int(held), job_key, task_id.lower(), int(held)) for task_id in task_ids],
        )

    def list_task_columns(
        self, job_id: str, *, after_seq: int | None = None, limit: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Like :meth:`list_tasks_page`, but each task as the properties of :data:`TASK_COLUMNS` only, read from
        the plain columns (no document is opened: a ``$select`` of these costs a fraction of a full listing)."""
        sql = "SELECT seq, id, state, etag, last_modified FROM tasks WHERE job_key = ?"
        params: list[Any] = [job_id.lower()]
        if after_seq is not None:
            sql += " AND seq > ?"
            params.append(after_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        return [
            (int(seq), {"id": task_id, "state": state, "eTag": etag, "lastModified": modified})
            for seq, task_id, state, etag, modified in self._conn.execute(sql, params)
        ]

    # -- secrets taken out of documents -----------------------------------------------------------------------

    def put_secret(self, name: str, value: str) -> None:
        """Keep a secret a document must not show (a registry password, a mount key), sealed, under ``name``."""
        sealed = self._sealer.seal(value, f"meta.secret:{name}")
        self.meta_set(f"secret:{name}", base64.b64encode(sealed).decode("ascii"))

    def get_secret(self, name: str) -> str | None:
        """The secret kept under ``name``, or None (also when it does not open under this account key)."""
        stored = self.meta_get(f"secret:{name}")
        if stored is None:
            return None
        try:
            return self._sealer.open(base64.b64decode(stored), f"meta.secret:{name}")
        except (SealError, ValueError):
            return None

    def find_secret(self, names: list[str]) -> str | None:
        """The first secret kept under one of ``names`` (see ``secret_owners.lookup_names``), or None."""
        for name in names:
            value = self.get_secret(name)
            if value is not None:
                return value
        return None

    def secret_names(self, prefix: str) -> list[str]:
        """The names of the secrets kept under names that start with ``prefix``."""
        low, high = f"secret:{prefix}", f"secret:{prefix}\U0010ffff"
        rows = self._conn.execute("SELECT k FROM meta WHERE k >= ? AND k < ? ORDER BY k", (low, high))
        return [str(key)[len("secret:") :] for (key,) in rows]

    def delete_secrets(self, prefix: str) -> None:
        """Delete every secret whose name starts with ``prefix`` (an owner's: ``secret_owners.owned(owner, "")``)."""
        self._conn.execute(
            "DELETE FROM meta WHERE k >= ? AND k < ?", (f"secret:{prefix}", f"secret:{prefix}\U0010ffff")
        )

    def copy_secrets(self, source_owner: str, target_owner: str) -> None:
        """Give ``target_owner`` a copy of every secret of ``source_owner`` (a schedule's, for a job it creates)."""
        source = owned(source_owner, "")
        with self.transaction():
            for name in self.secret_names(source):
                value = self.get_secret(name)
                if value is not None:
                    self.put_secret(owned(target_owner, name[len(source) :]), value)

    # -- meta -------------------------------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def meta_set(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (key, value)
        )
