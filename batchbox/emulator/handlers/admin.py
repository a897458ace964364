"""The emulator's node admin API, beside the Batch API and never part of it: preempt spot nodes.

``POST /_admin/v1/pools/{pool_id}/preempt`` with ``{"nodeIds": [...]}`` (empty or absent: every low-priority node of
the pool) answers ``{"preempted": [...]}``. Requests are signed with the account's SharedKey and carry
``api-version``, like Batch requests and like the fault admin API (``/_admin/v1/faults``); ``batchbox local preempt``
sends them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import invalid_request_body
from batchbox.emulator.handlers.common import get_runtime
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.responses import JSON_CONTENT_TYPE, json_bytes

__all__ = ["ADMIN_PREEMPT_PATH", "routes"]

ADMIN_PREEMPT_PATH = "/_admin/v1/pools/{pool_id}/preempt"


async def preempt(request: Request) -> Response:
    body = await read_json(request) if (await request.body()).strip() else {}
    ids = body.get("nodeIds") if isinstance(body, dict) else None
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise invalid_request_body("nodeIds must be a list of node ids.")
    preempted = get_runtime(request).nodes.preempt(request.path_params["pool_id"], list(ids or []))
    return Response(json_bytes({"preempted": preempted}), media_type=JSON_CONTENT_TYPE)


routes: list[Route] = [Route(ADMIN_PREEMPT_PATH, preempt, methods=["POST"])]
"""The node admin routes (SharedKey, like the Batch API; not Batch operations)."""
