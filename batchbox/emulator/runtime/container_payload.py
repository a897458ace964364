"""The container part of an Assignment, for any kind of assignment (tasks, the start task, job tasks).

:func:`container_fields` returns what to merge into an Assignment: ``{"container": {...}}`` when the assignment
runs in a container (the agent then asks the emulator to run it, see ``runtime/task_containers.py``),
``{"failureInfo": {...}}`` when it cannot run at all (the agent completes it with that failure and starts nothing),
or nothing for a plain process. The Batch rules:

* on a pool with ``containerConfiguration``, tasks and job manager tasks must have ``containerSettings``
  (``ContainerTaskSettingsNotFound``); start tasks and job preparation/release tasks may run on the node itself;
* ``containerSettings`` on a pool without ``containerConfiguration`` cannot run (``ContainerInvalidSettings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchbox.emulator.resources.containers import has_container_configuration

__all__ = [
    "CONTAINER_INVALID_IMAGE",
    "CONTAINER_INVALID_SETTINGS",
    "CONTAINER_TASK_SETTINGS_NOT_FOUND",
    "container_failure",
    "container_fields",
]

CONTAINER_INVALID_IMAGE = "ContainerInvalidImage"
CONTAINER_INVALID_SETTINGS = "ContainerInvalidSettings"
CONTAINER_TASK_SETTINGS_NOT_FOUND = "ContainerTaskSettingsNotFound"
_MESSAGES = {
    CONTAINER_INVALID_IMAGE: "One or more container images specified are invalid",
    CONTAINER_INVALID_SETTINGS: "At least one value of specified task container settings is invalid",
    CONTAINER_TASK_SETTINGS_NOT_FOUND: "Container-enabled compute node requires task container settings",
}


def container_failure(code: str, details: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``usererror`` failureInfo with Batch's message for one of the container codes."""
    failure: dict[str, Any] = {"category": "usererror", "code": code, "message": _MESSAGES[code]}
    if details:
        failure["details"] = [{"name": name, "value": value} for name, value in details.items()]
    return failure


def container_fields(spec: Mapping[str, Any], pool_doc: Mapping[str, Any] | None, *, required: bool) -> dict[str, Any]:
    """What to merge into the Assignment of ``spec`` (a task, start task or job task document).

    Args:
        spec: the document holding ``containerSettings`` (or not).
        pool_doc: the pool the assignment runs on.
        required: whether this kind of task must run in a container on a container pool (tasks, job managers).
    """
    settings = spec.get("containerSettings")
    in_pool = has_container_configuration(dict(pool_doc) if pool_doc is not None else None)
    if not isinstance(settings, Mapping):
        if required and in_pool:
            return {"failureInfo": container_failure(CONTAINER_TASK_SETTINGS_NOT_FOUND)}
        return {}
    if not in_pool:
        return {
            "failureInfo": container_failure(
                CONTAINER_INVALID_SETTINGS,
                {"Message": "The pool has no containerConfiguration: its tasks cannot run in containers"},
            )
        }
    return {"container": dict(settings)}
