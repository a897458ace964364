"""Validation helpers shared by the pool, job and task documents.

Batch parses request bodies strictly by type: a value of the wrong JSON type is ``InvalidRequestBody`` (400, "The
specified Request Body is not syntactically valid."), a missing required property is ``MissingRequiredProperty``
and a well-typed but unacceptable value is ``InvalidPropertyValue``. Property names in errors are dotted paths
(``constraints.maxWallClockTime``). As the service's deserializer does, an integer property may come as a JSON string
of digits (``"targetDedicatedNodes": "2"``, what the Azure CLI sends); any other string is still refused.

The top-level properties of add, patch and resize bodies are checked by name like the service's OData reader does: a
name no supported API version defines is ``InvalidRequestBody`` ("The property 'x' does not exist on type ...").
The known names are those of the property inventory (``batchbox.emulator.coverage.properties``), the union over the
supported API versions (older SDKs send properties the current version dropped); the inventory says what the
emulator does with each. Unknown properties nested deeper are not checked by name.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from batchbox.core.ids import is_valid_id
from batchbox.emulator.clock import format_duration, parse_duration
from batchbox.emulator.coverage.properties import known_properties
from batchbox.emulator.errors import BatchError, invalid_property, missing_property

__all__ = [
    "Body",
    "check_id",
    "invalid_body",
    "objects_in",
    "opt_bool",
    "opt_duration",
    "opt_enum",
    "opt_int",
    "opt_list",
    "opt_object",
    "opt_str",
    "reject_unknown_properties",
    "req_object",
    "req_str",
    "retired_property",
    "unsupported_property",
    "validate_environment",
    "validate_metadata",
    "validate_relative_path",
    "validate_resource_files",
    "validate_user_identity",
]

Body = dict[str, Any]

_JSON_TYPE_NAMES = {str: "Edm.String", int: "Edm.Int32", bool: "Edm.Boolean", list: "Collection", dict: "Object"}


def invalid_body(name: str, reason: str) -> BatchError:
    """``InvalidRequestBody`` (400): the body does not parse into the expected shape."""
    return BatchError(
        400,
        "InvalidRequestBody",
        "The specified Request Body is not syntactically valid.",
        {"PropertyName": name, "Reason": reason},
    )


def reject_unknown_properties(body: Body, type_name: str) -> None:
    """Refuse a top-level property the inventory does not list for ``type_name`` (see ``coverage.properties``;
    OData annotations such as ``odata.type`` pass).

    Raises:
        BatchError: 400 ``InvalidRequestBody`` naming the first unknown property.
    """
    known = known_properties(type_name)
    for name in body:
        if name not in known and not name.startswith("odata."):
            shown = name[:64]
            raise invalid_body(
                shown,
                f"The property '{shown}' does not exist on type 'Microsoft.Azure.Batch.Protocol.Entities.{type_name}'. "
                "Make sure to only use property names that are defined by the type.",
            )


def unsupported_property(name: str, reason: str) -> BatchError:
    """``UnsupportedProperty`` (400): a valid Batch property the local emulator does not implement."""
    return BatchError(
        400,
        "UnsupportedProperty",
        "One of the properties specified in the request body is not supported.",
        {"PropertyName": name, "Reason": reason},
    )


def retired_property(name: str, reason: str) -> BatchError:
    """``InvalidPropertyValue`` (400) for a feature Batch has retired (cloud service pools, certificates).

    Batch no longer accepts these; the emulator answers in the form the service uses for a configuration it does not
    support (``InvalidPropertyValue`` naming the property, with a ``Reason``).
    """
    return BatchError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        {"PropertyName": name, "Reason": reason},
    )


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


_DIGITS = re.compile(r"-?[0-9]{1,19}")


def _typed(body: Body, name: str, kind: type, prefix: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if kind is int and isinstance(value, str) and _DIGITS.fullmatch(value):
        # Batch's deserializer reads an integer sent as a JSON string of digits (the Azure CLI sends them so).
        return int(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise invalid_body(
            _path(prefix, name),
            f"Cannot convert the value to the expected type '{_JSON_TYPE_NAMES.get(kind, kind.__name__)}'.",
        )
    return value


def req_object(body: object, name: str = "") -> Body:
    """The request body (or a nested value) as a JSON object, else ``InvalidRequestBody``."""
    if not isinstance(body, dict):
        raise invalid_body(name or "(body)", "Expected a JSON object.")
    return body


def req_str(body: Body, name: str, prefix: str = "") -> str:
    """A required string property (empty counts as missing)."""
    value = _typed(body, name, str, prefix)
    if value is None or value == "":
        raise missing_property(_path(prefix, name))
    return str(value)


def opt_str(body: Body, name: str, prefix: str = "", *, max_length: int | None = None) -> str | None:
    value = _typed(body, name, str, prefix)
    if value is not None and max_length is not None and len(value) > max_length:
        raise invalid_property(_path(prefix, name), value, f"The value may not exceed {max_length} characters.")
    return None if value is None else str(value)


def opt_int(
    body: Body, name: str, prefix: str = "", *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = _typed(body, name, int, prefix)
    if value is None:
        return None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" >= {minimum}"
        high = "" if maximum is None else f" <= {maximum}"
        joiner = " and" if low and high else ""
        raise invalid_property(_path(prefix, name), value, f"The value must be{low}{joiner}{high}.")
    return int(value)


def opt_bool(body: Body, name: str, prefix: str = "") -> bool | None:
    value = _typed(body, name, bool, prefix)
    return None if value is None else bool(value)


def opt_list(body: Body, name: str, prefix: str = "") -> list[Any] | None:
    value = _typed(body, name, list, prefix)
    return None if value is None else list(value)


def opt_object(body: Body, name: str, prefix: str = "") -> Body | None:
    value = _typed(body, name, dict, prefix)
    return None if value is None else dict(value)


def opt_enum(body: Body, name: str, allowed: tuple[str, ...], prefix: str = "") -> str | None:
    """An enum string, matched case-insensitively and returned in Batch's (lowercase) spelling."""
    value = _typed(body, name, str, prefix)
    if value is None:
        return None
    lowered = str(value).lower()
    if lowered not in allowed:
        raise invalid_property(_path(prefix, name), value, f"The value must be one of: {', '.join(allowed)}.")
    return lowered


def check_id(name: str, value: object) -> str:
    """A pool, job or task id (the rule of :func:`batchbox.core.ids.validate_id`) with Batch's errors.

    Raises:
        BatchError: MissingRequiredProperty (absent or empty), InvalidRequestBody (not a string),
            InvalidPropertyValue (not 1-64 letters, digits, ``-`` and ``_``), each naming ``name``.
    """
    if value is None or value == "":
        raise missing_property(name)
    if not isinstance(value, str):
        raise invalid_body(name, "Cannot convert the value to the expected type 'Edm.String'.")
    if not is_valid_id(value):
        raise invalid_property(
            name, value, "The id may contain 1-64 letters, digits, hyphens and underscores, and nothing else."
        )
    return value


# -- durations ------------------------------------------------------------------------------------------------


def opt_duration(
    body: Body, name: str, prefix: str = "", *, minimum: timedelta | None = None
) -> tuple[timedelta, str] | None:
    """An optional duration property: ``(value, normalised text)``."""
    text = _typed(body, name, str, prefix)
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError:
        raise invalid_property(
            _path(prefix, name), text, "The value must be an ISO 8601 duration such as PT30S, PT1H30M or P1D."
        ) from None
    if minimum is not None and value < minimum:
        raise invalid_property(_path(prefix, name), text, f"The value must be at least {format_duration(minimum)}.")
    return value, format_duration(value)


# -- shared sub-documents -------------------------------------------------------------------------------------


def objects_in(items: list[Any], name: str) -> Iterator[tuple[str, Body]]:
    """Each item of a list property with its path (``name[0]``, ``name[1]`` ...), each required to be an object."""
    for index, item in enumerate(items):
        prefix = f"{name}[{index}]"
        yield prefix, req_object(item, prefix)


def validate_metadata(items: list[Any] | None, name: str = "metadata") -> list[Body] | None:
    """``[{"name", "value"}]`` with both strings required."""
    if items is None:
        return None
    result: list[Body] = []
    for prefix, item in objects_in(items, name):
        result.append({"name": req_str(item, "name", prefix), "value": opt_str(item, "value", prefix) or ""})
    return result


def validate_environment(items: list[Any] | None, name: str = "environmentSettings") -> list[Body] | None:
    """``[{"name", "value"?}]``."""
    if items is None:
        return None
    result: list[Body] = []
    for prefix, item in objects_in(items, name):
        entry: Body = {"name": req_str(item, "name", prefix)}
        value = opt_str(item, "value", prefix)
        if value is not None:
            entry["value"] = value
        result.append(entry)
    return result


def validate_relative_path(value: str, name: str) -> str:
    """A path that stays inside the directory it is relative to (no absolute path, no ``..``)."""
    cleaned = value.replace("\\", "/")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        raise invalid_property(name, value, "The path must be relative.")
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../"):
        raise invalid_property(name, value, "The path may not point outside the task's working directory.")
    return value


_RESOURCE_SOURCES = ("autoStorageContainerName", "storageContainerUrl", "httpUrl")


def validate_resource_files(items: list[Any] | None, name: str = "resourceFiles") -> list[Body] | None:
    """ResourceFiles: exactly one source; ``httpUrl`` needs ``filePath``; paths stay in the working dir."""
    if items is None:
        return None
    result: list[Body] = []
    for prefix, item in objects_in(items, name):
        entry: Body = {}
        sources = [s for s in _RESOURCE_SOURCES if opt_str(item, s, prefix)]
        if not sources:
            raise missing_property(f"{prefix}.httpUrl")
        if len(sources) > 1:
            raise invalid_property(
                f"{prefix}.{sources[1]}",
                item[sources[1]],
                "Exactly one of " + ", ".join(_RESOURCE_SOURCES) + " may be specified.",
            )
        entry[sources[0]] = item[sources[0]]
        prefix_value = opt_str(item, "blobPrefix", prefix)
        if prefix_value is not None:
            if sources[0] == "httpUrl":
                raise invalid_property(
                    f"{prefix}.blobPrefix", prefix_value, "blobPrefix is only valid with a container source."
                )
            entry["blobPrefix"] = prefix_value
        file_path = opt_str(item, "filePath", prefix)
        if sources[0] == "httpUrl" and not file_path:
            raise missing_property(f"{prefix}.filePath")
        if file_path:
            entry["filePath"] = validate_relative_path(file_path, f"{prefix}.filePath")
        file_mode = opt_str(item, "fileMode", prefix)
        if file_mode is not None:
            if not re.fullmatch(r"0?[0-7]{3,4}", file_mode):
                raise invalid_property(f"{prefix}.fileMode", file_mode, "The file mode must be octal, e.g. 0770.")
            entry["fileMode"] = file_mode
        identity = opt_object(item, "identityReference", prefix)
        if identity is not None:
            entry["identityReference"] = identity
        result.append(entry)
    return result


def validate_user_identity(value: Body | None, name: str = "userIdentity") -> Body | None:
    """``{"username"}`` or ``{"autoUser": {"scope", "elevationLevel"}}`` (not both)."""
    if value is None:
        return None
    username = opt_str(value, "username", name)
    auto = opt_object(value, "autoUser", name)
    if username and auto is not None:
        raise invalid_property(f"{name}.username", username, "Specify either username or autoUser, not both.")
    if username:
        return {"username": username}
    if auto is None:
        return {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}
    prefix = f"{name}.autoUser"
    return {
        "autoUser": {
            "scope": opt_enum(auto, "scope", ("task", "pool"), prefix) or "pool",
            "elevationLevel": opt_enum(auto, "elevationLevel", ("nonadmin", "admin"), prefix) or "nonadmin",
        }
    }
