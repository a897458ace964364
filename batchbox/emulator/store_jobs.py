"""The jobs table of the state database.

A job row keeps the job's document, its state and its pool (the one it names, or the auto pool created for it) as
plain columns, and a sequence number that orders listings by creation. Deleting a job deletes everything it owns:
its tasks, their counts and run history, its preparation / release status and its secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchbox.emulator.disk_space import StateDisk
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.secret_owners import job_owner, job_tasks_prefix, owned
from batchbox.emulator.store_secrets import SecretRows

__all__ = ["JobRows"]


def _pool_key_of_job(doc: dict[str, Any]) -> str | None:
    """The job's pool: the one it names, else the auto pool created for it (``executionInfo.poolId``)."""
    for info in (doc.get("poolInfo"), doc.get("executionInfo")):
        if isinstance(info, dict) and isinstance(info.get("poolId"), str):
            return str(info["poolId"]).lower()
    return None


class JobRows(SecretRows):
    """Jobs by id, in creation order."""

    def __init__(self, path: Path, sealer: Sealer, *, disk: StateDisk | None = None) -> None:
        super().__init__(path, sealer, disk=disk)
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        self._job_seq: int = int(row[0])

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
        """The job's document, or None when there is no such job."""
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
        """Remove a job and all its tasks (their subtasks too)."""
        key = job_id.lower()
        with self.transaction():
            self._conn.execute("DELETE FROM tasks WHERE job_key = ?", (key,))
            self._conn.execute("DELETE FROM task_counts WHERE job_key = ?", (key,))
            self._conn.execute("DELETE FROM jobs WHERE key = ?", (key,))
            self._conn.execute("DELETE FROM subtasks WHERE job_key = ?", (key,))
            self.runs.delete_job(job_id)
            self.job_node_tasks.delete_job(job_id)
            self.delete_secrets(owned(job_owner(job_id), ""))
            self.delete_secrets(job_tasks_prefix(job_id))
