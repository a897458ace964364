"""The history of task runs: one row per run that ended, in its own table next to the REST documents.

A task document holds only its current run; the portal's timeline needs every run (retries and requeues
included). Each run is written once, when it ends, in the transaction that changes the task's state: one small
INSERT into a table of plain columns (ids, node, times, outcome, exit code, counts; no command lines, nothing
sealed). Runs still going are not here: they are the tasks in state ``running``. The Batch REST documents never
see this table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["RUN_OUTCOMES", "RunHistory", "TaskRun", "epoch_seconds", "run_from_doc"]

RUN_OUTCOMES = ("succeeded", "failed", "retried", "requeued", "terminated")
"""How a run ended: finished with success, failed for good, failed and retried, lost with its node (requeued),
or ended by a terminate request (of the task or of its job)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_key TEXT NOT NULL, task_key TEXT NOT NULL, task_id TEXT NOT NULL,
    node_id TEXT, started REAL, ended REAL NOT NULL, outcome TEXT NOT NULL, exit_code INTEGER,
    retry_count INTEGER NOT NULL, requeue_count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job_key, id);
CREATE INDEX IF NOT EXISTS runs_by_task ON runs (job_key, task_key);
"""
_COLUMNS = "id, task_id, node_id, started, ended, outcome, exit_code, retry_count, requeue_count"


@dataclass(frozen=True)
class TaskRun:
    """One run of a task on a node.

    Attributes:
        task_id: the task (the user's spelling).
        node_id: the node it ran on (None when unknown).
        start / end: seconds since the epoch (``end`` None while it runs; ``start`` None when unknown).
        outcome: one of :data:`RUN_OUTCOMES`, or ``running``.
        exit_code: the process's exit code, when it has one.
        retry_count / requeue_count: the task's counts when this run began.
        run_id: the row id (increasing in the order runs ended); 0 for a run still going.
    """

    task_id: str
    node_id: str | None
    start: float | None
    end: float | None
    outcome: str
    exit_code: int | None = None
    retry_count: int = 0
    requeue_count: int = 0
    run_id: int = 0


def epoch_seconds(value: object) -> float | None:
    """An ISO 8601 time as the REST documents write it (``...T12:00:00.1234567Z``) -> seconds since the epoch."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most six fractional digits; Batch writes seven
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _count(info: Mapping[str, Any], name: str) -> int:
    value = info.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def run_from_doc(
    doc: Mapping[str, Any],
    outcome: str,
    *,
    end: str | None,
    start: str | None = None,
    exit_code: int | None = None,
) -> TaskRun:
    """The run a task document describes now (read it BEFORE the document leaves ``running``).

    Args:
        doc: the task's REST document while the run is current.
        outcome: how the run ended (or ``running``).
        end: when it ended (ISO 8601); None for a run still going.
        start: when it began, if better known than ``executionInfo.startTime`` (the agent's own clock).
        exit_code: the process's exit code, if it has one.
    """
    info = doc.get("executionInfo")
    info = info if isinstance(info, Mapping) else {}
    node = doc.get("nodeInfo")
    node_id = node.get("nodeId") if isinstance(node, Mapping) else None
    return TaskRun(
        task_id=str(doc["id"]),
        node_id=node_id if isinstance(node_id, str) else None,
        start=epoch_seconds(start or info.get("startTime")),
        end=epoch_seconds(end),
        outcome=outcome,
        exit_code=exit_code,
        retry_count=_count(info, "retryCount"),
        requeue_count=_count(info, "requeueCount"),
    )


class RunHistory:
    """The ``runs`` table on the store's connection (writes join the store's current transaction).

    Args:
        conn: the store's SQLite connection; the table and its indexes are created when missing.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(_SCHEMA)

    def record(self, job_id: str, run: TaskRun) -> None:
        """Append a run that ended (its ``end`` must be set)."""
        if run.end is None:
            raise ValueError("only a run that ended is recorded")
        self._conn.execute(
            "INSERT INTO runs (job_key, task_key, task_id, node_id, started, ended, outcome, exit_code, retry_count, "
            "requeue_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id.lower(),
                run.task_id.lower(),
                run.task_id,
                run.node_id,
                run.start,
                run.end,
                run.outcome,
                run.exit_code,
                run.retry_count,
                run.requeue_count,
            ),
        )

    def list(self, job_id: str, *, after_id: int = 0, task_id: str | None = None) -> list[TaskRun]:
        """The ended runs of a job (or of one of its tasks) in the order they ended, after row ``after_id``."""
        sql = f"SELECT {_COLUMNS} FROM runs WHERE job_key = ? AND id > ?"
        params: list[Any] = [job_id.lower(), after_id]
        if task_id is not None:
            sql += " AND task_key = ?"
            params.append(task_id.lower())
        rows = self._conn.execute(sql + " ORDER BY id", params)
        return [
            TaskRun(
                task_id=task,
                node_id=node,
                start=start,
                end=end,
                outcome=outcome,
                exit_code=exit_code,
                retry_count=retries,
                requeue_count=requeues,
                run_id=int(run_id),
            )
            for run_id, task, node, start, end, outcome, exit_code, retries, requeues in rows
        ]

    def delete_job(self, job_id: str) -> None:
        """Forget every run of a job."""
        self._conn.execute("DELETE FROM runs WHERE job_key = ?", (job_id.lower(),))

    def delete_task(self, job_id: str, task_id: str) -> None:
        """Forget the runs of one task."""
        self._conn.execute("DELETE FROM runs WHERE job_key = ? AND task_key = ?", (job_id.lower(), task_id.lower()))
