"""Usage statistics (``stats``, returned with ``$expand=stats``) of the jobs of a job schedule, from stored data.

What the emulator measures: task counts by result, retries, wall clock time (every run's, retries included, and the
time so far of runs still going) and wait time (creation to the start of each task's latest run). It does not
measure CPU time or disk I/O of task processes: those are reported as zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from batchbox.emulator.clock import format_duration, format_time, parse_time
from batchbox.emulator.run_history import TaskRun

__all__ = ["usage_statistics"]


def _seconds(start: object, end: object) -> float:
    begin, finish = parse_time(start), parse_time(end)
    if begin is None or finish is None or finish < begin:
        return 0.0
    return (finish - begin).total_seconds()


def usage_statistics(
    url: str, start: str, now: datetime, tasks: Iterable[Mapping[str, Any]], runs: Iterable[TaskRun]
) -> dict[str, Any]:
    """The ``stats`` document (``BatchJobScheduleStatistics``) over ``tasks`` and the ended ``runs`` of them.

    Args:
        url: the statistics resource's URL (the schedule's URL).
        start: the start of the covered range (the schedule's creation time).
        now: the end of the covered range.
        tasks: the task documents of the jobs covered.
        runs: their ended runs (``store.runs``).
    """
    succeeded = failed = retries = 0
    wall = sum(max(0.0, run.end - run.start) for run in runs if run.start is not None and run.end is not None)
    wait = 0.0
    now_text = format_time(now)
    for doc in tasks:
        info = doc.get("executionInfo") or {}
        retries += int(info.get("retryCount") or 0)
        if doc.get("state") == "completed":
            if info.get("result") == "success":
                succeeded += 1
            elif info.get("result") == "failure":
                failed += 1
        elif doc.get("state") == "running":
            wall += _seconds(info.get("startTime"), now_text)
        if info.get("startTime"):
            wait += _seconds(doc.get("creationTime"), info.get("startTime"))
    zero = format_duration(timedelta(0))
    return {
        "url": url,
        "startTime": start,
        "lastUpdateTime": now_text,
        "userCPUTime": zero,
        "kernelCPUTime": zero,
        "wallClockTime": format_duration(timedelta(seconds=wall)),
        "readIOps": 0,
        "writeIOps": 0,
        "readIOGiB": 0.0,
        "writeIOGiB": 0.0,
        "numSucceededTasks": succeeded,
        "numFailedTasks": failed,
        "numTaskRetries": retries,
        "waitTime": format_duration(timedelta(seconds=wait)),
    }
