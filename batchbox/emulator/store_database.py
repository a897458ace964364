"""The state database's connection: opening it, transactions, sealed documents, eTag stamps and the meta table.

:class:`StoreDatabase` is the base the store's per-table parts build on (``store_secrets``, ``store_pools``,
``store_jobs``, ``store_tasks``; ``store.Store`` joins them). It owns the one SQLite connection (WAL, event-loop
thread only), refuses a database of a newer schema or another account key, upgrades an older one
(``store_schema``), and builds the tables kept outside the store's classes: ``runs``, ``usage``, ``schedules`` and
``job_node_tasks``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
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
from batchbox.emulator.store_schema import StoreError, open_schema, refuse_newer_schema

__all__ = ["StoreDatabase"]

log = logging.getLogger("batchbox.emulator.store")  # the store's one log, as before it was split in modules

_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000
""".NET ticks (100 ns since 0001-01-01) at 1970-01-01: Batch eTags are these ticks in hex."""

_CACHE_KIB = 4 * 1024
"""SQLite's page cache of the store's one connection. It fills up as tasks are read and stays full, so it is memory
the emulator holds for good; pages beyond it are read again from the operating system's file cache. Listing a
million-task job (plain columns), reading its queue and fetching random tasks took no longer with 4 MiB than with
16 MiB (store-level timings); 2 MiB made random fetches slower."""


class StoreDatabase:
    """The connection to the state database and what every table of it shares.

    Its arguments, attributes and errors are those of ``store.Store``, which documents them.
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

    # -- meta -------------------------------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        """The value kept under ``key`` in the meta table, or None."""
        row = self._conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def meta_set(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` in the meta table (replacing what was there)."""
        self._conn.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (key, value)
        )

    def meta_items(self, prefix: str) -> list[tuple[str, str]]:
        """Every ``(key, value)`` of the meta table whose key starts with ``prefix``, by key."""
        rows = self._conn.execute(
            "SELECT k, v FROM meta WHERE k >= ? AND k < ? ORDER BY k", (prefix, f"{prefix}\U0010ffff")
        )
        return [(str(key), str(value)) for key, value in rows]
