"""The layout of the emulator's SQLite database, its upgrades, and the task counts the database keeps itself.

Schema versions (``meta.schema_version``):

1. REST documents stored as plain JSON.
2. Documents and node secrets sealed (:mod:`batchbox.emulator.sealing`).
3. Task counts kept by triggers in ``task_counts``, and the dispatch queue as a partial index: the ``held``
   column marks active tasks that wait for the tasks they depend on.
4. ``subtasks``: the subtask information of each multi-instance task's latest run (sealed), as
   ``GET .../subtasksinfo`` lists it.

**Task counts.** Three triggers on ``tasks`` add and subtract every inserted, deleted or changed row (its state,
result or slots) to and from one row per job and bucket (``active``, ``running``, ``succeeded``, ``failed``) of
``task_counts``. Whatever code writes a task, through whichever store method, the counts follow in the same
transaction: nothing can change a task's state and leave them behind, and reading them costs one primary-key
range of at most four rows, whatever the size of the job.

**Queue.** ``tasks_queued`` indexes, in insertion order, the active tasks of each job that are not held; the
scheduler reads the head of a job's queue from it, so queued tasks cost no memory in the emulator.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable

from batchbox.emulator.sealing import Sealer

__all__ = [
    "COUNT_BUCKETS",
    "SCHEMA_VERSION",
    "SEALED_TABLES",
    "SEAL_CHECK",
    "StoreError",
    "open_schema",
    "read_task_counts",
    "refuse_newer_schema",
]

SCHEMA_VERSION = 4
"""Version of the table layout, kept in ``meta.schema_version`` (see the module docstring)."""

SEALED_TABLES = ("pools", "nodes", "jobs", "tasks")
SEAL_CHECK = "batchbox state"
"""Sealed into ``meta.seal_check``: opening it proves the account key is the one the state was written with."""

COUNT_BUCKETS = ("active", "running", "succeeded", "failed")
"""The buckets of ``task_counts``: ``preparing`` counts as ``running``; ``completed`` splits by result."""


class StoreError(RuntimeError):
    """The state database cannot be used (e.g. written by a newer batchbox)."""


_SUBTASKS_TABLE = """CREATE TABLE IF NOT EXISTS subtasks (
    job_key TEXT NOT NULL, task_key TEXT NOT NULL, doc BLOB NOT NULL, PRIMARY KEY (job_key, task_key)) WITHOUT ROWID"""

_TABLES = f"""
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pools (
    key TEXT PRIMARY KEY, id TEXT NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY, pool_key TEXT NOT NULL, doc TEXT NOT NULL, secret TEXT, container_id TEXT);
CREATE INDEX IF NOT EXISTS nodes_by_pool ON nodes (pool_key);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY, id TEXT NOT NULL, pool_key TEXT, state TEXT NOT NULL, seq INTEGER NOT NULL,
    doc TEXT NOT NULL, etag TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    job_key TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,
    result TEXT, slots INTEGER NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL, last_modified TEXT NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_key, key));
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (job_key, state, seq);
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks (job_key, seq);
{_SUBTASKS_TABLE};
"""
"""Tables and indexes as of version 4 (``held``, ``subtasks`` and what follows them are added to older databases by
upgrades)."""


def _bucket(row: str) -> str:
    """SQL for the count bucket of a tasks row (``NEW``, ``OLD`` or the table itself)."""
    return (
        f"CASE {row}.state WHEN 'completed' THEN CASE WHEN {row}.result = 'success' THEN 'succeeded' ELSE 'failed' END"
        f" WHEN 'preparing' THEN 'running' ELSE {row}.state END"
    )


def _add(row: str) -> str:
    return (
        f"INSERT INTO task_counts (job_key, bucket, tasks, slots) VALUES ({row}.job_key, {_bucket(row)}, 1, "
        f"{row}.slots) ON CONFLICT (job_key, bucket) DO UPDATE SET tasks = tasks + 1, slots = slots + excluded.slots;"
    )


def _subtract(row: str) -> str:
    return (
        f"UPDATE task_counts SET tasks = tasks - 1, slots = slots - {row}.slots "
        f"WHERE job_key = {row}.job_key AND bucket = {_bucket(row)};"
    )


_COUNTS_TABLE = """CREATE TABLE IF NOT EXISTS task_counts (
    job_key TEXT NOT NULL, bucket TEXT NOT NULL, tasks INTEGER NOT NULL, slots INTEGER NOT NULL,
    PRIMARY KEY (job_key, bucket)) WITHOUT ROWID"""

_COUNTS_AND_QUEUE = f"""
{_COUNTS_TABLE};
CREATE TRIGGER IF NOT EXISTS task_counts_on_insert AFTER INSERT ON tasks BEGIN {_add("NEW")} END;
CREATE TRIGGER IF NOT EXISTS task_counts_on_delete AFTER DELETE ON tasks BEGIN {_subtract("OLD")} END;
CREATE TRIGGER IF NOT EXISTS task_counts_on_update AFTER UPDATE OF job_key, state, result, slots ON tasks
    WHEN OLD.job_key IS NOT NEW.job_key OR {_bucket("OLD")} IS NOT {_bucket("NEW")} OR OLD.slots IS NOT NEW.slots
    BEGIN {_subtract("OLD")} {_add("NEW")} END;
CREATE INDEX IF NOT EXISTS tasks_queued ON tasks (job_key, seq) WHERE state = 'active' AND held = 0;
"""


def read_task_counts(conn: sqlite3.Connection, job_key: str) -> dict[str, tuple[int, int]]:
    """``{bucket: (tasks, slots)}`` of one job, from the maintained counts (buckets never used are missing)."""
    rows = conn.execute("SELECT bucket, tasks, slots FROM task_counts WHERE job_key = ?", (job_key,))
    return {str(bucket): (int(tasks), int(slots)) for bucket, tasks, slots in rows}


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (key, value))


def _seal_plain_rows(conn: sqlite3.Connection, sealer: Sealer) -> None:
    """1 -> 2: seal the plain JSON documents and node secrets in place."""
    for table in SEALED_TABLES:  # fixed names, not input
        rows = conn.execute(f"SELECT rowid, doc FROM {table}").fetchall()
        conn.executemany(
            f"UPDATE {table} SET doc = ? WHERE rowid = ?", [(sealer.seal(doc, table), rowid) for rowid, doc in rows]
        )
    secrets = conn.execute("SELECT rowid, secret FROM nodes WHERE secret IS NOT NULL").fetchall()
    conn.executemany(
        "UPDATE nodes SET secret = ? WHERE rowid = ?",
        [(sealer.seal(value, "nodes.secret"), rowid) for rowid, value in secrets],
    )


def _count_and_queue(conn: sqlite3.Connection, _sealer: Sealer) -> None:
    """2 -> 3: the ``held`` column and the counts table, filled from the tasks (its triggers and the queue index
    are created once this is committed, before anything else writes)."""
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(tasks)")}
    if "held" not in columns:
        conn.execute("ALTER TABLE tasks ADD COLUMN held INTEGER NOT NULL DEFAULT 0")
    conn.execute("DROP TABLE IF EXISTS task_counts")
    conn.execute(_COUNTS_TABLE)
    conn.execute(
        f"INSERT INTO task_counts (job_key, bucket, tasks, slots) SELECT job_key, {_bucket('tasks')}, COUNT(*), "
        "SUM(slots) FROM tasks GROUP BY 1, 2"
    )


def _subtasks_table(conn: sqlite3.Connection, _sealer: Sealer) -> None:
    """3 -> 4: the (empty) ``subtasks`` table: runs of multi-instance tasks before it kept their subtasks in memory
    only."""
    conn.execute(_SUBTASKS_TABLE)


_UPGRADES: dict[int, Callable[[sqlite3.Connection, Sealer], None]] = {
    1: _seal_plain_rows,
    2: _count_and_queue,
    3: _subtasks_table,
}
"""The upgrade from each version to the next."""


def refuse_newer_schema(conn: sqlite3.Connection, path: object) -> None:
    """Refuse a database written by a newer batchbox, reading only: a newer release's state is left as it is.

    Raises:
        StoreError: the stored schema version is newer than this release's, or not a version at all.
    """
    try:
        found = _meta(conn, "schema_version")
    except sqlite3.OperationalError:  # a new database: no meta table yet
        return
    if found is None:
        return
    if not found.isdigit() or int(found) < 1:
        raise StoreError(f"the state database {path} has an unknown schema version {found!r}")
    if int(found) > SCHEMA_VERSION:
        raise StoreError(
            f"the state database {path} was written by a newer batchbox (schema version {found}; this "
            f"batchbox reads up to {SCHEMA_VERSION}): upgrade batchbox, or use another state directory"
        )


def open_schema(conn: sqlite3.Connection, sealer: Sealer, path: object) -> None:
    """Create the tables of a new database, or upgrade an older one in place, and check the account key.

    Args:
        conn: an open connection in autocommit mode (``isolation_level=None``).
        sealer: the sealer of this emulator's account key.
        path: the database file, for messages.

    Raises:
        StoreError: the database has a newer schema version, or was sealed under another account key.
    """
    conn.executescript(_TABLES.split("CREATE TABLE IF NOT EXISTS tasks")[0])
    found = _meta(conn, "schema_version")
    if found is None:
        conn.executescript(_TABLES)
        conn.executescript(_COUNTS_AND_QUEUE)
        _set_meta(conn, "schema_version", str(SCHEMA_VERSION))
        _set_meta(conn, "seal_check", base64.b64encode(sealer.seal(SEAL_CHECK, "meta")).decode("ascii"))
    else:
        refuse_newer_schema(conn, path)
        _upgrade(conn, sealer, int(found))
    check = _meta(conn, "seal_check") or ""
    try:
        sealer.open(base64.b64decode(check), "meta")
    except ValueError:  # SealError is a ValueError, and so is bad base64
        raise StoreError(
            f"the state database {path} was written under another Batch account key: start the emulator "
            "with that key, or remove the state directory"
        ) from None


def _upgrade(conn: sqlite3.Connection, sealer: Sealer, version: int) -> None:
    """Apply every upgrade from ``version`` to the current one, each in its own transaction."""
    sealed_now = False
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN")
        try:
            _UPGRADES[version](conn, sealer)
            version += 1
            _set_meta(conn, "schema_version", str(version))
            if version == 2:
                _set_meta(conn, "seal_check", base64.b64encode(sealer.seal(SEAL_CHECK, "meta")).decode("ascii"))
                sealed_now = True
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    conn.executescript(_TABLES)
    conn.executescript(_COUNTS_AND_QUEUE)
    if sealed_now:  # compact away the pages that held plain text
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
