"""Node lifetimes, kept for ``GET /poolusagemetrics``: when each node joined and left its pool, its VM size and vCPUs.

The store records a node when its document is first written and closes the record when the document is deleted
(``Store.upsert_node`` / ``Store.delete_node``), so every way a node ends (resize, removal, pool delete, loss,
preemption, restart) is counted. :func:`usage_metrics` turns the lifetimes into Batch's hourly aggregation:
one entry per pool and hour in which the pool had nodes, with the core hours of its dedicated and low-priority
nodes in ``totalCoreHours``. Unlike Batch (which publishes an interval about 2.5 hours after it ends), the current,
unfinished hour is reported too.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from batchbox.emulator.vm_sizes import lookup_vm_size

__all__ = ["INTERVAL", "NodeLifetime", "NodeUsage", "usage_metrics", "vcpus_of"]

INTERVAL = timedelta(hours=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_usage (
    node_id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, vm_size TEXT NOT NULL, vcpus INTEGER NOT NULL,
    started REAL NOT NULL, ended REAL);
"""


@dataclass(frozen=True)
class NodeLifetime:
    """One node's time in its pool (``ended`` None while it is there), in seconds since the epoch."""

    node_id: str
    pool_id: str
    vm_size: str
    vcpus: int
    started: float
    ended: float | None


class NodeUsage:
    """The ``node_usage`` table of the state database (plain columns, nothing secret)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(_SCHEMA)

    def started(self, node_id: str, pool_id: str, vm_size: str, at: float) -> None:
        """A node joined its pool (a second call for the same node changes nothing)."""
        self._conn.execute(
            "INSERT OR IGNORE INTO node_usage (node_id, pool_id, vm_size, vcpus, started) VALUES (?, ?, ?, ?, ?)",
            (node_id.lower(), pool_id, vm_size, vcpus_of(vm_size), at),
        )

    def ended(self, node_id: str, at: float) -> None:
        """A node left its pool."""
        self._conn.execute("UPDATE node_usage SET ended = ? WHERE node_id = ? AND ended IS NULL", (at, node_id.lower()))

    def lifetimes(self, since: float | None = None) -> list[NodeLifetime]:
        """Every lifetime that had not ended before ``since`` (all when None)."""
        rows = self._conn.execute(
            "SELECT node_id, pool_id, vm_size, vcpus, started, ended FROM node_usage "
            "WHERE ? IS NULL OR ended IS NULL OR ended >= ? ORDER BY started",
            (since, since),
        )
        return [NodeLifetime(r[0], r[1], r[2], int(r[3]), float(r[4]), r[5]) for r in rows]


def _hour(moment: float) -> float:
    return moment - moment % INTERVAL.total_seconds()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def usage_metrics(
    lifetimes: list[NodeLifetime], now: float, start: float | None = None, end: float | None = None
) -> list[dict[str, Any]]:
    """Batch's ``poolUsageMetrics`` values: per pool and hour, ``vmSize`` and ``totalCoreHours``.

    Args:
        lifetimes: the node lifetimes.
        now: the current time (for nodes still in their pool).
        start / end: the ``starttime`` / ``endtime`` query window (intervals overlapping it are reported).
    """
    step = INTERVAL.total_seconds()
    hours: dict[tuple[str, float], float] = defaultdict(float)
    sizes: dict[str, str] = {}
    for life in lifetimes:
        finish = life.ended if life.ended is not None else now
        cursor = life.started
        while cursor < finish:
            bucket = _hour(cursor)
            upto = min(finish, bucket + step)
            hours[(life.pool_id, bucket)] += life.vcpus * (upto - cursor) / 3600.0
            sizes[life.pool_id] = life.vm_size
            cursor = upto
    values: list[dict[str, Any]] = []
    for (pool_id, bucket), core_hours in sorted(hours.items(), key=lambda item: (item[0][1], item[0][0].lower())):
        if (start is not None and bucket + step <= start) or (end is not None and bucket >= end):
            continue
        values.append(
            {
                "poolId": pool_id,
                "startTime": _iso(bucket),
                "endTime": _iso(bucket + step),
                "vmSize": sizes[pool_id],
                "totalCoreHours": round(core_hours, 6),
            }
        )
    return values


def vcpus_of(vm_size: str) -> int:
    """The vCPUs of a VM size (1 for a size the table does not know)."""
    size = lookup_vm_size(vm_size)
    return size.vcpus if size is not None else 1
