"""Node operation bodies: validate what reboot, reimage, deallocate, scheduling, remove-nodes, node users and
upload-logs requests say (pure; the runtime carries them out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from batchbox.emulator.clock import parse_time
from batchbox.emulator.errors import BatchError, invalid_property, missing_property
from batchbox.emulator.resources.common import (
    Body,
    opt_bool,
    opt_duration,
    opt_enum,
    opt_list,
    opt_str,
    reject_unknown_properties,
    req_object,
    req_str,
    unsupported_property,
)

__all__ = [
    "DEALLOCATION_OPTIONS",
    "MAX_REMOVE_NODES",
    "LogUpload",
    "NodeUser",
    "RemoveNodes",
    "node_option",
    "node_user",
    "remove_nodes_request",
    "upload_logs_request",
]

DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
_SCHEDULING_OPTIONS = ("requeue", "terminate", "taskcompletion")
MAX_REMOVE_NODES = 100
_DEFAULT_USER_LIFETIME = timedelta(days=1)

_OPTION_PROPERTIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    # operation: (accepted property names, allowed values, type name in errors)
    "reboot": (("nodeRebootOption", "nodeRebootKind"), DEALLOCATION_OPTIONS, "NodeRebootParameter"),
    "reimage": (("nodeReimageOption",), DEALLOCATION_OPTIONS, "NodeReimageParameter"),
    "deallocate": (("nodeDeallocateOption",), DEALLOCATION_OPTIONS, "NodeDeallocateParameter"),
    "disablescheduling": (
        ("nodeDisableSchedulingOption",),
        _SCHEDULING_OPTIONS,
        "NodeDisableSchedulingParameter",
    ),
}


def node_option(operation: str, body: object | None) -> str:
    """The running-task option of a node operation body (absent body or property: ``requeue``).

    Args:
        operation: ``reboot``, ``reimage``, ``deallocate`` or ``disablescheduling``.
        body: the parsed JSON body, or ``None`` when the request had none.

    Raises:
        BatchError: InvalidRequestBody (unknown property), InvalidPropertyValue (a value not allowed).
    """
    if body is None:
        return "requeue"
    names, allowed, type_name = _OPTION_PROPERTIES[operation]
    body = req_object(body)
    reject_unknown_properties(body, type_name)
    for name in names:
        value = opt_enum(body, name, allowed)
        if value is not None:
            return value
    return "requeue"


@dataclass(frozen=True)
class RemoveNodes:
    """A ``removenodes`` request: which nodes, how their tasks end, the resize timeout (ISO 8601)."""

    node_ids: tuple[str, ...]
    option: str
    resize_timeout: str | None


def remove_nodes_request(body: object, min_timeout: timedelta) -> RemoveNodes:
    """Validate ``POST /pools/{id}/removenodes``.

    Raises:
        BatchError: MissingRequiredProperty (``nodeList``), InvalidPropertyValue (empty or more than 100 ids, a
            short timeout, an unknown option), InvalidRequestBody.
    """
    body = req_object(body)
    reject_unknown_properties(body, "NodeRemoveParameter")
    items = opt_list(body, "nodeList")
    if items is None:
        raise missing_property("nodeList")
    if not items or len(items) > MAX_REMOVE_NODES:
        raise invalid_property(
            "nodeList", len(items), f"Between 1 and {MAX_REMOVE_NODES} node ids can be removed at once."
        )
    ids: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise invalid_property(f"nodeList[{index}]", item, "A node id must be a non-empty string.")
        if item.lower() not in (i.lower() for i in ids):
            ids.append(item)
    timeout = opt_duration(body, "resizeTimeout", minimum=min_timeout)
    option = opt_enum(body, "nodeDeallocationOption", DEALLOCATION_OPTIONS) or "requeue"
    return RemoveNodes(tuple(ids), option, timeout[1] if timeout else None)


@dataclass(frozen=True)
class NodeUser:
    """A node user account request (add or update). ``password`` and ``ssh_public_key`` are secrets."""

    name: str
    is_admin: bool
    expiry: datetime
    password: str | None
    ssh_public_key: str | None

    @property
    def expiry_date(self) -> str:
        """The account's expiration date on Linux (day precision, as Batch documents for Linux nodes)."""
        return self.expiry.strftime("%Y-%m-%d")


def node_user(body: object, *, name: str | None = None, now: datetime | None = None) -> NodeUser:
    """Validate an add-user body (``name`` from the body) or a replace-user body (``name`` from the path).

    ``expiryTime`` defaults to one day from now; an update replaces every property, so what it leaves out is reset.

    Raises:
        BatchError: MissingRequiredProperty (``name``), InvalidPropertyValue (a past expiry, neither or a bad
            name), InvalidRequestBody.
    """
    body = req_object(body)
    reject_unknown_properties(body, "ComputeNodeUser" if name is None else "NodeUpdateUserParameter")
    user_name = name if name is not None else req_str(body, "name")
    moment = now or datetime.now(timezone.utc)
    expiry_text = opt_str(body, "expiryTime")
    expiry = moment + _DEFAULT_USER_LIFETIME
    if expiry_text is not None:
        parsed = parse_time(expiry_text)
        if parsed is None:
            raise invalid_property("expiryTime", expiry_text, "The value must be an ISO 8601 date and time.")
        if parsed <= moment:
            raise invalid_property("expiryTime", expiry_text, "The expiry time must be in the future.")
        expiry = parsed
    return NodeUser(
        name=user_name,
        is_admin=bool(opt_bool(body, "isAdmin")) if name is None else False,
        expiry=expiry,
        password=opt_str(body, "password") or None,
        ssh_public_key=opt_str(body, "sshPublicKey") or None,
    )


@dataclass(frozen=True)
class LogUpload:
    """An ``uploadbatchservicelogs`` request: the container SAS URL and the time window of the logs."""

    container_url: str
    start: datetime
    end: datetime | None


def upload_logs_request(body: object) -> LogUpload:
    """Validate ``POST .../uploadbatchservicelogs``.

    Raises:
        BatchError: MissingRequiredProperty (``containerUrl``, ``startTime``), InvalidPropertyValue,
            UnsupportedProperty (``identityReference``: managed identities do not exist locally).
    """
    body = req_object(body)
    reject_unknown_properties(body, "UploadBatchServiceLogsConfiguration")
    if body.get("identityReference") is not None:
        raise unsupported_property(
            "identityReference", "The local emulator has no managed identities: give a container URL with a SAS."
        )
    url = req_str(body, "containerUrl")
    if not url.lower().startswith(("http://", "https://")):
        raise invalid_property("containerUrl", "(a URL)", "The container URL must be an http(s) URL with a SAS.")
    start_text = body.get("startTime")
    if start_text is None:
        raise missing_property("startTime")
    start = _time(body, "startTime")
    end = _time(body, "endTime") if body.get("endTime") is not None else None
    if start is None:
        raise missing_property("startTime")
    return LogUpload(url, start, end)


def _time(body: Body, name: str) -> datetime | None:
    text = opt_str(body, name)
    if text is None:
        return None
    parsed = parse_time(text)
    if parsed is None:
        raise BatchError(
            400,
            "InvalidPropertyValue",
            "The value provided for one of the properties in the request body is invalid.",
            {"PropertyName": name, "PropertyValue": text[:64], "Reason": "The value must be an ISO 8601 time."},
        )
    return parsed
