"""The portal's view of a job's tasks: a filtered, paged table; one task with its runs, output and files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import invalid_query, not_found
from batchbox.emulator.portal.common import Doc, get_job, get_store, json_answer, masked_doc, pick, query_int
from batchbox.emulator.portal.files import file_response, listing_response, tail_response, task_root
from batchbox.emulator.run_history import TaskRun, run_from_doc

__all__ = ["STATE_FILTERS", "routes", "run_json", "task_row"]

STATE_FILTERS: dict[str, tuple[list[str], str | None]] = {
    "active": (["active"], None),
    "preparing": (["preparing"], None),
    "running": (["running"], None),
    "completed": (["completed"], None),
    "succeeded": (["completed"], "success"),
    "failed": (["completed"], "failure"),
}
"""The table's state filter: name -> (task states, ``executionInfo.result``)."""

_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 500
_DETAIL_FIELDS = (
    "id",
    "displayName",
    "state",
    "previousState",
    "creationTime",
    "stateTransitionTime",
    "commandLine",
    "resourceFiles",
    "outputFiles",
    "environmentSettings",
    "constraints",
    "requiredSlots",
    "userIdentity",
    "containerSettings",
    "dependsOn",
    "exitConditions",
    "executionInfo",
    "nodeInfo",
    "multiInstanceSettings",
)


def task_row(doc: Mapping[str, Any]) -> Doc:
    """One line of the tasks table."""
    info = doc.get("executionInfo")
    info = info if isinstance(info, Mapping) else {}
    node = doc.get("nodeInfo")
    row: Doc = {"id": doc["id"], "state": doc.get("state")}
    row.update(pick(info, "exitCode", "result", "retryCount", "requeueCount", "startTime", "endTime"))
    if isinstance(node, Mapping):
        row["nodeId"] = node.get("nodeId")
        row["poolId"] = node.get("poolId")
    failure = info.get("failureInfo")
    if isinstance(failure, Mapping):
        row["failureInfo"] = masked_doc(pick(failure, "category", "code", "message", "details"))
    return row


def run_json(run: TaskRun) -> Doc:
    """A run as the task page lists it."""
    return {
        "taskId": run.task_id,
        "nodeId": run.node_id,
        "start": run.start,
        "end": run.end,
        "outcome": run.outcome,
        "exitCode": run.exit_code,
        "retryCount": run.retry_count,
        "requeueCount": run.requeue_count,
    }


async def list_tasks(request: Request) -> Response:
    """``?state=&prefix=&offset=&limit=``: one page of the job's tasks and how many match in all."""
    job = get_job(request, request.path_params["job_id"])
    name = request.query_params.get("state", "")
    if name and name not in STATE_FILTERS:
        raise invalid_query("state", name, f"Use one of: {', '.join(STATE_FILTERS)}.")
    states, result = STATE_FILTERS[name] if name else (None, None)
    offset = query_int(request, "offset", 0, low=0, high=10**9)
    limit = query_int(request, "limit", _PAGE_SIZE, low=1, high=_MAX_PAGE_SIZE)
    prefix = request.query_params.get("prefix", "").strip()
    total, docs = get_store(request).find_tasks(
        job["id"], states=states, result=result, id_prefix=prefix, offset=offset, limit=limit
    )
    return json_answer({"total": total, "offset": offset, "limit": limit, "tasks": [task_row(d) for d in docs]})


def _task(request: Request) -> tuple[Doc, Doc]:
    job = get_job(request, request.path_params["job_id"])
    task_id = str(request.path_params["task_id"])
    doc = get_store(request).get_task(job["id"], task_id)
    if doc is None:
        raise not_found("task", task_id)
    return job, doc


async def get_task_detail(request: Request) -> Response:
    """The task (secrets masked), every run it had (ended ones from the run history, then the current one)."""
    job, doc = _task(request)
    runs = [run_json(run) for run in get_store(request).runs.list(job["id"], task_id=doc["id"])]
    if doc.get("state") == "running":
        runs.append(run_json(run_from_doc(doc, "running", end=None)))
    return json_answer({"jobId": job["id"], "task": masked_doc(pick(doc, *_DETAIL_FIELDS)), "runs": runs})


def _root(request: Request) -> Path | None:
    job, doc = _task(request)
    return task_root(request, job, doc)


async def list_task_files(request: Request) -> Response:
    return listing_response(request, _root(request))


async def tail_task_file(request: Request) -> Response:
    return tail_response(request, _root(request))


async def get_task_file(request: Request) -> Response:
    return file_response(request, _root(request))


_TASK = "/api/jobs/{job_id}/tasks/{task_id}"

routes = [
    Route("/api/jobs/{job_id}/tasks", list_tasks, methods=["GET"]),
    Route(_TASK, get_task_detail, methods=["GET"]),
    Route(f"{_TASK}/files", list_task_files, methods=["GET"]),
    Route(f"{_TASK}/tail", tail_task_file, methods=["GET"]),
    Route(f"{_TASK}/file", get_task_file, methods=["GET"]),
]
"""Paths relative to ``/portal``."""
