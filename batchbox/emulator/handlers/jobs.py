"""Job operations: add, list, get, delete, disable, enable, terminate, patch (PATCH), update (PUT), task counts, and
the status of the job's preparation and release tasks per node."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import conflict, invalid_query, missing_property
from batchbox.emulator.handlers.common import (
    check_preconditions,
    entity_response,
    get_config,
    get_job_or_404,
    get_runtime,
    get_store,
    keep_secrets,
    list_page,
    validation_context,
)
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.query_checks import FORCE_PARAM, check_force
from batchbox.emulator.protocol.responses import accepted, base_url, batch_json, created, metadata_url, ok_empty
from batchbox.emulator.resources import apply_job_patch, apply_job_replace, build_job
from batchbox.emulator.resources.common import opt_enum, opt_str, reject_unknown_properties, req_object
from batchbox.emulator.resources.statistics import usage_statistics
from batchbox.emulator.runtime.job_control import DISABLE_TASKS
from batchbox.emulator.secret_owners import job_owner

__all__ = ["PREPARATION_STATUS_FILTER_PROPERTIES", "routes"]

Doc = dict[str, Any]

_COUNT_NAMES = ("active", "running", "completed", "succeeded", "failed")


async def add_job(request: Request) -> Response:
    body = await read_json(request)
    context = validation_context(request)
    doc = get_runtime(request).jobs.add(build_job(body, base_url=get_config(request).base_url, context=context))
    keep_secrets(request, context, job_owner(doc["id"]))
    return created(doc["url"], doc["eTag"], doc["lastModified"])


def _expand_stats(request: Request) -> bool:
    """Whether ``$expand`` asks for ``stats`` (the only expansion of a job); any other value is refused."""
    expand = request.query_params.get("$expand")
    if expand is None or not expand.strip():
        return False
    if [part.strip() for part in expand.split(",")] != ["stats"]:
        raise invalid_query("$expand", expand, "A job can only be expanded with stats.")
    return True


def _with_stats(request: Request, doc: Doc) -> Doc:
    """``doc`` with its ``stats`` (``BatchJobStatistics``: its tasks and their ended runs)."""
    store = get_store(request)
    tasks = store.list_tasks(doc["id"])
    runs = store.runs.list(doc["id"])
    stats = usage_statistics(doc["url"], doc["creationTime"], datetime.now(timezone.utc), tasks, runs)
    return {**doc, "stats": stats}


async def list_jobs(request: Request) -> Response:
    jobs = get_store(request).list_jobs()
    if _expand_stats(request):
        jobs = [_with_stats(request, job) for job in jobs]
    return list_page(request, "jobs", jobs)


async def get_job(request: Request) -> Response:
    doc = get_job_or_404(request, request.path_params["job_id"])
    return entity_response(request, _with_stats(request, doc) if _expand_stats(request) else doc, "jobs")


async def delete_job(request: Request) -> Response:
    check_force(request.query_params.get(FORCE_PARAM))
    doc = get_job_or_404(request, request.path_params["job_id"])
    check_preconditions(request, doc)
    get_runtime(request).jobs.delete(doc["id"])
    return accepted()


async def _optional_json(request: Request) -> object:
    if not (await request.body()).strip():
        return None
    return await read_json(request)


async def terminate_job(request: Request) -> Response:
    check_force(request.query_params.get(FORCE_PARAM))
    body = await _optional_json(request)
    doc = get_job_or_404(request, request.path_params["job_id"])
    reason = None if body is None else opt_str(req_object(body), "terminateReason", max_length=4096)
    check_preconditions(request, doc)
    doc = get_runtime(request).jobs.terminate(doc["id"], reason)
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def _update_job(request: Request, apply: Callable[[Doc, object], Doc]) -> Response:
    body = await read_json(request)
    doc = get_job_or_404(request, request.path_params["job_id"])
    check_preconditions(request, doc)
    doc = get_runtime(request).jobs.update(apply(doc, body))
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def patch_job(request: Request) -> Response:
    return await _update_job(request, apply_job_patch)


async def replace_job(request: Request) -> Response:
    return await _update_job(request, apply_job_replace)


async def disable_job(request: Request) -> Response:
    """``POST /jobs/{id}/disable`` with ``{"disableTasks": "requeue" | "terminate" | "wait"}``."""
    body = req_object(await read_json(request))
    reject_unknown_properties(body, "JobDisableParameter")
    disable_tasks = opt_enum(body, "disableTasks", DISABLE_TASKS)
    if disable_tasks is None:
        raise missing_property("disableTasks")
    doc = get_job_or_404(request, request.path_params["job_id"])
    check_preconditions(request, doc)
    doc = get_runtime(request).jobs.disable(doc["id"], disable_tasks)
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def enable_job(request: Request) -> Response:
    doc = get_job_or_404(request, request.path_params["job_id"])
    check_preconditions(request, doc)
    doc = get_runtime(request).jobs.enable(doc["id"])
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


PREPARATION_STATUS_FILTER_PROPERTIES = frozenset(
    {
        "poolId", "nodeId", "nodeUrl",
        *(
            f"{info}/{name}"
            for info in ("jobPreparationTaskExecutionInfo", "jobReleaseTaskExecutionInfo")
            for name in ("state", "result", "exitCode", "startTime", "endTime", "retryCount")
        ),
    }
)  # fmt: skip
"""Filterable properties of the preparation and release task status list."""


async def list_preparation_and_release_status(request: Request) -> Response:
    """``GET /jobs/{id}/jobpreparationandreleasetaskstatus``: one entry per node that ran the preparation task."""
    doc = get_job_or_404(request, request.path_params["job_id"])
    if not doc.get("jobPreparationTask"):
        raise conflict(
            "JobPreparationTaskNotSpecified",
            "The specified job does not have a job preparation task.",
            {"JobId": str(doc["id"])},
        )
    statuses = get_store(request).job_node_tasks.list(doc["id"])
    return list_page(
        request,
        "jobpreparationandreleasetaskstatuslist",
        statuses,
        filter_properties=PREPARATION_STATUS_FILTER_PROPERTIES,
        key=lambda status: str(status.get("nodeId", "")).lower(),
    )


async def get_task_counts(request: Request) -> Response:
    """``GET /jobs/{id}/taskcounts``: ``{"taskCounts": {...}, "taskSlotCounts": {...}}`` from one GROUP BY."""
    doc = get_job_or_404(request, request.path_params["job_id"])
    counts = get_store(request).task_counts(doc["id"])
    slots = counts["slots"]
    return batch_json(
        {
            "odata.metadata": metadata_url(base_url(request), "taskcountsresult/@Element"),
            "taskCounts": {name: int(counts[name]) for name in _COUNT_NAMES},
            "taskSlotCounts": {name: int(slots[name]) for name in _COUNT_NAMES},
        }
    )


routes: list[Route] = [
    Route("/jobs", add_job, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/jobs/{job_id}", patch_job, methods=["PATCH"]),
    Route("/jobs/{job_id}", replace_job, methods=["PUT"]),
    Route("/jobs/{job_id}/disable", disable_job, methods=["POST"]),
    Route("/jobs/{job_id}/enable", enable_job, methods=["POST"]),
    Route("/jobs/{job_id}/terminate", terminate_job, methods=["POST"]),
    Route("/jobs/{job_id}/jobpreparationandreleasetaskstatus", list_preparation_and_release_status, methods=["GET"]),
    Route("/jobs/{job_id}/taskcounts", get_task_counts, methods=["GET"]),
]
"""The job routes (paths relative to the account endpoint)."""
