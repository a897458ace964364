"""Whose a secret kept in the store is: registry passwords and blob mount keys are stored under their owner's name
(``<owner>|<secret name>``), so that deleting a pool, job, task or job schedule deletes its secrets with it.

Owners: ``pool:<pool>``, ``job:<job>``, ``task:<job>/<task>``, ``schedule:<schedule>`` (ids lower-cased; Batch ids
contain neither ``/`` nor ``|``). A job's own tasks (manager, preparation, release) keep theirs under the job; a job
created by a schedule gets a copy of the schedule's. Pure: no I/O.

States written before owners existed kept ``registry-password:<server>:<user>`` and ``mount-credential:<pool>:<path>``
unowned: :func:`lookup_names` ends with that unowned name, so those states keep working (their secrets stay until the
state is removed, as they did before).
"""

from __future__ import annotations

__all__ = [
    "OWNER_SEPARATOR",
    "job_owner",
    "job_tasks_prefix",
    "lookup_names",
    "owned",
    "pool_owner",
    "schedule_owner",
    "task_owner",
]

OWNER_SEPARATOR = "|"


def pool_owner(pool_id: str) -> str:
    """The owner name of a pool's secrets (its registries' passwords, its blob mounts' keys)."""
    return f"pool:{pool_id.lower()}"


def job_owner(job_id: str) -> str:
    """The owner name of the secrets of a job's own tasks (manager, preparation, release)."""
    return f"job:{job_id.lower()}"


def task_owner(job_id: str, task_id: str) -> str:
    """The owner name of a task's secrets (its container registry's password)."""
    return f"task:{job_id.lower()}/{task_id.lower()}"


def job_tasks_prefix(job_id: str) -> str:
    """The start shared by the owner names of every task of a job."""
    return f"task:{job_id.lower()}/"


def schedule_owner(schedule_id: str) -> str:
    """The owner name of the secrets of a job schedule's job specification."""
    return f"schedule:{schedule_id.lower()}"


def owned(owner: str, name: str) -> str:
    """The store name of the secret ``name`` of ``owner``."""
    return f"{owner}{OWNER_SEPARATOR}{name}"


def lookup_names(owners: list[str], name: str) -> list[str]:
    """The store names to look ``name`` up under, in order: each owner's, then the unowned name of older states."""
    return [owned(owner, name) for owner in owners] + [name]
