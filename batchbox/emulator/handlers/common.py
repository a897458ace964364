"""What every REST handler needs: the app's config / store / runtime, list paging, entity responses."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from batchbox.emulator.clock import parse_time
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.errors import BatchError, invalid_query, not_found
from batchbox.emulator.protocol.odata import (
    FILTER_PROPERTIES,
    next_link,
    paginate,
    parse_filter,
    parse_maxresults,
    parse_select,
    select_fields,
)
from batchbox.emulator.protocol.responses import (
    base_url,
    batch_json,
    http_date,
    list_response,
    metadata_url,
)
from batchbox.emulator.resources.containers import ValidationContext
from batchbox.emulator.resources.pool_checks import PoolRules, pool_rules_of
from batchbox.emulator.runtime.runtime import Runtime
from batchbox.emulator.secret_owners import owned
from batchbox.emulator.store import Store

__all__ = [
    "NotModified",
    "check_preconditions",
    "entity_response",
    "get_config",
    "get_job_or_404",
    "get_pool_or_404",
    "get_runtime",
    "get_store",
    "get_task_or_404",
    "header_time",
    "keep_secrets",
    "list_page",
    "max_nodes_per_pool",
    "not_modified_response",
    "pool_rules",
    "query_flag",
    "validation_context",
]

Doc = dict[str, Any]


def get_config(request: Request) -> EmulatorConfig:
    return cast(EmulatorConfig, request.app.state.config)


def get_store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


def get_runtime(request: Request) -> Runtime:
    """The app's :class:`~batchbox.emulator.runtime.Runtime` (built in the lifespan)."""
    return cast(Runtime, request.app.state.runtime)


def validation_context(request: Request) -> ValidationContext:
    """What validating a body needs from the emulator's settings; it collects the body's secrets."""
    config = get_config(request)
    return ValidationContext(
        allow_privileged=config.allow_privileged_containers, storage_account=config.storage_account_name
    )


def keep_secrets(request: Request, context: ValidationContext, owner: str) -> None:
    """Seal the secrets a validated body carried into the store under their ``owner`` (a ``secret_owners`` name),
    after the change they belong to succeeded; deleting the owner deletes them."""
    if not context.secrets:
        return
    store = get_store(request)
    with store.transaction():
        for secret in context.secrets:
            store.put_secret(owned(owner, secret.name), secret.value)


def max_nodes_per_pool(request: Request) -> int:
    """The per-pool node cap (``app.state.max_nodes_per_pool``, set by the app factory)."""
    return int(getattr(request.app.state, "max_nodes_per_pool", 32))


def pool_rules(request: Request) -> PoolRules:
    """The emulator's switches for pool bodies (VM size and image checks, autoscale and resize-timeout floors)."""
    return pool_rules_of(get_config(request))


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``, case-insensitive; absent is false).

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` for anything else.
    """
    value = request.query_params.get(name)
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise invalid_query(name, value, "The value must be true or false.")
    return lowered == "true"


def get_pool_or_404(request: Request, pool_id: str) -> Doc:
    doc = get_store(request).get_pool(pool_id)
    if doc is None:
        raise not_found("pool", pool_id)
    return doc


def get_job_or_404(request: Request, job_id: str) -> Doc:
    doc = get_store(request).get_job(job_id)
    if doc is None:
        raise not_found("job", job_id)
    return doc


def get_task_or_404(request: Request, job_id: str, task_id: str) -> Doc:
    store = get_store(request)
    if store.get_job(job_id) is None:
        raise not_found("job", job_id)
    doc = store.get_task(job_id, task_id)
    if doc is None:
        raise not_found("task", task_id)
    return doc


class NotModified(Exception):
    """A conditional GET whose resource did not change: answer 304."""


def header_time(request: Request, name: str) -> datetime | None:
    """An HTTP-date header as an aware datetime (a "-0000" zone means UTC); None when absent or malformed."""
    value = request.headers.get(name)
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def check_preconditions(request: Request, doc: Mapping[str, Any], *, read: bool = False) -> None:
    """Apply ``If-Match`` / ``If-None-Match`` / ``If-Modified-Since`` / ``If-Unmodified-Since`` to a resource.

    Args:
        request: the request carrying the conditional headers.
        doc: the resource's current document (its ``eTag`` and ``lastModified``).
        read: a GET / HEAD: a failed ``If-None-Match`` / ``If-Modified-Since`` means 304 instead of 412.

    Raises:
        NotModified: (reads) the resource did not change.
        BatchError: 412 ``ConditionNotMet``.
    """
    etag = str(doc.get("eTag", ""))
    modified = parse_time(doc.get("lastModified"))
    modified_s = modified.replace(microsecond=0) if modified is not None else None
    failed = False
    not_modified = False
    if_match = request.headers.get("if-match")
    if if_match is not None and if_match.strip() != "*" and etag not in _etags(if_match):
        failed = True
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and (if_none_match.strip() == "*" or etag in _etags(if_none_match)):
        not_modified = True
    since = header_time(request, "if-modified-since")
    if since is not None and modified_s is not None and modified_s <= since:
        not_modified = True
    unmodified = header_time(request, "if-unmodified-since")
    if unmodified is not None and modified_s is not None and modified_s > unmodified:
        failed = True
    if failed or (not_modified and not read):
        raise BatchError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
    if not_modified:
        raise NotModified()


def _etags(header: str) -> set[str]:
    return {item.strip().removeprefix("W/").strip('"') for item in header.split(",") if item.strip()}


def not_modified_response(doc: Mapping[str, Any]) -> Response:
    """304 with the resource's ETag and Last-Modified."""
    headers = {}
    if isinstance(doc.get("eTag"), str):
        headers["ETag"] = str(doc["eTag"])
    if isinstance(doc.get("lastModified"), str):
        headers["Last-Modified"] = http_date(str(doc["lastModified"]))
    return Response(b"", status_code=304, headers=headers)


def entity_response(request: Request, doc: Mapping[str, Any], odata_type: str) -> Response:
    """200 with one resource: ``odata.metadata`` first, ``$select`` applied, ETag / Last-Modified headers;
    conditional headers are honoured (304 / 412)."""
    try:
        check_preconditions(request, doc, read=True)
    except NotModified:
        return not_modified_response(doc)
    paths = parse_select(request.query_params.get("$select"))
    body: Doc = {"odata.metadata": metadata_url(base_url(request), f"{odata_type}/@Element")}
    body.update(select_fields(doc, paths))
    return batch_json(body, etag=_opt_str(doc.get("eTag")), last_modified=_opt_str(doc.get("lastModified")))


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def list_page(
    request: Request,
    odata_type: str,
    source: Sequence[Mapping[str, Any]] | Callable[[str | None, int], Sequence[Mapping[str, Any]]],
    *,
    filter_properties: Collection[str] | None = None,
    key: Callable[[Mapping[str, Any]], str] | None = None,
) -> Response:
    """One page of a list operation with ``$filter``, ``$select``, ``maxresults`` and ``odata.nextLink``.

    Args:
        request: the list request.
        odata_type: the metadata fragment and the key of ``FILTER_PROPERTIES`` (``pools``, ``tasks``, ...).
        source: the whole list, or ``fetch(after_key, limit)`` reading lazily (see ``odata.paginate``).
        filter_properties: the filterable properties (default: ``FILTER_PROPERTIES[odata_type]``).
        key: the paging key of a document (default: lower-cased ``id``).
    """
    query = request.query_params
    allowed = filter_properties if filter_properties is not None else FILTER_PROPERTIES.get(odata_type)
    predicate = parse_filter(query.get("$filter"), allowed)
    paths = parse_select(query.get("$select"))
    maxresults = parse_maxresults(query.get("maxresults"))
    if key is None:
        page, token = paginate(source, maxresults, query.get("$skiptoken"), predicate=predicate)
    else:
        page, token = paginate(source, maxresults, query.get("$skiptoken"), key=key, predicate=predicate)
    values = [select_fields(doc, paths) for doc in page]
    return list_response(base_url(request), odata_type, values, next_link(request, token))
