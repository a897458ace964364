"""Job schedule operations: add, list, exists, get, patch, update, disable, enable, terminate, delete, and the list
of a schedule's jobs. ``$expand=stats`` adds the schedule's usage statistics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import invalid_query
from batchbox.emulator.handlers.common import (
    NotModified,
    check_preconditions,
    entity_response,
    get_config,
    get_runtime,
    get_store,
    keep_secrets,
    list_page,
    not_modified_response,
    validation_context,
)
from batchbox.emulator.protocol.filters import FILTER_PROPERTIES
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.query_checks import FORCE_PARAM, check_force
from batchbox.emulator.protocol.responses import accepted, created, http_date, ok_empty
from batchbox.emulator.resources.schedules import apply_schedule_patch, apply_schedule_replace, build_schedule
from batchbox.emulator.resources.statistics import usage_statistics
from batchbox.emulator.runtime.schedules import schedule_job_prefix
from batchbox.emulator.secret_owners import schedule_owner

__all__ = ["SCHEDULE_FILTER_PROPERTIES", "routes"]

Doc = dict[str, Any]

SCHEDULE_FILTER_PROPERTIES = frozenset(
    {
        "id", "displayName", "state", "previousState", "creationTime", "lastModified", "stateTransitionTime",
        "previousStateTransitionTime", "eTag", "executionInfo/nextRunTime", "executionInfo/endTime",
        "executionInfo/recentJob/id",
    }
)  # fmt: skip
"""Filterable properties of the job schedule list."""


def _min_interval(request: Request) -> timedelta:
    return timedelta(seconds=get_config(request).min_schedule_interval)


def _get(request: Request) -> Doc:
    return get_runtime(request).schedules.get(request.path_params["schedule_id"])


def _with_stats(request: Request, doc: Doc) -> Doc:
    """``doc`` with ``stats`` when ``$expand=stats`` asks for them (no other expansion exists)."""
    expand = request.query_params.get("$expand")
    if expand is None or not expand.strip():
        return doc
    if [part.strip() for part in expand.split(",")] != ["stats"]:
        raise invalid_query("$expand", expand, "A job schedule can only be expanded with stats.")
    store = get_store(request)
    prefix = schedule_job_prefix(doc["id"])
    tasks: list[Doc] = []
    runs = []
    for job in store.list_jobs():
        if str(job["id"]).lower().startswith(prefix):
            tasks += store.list_tasks(job["id"])
            runs += store.runs.list(job["id"])
    stats = usage_statistics(doc["url"], doc["creationTime"], datetime.now(timezone.utc), tasks, runs)
    return {**doc, "stats": stats}


async def add_schedule(request: Request) -> Response:
    body = await read_json(request)
    config = get_config(request)
    context = validation_context(request)
    doc = build_schedule(body, base_url=config.base_url, min_interval=_min_interval(request), context=context)
    doc = get_runtime(request).schedules.add(doc)
    keep_secrets(request, context, schedule_owner(doc["id"]))
    return created(doc["url"], doc["eTag"], doc["lastModified"])


async def list_schedules(request: Request) -> Response:
    docs = [_with_stats(request, doc) for doc in get_store(request).schedules.list()]
    return list_page(request, "jobschedules", docs, filter_properties=SCHEDULE_FILTER_PROPERTIES)


async def schedule_exists(request: Request) -> Response:
    doc = _get(request)
    try:
        check_preconditions(request, doc, read=True)
    except NotModified:
        return not_modified_response(doc)
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"])


async def get_schedule(request: Request) -> Response:
    return entity_response(request, _with_stats(request, _get(request)), "jobschedules")


async def _update(request: Request, apply: Callable[..., Doc]) -> Response:
    body = await read_json(request)
    doc = _get(request)
    check_preconditions(request, doc)
    context = validation_context(request)
    updated = apply(
        doc, body, base_url=get_config(request).base_url, min_interval=_min_interval(request), context=context
    )
    stored = get_runtime(request).schedules.update(doc, updated)
    keep_secrets(request, context, schedule_owner(doc["id"]))
    return ok_empty(etag=stored["eTag"], last_modified=stored["lastModified"], data_service_id=stored["url"])


async def patch_schedule(request: Request) -> Response:
    return await _update(request, apply_schedule_patch)


async def replace_schedule(request: Request) -> Response:
    return await _update(request, apply_schedule_replace)


def _no_content(doc: Doc) -> Response:
    headers = {"ETag": doc["eTag"], "DataServiceId": doc["url"], "Last-Modified": http_date(str(doc["lastModified"]))}
    return Response(b"", status_code=204, headers=headers)


async def disable_schedule(request: Request) -> Response:
    doc = _get(request)
    check_preconditions(request, doc)
    return _no_content(get_runtime(request).schedules.disable(doc["id"]))


async def enable_schedule(request: Request) -> Response:
    doc = _get(request)
    check_preconditions(request, doc)
    return _no_content(get_runtime(request).schedules.enable(doc["id"]))


async def terminate_schedule(request: Request) -> Response:
    check_force(request.query_params.get(FORCE_PARAM))
    doc = _get(request)
    check_preconditions(request, doc)
    doc = get_runtime(request).schedules.terminate(doc["id"])
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def delete_schedule(request: Request) -> Response:
    check_force(request.query_params.get(FORCE_PARAM))
    doc = _get(request)
    check_preconditions(request, doc)
    get_runtime(request).schedules.delete(doc["id"])
    return accepted()


async def list_schedule_jobs(request: Request) -> Response:
    """``GET /jobschedules/{id}/jobs``: the jobs the schedule created that still exist, oldest first."""
    doc = _get(request)
    prefix = schedule_job_prefix(doc["id"])
    jobs = [job for job in get_store(request).list_jobs() if str(job["id"]).lower().startswith(prefix)]
    return list_page(request, "jobs", jobs, filter_properties=FILTER_PROPERTIES["jobs"])


routes: list[Route] = [
    Route("/jobschedules", add_schedule, methods=["POST"]),
    Route("/jobschedules", list_schedules, methods=["GET"]),
    Route("/jobschedules/{schedule_id}", schedule_exists, methods=["HEAD"]),
    Route("/jobschedules/{schedule_id}", get_schedule, methods=["GET"]),
    Route("/jobschedules/{schedule_id}", patch_schedule, methods=["PATCH"]),
    Route("/jobschedules/{schedule_id}", replace_schedule, methods=["PUT"]),
    Route("/jobschedules/{schedule_id}", delete_schedule, methods=["DELETE"]),
    Route("/jobschedules/{schedule_id}/disable", disable_schedule, methods=["POST"]),
    Route("/jobschedules/{schedule_id}/enable", enable_schedule, methods=["POST"]),
    Route("/jobschedules/{schedule_id}/terminate", terminate_schedule, methods=["POST"]),
    Route("/jobschedules/{schedule_id}/jobs", list_schedule_jobs, methods=["GET"]),
]
"""The job schedule routes (paths relative to the account endpoint; HEAD before GET)."""
