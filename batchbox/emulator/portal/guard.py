"""Who may use the portal: a browser on this machine that holds the portal token.

Every request under ``/portal`` passes :class:`PortalGuard` first:

1. the client address and the ``Host`` header must be loopback (else 403): the portal is never served to another
   machine, also when the emulator listens on another address, and a page of another site that points its own
   name at 127.0.0.1 is refused;
2. ``GET /portal/?token=T`` with the right token sets the cookie (HttpOnly, SameSite=Strict, path ``/portal``)
   and redirects to ``/portal/`` so the token leaves the address bar and the history; a wrong token is 403;
3. every other request needs that cookie: none is 401, a wrong one 403;
4. requests that change something (POST, DELETE) also need the header ``X-Batchbox-Portal: 1`` and, when the
   browser sends an ``Origin``, the portal's own: a form or a script of another site cannot make them.

Answers carry a Content-Security-Policy that allows only the portal's own scripts and styles (no inline script
runs, whatever a task printed), ``nosniff``, no referrer and no caching.
"""

from __future__ import annotations

import hmac
from typing import cast
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchbox.emulator.config import EmulatorConfig, is_loopback
from batchbox.emulator.portal.token import PORTAL_PATH, ensure_token

__all__ = ["WRITE_HEADER", "PortalGuard", "cookie_name"]


WRITE_HEADER = "x-batchbox-portal"
"""Header every state-changing portal request must carry (value ``1``); other sites cannot send it."""

_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cookie_name(port: int) -> str:
    """The cookie holding the token; cookies ignore ports, so each emulator port has its own name."""
    return f"batchbox_portal_{port}"


def _host_name(host_header: str) -> str:
    host = host_header.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class PortalGuard:
    """ASGI middleware enforcing the rules of the module docstring on the portal's routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        config = cast(EmulatorConfig, scope["app"].state.config)
        client = scope.get("client")
        client_host = str(client[0]) if client else ""
        if not is_loopback(client_host) or not is_loopback(_host_name(headers.get("host", ""))):
            await _plain(send, 403, "The portal answers only on this machine's loopback address.\n")
            return
        token = _token(scope, config)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [None])[0]
        if given is not None and scope["method"] == "GET" and scope["path"] == f"{PORTAL_PATH}/":
            if not hmac.compare_digest(given.encode(), token.encode()):
                await _plain(send, 403, "That portal token is not valid: open the URL `batchbox local up` prints.\n")
                return
            await _sign_in(send, cookie_name(config.port), token)
            return
        cookie = _cookie(headers, cookie_name(config.port))
        if cookie is None:
            await _plain(send, 401, "The portal needs its token: open the URL `batchbox local up` prints.\n")
            return
        if not hmac.compare_digest(cookie.encode(), token.encode()):
            await _plain(send, 403, "The portal token has changed: open the URL `batchbox local up` prints.\n")
            return
        if scope["method"] in _WRITE_METHODS and not _same_site_write(headers):
            await _plain(send, 403, "Refused: this request did not come from the portal's own page.\n")
            return
        await self.app(scope, receive, _with_headers(send))


def _cookie(headers: Headers, name: str) -> str | None:
    """The value of one cookie (None when absent); other cookies of this host, however odd, are skipped."""
    for header in headers.getlist("cookie"):
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
    return None


def _token(scope: Scope, config: EmulatorConfig) -> str:
    state = scope["app"].state
    token = getattr(state, "portal_token", None)
    if not isinstance(token, str):
        token = ensure_token(config.state_dir)
        state.portal_token = token
    return token


def _same_site_write(headers: Headers) -> bool:
    if headers.get(WRITE_HEADER) != "1":
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name, value) for name, value in _SECURITY_HEADERS if name not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *_SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _sign_in(send: Send, name: str, token: str) -> None:
    cookie = f"{name}={token}; Path={PORTAL_PATH}; HttpOnly; SameSite=Strict"
    headers = [
        (b"location", f"{PORTAL_PATH}/".encode("ascii")),
        (b"set-cookie", cookie.encode("ascii")),
        (b"content-length", b"0"),
        *_SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
