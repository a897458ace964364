"""The Batch API faults, as an ASGI middleware inside the protocol middleware (requests are authenticated first).

Only the Batch API is touched: the node-agent API, the portal and the admin API never see a fault. Per request,
in this order:

1. ``connection_reset_rate``: the connection is cut before the answer is complete: either before the request is
   applied or after (half each), as a client cannot tell;
2. ``throttle_rate``: ``429 TooManyRequests`` (or ``503 ServerBusy``), ``retry_after_share`` of them with a
   ``Retry-After`` header;
3. ``pool_quota``: adding a pool past the quota is ``409 PoolQuotaReached``;
4. ``task_counts_lag``: a job's task counts are recomputed at most every so many seconds, as Batch documents;
5. ``node_not_ready``: the files of a task, or of a node, whose node is leaving the pool (or is gone) answer
   ``409 NodeNotReady``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchbox.emulator.errors import BatchError
from batchbox.emulator.faults.live import Faults
from batchbox.emulator.protocol.responses import JSON_CONTENT_TYPE, base_url, error_document, json_bytes

__all__ = ["UNTOUCHED_PREFIXES", "CutAnswerLogFilter", "FaultMiddleware"]

UNTOUCHED_PREFIXES = ("/_agent/", "/_admin/", "/portal")
"""Paths that never see a fault: the node-agent API, the admin API and the portal."""

_TASK_COUNTS = re.compile(r"^/jobs/([^/]+)/taskcounts$")
_TASK_FILES = re.compile(r"^/jobs/([^/]+)/tasks/([^/]+)/files(?:/.*)?$")
_NODE_FILES = re.compile(r"^/pools/([^/]+)/nodes/([^/]+)/files(?:/.*)?$")
_LEAVING = frozenset({"leavingpool", "unusable"})
_CUT_BODY = b'{"odata.metadata":"'  # what a client receives of a cut answer: the start of a JSON body

_CUT_MESSAGE = "ASGI callable returned without completing response."


class CutAnswerLogFilter(logging.Filter):
    """Drops the server's error line for an answer cut on purpose, while faults are on (uvicorn logs one for
    every ``connection_reset_rate`` cut)."""

    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.faults.enabled and record.getMessage() == _CUT_MESSAGE)


class FaultMiddleware:
    """Injects the faults of ``faults`` into the Batch API (see the module docstring)."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self._counts: dict[str, tuple[float, list[Message]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not self.faults.enabled or path.startswith(UNTOUCHED_PREFIXES):
            await self.app(scope, receive, send)
            return
        config = self.faults.config
        receive, key = await _request_key(scope, receive)
        if self.faults.happens("reset", key, config.connection_reset_rate):
            if self.faults.draw("reset-after-applying", key) < 0.5:
                await self.app(scope, receive, _discard)
                await _cut(send, 200)
            else:
                await _cut(send, 200)
            return
        if self.faults.happens("throttle", key, config.throttle_rate):
            retry_after = self.faults.happens("retry-after", key, config.retry_after_share)
            await _throttle(scope, send, config.throttle_status, config.retry_after_seconds if retry_after else None)
            return
        refusal = self._refusal(scope, path)
        if refusal is not None:
            await _answer_error(scope, send, refusal)
            return
        counts = _TASK_COUNTS.match(path)
        if counts and scope.get("method") == "GET" and config.task_counts_lag > 0:
            await self._lagging_counts(counts.group(1).lower(), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, path: str) -> BatchError | None:
        config = self.faults.config
        method = scope.get("method")
        store = getattr(getattr(scope.get("app"), "state", None), "store", None)
        if store is None:
            return None
        quota = config.pool_quota
        if method == "POST" and path == "/pools" and quota is not None and len(store.list_pools()) >= quota:
            return BatchError(409, "PoolQuotaReached", "Pool quota for the account has been reached.")
        if config.node_not_ready and method in ("GET", "HEAD"):
            return _node_not_ready(store, path)
        return None

    async def _lagging_counts(self, job_key: str, scope: Scope, receive: Receive, send: Send) -> None:
        lag = self.faults.config.task_counts_lag
        now = time.monotonic()
        cached = self._counts.get(job_key)
        if cached is None or now - cached[0] >= lag:
            messages: list[Message] = []

            async def capture(message: Message) -> None:
                messages.append(message)

            await self.app(scope, receive, capture)
            start = next((m for m in messages if m["type"] == "http.response.start"), None)
            if start is None or start["status"] != 200:
                for message in messages:
                    await send(message)
                return
            cached = (now, messages)
            self._counts[job_key] = cached
        for message in cached[1]:
            await send(message)


async def _request_key(scope: Scope, receive: Receive) -> tuple[Receive, str]:
    """What identifies a request across runs (method, path, query, a digest of its body), and a ``receive`` that
    hands the body, already read, to the app."""
    received: list[Message] = []
    digest = hashlib.sha256()
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            break
        digest.update(message.get("body", b""))
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return received.pop(0) if received else await receive()

    query = scope.get("query_string", b"").decode("latin-1")
    return replay, f"{scope.get('method')} {scope.get('path')}?{query} {digest.hexdigest()}"


async def _discard(message: Message) -> None:
    return None


async def _cut(send: Send, status: int) -> None:
    """Start an answer and stop half-way: the server closes the connection, the client sees it cut short."""
    headers = [(b"content-type", JSON_CONTENT_TYPE.encode()), (b"content-length", b"4096")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": _CUT_BODY, "more_body": True})


async def _throttle(scope: Scope, send: Send, status: int, retry_after: int | None) -> None:
    if status == 429:
        error = BatchError(429, "TooManyRequests", "The request rate of the account is too high; retry later.")
    else:
        error = BatchError(503, "ServerBusy", "The server is currently unable to receive requests. Please retry.")
    extra = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
    await _answer_error(scope, send, error, extra)


async def _answer_error(
    scope: Scope, send: Send, error: BatchError, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    request_id = str(scope.get("state", {}).get("request_id", "")) or None
    document = error_document(error, request_id=request_id, base=base_url(HTTPConnection(scope)))
    body = b"" if scope.get("method") == "HEAD" else json_bytes(document)
    headers = [
        (b"content-type", JSON_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _node_not_ready(store: Any, path: str) -> BatchError | None:
    """``409 NodeNotReady`` for the files of a task or node whose node is leaving the pool or gone."""
    task = _TASK_FILES.match(path)
    node_id: str | None = None
    if task is not None:
        doc = store.get_task(task.group(1), task.group(2))
        info = doc.get("nodeInfo") if isinstance(doc, dict) else None
        node_id = info.get("nodeId") if isinstance(info, dict) else None
    else:
        node = _NODE_FILES.match(path)
        node_id = node.group(2) if node is not None else None
    if not isinstance(node_id, str) or not node_id:
        return None
    node_doc = store.get_node(node_id)
    state = str(node_doc.get("state")) if isinstance(node_doc, dict) else "removed"
    if state not in _LEAVING and node_doc is not None:
        return None
    return BatchError(
        409,
        "NodeNotReady",
        "The specified compute node is not ready to serve files: it is leaving the pool.",
        {"NodeId": node_id, "NodeState": state},
    )
