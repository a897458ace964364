"""The HTTP edge of the emulator as one pure ASGI middleware.

For every HTTP request it:

1. assigns a ``request-id`` (uuid4), answered as a header and kept in ``request.state.request_id``; echoes
   ``client-request-id`` when the client sent ``return-client-request-id: true`` (the Batch rule);
2. on Batch paths (everything but the node-agent API under ``/_agent/``) checks ``api-version`` (first: the service
   answers ``MissingRequiredQueryParameter`` even to unauthenticated requests) and then the SharedKey signature, the
   Entra ID token or a task's job authentication token (good for its own job's paths only), keeping the principal in
   ``request.state.principal``, then the query parameters every operation takes (``query_checks``: ``timeout``);
3. limits the request body (``Content-Length`` up front, streamed bytes while the handler reads) -> 413, and
   refuses Batch writes while the state directory's disk is full (``disk_space``) -> 503 ``StateDiskFull``;
4. adds ``DataServiceVersion: 3.0`` to every Batch response, as the service does;
5. renders :class:`BatchError` as a Batch JSON error body, turns Starlette's plain-text 404 / 405 into Batch's
   ``InvalidUri`` / ``UnsupportedHttpVerb`` errors, a full disk met while writing into 503 ``StateDiskFull``, and
   any other exception into a logged 500 ``InternalError``: a bad request never takes the server down.

The emulator's settings come from the constructor or, when not given, from ``scope["app"].state.config`` (the app
factory sets ``app.state.config``).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import EmulatorConfig
from ..coverage.operations import RETIRED_OPERATIONS, match_operation
from ..disk_space import StateDisk, is_disk_full, state_disk_full
from ..errors import (
    BatchError,
    internal_error,
    invalid_request_body,
    invalid_uri,
    request_body_too_large,
    unsupported_http_verb,
    unsupported_operation,
)
from .auth import Principal, SharedKeyVerifier, headers_from_scope
from .query_checks import check_common_query
from .responses import JSON_CONTENT_TYPE, base_url, error_document, json_bytes
from .tokens import TokenVerifier
from .versions import API_VERSION_PARAM, check_api_version

__all__ = [
    "AGENT_PATH_PREFIX",
    "MAX_BODY_BYTES",
    "BatchProtocolMiddleware",
    "read_json",
    "request_id",
    "request_principal",
]

_log = logging.getLogger(__name__)

AGENT_PATH_PREFIX = "/_agent/"
MAX_BODY_BYTES = 4 * 1024 * 1024
_DATA_SERVICE_VERSION = (b"dataserviceversion", b"3.0")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DISK_FULL = (
    "The emulator's state directory ran out of space while writing: the request was not applied. Free space there "
    "and send it again; the emulator carries on by itself."
)


def request_id(conn: HTTPConnection) -> str:
    """The ``request-id`` the middleware gave this request (empty when the middleware did not run)."""
    return str(conn.scope.get("state", {}).get("request_id", ""))


def request_principal(conn: HTTPConnection) -> Principal | None:
    """Who the request was authenticated as (None on the node-agent API)."""
    principal = conn.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON.

    Raises:
        BatchError: 400 ``InvalidRequestBody`` when the body is empty or not valid JSON (UTF-8; ``NaN`` and
            ``Infinity`` are not JSON), nests too deeply, holds a number Python refuses to convert or a string that
            is not Unicode (an escaped lone surrogate); 413 ``RequestBodyTooLarge`` (from the middleware) when it is
            over the limit.
    """
    body = await request.body()
    if not body.strip():
        raise invalid_request_body("The request body is empty.")
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
        if _SURROGATE_ESCAPE.search(body):
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
        return value
    except UnicodeEncodeError:
        raise invalid_request_body("A string in the request body is not valid Unicode (a lone surrogate).") from None
    except UnicodeDecodeError:
        raise invalid_request_body("The request body is not UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise invalid_request_body(f"Invalid JSON at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise invalid_request_body("The JSON document nests too deeply.") from None
    except ValueError as exc:  # _refuse_constant, or an integer with more digits than int() converts
        raise invalid_request_body(f"Invalid JSON: {str(exc)[:120]}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value.")


class BatchProtocolMiddleware:
    """Pure ASGI middleware implementing the Batch protocol edge (see the module docstring).

    Args:
        app: the wrapped ASGI app.
        config: the emulator's settings; None reads ``scope["app"].state.config`` per request.
        max_body_bytes: the largest request body accepted.
        exempt_prefixes: path prefixes without api-version / SharedKey checks (the node-agent API).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: EmulatorConfig | None = None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        exempt_prefixes: Sequence[str] = (AGENT_PATH_PREFIX,),
    ) -> None:
        self.app = app
        self._config = config
        self.max_body_bytes = max_body_bytes
        self.exempt_prefixes = tuple(exempt_prefixes)
        self._verifiers: dict[tuple[str, str, Path | None, bool], SharedKeyVerifier] = {}

    def _verifier(self, config: EmulatorConfig) -> SharedKeyVerifier:
        cache_key = (config.account_name, config.account_key, config.entra_issuer, config.shared_key_enabled)
        verifier = self._verifiers.get(cache_key)
        if verifier is None:
            tokens = None
            if config.entra_issuer is not None:
                tokens = TokenVerifier.from_openid_configuration(config.entra_issuer)
            verifier = SharedKeyVerifier(
                config.account_name,
                config.account_key,
                tokens=tokens,
                shared_key_enabled=config.shared_key_enabled,
            )
            self._verifiers = {cache_key: verifier}
        return verifier

    def _config_for(self, scope: Scope) -> EmulatorConfig:
        if self._config is not None:
            return self._config
        app = scope.get("app")
        config = getattr(getattr(app, "state", None), "config", None)
        if not isinstance(config, EmulatorConfig):
            raise RuntimeError("BatchProtocolMiddleware needs a config: pass it or set app.state.config")
        return config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, send, self.exempt_prefixes)
        try:
            self._admit(scope, exchange)
            await self.app(scope, self._limited_receive(receive), exchange.send)
        except BatchError as error:
            await exchange.fail(error)
        except Exception as exc:
            if is_disk_full(exc):
                _log.error(
                    "%s %s: the state directory's disk is full (request-id %s)",
                    exchange.method,
                    exchange.path,
                    exchange.rid,
                )
                await exchange.fail(state_disk_full(_DISK_FULL))
            else:
                _log.exception("%s %s failed (request-id %s)", exchange.method, exchange.path, exchange.rid)
                await exchange.fail(internal_error())
        finally:
            exchange.log_done()

    def _admit(self, scope: Scope, exchange: _Exchange) -> None:
        """The checks before the handler runs: api-version and SharedKey (Batch paths), the declared body size.

        Raises:
            BatchError: the first check that fails.
        """
        config = self._config_for(scope)
        if exchange.batch:
            query_string = scope.get("query_string", b"").decode("latin-1")
            query = parse_qs(query_string, keep_blank_values=True)
            check_api_version(next((v for v in query.get(API_VERSION_PARAM, ()) if v), None))  # blank = absent
            raw_path = scope.get("raw_path")
            raw = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else exchange.path
            principal = self._verifier(config).verify(exchange.method, raw, query_string, exchange.headers)
            if principal.job_id is not None:
                _check_job_scope(principal.job_id, exchange.path)
            exchange.state["principal"] = principal
            check_common_query(query)
        declared = exchange.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise request_body_too_large(self.max_body_bytes)
        if exchange.batch and exchange.method in _WRITES:
            disk = getattr(getattr(scope.get("app"), "state", None), "state_disk", None)
            if isinstance(disk, StateDisk):
                disk.check()  # a full disk refuses the request before anything changes

    def _limited_receive(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise request_body_too_large(limit)
            return message

        return limited


class _Exchange:
    """One request on its way through the middleware: its ids, the headers added to every answer, and what has
    been sent so far (an error can still be answered only before the response started)."""

    def __init__(self, scope: Scope, send: Send, exempt_prefixes: tuple[str, ...]) -> None:
        self.scope = scope
        self._send = send
        self.started_at = time.monotonic()
        self.rid = str(uuid.uuid4())
        self.state: dict[str, Any] = scope.setdefault("state", {})
        self.state["request_id"] = self.rid
        self.headers = headers_from_scope(scope.get("headers", []))
        self.method = str(scope.get("method", "GET"))
        self.path = str(scope.get("path", ""))
        self.batch = not self.path.startswith(exempt_prefixes)
        """A Batch API request (not the node-agent API or the portal)."""
        self.extra_headers: list[tuple[bytes, bytes]] = [(b"request-id", self.rid.encode("ascii"))]
        client_request_id = self.headers.get("client-request-id")
        if client_request_id and self.headers.get("return-client-request-id", "").strip().lower() == "true":
            self.extra_headers.append((b"client-request-id", client_request_id.encode("latin-1")))
        self.status = 0
        self.response_started = False
        self._rewrite: BatchError | None = None

    async def send(self, message: Message) -> None:
        """The handler's ``send``: adds the extra headers; Starlette's plain-text 404 / 405 become Batch errors."""
        if message["type"] == "http.response.start":
            status = int(message["status"])
            if status in (404, 405) and _is_plain_text(message):
                self._rewrite = _unrouted(self.method, self.path, status)
                return
            self.response_started = True
            self.status = status
            headers = [*message.get("headers", []), *self.extra_headers]
            if self.batch and not any(name.lower() == _DATA_SERVICE_VERSION[0] for name, _ in headers):
                headers.append(_DATA_SERVICE_VERSION)
            message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and self._rewrite is not None:
            if not message.get("more_body", False):
                error, self._rewrite = self._rewrite, None
                await self._send_error(error)
                self.response_started = True
            return
        await self._send(message)

    async def fail(self, error: BatchError) -> None:
        """Answer ``error`` as a Batch error body, unless the response already started (then it is logged)."""
        if self.response_started:
            _log.warning("%s %s: %s raised after the response started", self.method, self.path, error.code)
            return
        await self._send_error(error)

    async def _send_error(self, error: BatchError) -> None:
        document = error_document(error, request_id=self.rid, base=base_url(HTTPConnection(self.scope)))
        body = b"" if self.method == "HEAD" else json_bytes(document)
        headers = [
            (b"content-type", JSON_CONTENT_TYPE.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
            _DATA_SERVICE_VERSION,
            *self.extra_headers,
        ]
        self.status = error.status
        await self._send({"type": "http.response.start", "status": error.status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    def log_done(self) -> None:
        if _log.isEnabledFor(logging.DEBUG):
            elapsed = (time.monotonic() - self.started_at) * 1000
            _log.debug("%s %s -> %d in %.1f ms (request-id %s)", self.method, self.path, self.status, elapsed, self.rid)


def _unrouted(method: str, path: str, status: int) -> BatchError:
    """The Batch error for a request no route took: a real Batch operation the emulator does not serve is named as
    such (``UnsupportedOperation``); anything else is a client's wrong URI or verb, as the service answers it."""
    operation = match_operation(method, path)
    if operation is not None:
        reason = (
            "Azure Batch retired this feature; the local emulator does not emulate it."
            if operation in RETIRED_OPERATIONS
            else "This operation is not implemented by the local emulator yet (see docs/api-coverage.md)."
        )
        return unsupported_operation(method, path, operation.sdk_method, reason)
    return invalid_uri(path) if status == 404 else unsupported_http_verb(method)


def _check_job_scope(job_id: str, path: str) -> None:
    """A job authentication token acts on its own job only: ``/jobs/{job}`` and what is below it.

    Raises:
        BatchError: 403 ``InsufficientAccountPermissions``.
    """
    own = f"/jobs/{job_id}".lower()
    lowered = path.rstrip("/").lower()
    if lowered != own and not lowered.startswith(own + "/"):
        raise BatchError(
            403,
            "InsufficientAccountPermissions",
            "The account being accessed does not have sufficient permissions to execute this operation.",
            {"Reason": "A job authentication token grants access to the operations of its own job only."},
        )


def _is_plain_text(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return bool(value.lower().startswith(b"text/plain"))
    return False
