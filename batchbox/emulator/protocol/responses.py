"""Batch-shaped HTTP responses: JSON with ``odata.metadata``, ETag / Last-Modified / DataServiceId headers, errors.

The middleware adds ``request-id`` (and ``client-request-id`` when asked for) to every response, so these helpers
only set what depends on the operation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..clock import format_time, parse_time
from ..errors import BatchError

__all__ = [
    "ERROR_METADATA_FRAGMENT",
    "JSON_CONTENT_TYPE",
    "accepted",
    "base_url",
    "batch_json",
    "created",
    "error_document",
    "http_date",
    "json_bytes",
    "list_response",
    "metadata_url",
    "no_content",
    "ok_empty",
]

JSON_CONTENT_TYPE = "application/json;odata=minimalmetadata"
ERROR_METADATA_FRAGMENT = "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(data).encode("utf-8")


def base_url(conn: HTTPConnection) -> str:
    """``scheme://host[:port]`` as the client addressed this server (its ``Host`` header)."""
    scheme = conn.scope.get("scheme", "http")
    host = conn.headers.get("host")
    if not host:
        server = conn.scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "127.0.0.1"
    return f"{scheme}://{host}"


def metadata_url(base: str, fragment: str) -> str:
    """``{base}/$metadata#{fragment}``, e.g. fragment ``pools/@Element`` for one pool or ``pools`` for a list."""
    return f"{base}/$metadata#{fragment}"


def http_date(value: datetime | str) -> str:
    """An RFC 1123 date (``Fri, 17 Feb 2017 00:00:00 GMT``) from a datetime, an ISO string or an RFC 1123 string.

    Raises:
        ValueError: the string is neither.
    """
    if isinstance(value, str):
        parsed = parse_time(value)
        if parsed is None:
            try:
                parsed = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"not a date: {value[:64]!r}") from None
        value = parsed
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return format_datetime(value.astimezone(timezone.utc), usegmt=True)


def error_document(
    error: BatchError, *, request_id: str | None = None, base: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The Batch JSON error body of ``error``.

    Args:
        error: the error.
        request_id: appended to the message as ``RequestId:`` (with ``Time:``) when given.
        base: the server's base URL for ``odata.metadata``; left out when None (e.g. inside a task-collection
            result, where Batch nests bare errors).
        now: the time written into the message (default: now).
    """
    message = error.message
    if request_id is not None:
        message = f"{message}\nRequestId:{request_id}\nTime:{format_time(now or datetime.now(timezone.utc))}"
    document: dict[str, Any] = {}
    if base is not None:
        document["odata.metadata"] = metadata_url(base, ERROR_METADATA_FRAGMENT)
    document["code"] = error.code
    document["message"] = {"lang": "en-US", "value": message}
    if error.values:
        document["values"] = [{"key": key, "value": str(value)} for key, value in error.values.items()]
    return document


def _entity_headers(
    etag: str | None,
    last_modified: datetime | str | None,
    data_service_id: str | None,
    headers: Mapping[str, str] | None,
) -> dict[str, str]:
    result: dict[str, str] = {}
    if etag is not None:
        result["ETag"] = etag
    if last_modified is not None:
        result["Last-Modified"] = http_date(last_modified)
    if data_service_id is not None:
        result["DataServiceId"] = data_service_id
    if headers:
        result.update(headers)
    return result


def batch_json(
    data: Any,
    status: int = 200,
    *,
    etag: str | None = None,
    last_modified: datetime | str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON response with Batch's content type (``application/json;odata=minimalmetadata``).

    Args:
        data: the JSON document.
        status: HTTP status.
        etag: the ``ETag`` header (Batch ETags are unquoted, e.g. ``0x8D45765A6A2DC04``).
        last_modified: the ``Last-Modified`` header (datetime, ISO or RFC 1123 string).
        headers: more headers.
    """
    all_headers = _entity_headers(etag, last_modified, None, headers)
    all_headers.setdefault("DataServiceVersion", "3.0")
    return Response(json_bytes(data), status_code=status, headers=all_headers, media_type=JSON_CONTENT_TYPE)


def created(
    location: str | None = None,
    etag: str | None = None,
    last_modified: datetime | str | None = None,
    data_service_id: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """201 with an empty body, as for add pool / job / task.

    The REST specification lists ``DataServiceId`` (the new resource's URL), ``ETag`` and ``Last-Modified`` (plus
    ``request-id`` / ``client-request-id``, added by the middleware). ``Location`` is not in the specification; it
    is sent too when given, as HTTP suggests for 201. ``data_service_id`` defaults to ``location``.
    """
    all_headers = _entity_headers(etag, last_modified, data_service_id or location, headers)
    if location is not None:
        all_headers["Location"] = location
    return Response(b"", status_code=201, headers=all_headers)


def accepted(
    *,
    etag: str | None = None,
    last_modified: datetime | str | None = None,
    data_service_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """202 with an empty body (delete pool / job, terminate, resize ...)."""
    return Response(b"", status_code=202, headers=_entity_headers(etag, last_modified, data_service_id, headers))


def ok_empty(
    *,
    etag: str | None = None,
    last_modified: datetime | str | None = None,
    data_service_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """200 with an empty body (patch / update / delete task ...)."""
    return Response(b"", status_code=200, headers=_entity_headers(etag, last_modified, data_service_id, headers))


def no_content(
    *,
    etag: str | None = None,
    last_modified: datetime | str | None = None,
    data_service_id: str | None = None,
) -> Response:
    """204 with no body (update pool properties)."""
    return Response(b"", status_code=204, headers=_entity_headers(etag, last_modified, data_service_id, None))


def list_response(
    base: str,
    odata_type: str,
    values: Sequence[Any],
    next_link: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """200 ``{"odata.metadata": "{base}/$metadata#{odata_type}", "value": [...], "odata.nextLink": ...}``.

    Args:
        base: the server's base URL (``base_url(request)``).
        odata_type: the metadata fragment, e.g. ``pools``, ``tasks``, ``nodes``, ``files``.
        values: the page's documents.
        next_link: the absolute URL of the next page (``odata.next_link``); omitted when None.
    """
    document: dict[str, Any] = {"odata.metadata": metadata_url(base, odata_type), "value": list(values)}
    if next_link is not None:
        document["odata.nextLink"] = next_link
    return batch_json(document, headers=headers)
