"""A fault-injecting HTTP proxy in front of Azurite (asyncio, aiohttp; loopback only).

Azurite deletes a container at once; Azure Storage refuses, for 30 s or more, to create a container of the same
name again (``409 ContainerBeingDeleted``). The proxy gives that answer for ``container_delete_seconds`` after it
forwarded a container delete, and injects the other storage faults of ``[faults.storage]``: ``503 ServerBusy``
(``busy_rate``) and cut connections (``connection_reset_rate``). Everything else is forwarded unchanged (method,
path, query, headers, body), so SharedKey and SAS signatures still verify: neither signs the host or port.

Draws use the emulator's :class:`~batchbox.emulator.faults.live.Faults` (same seed, same requests, same faults).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from email.utils import formatdate
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from batchbox.emulator.config import is_loopback
from batchbox.emulator.faults.live import Faults

__all__ = ["StorageFaultProxy"]

log = logging.getLogger(__name__)

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)
_NOT_ADDED = ("Content-Type", "User-Agent", "Accept", "Accept-Encoding")
_KEYED_QUERY = ("restype", "comp", "blockid", "prefix", "marker")
_CHUNK = 256 * 1024


class StorageFaultProxy:
    """Forwards blob requests to ``upstream`` and injects the storage faults of ``faults``.

    Args:
        faults: the emulator's live faults (their ``storage`` part is read per request).
        upstream: Azurite's blob endpoint, e.g. ``http://127.0.0.1:10000``.
        host / port: where the proxy listens (a loopback address only).

    Raises:
        ValueError: ``host`` or the upstream host is not a loopback address.
    """

    def __init__(self, faults: Faults, upstream: str, *, host: str = "127.0.0.1", port: int) -> None:
        parts = urlsplit(upstream)
        if not is_loopback(host) or not is_loopback(parts.hostname or ""):
            raise ValueError("the storage fault proxy listens on, and forwards to, loopback addresses only")
        self.faults = faults
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.host = host
        self.port = port
        self._deleted: dict[str, float] = {}  # "/account/container" -> when its delete was forwarded
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; forward until :meth:`stop`."""
        self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("storage fault proxy on %s -> %s", self.url, self.upstream)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        storage = self.faults.config.storage
        key = _request_key(request, body)
        if self.faults.happens("storage-reset", key, storage.connection_reset_rate):
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # the connection is gone: aiohttp sends nothing
        if self.faults.happens("storage-busy", key, storage.busy_rate):
            return _storage_error(
                503, "ServerBusy", "The server is currently unable to receive requests. Please retry your request."
            )
        container = _container_of(request)
        if container is not None and storage.container_delete_seconds > 0:
            deleted_at = self._deleted.get(container)
            if request.method == "PUT" and deleted_at is not None:
                if time.monotonic() - deleted_at < storage.container_delete_seconds:
                    return _storage_error(
                        409, "ContainerBeingDeleted", "The specified container is being deleted. Try operation later."
                    )
                del self._deleted[container]
        response = await self._forward(request, body)
        if container is not None and request.method == "DELETE" and response.status == 202:
            self._deleted[container] = time.monotonic()
        return response

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        assert self._session is not None
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _HOP_BY_HOP}
        url = f"{self.upstream}{request.raw_path}"
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=_NOT_ADDED,  # a Content-Type aiohttp adds would break the SharedKey signature
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    response.headers.add(name, value)
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response


def _request_key(request: web.Request, body: bytes) -> str:
    """What identifies a blob request across runs: method, path, the query parameters naming the operation (not
    the SAS, which changes with every run), and a digest of the body."""
    query = "&".join(f"{name}={request.query[name]}" for name in _KEYED_QUERY if name in request.query)
    return f"{request.method} {request.path}?{query} {hashlib.sha256(body).hexdigest()}"


def _container_of(request: web.Request) -> str | None:
    """``/account/container`` for a container-level request (``restype=container``), else None."""
    if request.query.get("restype") != "container":
        return None
    parts = [part for part in request.path.split("/") if part]
    return "/" + "/".join(parts[:2]).lower() if len(parts) == 2 else None


def _storage_error(status: int, code: str, message: str) -> web.Response:
    request_id = str(uuid.uuid4())
    stamp = formatdate(usegmt=True)
    text = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}\nRequestId:{request_id}\nTime:{stamp}</Message></Error>"
    )
    headers = {"x-ms-error-code": code, "x-ms-request-id": request_id, "Date": stamp}
    return web.Response(status=status, body=text.encode(), content_type="application/xml", headers=headers)
