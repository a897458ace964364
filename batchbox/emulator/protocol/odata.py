"""The OData subset of Batch list operations: ``$filter`` (see ``filters``), ``$select`` and paging.

Paging: ``maxresults`` (default and maximum 1000) and an opaque ``$skiptoken`` in an absolute ``odata.nextLink``
that repeats the request's other parameters. ``paginate`` reads lazily through a ``fetch(after_key, limit)``
callable, so a page of a 10,000-task list costs one short store query, not the whole list.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote_plus

from starlette.requests import Request

from ..errors import invalid_query
from .filters import FILTER_PROPERTIES, Predicate, parse_filter
from .responses import base_url

__all__ = [
    "DEFAULT_MAX_RESULTS",
    "FILTER_PROPERTIES",
    "MAX_MAX_RESULTS",
    "SKIPTOKEN_PARAM",
    "Fetch",
    "Predicate",
    "apply_select",
    "next_link",
    "paginate",
    "parse_filter",
    "parse_maxresults",
    "parse_select",
    "select_fields",
]

Doc = Mapping[str, Any]
Fetch = Callable[[str | None, int], Sequence[Doc]]
"""``fetch(after_key, limit)``: up to ``limit`` documents that come after the one whose key is ``after_key``."""

DEFAULT_MAX_RESULTS = 1000
MAX_MAX_RESULTS = 1000
SKIPTOKEN_PARAM = "$skiptoken"

# ----------------------------------------------------------------------------------------------------------- $select


def parse_select(select: str | None, allowed: Collection[str] | None = None) -> list[tuple[str, ...]] | None:
    """Parse a ``$select`` value into property paths (None: keep everything).

    A path is accepted when it, or its top-level property, is in ``allowed`` (None allows any name).

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` (``$select``) for an empty item or an unknown property.
    """
    if select is None or not select.strip():
        return None
    paths: list[tuple[str, ...]] = []
    for item in select.split(","):
        name = item.strip()
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*(?:/[A-Za-z_][A-Za-z0-9_]*)*", name):
            raise invalid_query("$select", select, f"'{name}' is not a property name.")
        parts = tuple(name.split("/"))
        if allowed is not None and name not in allowed and parts[0] not in allowed:
            raise invalid_query("$select", select, f"The property '{name}' cannot be selected.")
        paths.append(parts)
    return paths


def select_fields(doc: Doc, paths: Sequence[tuple[str, ...]] | None) -> dict[str, Any]:
    """A copy of ``doc`` holding only ``paths`` (all of it when ``paths`` is None); missing paths are left out."""
    if paths is None:
        return dict(doc)
    result: dict[str, Any] = {}
    for path in paths:
        value: Any = doc
        for part in path:
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            target = result
            for part in path[:-1]:
                existing = target.get(part)
                if not isinstance(existing, dict):
                    existing = {}
                    target[part] = existing
                target = existing
            target[path[-1]] = value
    return result


def apply_select(doc: Doc, select: str | None, allowed: Collection[str] | None = None) -> dict[str, Any]:
    """``select_fields(doc, parse_select(select, allowed))`` (parse once with ``parse_select`` for whole lists)."""
    return select_fields(doc, parse_select(select, allowed))


# ----------------------------------------------------------------------------------------------------------- paging


def parse_maxresults(value: str | None, *, default: int = DEFAULT_MAX_RESULTS, maximum: int = MAX_MAX_RESULTS) -> int:
    """The page size from the ``maxresults`` query parameter.

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` when it is not an integer in ``1..maximum``.
    """
    if value is None or value == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise invalid_query("maxresults", value, "The value must be an integer.") from None
    if not 1 <= number <= maximum:
        raise invalid_query("maxresults", value, f"The value must be between 1 and {maximum}.")
    return number


def _encode_token(after_key: str, position: int) -> str:
    raw = json.dumps([after_key, position], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(token: str) -> tuple[str, int]:
    try:
        padded = token.strip() + "=" * (-len(token.strip()) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if (
            isinstance(data, list)
            and len(data) == 2
            and isinstance(data[0], str)
            and isinstance(data[1], int)
            and data[1] >= 0
        ):
            return data[0], data[1]
    except (ValueError, binascii.Error, UnicodeEncodeError):
        pass
    raise invalid_query(SKIPTOKEN_PARAM, token, "The continuation token is not valid.")


def _default_key(doc: Doc) -> str:
    return str(doc.get("id", "")).lower()


def _scan_sequence(
    items: Sequence[Doc], after_key: str | None, position: int, key: Callable[[Doc], str]
) -> Iterator[tuple[Doc, int]]:
    start = 0
    if after_key is not None:
        if 0 < position <= len(items) and key(items[position - 1]) == after_key:
            start = position
        else:  # the list changed since the previous page: find the key again, else keep the count
            start = min(position, len(items))
            for index, doc in enumerate(items):
                if key(doc) == after_key:
                    start = index + 1
                    break
    for index in range(start, len(items)):
        yield items[index], index + 1


def _scan_fetch(
    fetch: Fetch, after_key: str | None, position: int, chunk: int, key: Callable[[Doc], str]
) -> Iterator[tuple[Doc, int]]:
    while True:
        batch = fetch(after_key, chunk)
        for doc in batch:
            position += 1
            yield doc, position
        if len(batch) < chunk:
            return
        after_key = key(batch[-1])


def paginate(
    source: Sequence[Doc] | Fetch,
    maxresults: int,
    skiptoken: str | None,
    *,
    key: Callable[[Doc], str] = _default_key,
    predicate: Predicate | None = None,
) -> tuple[list[Doc], str | None]:
    """One page of a list operation.

    Args:
        source: the whole list, or ``fetch(after_key, limit)`` that reads the next documents after a key lazily
            (e.g. ``lambda after, limit: store.list_tasks(job_id, after_key=after, limit=limit)``), so a long list
            is never loaded whole for one page.
        maxresults: the page size (see ``parse_maxresults``).
        skiptoken: the ``$skiptoken`` of the request (None for the first page).
        key: the document's key, as the fetch function's ``after_key`` expects it (default: lower-cased ``id``).
        predicate: a compiled ``$filter``; the page holds up to ``maxresults`` matching documents.

    Returns:
        ``(page, next_token)``; ``next_token`` is None on the last page.

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` for a malformed ``$skiptoken``.
    """
    after_key, position = _decode_token(skiptoken) if skiptoken else (None, 0)
    if callable(source):
        chunk = maxresults + 1 if predicate is None else max(maxresults + 1, 256)
        scan = _scan_fetch(source, after_key, position, chunk, key)
    else:
        scan = _scan_sequence(source, after_key, position, key)
    page: list[Doc] = []
    last_position = position
    for doc, doc_position in scan:
        if predicate is not None and not predicate(doc):
            continue
        if len(page) == maxresults:
            return page, _encode_token(key(page[-1]), last_position)
        page.append(doc)
        last_position = doc_position
    return page, None


def next_link(request: Request, token: str | None) -> str | None:
    """The absolute ``odata.nextLink`` for ``token``: the request's URL with ``$skiptoken`` replaced (or added).

    The SDKs GET this URL as is (15.x re-sets ``api-version`` to its own), so every other parameter (``$filter``,
    ``$select``, ``maxresults``) is carried over unchanged.
    """
    if token is None:
        return None
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else quote(request.url.path)
    query = request.scope.get("query_string", b"").decode("latin-1")
    kept = [part for part in query.split("&") if part and unquote_plus(part.partition("=")[0]) != SKIPTOKEN_PARAM]
    kept.append(f"{SKIPTOKEN_PARAM}={quote(token, safe='')}")
    return f"{base_url(request)}{path}?{'&'.join(kept)}"
