"""The emulator's admin API, next to the node-agent API and never part of the Batch API: preempt spot nodes.

``POST /_agent/v1/admin/pools/{pool_id}/preempt`` with ``{"nodeIds": [...]}`` (empty or absent: every low-priority
node of the pool) answers ``{"preempted": [...]}``. Callers must be on loopback and send
``Authorization: BatchboxAdmin <token>``, the token of ``<state_dir>/portal.token`` (mode 0600: the local user who
runs the emulator); ``batchbox local preempt`` does this.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchbox.emulator.config import is_loopback
from batchbox.emulator.errors import BatchError, invalid_request_body
from batchbox.emulator.handlers.common import get_config, get_runtime
from batchbox.emulator.portal.token import ensure_token
from batchbox.emulator.protocol.middleware import read_json

__all__ = ["ADMIN_PATH", "ADMIN_SCHEME", "routes"]

ADMIN_SCHEME = "BatchboxAdmin"
ADMIN_PATH = "/_agent/v1/admin"


def _authorize(request: Request) -> None:
    client = request.client.host if request.client is not None else ""
    scheme, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
    expected = ensure_token(get_config(request).state_dir)
    good = scheme == ADMIN_SCHEME and hmac.compare_digest(token.strip().encode(), expected.encode())
    if not is_loopback(client) or not good:
        raise BatchError(403, "AuthenticationFailed", "The admin API needs a loopback client and the admin token.")


async def preempt(request: Request) -> Response:
    _authorize(request)
    body = await read_json(request) if (await request.body()).strip() else {}
    ids = body.get("nodeIds") if isinstance(body, dict) else None
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise invalid_request_body("nodeIds must be a list of node ids.")
    preempted = get_runtime(request).nodes.preempt(request.path_params["pool_id"], list(ids or []))
    return JSONResponse({"preempted": preempted})


routes: list[Route] = [Route(f"{ADMIN_PATH}/pools/{{pool_id}}/preempt", preempt, methods=["POST"])]
"""The admin routes (under the node-agent prefix, which the Batch protocol middleware exempts)."""
