"""The portal's jobs section: every job with its task counts; one job; terminate and delete.

Terminate and delete take the same path as the Batch API's ``POST /jobs/{id}/terminate`` and
``DELETE /jobs/{id}``: the same runtime transition (``runtime.jobs``), which checks and changes the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.handlers.common import get_runtime
from batchbox.emulator.portal.common import Doc, get_job, get_store, json_answer, masked_doc, pick

__all__ = ["job_summary", "routes"]

_JOB_FIELDS = (
    "id",
    "displayName",
    "state",
    "priority",
    "maxParallelTasks",
    "onAllTasksComplete",
    "onTaskFailure",
    "usesTaskDependencies",
    "constraints",
    "creationTime",
    "stateTransitionTime",
    "lastModified",
)
_COUNT_NAMES = ("active", "running", "completed", "succeeded", "failed")


def job_summary(doc: Mapping[str, Any], counts: Mapping[str, Any]) -> Doc:
    """What the page shows of a job: state, pool (its auto pool once made), times, end reason and its task counts."""
    summary = pick(doc, *_JOB_FIELDS)
    pool_info = doc.get("poolInfo")
    summary["poolId"] = pool_info.get("poolId") if isinstance(pool_info, Mapping) else None
    info = doc.get("executionInfo")
    if isinstance(info, Mapping):
        summary["poolId"] = summary["poolId"] or info.get("poolId")
        summary.update(pick(info, "startTime", "endTime", "terminateReason"))
        if isinstance(info.get("schedulingError"), Mapping):
            summary["schedulingError"] = masked_doc(dict(info["schedulingError"]))
    summary["counts"] = {name: int(counts[name]) for name in _COUNT_NAMES}
    return summary


async def list_jobs(request: Request) -> Response:
    store = get_store(request)
    return json_answer({"jobs": [job_summary(job, store.task_counts(job["id"])) for job in store.list_jobs()]})


async def get_job_detail(request: Request) -> Response:
    doc = get_job(request, request.path_params["job_id"])
    summary = job_summary(doc, get_store(request).task_counts(doc["id"]))
    if isinstance(doc.get("jobManagerTask"), Mapping):
        summary["jobManagerTask"] = masked_doc(dict(doc["jobManagerTask"]))
    return json_answer({"job": summary})


async def terminate_job(request: Request) -> Response:
    """Like ``POST /jobs/{id}/terminate`` without a reason: the job ends with ``UserTerminate``."""
    doc = get_job(request, request.path_params["job_id"])
    doc = get_runtime(request).jobs.terminate(doc["id"])
    return json_answer({"id": doc["id"], "state": doc["state"]}, status=202)


async def delete_job(request: Request) -> Response:
    """Like ``DELETE /jobs/{id}``: the job goes ``deleting``, its tasks are stopped, then it is gone."""
    doc = get_job(request, request.path_params["job_id"])
    doc = get_runtime(request).jobs.delete(doc["id"])
    return json_answer({"id": doc["id"], "state": "deleting"}, status=202)


routes = [
    Route("/api/jobs", list_jobs, methods=["GET"]),
    Route("/api/jobs/{job_id}", get_job_detail, methods=["GET"]),
    Route("/api/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/api/jobs/{job_id}/terminate", terminate_job, methods=["POST"]),
]
"""Paths relative to ``/portal``."""
