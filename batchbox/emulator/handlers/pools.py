"""Pool operations: add, list, exists, get, delete, patch, update properties, resize, stop resize, node counts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.applications.references import check_pool_references
from batchbox.emulator.errors import invalid_query
from batchbox.emulator.handlers.common import (
    NotModified,
    check_preconditions,
    entity_response,
    get_config,
    get_pool_or_404,
    get_runtime,
    get_store,
    keep_secrets,
    list_page,
    max_nodes_per_pool,
    not_modified_response,
    pool_rules,
    validation_context,
)
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.responses import accepted, created, no_content, ok_empty
from batchbox.emulator.resources import (
    apply_pool_patch,
    apply_pool_replace,
    apply_resize,
    build_pool,
)
from batchbox.emulator.secret_owners import pool_owner

__all__ = ["routes"]

_NODE_COUNT_KEYS = (
    "creating",
    "idle",
    "offline",
    "preempted",
    "rebooting",
    "reimaging",
    "running",
    "starting",
    "startTaskFailed",
    "leavingPool",
    "unknown",
    "unusable",
    "waitingForStartTask",
    "deallocated",
    "deallocating",
    "upgradingOS",
)
_STATE_TO_COUNT_KEY = {key.lower(): key for key in _NODE_COUNT_KEYS}


async def add_pool(request: Request) -> Response:
    body = await read_json(request)
    context = validation_context(request)
    base = get_config(request).base_url
    doc = build_pool(
        body, base_url=base, max_nodes=max_nodes_per_pool(request), context=context, rules=pool_rules(request)
    )
    await check_pool_references(get_runtime(request).applications, doc.get("applicationPackageReferences"))
    doc = get_runtime(request).pools.add(doc)
    keep_secrets(request, context, pool_owner(doc["id"]))
    return created(doc["url"], doc["eTag"], doc["lastModified"])


def _refuse_expand(request: Request) -> None:
    """Pool statistics (``$expand=stats``) are not kept by the emulator: the parameter is refused, not ignored."""
    expand = request.query_params.get("$expand")
    if expand is not None and expand.strip():
        raise invalid_query("$expand", expand, "The local batchbox emulator keeps no pool statistics.")


async def list_pools(request: Request) -> Response:
    _refuse_expand(request)
    return list_page(request, "pools", get_store(request).list_pools())


async def pool_exists(request: Request) -> Response:
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    try:
        check_preconditions(request, doc, read=True)
    except NotModified:
        return not_modified_response(doc)
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"])


async def get_pool(request: Request) -> Response:
    _refuse_expand(request)
    return entity_response(request, get_pool_or_404(request, request.path_params["pool_id"]), "pools")


async def delete_pool(request: Request) -> Response:
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    check_preconditions(request, doc)
    get_runtime(request).pools.delete(doc["id"])
    return accepted()


async def patch_pool(request: Request) -> Response:
    body = await read_json(request)
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    check_preconditions(request, doc)
    context = validation_context(request)
    updated = apply_pool_patch(doc, body, context, pool_rules(request))
    if isinstance(body, dict) and body.get("applicationPackageReferences"):
        await check_pool_references(get_runtime(request).applications, updated.get("applicationPackageReferences"))
    doc = get_runtime(request).pools.update(updated)
    keep_secrets(request, context, pool_owner(doc["id"]))
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def replace_pool_properties(request: Request) -> Response:
    body = await read_json(request)
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    context = validation_context(request)
    updated = apply_pool_replace(doc, body, context)
    await check_pool_references(get_runtime(request).applications, updated.get("applicationPackageReferences"))
    doc = get_store(request).update_pool(updated)
    keep_secrets(request, context, pool_owner(doc["id"]))
    return no_content(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def resize_pool(request: Request) -> Response:
    body = await read_json(request)
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    check_preconditions(request, doc)
    updated = apply_resize(doc, body, max_nodes=max_nodes_per_pool(request), rules=pool_rules(request))
    doc = get_runtime(request).pools.resize(updated)
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def stop_pool_resize(request: Request) -> Response:
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    check_preconditions(request, doc)
    doc = get_runtime(request).pools.stop_resize(doc["id"])
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


def _empty_counts() -> dict[str, int]:
    counts = dict.fromkeys(_NODE_COUNT_KEYS, 0)
    counts["total"] = 0
    return counts


async def list_pool_node_counts(request: Request) -> Response:
    """``GET /nodecounts``: per pool, the number of dedicated and low-priority nodes in each state."""
    store = get_store(request)
    per_pool: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"dedicated": _empty_counts(), "lowPriority": _empty_counts()}
    )
    pools = store.list_pools()
    for pool in pools:
        counts = per_pool[pool["id"].lower()]
        for node in store.list_nodes(pool["id"]):
            bucket = counts["dedicated" if node.get("isDedicated", True) else "lowPriority"]
            bucket[_STATE_TO_COUNT_KEY.get(str(node.get("state", "unknown")).lower(), "unknown")] += 1
            bucket["total"] += 1
    documents: list[dict[str, Any]] = [{"poolId": pool["id"], **per_pool[pool["id"].lower()]} for pool in pools]
    return list_page(
        request,
        "poolnodecounts",
        documents,
        filter_properties=frozenset({"poolId"}),
        key=lambda doc: str(doc["poolId"]).lower(),
    )


routes: list[Route] = [
    Route("/pools", add_pool, methods=["POST"]),
    Route("/pools", list_pools, methods=["GET"]),
    Route("/pools/{pool_id}", pool_exists, methods=["HEAD"]),
    Route("/pools/{pool_id}", get_pool, methods=["GET"]),
    Route("/pools/{pool_id}", delete_pool, methods=["DELETE"]),
    Route("/pools/{pool_id}", patch_pool, methods=["PATCH"]),
    Route("/pools/{pool_id}/updateproperties", replace_pool_properties, methods=["POST"]),
    Route("/pools/{pool_id}/resize", resize_pool, methods=["POST"]),
    Route("/pools/{pool_id}/stopresize", stop_pool_resize, methods=["POST"]),
    Route("/nodecounts", list_pool_node_counts, methods=["GET"]),
]
"""The pool routes (paths relative to the account endpoint)."""
