"""The tasks table of the state database: task documents, their listings, counts and the dispatch queue.

A task row keeps the task's document and, as plain columns, its state, result, required slots, eTag and
lastModified, a sequence number (insertion order, the cursor of paged listings) and ``held``. The database keeps
each job's task counts itself and indexes its queue (``store_schema``), so neither costs a scan or any memory.
A multi-instance task's subtask information (``subtasksinfo``) is one sealed row of the ``subtasks`` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batchbox.emulator.disk_space import StateDisk
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.secret_owners import owned, task_owner
from batchbox.emulator.store_schema import COUNT_BUCKETS, read_task_counts
from batchbox.emulator.store_secrets import SecretRows

__all__ = ["TASK_COLUMNS", "TaskRows"]

_COUNT_NAMES = ("active", "running", "completed", "succeeded", "failed")

TASK_COLUMNS = {"id": "id", "state": "state", "eTag": "etag", "lastModified": "last_modified"}
"""Task properties that are plain columns too (REST name -> column): a listing that selects only these is read
without opening any document."""


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


class TaskRows(SecretRows):
    """The tasks of each job, in insertion order, and each job's queue of tasks waiting for a node."""

    def __init__(self, path: Path, sealer: Sealer, *, disk: StateDisk | None = None) -> None:
        super().__init__(path, sealer, disk=disk)
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()
        self._task_seq: int = int(row[0])

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
        """The task's document, or None when the job has no such task."""
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
        """Remove a task and the history of its runs (a multi-instance task's subtasks stay until
        :meth:`delete_subtasks`: the hooks of the delete read them first)."""
        with self.transaction():
            self._conn.execute("DELETE FROM tasks WHERE job_key = ? AND key = ?", (job_id.lower(), task_id.lower()))
            self.runs.delete_task(job_id, task_id)
            self.delete_secrets(owned(task_owner(job_id, task_id), ""))

    # -- subtasks of multi-instance tasks ------------------------------------------------------------------

    def put_subtasks(self, job_id: str, task_id: str, subtasks: list[dict[str, Any]]) -> None:
        """Keep the subtask information of a multi-instance task's run, as ``subtasksinfo`` lists it (replacing
        what an earlier run left)."""
        sealed = self._dump("subtasks", {"subtasks": subtasks})
        with self.transaction():
            self._conn.execute(
                "INSERT INTO subtasks (job_key, task_key, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (job_key, task_key) DO UPDATE SET doc = excluded.doc",
                (job_id.lower(), task_id.lower(), sealed),
            )

    def get_subtasks(self, job_id: str, task_id: str) -> list[dict[str, Any]]:
        """The subtask information kept for the task (empty when none is)."""
        doc = self._fetch_doc(
            "subtasks", "SELECT doc FROM subtasks WHERE job_key = ? AND task_key = ?", job_id.lower(), task_id.lower()
        )
        subtasks = doc.get("subtasks") if doc is not None else None
        return [info for info in subtasks if isinstance(info, dict)] if isinstance(subtasks, list) else []

    def delete_subtasks(self, job_id: str, task_id: str) -> None:
        """Forget the subtask information kept for the task."""
        with self.transaction():
            self._conn.execute(
                "DELETE FROM subtasks WHERE job_key = ? AND task_key = ?", (job_id.lower(), task_id.lower())
            )

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
