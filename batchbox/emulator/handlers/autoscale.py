"""Pool autoscale and node removal: ``enableautoscale``, ``disableautoscale``, ``evaluateautoscale``,
``removenodes``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.handlers.common import check_preconditions, get_config, get_pool_or_404, get_runtime, pool_rules
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.responses import accepted, base_url, batch_json, metadata_url, ok_empty
from batchbox.emulator.resources.autoscale import (
    apply_disable_autoscale,
    apply_enable_autoscale,
    evaluate_request_formula,
)
from batchbox.emulator.resources.nodes import remove_nodes_request

__all__ = ["routes"]

_RUN_METADATA = "Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"


async def enable_autoscale(request: Request) -> Response:
    body = await read_json(request)
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    check_preconditions(request, doc)
    updated = apply_enable_autoscale(doc, body, get_config(request).autoscale_min_interval)
    doc = get_runtime(request).pools.enable_autoscale(updated)
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def disable_autoscale(request: Request) -> Response:
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    doc = get_runtime(request).pools.disable_autoscale(apply_disable_autoscale(doc))
    return ok_empty(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


async def evaluate_autoscale(request: Request) -> Response:
    body = await read_json(request)
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    formula = evaluate_request_formula(doc, body)
    run = get_runtime(request).pools.evaluate_autoscale(doc["id"], formula)
    return batch_json(
        {"odata.metadata": metadata_url(base_url(request), _RUN_METADATA), **run},
        headers={"DataServiceId": doc["url"]},
    )


async def remove_nodes(request: Request) -> Response:
    body = await read_json(request)
    doc = get_pool_or_404(request, request.path_params["pool_id"])
    check_preconditions(request, doc)
    removal = remove_nodes_request(body, pool_rules(request).resize_timeout_min)
    doc = get_runtime(request).pools.remove_nodes(doc["id"], removal)
    return accepted(etag=doc["eTag"], last_modified=doc["lastModified"], data_service_id=doc["url"])


routes: list[Route] = [
    Route("/pools/{pool_id}/enableautoscale", enable_autoscale, methods=["POST"]),
    Route("/pools/{pool_id}/disableautoscale", disable_autoscale, methods=["POST"]),
    Route("/pools/{pool_id}/evaluateautoscale", evaluate_autoscale, methods=["POST"]),
    Route("/pools/{pool_id}/removenodes", remove_nodes, methods=["POST"]),
]
"""The autoscale and remove-nodes routes (paths relative to the account endpoint)."""
