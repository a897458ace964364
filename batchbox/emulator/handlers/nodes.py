"""Compute node operations: list the nodes of a pool, get one node."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import not_found
from batchbox.emulator.handlers.common import entity_response, get_pool_or_404, get_store, list_page

__all__ = ["routes"]


async def list_nodes(request: Request) -> Response:
    pool = get_pool_or_404(request, request.path_params["pool_id"])
    return list_page(request, "nodes", get_store(request).list_nodes(pool["id"]))


async def get_node(request: Request) -> Response:
    pool = get_pool_or_404(request, request.path_params["pool_id"])
    node_id = request.path_params["node_id"]
    for node in get_store(request).list_nodes(pool["id"]):
        if str(node.get("id", "")).lower() == node_id.lower():
            return entity_response(request, node, "nodes")
    raise not_found("node", node_id)


routes: list[Route] = [
    Route("/pools/{pool_id}/nodes", list_nodes, methods=["GET"]),
    Route("/pools/{pool_id}/nodes/{node_id}", get_node, methods=["GET"]),
]
"""The compute node routes (paths relative to the account endpoint)."""
