"""Batch-style errors raised anywhere in the emulator and rendered as Batch error bodies.

Handlers raise :class:`BatchError`; the protocol middleware turns it into the JSON body the Batch service sends::

    {"odata.metadata": ".../$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
     "code": "PoolNotFound", "message": {"lang": "en-US", "value": "The specified pool does not exist.\\nRequestId:..."},
     "values": [{"key": "...", "value": "..."}]}
"""

from __future__ import annotations

__all__ = [
    "BatchError",
    "invalid_property",
    "invalid_query",
    "missing_property",
    "not_found",
    "resource_exists",
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


_KIND_NAMES = {"pool": "Pool", "job": "Job", "task": "Task", "node": "Node", "file": "File", "jobschedule": "JobSchedule"}


def not_found(kind: str, name: str) -> BatchError:
    """``PoolNotFound`` / ``JobNotFound`` / ``TaskNotFound`` / ``NodeNotFound`` / ``FileNotFound`` (404)."""
    title = _KIND_NAMES.get(kind, kind.capitalize())
    return BatchError(404, f"{title}NotFound", f"The specified {kind} does not exist.", {f"{title}Id": name})


def resource_exists(kind: str, name: str) -> BatchError:
    """``PoolExists`` / ``JobExists`` / ``TaskExists`` (409)."""
    title = _KIND_NAMES.get(kind, kind.capitalize())
    return BatchError(409, f"{title}Exists", f"The specified {kind} already exists.", {f"{title}Id": name})


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
