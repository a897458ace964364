"""What is compared between a recorded answer and the emulator's: status, Batch error code, the ``odata.metadata``
fragment, the set of body property paths and the set of Batch protocol headers.

Property paths are dotted, with ``[]`` for list items (``value[].startTask.userIdentity.autoUser.scope``); the
paths of all items of a list are pooled, so a list matches when the same properties occur in it. Values are not
compared: ids, times, URLs and counts differ from run to run by nature. A list answer that is empty where the
recording has items is one difference (``value: ...``), not one per missing property.

Differences are atomic lines (``missing property: startTask``, ``extra header: etag`` ...), so a baseline can list
exactly the ones an exchange is allowed to have.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PROTOCOL_HEADERS", "Observation", "differences", "observe", "property_paths"]

PROTOCOL_HEADERS = (
    "content-type",
    "dataserviceid",
    "dataserviceversion",
    "etag",
    "last-modified",
    "location",
    "ocp-batch-file-isdirectory",
    "ocp-batch-file-url",
    "ocp-creation-time",
)
"""The response headers that belong to the Batch protocol (transport headers such as ``date`` are left out)."""

_STANDIN_PREFIXES = ("cloudServiceConfiguration", "virtualMachineConfiguration")


def property_paths(document: Any, prefix: str = "") -> set[str]:
    """Every property path of a JSON document (objects recursively, list items pooled under ``[]``)."""
    paths: set[str] = set()
    if isinstance(document, Mapping):
        for name, value in document.items():
            path = f"{prefix}.{name}" if prefix else str(name)
            paths.add(path)
            paths |= property_paths(value, path)
    elif isinstance(document, list):
        for item in document:
            paths |= property_paths(item, f"{prefix}[]")
    return paths


def _without_pool_configuration(paths: Iterable[str], prefix: str) -> set[str]:
    cut = tuple(f"{prefix}{name}" for name in _STANDIN_PREFIXES)
    return {path for path in paths if not path.startswith(cut)}


def _body_paths(document: Any, standin_pools: frozenset[str], entity_pool: str | None) -> set[str]:
    """Property paths, without the pool configuration of stand-in pools (``translate.cloud_service_standin``)."""
    if isinstance(document, Mapping) and isinstance(document.get("value"), list):
        paths = property_paths({key: value for key, value in document.items() if key != "value"})
        paths.add("value")
        for item in document["value"]:
            item_paths = property_paths(item, "value[]")
            if isinstance(item, Mapping) and str(item.get("id", "")).lower() in standin_pools:
                item_paths = _without_pool_configuration(item_paths, "value[].")
            paths |= item_paths
        return paths
    paths = property_paths(document)
    if entity_pool is not None and entity_pool.lower() in standin_pools:
        paths = _without_pool_configuration(paths, "")
    return paths


@dataclass(frozen=True)
class Observation:
    """One answer reduced to what is compared (``items``: the length of a list answer's ``value``, else None)."""

    status: int
    code: str | None
    metadata: str | None
    paths: frozenset[str]
    headers: frozenset[str]
    items: int | None = None

    @property
    def summary(self) -> str:
        return f"{self.status} {self.code}" if self.code else str(self.status)


def observe(
    status: int,
    headers: Mapping[str, str],
    document: Any,
    *,
    standin_pools: frozenset[str] = frozenset(),
    entity_pool: str | None = None,
) -> Observation:
    """Reduce a response (status, lower-cased headers, parsed JSON body or None) to an :class:`Observation`.

    Args:
        standin_pools: lower-cased ids of pools replayed as stand-ins: their pool configuration is not compared.
        entity_pool: the pool a single-entity answer is about (from the request path), if any.
    """
    code = None
    metadata = None
    items = None
    if isinstance(document, Mapping):
        if status >= 400 and isinstance(document.get("code"), str):
            code = str(document["code"])
        meta = document.get("odata.metadata")
        if isinstance(meta, str) and "#" in meta:
            metadata = meta.split("#", 1)[1]
        if isinstance(document.get("value"), list):
            items = len(document["value"])
    return Observation(
        status=status,
        code=code,
        metadata=metadata,
        paths=frozenset(_body_paths(document, standin_pools, entity_pool)),
        headers=frozenset(name for name in PROTOCOL_HEADERS if name in headers),
        items=items,
    )


def _ignored(path: str, patterns: Iterable[str]) -> bool:
    bare = path.removeprefix("value[].")
    return any(fnmatch.fnmatchcase(bare, pattern) for pattern in patterns)


def _set_difference(kind: str, recorded: frozenset[str], replayed: frozenset[str], ignore: Iterable[str]) -> list[str]:
    patterns = list(ignore)
    missing = sorted(p for p in recorded - replayed if not _ignored(p, patterns))
    extra = sorted(p for p in replayed - recorded if not _ignored(p, patterns))
    return [f"missing {kind}: {path}" for path in missing] + [f"extra {kind}: {path}" for path in extra]


def differences(
    recorded: Observation,
    replayed: Observation,
    *,
    ignore_paths: Iterable[str] = (),
    ignore_headers: Iterable[str] = (),
) -> list[str]:
    """What differs, one atomic line each (empty when the exchange matches).

    Args:
        ignore_paths: ``fnmatch`` patterns of property paths that are documented local differences (matched with
            and without the ``value[].`` prefix of list answers).
        ignore_headers: header names that are documented local differences.
    """
    found: list[str] = []
    if recorded.status != replayed.status or recorded.code != replayed.code:
        found.append(f"status: recorded {recorded.summary}, emulator {replayed.summary}")
        return found  # the bodies of different outcomes say nothing more
    if recorded.metadata != replayed.metadata:
        found.append(f"odata.metadata: recorded #{recorded.metadata}, emulator #{replayed.metadata}")
    if recorded.items and replayed.items == 0:
        found.append(f"value: recorded {recorded.items} item(s), emulator none")
    else:
        found += _set_difference("property", recorded.paths, replayed.paths, ignore_paths)
    found += _set_difference("header", recorded.headers, replayed.headers, ignore_headers)
    return found
