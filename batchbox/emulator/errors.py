"""Batch-style errors raised anywhere in the emulator and rendered as Batch error bodies.

Handlers raise :class:`BatchError`; the protocol middleware turns it into the JSON body the Batch service sends::

    {"odata.metadata": ".../$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
     "code": "PoolNotFound",
     "message": {"lang": "en-US", "value": "The specified pool does not exist.\\nRequestId:..."},
     "values": [{"key": "...", "value": "..."}]}
"""

from __future__ import annotations

__all__ = [
    "BatchError",
    "conflict",
    "internal_error",
    "invalid_property",
    "invalid_query",
    "invalid_request_body",
    "invalid_uri",
    "missing_property",
    "missing_query",
    "not_found",
    "request_body_too_large",
    "resource_exists",
    "unsupported_http_verb",
    "unsupported_operation",
]


class BatchError(Exception):
    """An error answered to a client with a Batch error body.

    Args:
        status: the HTTP status code.
        code: the Batch error code, e.g. ``PoolNotFound``.
        message: the human-readable message (a request id is appended when rendered).
        values: extra key/value detail, e.g. ``{"PropertyName": "id"}``.
    """

    def __init__(self, status: int, code: str, message: str, values: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.values = dict(values or {})


_KIND_NAMES = {
    "pool": "Pool",
    "job": "Job",
    "task": "Task",
    "node": "Node",
    "file": "File",
    "jobschedule": "JobSchedule",
}


def not_found(kind: str, name: str) -> BatchError:
    """``PoolNotFound`` / ``JobNotFound`` / ``TaskNotFound`` / ``NodeNotFound`` / ``FileNotFound`` (404)."""
    title = _KIND_NAMES.get(kind, kind.capitalize())
    return BatchError(404, f"{title}NotFound", f"The specified {kind} does not exist.", {f"{title}Id": name})


def resource_exists(kind: str, name: str) -> BatchError:
    """``PoolExists`` / ``JobExists`` / ``TaskExists`` (409)."""
    title = _KIND_NAMES.get(kind, kind.capitalize())
    return BatchError(409, f"{title}Exists", f"The specified {kind} already exists.", {f"{title}Id": name})


def conflict(code: str, message: str, values: dict[str, str]) -> BatchError:
    """A 409 with a Batch error code (a state that does not allow the request)."""
    return BatchError(409, code, message, values)


def invalid_property(name: str, value: object, reason: str) -> BatchError:
    """``InvalidPropertyValue`` (400) naming the property and why its value is refused."""
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return BatchError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        {"PropertyName": name, "PropertyValue": shown, "Reason": reason},
    )


def missing_property(name: str) -> BatchError:
    """``MissingRequiredProperty`` (400)."""
    return BatchError(
        400,
        "MissingRequiredProperty",
        "A required property was not specified in the request body.",
        {"PropertyName": name},
    )


def invalid_query(name: str, value: str, reason: str) -> BatchError:
    """``InvalidQueryParameterValue`` (400)."""
    return BatchError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        {"QueryParameterName": name, "QueryParameterValue": value[:200], "Reason": reason},
    )


def missing_query(name: str) -> BatchError:
    """``MissingRequiredQueryParameter`` (400)."""
    return BatchError(
        400,
        "MissingRequiredQueryParameter",
        "A query parameter that's mandatory for this request is not specified.",
        {"QueryParameterName": name},
    )


def invalid_request_body(reason: str) -> BatchError:
    """``InvalidRequestBody`` (400): the body is not syntactically valid (e.g. not JSON)."""
    return BatchError(
        400, "InvalidRequestBody", "The specified Request Body is not syntactically valid.", {"Reason": reason}
    )


def request_body_too_large(limit: int) -> BatchError:
    """``RequestBodyTooLarge`` (413)."""
    return BatchError(
        413,
        "RequestBodyTooLarge",
        "The request body is too large and exceeds the maximum permissible limit.",
        {"MaxLimit": str(limit)},
    )


def invalid_uri(path: str) -> BatchError:
    """``InvalidUri`` (400): no resource at this path (the service's common code for unknown URIs)."""
    return BatchError(
        400, "InvalidUri", "The requested URI does not represent any resource on the server.", {"UriPath": path[:512]}
    )


def unsupported_operation(method: str, path: str, operation: str, reason: str) -> BatchError:
    """``UnsupportedOperation`` (400): a real Batch operation that the local emulator does not serve."""
    return BatchError(
        400,
        "UnsupportedOperation",
        f"The local batchbox emulator does not support the operation {operation}.",
        {"Operation": operation, "HttpVerb": method[:16], "UriPath": path[:512], "Reason": reason},
    )


def unsupported_http_verb(method: str) -> BatchError:
    """``UnsupportedHttpVerb`` (405)."""
    return BatchError(
        405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.", {"HttpVerb": method[:16]}
    )


def internal_error() -> BatchError:
    """``InternalError`` (500) with a generic message: details belong in the server log only."""
    return BatchError(500, "InternalError", "Server encountered an internal error. Please try again after some time.")
