"""Account-level lists: ``GET /supportedimages`` and ``GET /poolusagemetrics``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.clock import parse_time
from batchbox.emulator.errors import invalid_query
from batchbox.emulator.handlers.common import get_store, list_page
from batchbox.emulator.node_usage import usage_metrics
from batchbox.emulator.supported_images import list_supported_images

__all__ = ["routes"]


async def supported_images(request: Request) -> Response:
    """The node agent SKUs and Marketplace images the emulator accepts (``$filter`` on ``verificationType``,
    ``osType``, ``nodeAgentSKUId``)."""
    return list_page(
        request,
        "supportedimages",
        list_supported_images(),
        filter_properties=frozenset({"verificationType", "osType", "nodeAgentSKUId"}),
        key=lambda doc: (
            "{nodeAgentSKUId}/{imageReference[publisher]}/{imageReference[offer]}/{imageReference[sku]}".format(
                **doc
            ).lower()
        ),
    )


def _query_time(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    parsed = parse_time(value)
    if parsed is None:
        raise invalid_query(name, value, "The value must be an ISO 8601 time.")
    return parsed.timestamp()


async def pool_usage_metrics(request: Request) -> Response:
    """Core hours per pool and hour, from the node lifetimes (``starttime`` / ``endtime``, ``$filter`` on
    ``poolId``)."""
    start = _query_time(request, "starttime")
    end = _query_time(request, "endtime")
    values = usage_metrics(get_store(request).usage.lifetimes(start), time.time(), start, end)
    return list_page(
        request,
        "poolusagemetrics",
        values,
        filter_properties=frozenset({"poolId", "startTime", "endTime"}),
        key=lambda doc: f"{doc['startTime']}/{str(doc['poolId']).lower()}",
    )


routes: list[Route] = [
    Route("/supportedimages", supported_images, methods=["GET"]),
    Route("/poolusagemetrics", pool_usage_metrics, methods=["GET"]),
]
"""The account-level routes."""
