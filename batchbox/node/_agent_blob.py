"""Blob REST calls the agent makes with SAS URLs: download a URL, list a container, upload a block blob.

Only the SAS in each URL authorises a call (the agent never sees an account key). Error messages name URLs
without their query strings. Transient failures (5xx, connection errors, timeouts) are retried a few times.
Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from batchbox.node._agent_common import redact_url
from batchbox.node._agent_tls import client_context

__all__ = [
    "ATTEMPTS",
    "BLOCK_SIZE",
    "BlobError",
    "LocalFileError",
    "blob_url",
    "download_to_file",
    "list_blob_names",
    "upload_file",
]

BLOCK_SIZE = 4 * 1024 * 1024
"""Files up to this size go up in one Put Blob; bigger ones in blocks of this size (Put Block + Put Block List)."""
ATTEMPTS = 3
"""Tries per request when the failure looks transient."""
STORAGE_VERSION = "2021-08-06"
_TIMEOUT = 60.0
_CHUNK = 1024 * 1024
_RETRY_DELAYS = (0.5, 1.0, 2.0)
_BLOB_CONTENT_HEADERS = {
    "content-type": "x-ms-blob-content-type",
    "content-encoding": "x-ms-blob-content-encoding",
    "content-language": "x-ms-blob-content-language",
    "content-disposition": "x-ms-blob-content-disposition",
    "cache-control": "x-ms-blob-cache-control",
}

T = TypeVar("T")
# socket.timeout became an alias of TimeoutError only in Python 3.10.
_TIMEOUTS = (socket.timeout, TimeoutError)


class BlobError(Exception):
    """A storage request failed.

    Attributes:
        status: the HTTP status, or None when no answer came.
        error_code: the ``x-ms-error-code`` of the answer, when present.
        timed_out: the request timed out.
    """

    def __init__(
        self, message: str, status: int | None = None, error_code: str | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.timed_out = timed_out

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 408


class LocalFileError(Exception):
    """Writing the downloaded data to the local file failed (``cause`` is the OSError)."""

    def __init__(self, message: str, cause: OSError) -> None:
        super().__init__(message)
        self.cause = cause


def _retrying(action: Callable[[], T]) -> T:
    for attempt in range(ATTEMPTS):
        try:
            return action()
        except BlobError as exc:
            if not exc.transient or attempt == ATTEMPTS - 1:
                raise
            time.sleep(_RETRY_DELAYS[attempt])
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _get(url: str) -> Iterator[bytes]:
    """GET ``url`` and yield its body in chunks (raises BlobError)."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=client_context()))
    shown = redact_url(url)
    try:
        response = opener.open(urllib.request.Request(url, method="GET"), timeout=_TIMEOUT)
    except urllib.error.HTTPError as exc:
        code = exc.headers.get("x-ms-error-code") if exc.headers else None
        exc.close()
        raise BlobError(
            f"GET {shown} answered HTTP {exc.code}" + (f" ({code})" if code else ""), status=exc.code, error_code=code
        ) from None
    except _TIMEOUTS as exc:
        raise BlobError(f"GET {shown} timed out", timed_out=True) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = _describe(reason) if isinstance(reason, BaseException) else str(reason)
        timed_out = isinstance(reason, _TIMEOUTS)
        raise BlobError(f"GET {shown} failed: {text}", timed_out=timed_out) from None
    except (OSError, http.client.HTTPException) as exc:
        raise BlobError(f"GET {shown} failed: {_describe(exc)}") from None
    with response:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except _TIMEOUTS:
                raise BlobError(f"GET {shown} timed out while reading", timed_out=True) from None
            except (OSError, http.client.HTTPException) as exc:
                raise BlobError(f"GET {shown} failed while reading: {_describe(exc)}") from None
            if not chunk:
                return
            yield chunk


def _read_all(url: str) -> bytes:
    return b"".join(_get(url))


def download_to_file(url: str, dest: str) -> int:
    """Download ``url`` to the file ``dest`` (written next to it, then renamed); return the byte count.

    Raises:
        BlobError: the download failed (after retries when transient).
        LocalFileError: the local file could not be created or written.
    """

    def attempt() -> int:
        partial = dest + ".batchbox-partial"
        size = 0
        try:
            # _get turns every network error into BlobError: an OSError here is about the local file.
            with open(partial, "wb") as out:
                for chunk in _get(url):
                    out.write(chunk)
                    size += len(chunk)
            os.replace(partial, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise LocalFileError(f"cannot write {dest}: {exc.strerror or exc}", exc) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return size

    return _retrying(attempt)


def _split_container_url(container_url: str) -> tuple[str, str]:
    """Return ``(url without query, query)`` of a container SAS URL."""
    parts = urllib.parse.urlsplit(container_url)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, parts.query


def _with_query(url: str, sas: str, params: Mapping[str, str]) -> str:
    query = urllib.parse.urlencode(dict(params))
    if sas:
        query = f"{query}&{sas}" if query else sas
    return f"{url}?{query}" if query else url


def blob_url(container_url: str, blob_name: str) -> str:
    """The SAS URL of ``blob_name`` in the container of ``container_url`` (the container's SAS reused)."""
    base, sas = _split_container_url(container_url)
    return _with_query(f"{base}/{urllib.parse.quote(blob_name, safe='/~')}", sas, {})


def list_blob_names(container_url: str, prefix: str = "") -> list[str]:
    """List the names of the blobs in a container (SAS needs read+list) that start with ``prefix``.

    Raises:
        BlobError: a listing request failed.
    """
    base, sas = _split_container_url(container_url)
    names: list[str] = []
    marker = ""
    while True:
        params = {"restype": "container", "comp": "list"}
        if prefix:
            params["prefix"] = prefix
        if marker:
            params["marker"] = marker
        url = _with_query(base, sas, params)
        data = _retrying(functools.partial(_read_all, url))
        try:
            root = ElementTree.fromstring(data)
        except ElementTree.ParseError as exc:
            raise BlobError(f"listing {redact_url(url)} returned unreadable XML: {exc}") from None
        names.extend(el.text or "" for el in root.iterfind("Blobs/Blob/Name"))
        marker = (root.findtext("NextMarker") or "").strip()
        if not marker:
            return [name for name in names if name]


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.netloc, timeout=_TIMEOUT, context=client_context()
        )
    elif parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.netloc, timeout=_TIMEOUT)
    else:
        raise BlobError(f"unsupported URL scheme in {redact_url(url)}")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return conn, target


def _put(url: str, body: bytes, headers: Mapping[str, str]) -> None:
    """One PUT (retried when transient); raises BlobError unless the answer is 2xx."""
    shown = redact_url(url)

    def attempt() -> None:
        conn, target = _connection(url)
        try:
            conn.request("PUT", target, body=body, headers={**headers, "Content-Length": str(len(body))})
            response = conn.getresponse()
            response.read()
        except _TIMEOUTS:
            raise BlobError(f"PUT {shown} timed out", timed_out=True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise BlobError(f"PUT {shown} failed: {_describe(exc)}") from None
        finally:
            conn.close()
        if not 200 <= response.status < 300:
            code = response.getheader("x-ms-error-code")
            raise BlobError(
                f"PUT {shown} answered HTTP {response.status}" + (f" ({code})" if code else ""),
                status=response.status,
                error_code=code,
            )

    _retrying(attempt)


def upload_file(container_url: str, blob_name: str, path: str, headers: Mapping[str, str] | None = None) -> int:
    """Upload the local file ``path`` as the block blob ``blob_name``; return its size.

    Args:
        container_url: the container URL with a SAS allowing write.
        blob_name: the blob's name (``/`` separates virtual directories).
        path: the local file.
        headers: extra headers for the blob (``uploadHeaders`` of the output file), e.g. ``Content-Type``.

    Raises:
        BlobError: a request failed.
        OSError: the local file could not be read.
    """
    url = blob_url(container_url, blob_name)
    extra = dict(headers or {})
    size = os.path.getsize(path)
    common = {"x-ms-version": STORAGE_VERSION}
    if size <= BLOCK_SIZE:
        with open(path, "rb") as f:
            body = f.read()
        put_headers = {"Content-Type": "application/octet-stream", **common, **extra, "x-ms-blob-type": "BlockBlob"}
        _put(url, body, put_headers)
        return len(body)
    block_ids: list[str] = []
    with open(path, "rb") as f:
        while True:
            chunk = f.read(BLOCK_SIZE)
            if not chunk:
                break
            block_id = base64.b64encode(f"{len(block_ids):08d}".encode()).decode()
            block_ids.append(block_id)
            _put(_add_params(url, {"comp": "block", "blockid": block_id}), chunk, common)
    listing = "".join(f"<Latest>{block_id}</Latest>" for block_id in block_ids)
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>'.encode()
    list_headers = {**common, "Content-Type": "application/xml"}
    for name, value in extra.items():
        list_headers[_BLOB_CONTENT_HEADERS.get(name.lower(), name)] = value
    _put(_add_params(url, {"comp": "blocklist"}), body, list_headers)
    return size


def _add_params(url: str, params: Mapping[str, str]) -> str:
    base, _, query = url.partition("?")
    return _with_query(base, query, params)
