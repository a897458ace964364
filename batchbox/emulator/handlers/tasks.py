"""Task operations: add, add collection, list (paged from the store), get, delete, update, terminate, reactivate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import BatchError, invalid_query, request_body_too_large, resource_exists
from batchbox.emulator.handlers.common import (
    check_preconditions,
    entity_response,
    get_config,
    get_job_or_404,
    get_runtime,
    get_store,
    get_task_or_404,
    keep_secrets,
    list_page,
    validation_context,
)
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.odata import parse_select
from batchbox.emulator.protocol.responses import base_url, batch_json, created, error_document, metadata_url, ok_empty
from batchbox.emulator.resources import apply_task_update, build_task, check_job_accepts_tasks, collection_bodies
from batchbox.emulator.resources.containers import ValidationContext
from batchbox.emulator.secret_owners import task_owner
from batchbox.emulator.store import TASK_COLUMNS, Store

__all__ = ["MAX_COLLECTION_BODY_BYTES", "routes"]

MAX_COLLECTION_BODY_BYTES = 1_000_000
"""Batch refuses add-task-collection bodies of 1 MB or more with 413 ``RequestBodyTooLarge``."""

Doc = dict[str, Any]


async def add_task(request: Request) -> Response:
    body = await read_json(request)
    job = get_job_or_404(request, request.path_params["job_id"])
    check_job_accepts_tasks(job)
    context = validation_context(request)
    doc = build_task(body, job=job, base_url=get_config(request).base_url, context=context)
    if not get_runtime(request).tasks.add(job["id"], [doc])[0]:
        raise resource_exists("task", doc["id"])
    keep_secrets(request, context, task_owner(job["id"], doc["id"]))
    return created(doc["url"], doc["eTag"], doc["lastModified"])


def _client_error(task_id: str, error: BatchError) -> Doc:
    return {"status": "clienterror", "taskId": task_id, "error": error_document(error)}


async def add_task_collection(request: Request) -> Response:
    """``POST /jobs/{id}/addtaskcollection``: up to 100 tasks, one result per task (200 even when some fail)."""
    raw = await request.body()
    if len(raw) >= MAX_COLLECTION_BODY_BYTES:
        raise request_body_too_large(MAX_COLLECTION_BODY_BYTES)
    bodies = collection_bodies(await read_json(request))
    job = get_job_or_404(request, request.path_params["job_id"])
    check_job_accepts_tasks(job)
    base = get_config(request).base_url
    results: list[Doc | None] = []
    docs: list[Doc] = []
    positions: list[int] = []
    seen: set[str] = set()
    contexts: list[ValidationContext] = []
    for body in bodies:
        context = validation_context(request)
        raw_id = body.get("id") if isinstance(body, Mapping) else None
        task_id = raw_id if isinstance(raw_id, str) else ""
        try:
            doc = build_task(body, job=job, base_url=base, context=context)
        except BatchError as error:
            results.append(_client_error(task_id, error))
            continue
        if doc["id"].lower() in seen:
            results.append(_client_error(doc["id"], resource_exists("task", doc["id"])))
            continue
        seen.add(doc["id"].lower())
        positions.append(len(results))
        results.append(None)
        docs.append(doc)
        contexts.append(context)
    if docs:
        flags = get_runtime(request).tasks.add(job["id"], docs)
        for position, doc, context, ok in zip(positions, docs, contexts, flags, strict=True):
            if ok:
                keep_secrets(request, context, task_owner(job["id"], doc["id"]))
                results[position] = {
                    "status": "success",
                    "taskId": doc["id"],
                    "eTag": doc["eTag"],
                    "lastModified": doc["lastModified"],
                    "location": doc["url"],
                }
            else:
                results[position] = _client_error(doc["id"], resource_exists("task", doc["id"]))
    return batch_json({"odata.metadata": metadata_url(base_url(request), "taskaddresult"), "value": results})


def _task_fetch(
    store: Store, job_id: str, *, columns_only: bool = False
) -> tuple[Callable[[str | None, int], Sequence[Mapping[str, Any]]], Callable[[Mapping[str, Any]], str]]:
    """A ``fetch(after_key, limit)`` reading the job's tasks page by page, and its paging key (the task's
    insertion sequence number, so a page boundary survives the deletion of the task it ended on).

    With ``columns_only`` each task is only the properties of ``TASK_COLUMNS``, read without opening documents.
    """
    sequence_of: dict[int, int] = {}

    def fetch(after_key: str | None, limit: int) -> Sequence[Mapping[str, Any]]:
        after_seq = None
        if after_key is not None:
            if not after_key.isdigit():
                raise invalid_query("$skiptoken", after_key, "The continuation token is not valid.")
            after_seq = int(after_key)
        if columns_only:
            rows = store.list_task_columns(job_id, after_seq=after_seq, limit=limit)
        else:
            rows = store.list_tasks_page(job_id, after_seq=after_seq, limit=limit)
        docs = []
        for seq, doc in rows:
            sequence_of[id(doc)] = seq
            docs.append(doc)
        return docs

    def key(doc: Mapping[str, Any]) -> str:
        return str(sequence_of[id(doc)])

    return fetch, key


def _selects_columns_only(request: Request) -> bool:
    """Whether the listing can be answered from the plain columns: no ``$filter`` and a ``$select`` of
    ``TASK_COLUMNS`` properties only."""
    query = request.query_params
    if (query.get("$filter") or "").strip():
        return False
    paths = parse_select(query.get("$select"))
    return paths is not None and all(len(path) == 1 and path[0] in TASK_COLUMNS for path in paths)


async def list_tasks(request: Request) -> Response:
    job = get_job_or_404(request, request.path_params["job_id"])
    fetch, key = _task_fetch(get_store(request), job["id"], columns_only=_selects_columns_only(request))
    return list_page(request, "tasks", fetch, key=key)


async def get_task(request: Request) -> Response:
    doc = get_task_or_404(request, request.path_params["job_id"], request.path_params["task_id"])
    return entity_response(request, doc, "tasks")


async def list_subtasks(request: Request) -> Response:
    """``GET .../tasks/{taskId}/subtasksinfo``: the subtasks of a multi-instance task's latest run (none for other
    tasks)."""
    subtasks = get_runtime(request).tasks.subtasks(request.path_params["job_id"], request.path_params["task_id"])
    return list_page(request, "subtaskinformation", subtasks, key=lambda doc: f"{int(doc['id']):010d}")


async def delete_task(request: Request) -> Response:
    doc = get_task_or_404(request, request.path_params["job_id"], request.path_params["task_id"])
    check_preconditions(request, doc)
    get_runtime(request).tasks.delete(request.path_params["job_id"], doc["id"])
    return ok_empty()


async def replace_task(request: Request) -> Response:
    body = await read_json(request)
    job = get_job_or_404(request, request.path_params["job_id"])
    doc = get_task_or_404(request, job["id"], request.path_params["task_id"])
    check_preconditions(request, doc)
    doc = get_store(request).update_task(job["id"], apply_task_update(doc, body, job=job))
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def terminate_task(request: Request) -> Response:
    doc = get_task_or_404(request, request.path_params["job_id"], request.path_params["task_id"])
    check_preconditions(request, doc)
    doc = get_runtime(request).tasks.terminate(request.path_params["job_id"], doc["id"])
    return Response(b"", status_code=204, headers={"ETag": doc["eTag"], "DataServiceId": doc["url"]})


async def reactivate_task(request: Request) -> Response:
    """Make a failed, completed task active again (retry count reset to 0)."""
    doc = get_task_or_404(request, request.path_params["job_id"], request.path_params["task_id"])
    check_preconditions(request, doc)
    doc = get_runtime(request).tasks.reactivate(request.path_params["job_id"], doc["id"])
    return Response(b"", status_code=204, headers={"ETag": doc["eTag"], "DataServiceId": doc["url"]})


routes: list[Route] = [
    Route("/jobs/{job_id}/tasks", add_task, methods=["POST"]),
    Route("/jobs/{job_id}/tasks", list_tasks, methods=["GET"]),
    Route("/jobs/{job_id}/addtaskcollection", add_task_collection, methods=["POST"]),
    Route("/jobs/{job_id}/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/jobs/{job_id}/tasks/{task_id}", delete_task, methods=["DELETE"]),
    Route("/jobs/{job_id}/tasks/{task_id}", replace_task, methods=["PUT"]),
    Route("/jobs/{job_id}/tasks/{task_id}/subtasksinfo", list_subtasks, methods=["GET"]),
    Route("/jobs/{job_id}/tasks/{task_id}/terminate", terminate_task, methods=["POST"]),
    Route("/jobs/{job_id}/tasks/{task_id}/reactivate", reactivate_task, methods=["POST"]),
]
"""The task routes (paths relative to the account endpoint)."""
