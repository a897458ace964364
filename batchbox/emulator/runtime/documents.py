"""Pure changes to stored REST documents (tasks, jobs, nodes): each function edits the dict it is given.

Field names and values are those of the Batch REST API (camelCase; enum values lower-case as the service
returns them). Times are ISO 8601 UTC strings with ``Z``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_TERMINATE_REASON",
    "FAILURE_EXIT_CODE",
    "RECENT_TASKS_KEPT",
    "TASK_ENDED",
    "exit_code_failure",
    "is_retryable",
    "job_completed",
    "job_terminating",
    "new_node_doc",
    "new_node_id",
    "parse_exit_code",
    "parse_failure_info",
    "pool_deleting",
    "record_recent_task",
    "set_state",
    "task_completed",
    "task_ended_failure",
    "task_preparing",
    "task_reactivated",
    "task_requeued",
    "task_retried",
    "task_running",
]

DEFAULT_TERMINATE_REASON = "UserTerminate"
"""``executionInfo.terminateReason`` of a job terminated without a reason."""
FAILURE_EXIT_CODE = "FailureExitCode"
"""``failureInfo.code`` of a task whose process exited non-zero (the value Batch reports)."""
TASK_ENDED = "TaskEnded"
"""``failureInfo.code`` of a task that was terminated (task or job terminate) before it finished."""
_FAILURE_EXIT_MESSAGE = "The task exited with an exit code representing a failure"
_RUN_FIELDS = ("endTime", "exitCode", "result", "failureInfo", "containerInfo")
RECENT_TASKS_KEPT = 10
"""How many tasks a node's ``recentTasks`` lists (the most recent state changes; Batch documents no number)."""


def new_node_id(dedicated: bool = True) -> str:
    """A Batch-looking node id: ``tvmps_<24 hex digits>_d`` (``_p`` for a low-priority node)."""
    return f"tvmps_{secrets.token_hex(12)}_{'d' if dedicated else 'p'}"


def new_node_doc(
    base_url: str, pool_doc: Mapping[str, Any], node_id: str, now: str, dedicated: bool = True
) -> dict[str, Any]:
    """The REST ComputeNode document of a node that is being created."""
    pool_id = str(pool_doc["id"])
    doc: dict[str, Any] = {
        "id": node_id,
        "url": f"{base_url}/pools/{pool_id}/nodes/{node_id}",
        "state": "creating",
        "schedulingState": "enabled",
        "stateTransitionTime": now,
        "allocationTime": now,
        "lastBootTime": now,
        "ipAddress": "127.0.0.1",
        "affinityId": f"TVM:{node_id}",
        "vmSize": str(pool_doc.get("vmSize") or "standard_d1_v2").lower(),
        "totalTasksRun": 0,
        "totalTasksSucceeded": 0,
        "runningTasksCount": 0,
        "runningTaskSlotsCount": 0,
        "isDedicated": dedicated,
        # Node containers share the host's network and accept no remote login: no inbound endpoint.
        "endpointConfiguration": {"inboundEndpoints": []},
        "nodeAgentInfo": {"version": "batchbox-1", "lastUpdateTime": now},
        "virtualMachineInfo": {"imageReference": _node_image(pool_doc)},
    }
    if isinstance(pool_doc.get("startTask"), Mapping):
        doc["startTask"] = dict(pool_doc["startTask"])
    doc["certificateReferences"] = []
    return doc


def _node_image(pool_doc: Mapping[str, Any]) -> dict[str, Any]:
    """The pool's image reference with the ``exactVersion`` the node runs (the version asked for, ``latest`` if
    none: every node runs the same local image)."""
    config = pool_doc.get("virtualMachineConfiguration")
    image = dict(config.get("imageReference") or {}) if isinstance(config, Mapping) else {}
    if not any(image.get(key) for key in ("virtualMachineImageId", "sharedGalleryImageId", "communityGalleryImageId")):
        image.setdefault("version", "latest")
        image["exactVersion"] = str(image["version"])
    return image


def record_recent_task(node_doc: dict[str, Any], task_doc: Mapping[str, Any], job_id: str) -> None:
    """Put a task's current state first in its node's ``recentTasks`` (one entry per task, newest first)."""
    task_id = str(task_doc["id"])
    entry: dict[str, Any] = {"taskUrl": str(task_doc.get("url", "")), "jobId": job_id, "taskId": task_id}
    entry["taskState"] = str(task_doc.get("state", ""))
    info = task_doc.get("executionInfo")
    if isinstance(info, Mapping):
        entry["executionInfo"] = dict(info)
    previous = node_doc.get("recentTasks")
    others = [
        item
        for item in (previous if isinstance(previous, list) else [])
        if not (isinstance(item, Mapping) and item.get("jobId") == job_id and item.get("taskId") == task_id)
    ]
    node_doc["recentTasks"] = [entry, *others][:RECENT_TASKS_KEPT]


def set_state(doc: dict[str, Any], state: str, now: str) -> None:
    """Move a task or job document to ``state`` (recording the previous state and both transition times)."""
    old = doc.get("state")
    if old == state:
        return
    if old is not None:
        doc["previousState"] = old
        if doc.get("stateTransitionTime"):
            doc["previousStateTransitionTime"] = doc["stateTransitionTime"]
    doc["state"] = state
    doc["stateTransitionTime"] = now


def _execution_info(doc: dict[str, Any]) -> dict[str, Any]:
    info = doc.get("executionInfo")
    if not isinstance(info, dict):
        info = {}
        doc["executionInfo"] = info
    info.setdefault("retryCount", 0)
    info.setdefault("requeueCount", 0)
    return info


def task_preparing(doc: dict[str, Any], node_info: dict[str, Any], now: str) -> None:
    """Active -> preparing on a node: placed there, waiting for its job's preparation task on that node."""
    set_state(doc, "preparing", now)
    doc["nodeInfo"] = node_info
    info = _execution_info(doc)
    for name in (*_RUN_FIELDS, "startTime"):
        info.pop(name, None)


def task_running(doc: dict[str, Any], node_info: dict[str, Any], now: str) -> None:
    """Active (or preparing) -> running on a node."""
    set_state(doc, "running", now)
    doc["nodeInfo"] = node_info
    info = _execution_info(doc)
    for name in _RUN_FIELDS:
        info.pop(name, None)
    info["startTime"] = now
    if info["retryCount"] > 0:
        info["lastRetryTime"] = now


def task_completed(
    doc: dict[str, Any],
    now: str,
    *,
    exit_code: int | None,
    failure_info: dict[str, Any] | None,
    start_time: str | None = None,
    end_time: str | None = None,
) -> None:
    """Running (or active) -> completed, with the run's result; ``failure_info`` set means a failure."""
    set_state(doc, "completed", now)
    info = _execution_info(doc)
    if start_time:
        info["startTime"] = start_time
    info["endTime"] = end_time or now
    if exit_code is None:
        info.pop("exitCode", None)
    else:
        info["exitCode"] = exit_code
    if failure_info is None:
        info["result"] = "success"
        info.pop("failureInfo", None)
    else:
        info["result"] = "failure"
        info["failureInfo"] = failure_info


def _back_to_active(doc: dict[str, Any], now: str, dropped: tuple[str, ...] = _RUN_FIELDS) -> dict[str, Any]:
    """The task is active again, on no node, without the ``dropped`` fields of its last run; returns its
    ``executionInfo``."""
    set_state(doc, "active", now)
    info = _execution_info(doc)
    for name in dropped:
        info.pop(name, None)
    doc.pop("nodeInfo", None)
    return info


def task_retried(doc: dict[str, Any], now: str) -> None:
    """A failed run that will be retried: back to active with ``retryCount`` + 1."""
    info = _back_to_active(doc, now)
    info["retryCount"] = int(info["retryCount"]) + 1


def task_requeued(doc: dict[str, Any], now: str) -> None:
    """A run lost with its node (or its node removed): back to active with ``requeueCount`` + 1."""
    info = _back_to_active(doc, now)
    info["requeueCount"] = int(info["requeueCount"]) + 1
    info["lastRequeueTime"] = now


def task_reactivated(doc: dict[str, Any], now: str) -> None:
    """Completed (failed) -> active; exit code and failure are dropped and ``retryCount`` is reset to 0."""
    info = _back_to_active(doc, now, (*_RUN_FIELDS, "startTime", "lastRetryTime"))
    info["retryCount"] = 0


def exit_code_failure(exit_code: int | None) -> dict[str, Any]:
    """The ``failureInfo`` Batch reports for a process that exited non-zero."""
    return {
        "category": "usererror",
        "code": FAILURE_EXIT_CODE,
        "message": _FAILURE_EXIT_MESSAGE,
        "details": [{"name": "Message", "value": f"The task process exited with exit code {exit_code}"}],
    }


def task_ended_failure(reason: str) -> dict[str, Any]:
    """The ``failureInfo`` of a task ended by a terminate request (of the task or of its job)."""
    return {
        "category": "usererror",
        "code": TASK_ENDED,
        "message": "Task was ended by user request",
        "details": [{"name": "Message", "value": reason}],
    }


def is_retryable(exit_code: int | None, failure_info: Mapping[str, Any] | None) -> bool:
    """Whether a failed run counts against ``maxTaskRetryCount`` (and may be retried).

    Only a process that ran and exited non-zero is retried. Runs that failed before the process
    started (``exitCode`` null: resource file download), failed after it (output upload), hit
    ``maxWallClockTime``, or were ended by request carry a failureInfo with another code and are not.
    """
    if exit_code is None or exit_code == 0:
        return False
    if not failure_info:
        return True
    return str(failure_info.get("code") or "") == FAILURE_EXIT_CODE


def pool_deleting(doc: dict[str, Any], now: str) -> None:
    """A pool that is being deleted: state ``deleting``, resizing to no nodes."""
    doc["state"] = "deleting"
    doc["stateTransitionTime"] = now
    doc["allocationState"] = "resizing"
    doc["allocationStateTransitionTime"] = now
    doc["targetDedicatedNodes"] = 0
    doc["targetLowPriorityNodes"] = 0


def job_terminating(doc: dict[str, Any], now: str, reason: str) -> None:
    """A job asked to terminate: state ``terminating`` with ``executionInfo.terminateReason``."""
    set_state(doc, "terminating", now)
    doc.setdefault("executionInfo", {})["terminateReason"] = reason


def job_completed(doc: dict[str, Any], now: str, reason: str) -> None:
    """A job that ends: state completed, ``executionInfo.endTime`` and ``terminateReason``."""
    set_state(doc, "completed", now)
    info = doc.get("executionInfo")
    if not isinstance(info, dict):
        info = {"startTime": doc.get("creationTime") or now}
        doc["executionInfo"] = info
    info["endTime"] = now
    info["terminateReason"] = reason


def parse_exit_code(value: object) -> int | None:
    """An event's ``exitCode``: an int, or ``None`` when absent or not an int."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def parse_failure_info(value: object) -> dict[str, Any] | None:
    """An event's ``failureInfo`` reduced to the REST shape (category, code, message, details), or ``None``."""
    if not isinstance(value, Mapping) or not value:
        return None
    info: dict[str, Any] = {
        "category": str(value.get("category") or "usererror").lower(),
        "code": str(value.get("code") or "TaskFailed"),
        "message": str(value.get("message") or ""),
    }
    details = value.get("details")
    if isinstance(details, list):
        info["details"] = [
            {"name": str(d.get("name", "")), "value": str(d.get("value", ""))}
            for d in details
            if isinstance(d, Mapping)
        ]
    return info
