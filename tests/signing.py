"""Batch SharedKey request signing for tests that talk HTTP to the emulator without an SDK.

:func:`shared_key_authorization` builds exactly the ``Authorization`` value that azure-batch 15.x's
``BatchSharedKeyAuthPolicy`` puts on a request (``tests/test_bad_input.py`` checks this against the SDK policy), so a
test can send raw, malformed or oversized requests with httpx and still be authenticated, or tamper with one part
of a correctly signed request. :class:`SignedClient` does that over httpx.

The string to sign: the verb; the values of eleven standard headers (``content-length`` is ``0`` for a bodiless
request other than GET/HEAD); every ``ocp-*`` header as ``name:value`` sorted by name; ``/<account><URL path>``;
then ``\\n<name>:<first value>`` for each query parameter sorted by name (percent-decoded, empty ones left out).
HMAC-SHA256 under the base64-decoded account key, base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, MutableMapping
from datetime import datetime, timezone
from email.utils import format_datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

__all__ = [
    "API_VERSION",
    "AUTH_MODES",
    "JSON_CONTENT_TYPE",
    "SIGNED_HEADERS",
    "WRONG_KEY",
    "SignedClient",
    "http_date",
    "shared_key_authorization",
    "sign_headers",
    "string_to_sign",
]

SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
"""The standard headers whose values are signed, in signing order."""

_BODILESS = frozenset({"GET", "HEAD"})

API_VERSION = "2025-06-01"
"""What azure-batch 15.x sends."""
JSON_CONTENT_TYPE = "application/json; odata=minimalmetadata"
WRONG_KEY = base64.b64encode(b"not-the-account-key-0123456789ab").decode()
"""A well-formed base64 key that is not the emulator's."""
AUTH_MODES = (
    "sharedkey", "none", "wrong-key", "other-account", "malformed", "basic", "bearer", "tampered", "no-date",
)  # fmt: skip
"""``SignedClient.send(auth=...)``: a correct signature, or one way of getting authentication wrong."""


def http_date(when: datetime | None = None) -> str:
    """An RFC 1123 date (``Tue, 01 Jul 2025 10:00:00 GMT``) for ``ocp-date``; now when ``when`` is None."""
    moment = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return format_datetime(moment, usegmt=True)


def string_to_sign(method: str, url: str, headers: Mapping[str, str], account: str) -> str:
    """The canonical string the SDK signs for a request.

    Args:
        method: the HTTP verb as sent.
        url: the full URL as sent (percent-encoded path and query).
        headers: the request headers (any case); empty values count as absent.
        account: the account name.
    """
    present = {name.lower(): value for name, value in headers.items() if value}
    if method not in _BODILESS:
        present.setdefault("content-length", "0")
    lines = [method, *(str(present.get(name, "")) for name in SIGNED_HEADERS)]
    # The SDK picks ocp- headers by their name as given (a name spelled "Ocp-Date" is not included).
    ocp = sorted((name.lower(), value) for name, value in headers.items() if "ocp-" in name and value)
    parsed = urlparse(url)
    text = "\n".join(lines) + "\n" + "".join(f"{name}:{value}\n" for name, value in ocp)
    text += f"/{account}{parsed.path}"
    query = parse_qs(parsed.query)
    for name in sorted(query):
        if query[name][0]:
            text += f"\n{name}:{query[name][0]}"
    return text


def shared_key_authorization(method: str, url: str, headers: Mapping[str, str], account: str, key: str) -> str:
    """``SharedKey <account>:<signature>`` for a request (``headers`` must already hold its ``ocp-date``)."""
    digest = hmac.new(
        base64.b64decode(key), string_to_sign(method, url, headers, account).encode("utf-8"), hashlib.sha256
    ).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode('ascii')}"


def sign_headers(
    method: str, url: str, headers: MutableMapping[str, str], account: str, key: str
) -> MutableMapping[str, str]:
    """Add ``ocp-date`` (when missing) and ``Authorization`` to ``headers`` in place, like the SDK policy.

    Returns:
        ``headers``.
    """
    if not any(name.lower() == "ocp-date" and value for name, value in headers.items()):
        headers["ocp-date"] = http_date()
    headers["Authorization"] = shared_key_authorization(method, url, headers, account, key)
    return headers


class SignedClient:
    """Raw HTTP requests to a Batch endpoint, signed like the SDK does (or broken on purpose).

    Args:
        url: the account endpoint, e.g. ``http://127.0.0.1:8446``.
        account / key: the SharedKey credential.
    """

    def __init__(self, url: str, account: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.account = account
        self.key = key
        self.client = httpx.Client(timeout=120.0)

    def send(
        self,
        method: str,
        path: str,
        *,
        query: str | None = f"api-version={API_VERSION}",
        body: Any = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "sharedkey",
    ) -> httpx.Response:
        """Send one request.

        Args:
            method: the HTTP verb.
            path: the percent-encoded path (after the endpoint).
            query: the query string without ``?``; None sends none at all.
            body: a JSON body (serialised here), or ``raw`` bytes sent as they are.
            headers: extra headers, signed with the rest (e.g. a skewed ``ocp-date``).
            auth: one of :data:`AUTH_MODES`.
        """
        url = self.url + path + ("" if query is None else f"?{query}")
        content = raw if raw is not None else None if body is None else json.dumps(body).encode()
        extra = dict(headers or {})
        if content is not None:
            extra.setdefault("Content-Type", JSON_CONTENT_TYPE)
        request = self.client.build_request(method, url, content=content, headers=extra)
        lowered = {name.lower(): value for name, value in request.headers.items()}
        request.headers = httpx.Headers(self._authorize(method, str(request.url), lowered, auth))
        return self.client.send(request)

    def _authorize(self, method: str, url: str, headers: dict[str, str], auth: str) -> dict[str, str]:
        """Sign (lower-case header names in and out), then break what ``auth`` says."""
        if auth not in AUTH_MODES:
            raise ValueError(f"unknown auth mode {auth!r}")
        account = "someotheraccount" if auth == "other-account" else self.account
        key = WRONG_KEY if auth == "wrong-key" else self.key
        authorization = str(sign_headers(method, url, headers, account, key).pop("Authorization"))
        if auth == "malformed":
            authorization = f"SharedKey {self.account}"
        elif auth == "basic":
            authorization = "Basic dXNlcjpwYXNzd29yZA=="
        elif auth == "bearer":
            authorization = "Bearer eyJhbGciOiJub25lIn0.e30."
        if auth != "none":
            headers["authorization"] = authorization
        if auth == "tampered":  # a signed header changed after signing
            headers["content-type"] = "text/plain"
        elif auth == "no-date":
            del headers["ocp-date"]
        return headers

    def get(self, path: str, query: str = f"api-version={API_VERSION}") -> Any:
        """GET a JSON document that must be there (asserts 200)."""
        response = self.send("GET", path, query=query)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SignedClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
