"""Pure edits of one node's job preparation and release task status (what
``GET /jobs/{id}/jobpreparationandreleasetaskstatus`` lists per node) and the runs of those tasks.

The document: ``poolId``, ``nodeId``, ``nodeUrl``, ``jobPreparationTaskExecutionInfo`` (``state`` running | completed,
``startTime``, ``endTime``, ``taskRootDirectory``, ``taskRootDirectoryUrl``, ``exitCode``, ``failureInfo``,
``retryCount``, ``lastRetryTime``, ``result``) and ``jobReleaseTaskExecutionInfo`` (the same without the retries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.documents import exit_code_failure, parse_exit_code, parse_failure_info
from batchbox.emulator.runtime.environment import task_assignment, task_dir
from batchbox.emulator.runtime.model import Assignment, NodeRuntime, task_assignment_id

__all__ = [
    "INFO_FIELDS",
    "PREPARATION",
    "RELEASE",
    "new_status",
    "own_task_dir",
    "own_task_run",
    "run_finished",
    "run_result",
    "run_started",
]

PREPARATION = "jobprep"
"""``Assignment.kind`` of a job preparation task run."""
RELEASE = "jobrelease"
"""``Assignment.kind`` of a job release task run."""
INFO_FIELDS = {PREPARATION: "jobPreparationTaskExecutionInfo", RELEASE: "jobReleaseTaskExecutionInfo"}
_RUN_FIELDS = ("endTime", "exitCode", "failureInfo", "result")

Doc = dict[str, Any]


def new_status(pool_id: str, node: NodeRuntime) -> Doc:
    """The status of a node that has run neither task yet."""
    return {"poolId": pool_id, "nodeId": node.node_id, "nodeUrl": str(node.doc.get("url") or "")}


def run_started(status: Doc, kind: str, node_url: str, directory: str, now: str, attempt: int) -> None:
    """A run of the preparation (``attempt`` > 0: a retry) or release task starts on the node."""
    info: Doc = dict(status.get(INFO_FIELDS[kind]) or {})
    for name in _RUN_FIELDS:
        info.pop(name, None)
    info.update(
        {
            "startTime": now,
            "state": "running",
            "taskRootDirectory": directory,
            "taskRootDirectoryUrl": f"{node_url}/files/{directory}",
        }
    )
    if kind == PREPARATION:
        info["retryCount"] = attempt
        if attempt > 0:
            info["lastRetryTime"] = now
    status[INFO_FIELDS[kind]] = info


def run_result(event: Mapping[str, Any]) -> tuple[int | None, Doc | None]:
    """``(exit code, failureInfo)`` of a ``completed`` event (a non-zero exit is a ``FailureExitCode`` failure)."""
    exit_code = parse_exit_code(event.get("exitCode"))
    failure = parse_failure_info(event.get("failureInfo"))
    if failure is None and (exit_code is None or exit_code != 0 or event.get("result") == "failure"):
        failure = exit_code_failure(exit_code)
    return exit_code, failure


def run_finished(status: Doc, kind: str, now: str, exit_code: int | None, failure: Doc | None) -> None:
    """The run of ``kind`` completed with this result."""
    info: Doc = dict(status.get(INFO_FIELDS[kind]) or {"startTime": now})
    info["state"] = "completed"
    info["endTime"] = now
    if exit_code is None:
        info.pop("exitCode", None)
    else:
        info["exitCode"] = exit_code
    info["result"] = "failure" if failure is not None else "success"
    if failure is None:
        info.pop("failureInfo", None)
    else:
        info["failureInfo"] = failure
    status[INFO_FIELDS[kind]] = info


def own_task_run(
    config: EmulatorConfig,
    *,
    kind: str,
    spec: Mapping[str, Any],
    job_doc: Mapping[str, Any],
    pool_doc: Mapping[str, Any] | None,
    node: NodeRuntime,
    attempt: int,
) -> Assignment:
    """One run of a job's preparation or release task on ``node``: the held assignment with its payload (the agent
    runs it like a task, in ``workitems/<job>/job-1/<task id>``)."""
    job_id, task_id = str(job_doc["id"]), str(spec["id"])
    task_doc: Doc = dict(spec)
    if kind == RELEASE:
        task_doc["constraints"] = {"maxWallClockTime": spec.get("maxWallClockTime") or "PT15M"}
    retries = (spec.get("constraints") or {}).get("maxTaskRetryCount", 0) if kind == PREPARATION else 0
    assignment_id = task_assignment_id(job_id, task_id, attempt)
    payload = task_assignment(
        config,
        assignment_id=assignment_id,
        attempt=attempt,
        job_doc=job_doc,
        task_doc=task_doc,
        pool_doc=pool_doc,
        node_id=node.node_id,
        dedicated=node.dedicated,
        max_task_retry_count=retries if isinstance(retries, int) else 0,
        container_required=False,
    )
    return Assignment(
        assignment_id=assignment_id,
        kind=kind,
        job_id=job_id,
        task_id=task_id,
        attempt=attempt,
        slots=0,
        payload=payload,
    )


def own_task_dir(job_id: str, spec: Mapping[str, Any]) -> str:
    """The directory of a job's preparation or release task, relative to the node root."""
    return task_dir(job_id, str(spec["id"]))
