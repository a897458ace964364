"""The portal's pools section: every pool with its sizes and node states; one pool with its nodes and their files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import not_found
from batchbox.emulator.portal.common import Doc, get_config, get_pool, get_store, json_answer, masked_doc, pick
from batchbox.emulator.portal.files import file_response, listing_response

__all__ = ["node_summary", "pool_summary", "routes"]

_POOL_FIELDS = (
    "id",
    "displayName",
    "state",
    "allocationState",
    "vmSize",
    "taskSlotsPerNode",
    "targetDedicatedNodes",
    "currentDedicatedNodes",
    "targetLowPriorityNodes",
    "currentLowPriorityNodes",
    "enableAutoScale",
    "autoScaleFormula",
    "autoScaleEvaluationInterval",
    "autoScaleRun",
    "resizeErrors",
    "creationTime",
    "stateTransitionTime",
    "allocationStateTransitionTime",
)
_NODE_FIELDS = (
    "id",
    "state",
    "schedulingState",
    "isDedicated",
    "runningTasksCount",
    "runningTaskSlotsCount",
    "totalTasksRun",
    "totalTasksSucceeded",
    "stateTransitionTime",
    "lastBootTime",
    "errors",
)


def pool_summary(doc: Mapping[str, Any], nodes: list[Doc]) -> Doc:
    """What the page shows of a pool, with its nodes counted by state."""
    summary: Doc = masked_doc(pick(doc, *_POOL_FIELDS))
    summary.setdefault("taskSlotsPerNode", 1)
    summary["nodeStates"] = dict(Counter(str(node.get("state", "unknown")) for node in nodes))
    return summary


def node_summary(doc: Mapping[str, Any]) -> Doc:
    """What the page shows of a node: state, running tasks, totals and its start task's result."""
    summary = pick(doc, *_NODE_FIELDS)
    start_info = doc.get("startTaskInfo")
    if isinstance(start_info, Mapping):
        summary["startTaskInfo"] = masked_doc(dict(start_info))
    if isinstance(doc.get("startTask"), Mapping):
        summary["startTaskCommandLine"] = masked_doc(doc["startTask"].get("commandLine"))
    return summary


async def list_pools(request: Request) -> Response:
    store = get_store(request)
    return json_answer({"pools": [pool_summary(pool, store.list_nodes(pool["id"])) for pool in store.list_pools()]})


async def get_pool_detail(request: Request) -> Response:
    doc = get_pool(request, request.path_params["pool_id"])
    nodes = get_store(request).list_nodes(doc["id"])
    return json_answer({"pool": pool_summary(doc, nodes), "nodes": [node_summary(node) for node in nodes]})


def _node_root(request: Request) -> Path:
    pool = get_pool(request, request.path_params["pool_id"])
    node_id = str(request.path_params["node_id"])
    for node in get_store(request).list_nodes(pool["id"]):
        if str(node.get("id", "")).lower() == node_id.lower():
            return get_config(request).node_root(str(node["id"]))
    raise not_found("node", node_id)


async def list_node_files(request: Request) -> Response:
    return listing_response(request, _node_root(request))


async def get_node_file(request: Request) -> Response:
    return file_response(request, _node_root(request))


routes = [
    Route("/api/pools", list_pools, methods=["GET"]),
    Route("/api/pools/{pool_id}", get_pool_detail, methods=["GET"]),
    Route("/api/pools/{pool_id}/nodes/{node_id}/files", list_node_files, methods=["GET"]),
    Route("/api/pools/{pool_id}/nodes/{node_id}/file", get_node_file, methods=["GET"]),
]
"""Paths relative to ``/portal``."""
