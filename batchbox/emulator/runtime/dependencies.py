"""Task dependencies (``dependsOn``): a dependent task is queued only when every parent completed and satisfied it.

A parent satisfies its dependents when the ``dependencyAction`` of its outcome is ``satisfy``: Batch's default is
``satisfy`` for success and ``block`` for every failure, and the parent's ``exitConditions`` may say otherwise
(``runtime/exit_conditions.py``). A blocked dependent
stays ``active`` (so a job with ``onAllTasksComplete: terminatejob`` does not end); it is released if the parent
is reactivated and later satisfies it. Parents may be added after their dependents.

Per job (only for jobs with ``usesTaskDependencies``) the runtime keeps the keys of satisfying parents, the pending
parents of each waiting task and the waiting tasks of each parent, so checks never read the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchbox.emulator.runtime.exit_conditions import dependency_action
from batchbox.emulator.runtime.model import JobRuntime

__all__ = ["MAX_RANGE_IDS", "admit", "dependency_action", "parent_keys", "resolve"]

MAX_RANGE_IDS = 100_000
"""At most this many task ids are taken from one task's ``taskIdRanges``."""


def parent_keys(doc: Mapping[str, Any]) -> list[str]:
    """The (lower-cased) ids of a task's parents: ``taskIds`` plus every integer id of ``taskIdRanges``."""
    depends = doc.get("dependsOn")
    if not isinstance(depends, Mapping):
        return []
    keys: dict[str, None] = {}
    for task_id in depends.get("taskIds") or []:
        if isinstance(task_id, str) and task_id:
            keys[task_id.lower()] = None
    budget = MAX_RANGE_IDS
    for item in depends.get("taskIdRanges") or []:
        if not isinstance(item, Mapping):
            continue
        start, end = item.get("start"), item.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or end < start:
            continue
        stop = min(end, start + budget - 1)
        for number in range(start, stop + 1):
            keys[str(number)] = None
        budget -= stop - start + 1
        if budget <= 0:
            break
    keys.pop(str(doc.get("id", "")).lower(), None)
    return list(keys)


def admit(job: JobRuntime, doc: Mapping[str, Any]) -> bool:
    """Decide about an active task: ``True`` when it may be queued now; else it waits for its parents."""
    key = str(doc["id"]).lower()
    parents = parent_keys(doc) if job.uses_dependencies else []
    pending = {parent for parent in parents if parent not in job.satisfied}
    if not pending:
        job.waiting.pop(key, None)
        return True
    job.waiting[key] = pending
    for parent in pending:
        job.dependents.setdefault(parent, set()).add(key)
    return False


def resolve(job: JobRuntime, doc: Mapping[str, Any]) -> list[str]:
    """A task completed: record whether it satisfies its dependents; return the dependents that are now free."""
    if not job.uses_dependencies:
        return []
    key = str(doc["id"]).lower()
    if dependency_action(doc) != "satisfy":
        job.satisfied.discard(key)
        return []
    job.satisfied.add(key)
    released: list[str] = []
    for child in job.dependents.pop(key, set()):
        pending = job.waiting.get(child)
        if pending is None:
            continue
        pending.discard(key)
        if not pending:
            del job.waiting[child]
            released.append(child)
    return released
