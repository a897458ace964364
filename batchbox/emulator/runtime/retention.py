"""``retentionTime``: a completed task's directory stays on its node that long, then it is removed.

A task's ``constraints.retentionTime`` (default 7 days), a job release task's ``retentionTime`` and a job preparation
task's ``constraints.retentionTime`` count from the end of its run. When it is over the files API answers for the
task as Batch does for cleaned-up files (:func:`files_cleaned_up`) and the node's agent is told to remove the
directory (``remove`` in its next poll answer); a multi-instance task's directory goes from the node of each of its
latest run's subtasks too (kept in the store). Deleting a job removes its whole ``workitems/<job>`` directory from
every node, as Batch does. A task run again (reactivated) before its time is over keeps its directory.

The keeper is an asyncio task that sleeps until the next directory is due. It holds in memory only the directories
due within :data:`HORIZON` (a completed task with the default 7 days costs no memory for most of them); the others
are read again from the store, a page of tasks at a time, when the horizon reaches them. It reads the store's
completed tasks at start, and again only when a directory it left there comes within the horizon. A completed task
deleted before its time keeps its entries in memory (its document is gone from the store; its subtasks are read
before they go).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from batchbox.emulator.clock import parse_duration, parse_time
from batchbox.emulator.resources.multi_instance import instance_count
from batchbox.emulator.runtime.environment import task_dir
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["DEFAULT_RETENTION", "HORIZON", "Retention", "files_cleaned_up", "retention_deadline"]

log = logging.getLogger(__name__)

DEFAULT_RETENTION = timedelta(days=7)
HORIZON = 6 * 3600.0
"""Seconds ahead within which due directories are held in memory; the store is read again every half of it at most,
and only when a directory left there comes within it."""
_MAX_SLEEP = 60.0
_PAGE = 500


def _retention(doc: Mapping[str, Any]) -> timedelta:
    text = (doc.get("constraints") or {}).get("retentionTime")
    try:
        return parse_duration(text) if isinstance(text, str) else DEFAULT_RETENTION
    except ValueError:
        return DEFAULT_RETENTION


def retention_deadline(doc: Mapping[str, Any]) -> datetime | None:
    """When a completed task's directory goes: its run's end plus its retention time (``None``: not completed)."""
    if doc.get("state") != "completed":
        return None
    end = parse_time((doc.get("executionInfo") or {}).get("endTime"))
    return None if end is None else end + _retention(doc)


def files_cleaned_up(doc: Mapping[str, Any], now: datetime) -> bool:
    """Whether the task's retention time is over (its files are gone, or going)."""
    deadline = retention_deadline(doc)
    return deadline is not None and now >= deadline


class Retention:
    """Removes task directories whose retention time is over (hooked to the transitions' task completions)."""

    def __init__(self, transitions: Transitions) -> None:
        self.trans = transitions
        self.sched = transitions.sched
        self.store = transitions.store
        self._due: list[tuple[float, int, str, str | None, str, str]] = []
        self._seq = 0
        self._until = 0.0
        """Every directory due by then (epoch seconds) is in ``_due``."""
        self._later: float | None = None
        """The earliest deadline of a completed task in the store that is not in ``_due`` (None: there is none)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        transitions.completed_hooks.append(self.task_completed)
        transitions.deleted_hooks.append(self.task_deleted)
        transitions.job_end_hooks.append(self._job_ended)

    def start(self) -> None:
        if self._task is None:
            self.load()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="task-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def load(self, now: float | None = None) -> None:
        """Take up the completed tasks of the store whose directories are due within the horizon (at start)."""
        self._until = (time.time() if now is None else now) + HORIZON
        self._later = None
        self._scan(float("-inf"))

    def held(self) -> int:
        """How many directories are held in memory."""
        return len(self._due)

    def _scan(self, after: float) -> None:
        """Push the directories of the store's completed tasks due after ``after`` and by ``_until``."""
        for job in self.store.list_jobs():
            job_id, cursor = str(job["id"]), None
            while True:
                page = self.store.list_tasks_page(job_id, states=["completed"], after_seq=cursor, limit=_PAGE)
                for _, doc in page:
                    deadline = retention_deadline(doc)
                    if deadline is not None and deadline.timestamp() > after:
                        self.task_completed(job_id, doc)
                if len(page) < _PAGE:
                    break
                cursor = page[-1][0]

    def advance(self, now: float) -> None:
        """Move the horizon to ``now`` + :data:`HORIZON` once half of it has passed, reading the store again when a
        directory left there comes within it."""
        if now + HORIZON / 2 < self._until:
            return
        before, self._until = self._until, now + HORIZON
        if self._later is not None and self._later <= self._until:
            self._later = None
            self._scan(before)

    def _push(self, deadline: datetime, job_id: str, task_id: str | None, node_id: str, directory: str) -> None:
        self._seq += 1
        heapq.heappush(self._due, (deadline.timestamp(), self._seq, job_id, task_id, node_id, directory))
        if self._due[0][1] == self._seq:
            self._wake.set()

    def task_completed(self, job_id: str, doc: dict[str, Any], *, hold: bool = False) -> None:
        """A task completed: its directory (when it ran somewhere) goes after its retention time.

        Args:
            job_id: its job.
            doc: its document.
            hold: keep it in memory even beyond the horizon (the store no longer has it).
        """
        info = doc.get("nodeInfo") or {}
        deadline = retention_deadline(doc)
        node_id, directory = info.get("nodeId"), info.get("taskRootDirectory")
        if deadline is None or not isinstance(node_id, str) or not isinstance(directory, str):
            return
        due = deadline.timestamp()
        if hold or due <= self._until:
            for where, path in self._directories(job_id, doc, node_id, directory):
                self._push(deadline, job_id, str(doc["id"]), where, path)
        elif self._later is None or due < self._later:
            self._later = due

    def _directories(self, job_id: str, doc: Mapping[str, Any], node_id: str, directory: str) -> list[tuple[str, str]]:
        """``(node id, directory)`` of every copy of the task's directory: where it ran and, for a multi-instance
        task, on each of its subtasks' nodes."""
        found = [(node_id, directory)]
        if (instance_count(doc) or 1) > 1:
            for info in self.store.get_subtasks(job_id, str(doc["id"])):
                node = info.get("nodeInfo") or {}
                where, path = node.get("nodeId"), node.get("taskRootDirectory")
                copy = (where, path if isinstance(path, str) else directory)
                if isinstance(where, str) and copy not in found:
                    found.append((where, copy[1]))
        return found

    def task_deleted(self, job_id: str, doc: dict[str, Any]) -> None:
        """A task was deleted: a completed one's directory still goes after its retention time."""
        deadline = retention_deadline(doc)
        if deadline is not None and deadline.timestamp() > self._until:
            self.task_completed(job_id, doc, hold=True)

    def own_task_completed(self, job_id: str, node_id: str, spec: Mapping[str, Any], end: datetime) -> None:
        """A job's preparation or release task ended on a node: its directory goes after its retention time."""
        retention = spec.get("retentionTime") or (spec.get("constraints") or {}).get("retentionTime")
        span = _retention({"constraints": {"retentionTime": retention}})
        self._push(end + span, job_id, None, node_id, task_dir(job_id, str(spec["id"])))

    def _job_ended(self, job_id: str, how: str) -> None:
        if how != "deleted":
            return
        for node in self.sched.nodes.values():
            if not node.removing and not node.lost:
                node.remove(f"workitems/{job_id}")

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                now = time.time()
                self.advance(now)
                self.remove_due(now)
            except Exception:
                log.exception("task retention pass failed")
            delay = _MAX_SLEEP if not self._due else max(0.0, min(_MAX_SLEEP, self._due[0][0] - time.time()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def remove_due(self, now: float) -> None:
        """Ask the nodes to remove every directory whose time is over (unless its task ran again since)."""
        while self._due and self._due[0][0] <= now:
            deadline, _, job_id, task_id, node_id, directory = heapq.heappop(self._due)
            if task_id is not None:
                doc = self.store.get_task(job_id, task_id)
                current = retention_deadline(doc) if doc is not None else None
                if doc is not None and (current is None or current.timestamp() > deadline):
                    continue  # it ran again: its new completion has its own entry
            node = self.sched.nodes.get(node_id)
            if node is not None and not node.removing and not node.lost:
                log.info("removing %s from node %s: its retention time is over", directory, node_id)
                node.remove(directory)
