"""The node-agent API (private, loopback): ``POST /_agent/v1/nodes/{node_id}/register | poll | events`` and
``containers/run | wait | kill`` (container tasks) and ``packages`` (application packages to install).

Every request carries ``Authorization: BatchboxNode <node_id>:<secret>``; the node id must be the one of the path
and the secret is compared in constant time by the runtime. Anything else is 403 ``AuthenticationFailed``. The
protocol middleware exempts ``/_agent/`` from api-version and SharedKey checks but still renders errors and limits
body sizes. Bodies are JSON objects; answers are JSON objects (see docs/emulator-design.md).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchbox.emulator.errors import BatchError, invalid_request_body
from batchbox.emulator.handlers.common import get_runtime
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.runtime.operations import AgentOperations

__all__ = ["AUTH_SCHEME", "parse_node_authorization", "routes"]

AUTH_SCHEME = "BatchboxNode"
_BASE = "/_agent/v1/nodes/{node_id}"
_DEFAULT_WAIT = 20.0
_ACTIONS = ("run", "wait", "kill")
_MAX_WAIT = 60.0


def parse_node_authorization(header: str | None) -> tuple[str, str] | None:
    """``BatchboxNode <node_id>:<secret>`` -> ``(node_id, secret)``; ``None`` when malformed or absent."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        return None
    node_id, sep, secret = credentials.strip().partition(":")
    if not sep or not node_id or not secret:
        return None
    return node_id, secret


def _forbidden() -> BatchError:
    return BatchError(403, "AuthenticationFailed", "Server failed to authenticate the request: bad node credentials.")


def _authenticate(request: Request) -> tuple[AgentOperations, str]:
    agents = get_runtime(request).agents
    node_id = str(request.path_params["node_id"])
    parsed = parse_node_authorization(request.headers.get("authorization"))
    if parsed is None:
        raise _forbidden()
    claimed, secret = parsed
    # Always run the constant-time comparison, also when the claimed id does not match the path.
    ok = agents.authenticate(node_id, secret)
    if not ok or claimed != node_id:
        raise _forbidden()
    return agents, node_id


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_request_body("The request body must be a JSON object.")
    return body


def _wait(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return _DEFAULT_WAIT
    try:
        wait = float(raw)
    except ValueError:
        return _DEFAULT_WAIT
    if not math.isfinite(wait):
        return _DEFAULT_WAIT
    return min(max(wait, 0.0), _MAX_WAIT)


async def register(request: Request) -> Response:
    """Agent start or reconnection: answers ``{"startTask": <Assignment>|null, "pollWait": seconds}``."""
    agents, node_id = _authenticate(request)
    return JSONResponse(await agents.register(node_id, await _body(request)))


async def poll(request: Request) -> Response:
    """The long poll: answers ``{"assignments": [...], "cancel": [...], "shutdown": bool}``."""
    agents, node_id = _authenticate(request)
    body = await _body(request)
    return JSONResponse(await agents.poll(node_id, body, _wait(request)))


async def events(request: Request) -> Response:
    """Results: answers ``{"ack": [...], "assignments": [...], "cancel": [...]}``."""
    agents, node_id = _authenticate(request)
    return JSONResponse(await agents.events(node_id, await _body(request)))


def _container_action(action: str) -> Callable[[Request], Awaitable[Response]]:
    """A container task of the node: ``run`` / ``wait`` (answer when it exits or after ``wait`` s) / ``kill``."""

    async def handle(request: Request) -> Response:
        agents, node_id = _authenticate(request)
        return JSONResponse(await agents.container(node_id, action, await _body(request)))

    return handle


async def packages(request: Request) -> Response:
    """The application packages an assignment needs: answers ``{"packages": [...]}`` or ``{"failureInfo"}``."""
    agents, node_id = _authenticate(request)
    return JSONResponse(await agents.packages(node_id, await _body(request)))


routes = [
    Route(f"{_BASE}/register", register, methods=["POST"]),
    Route(f"{_BASE}/packages", packages, methods=["POST"]),
    *(Route(f"{_BASE}/containers/{action}", _container_action(action), methods=["POST"]) for action in _ACTIONS),
    Route(f"{_BASE}/poll", poll, methods=["POST"]),
    Route(f"{_BASE}/events", events, methods=["POST"]),
]
