"""What every portal view needs: the app's store / runtime / config, JSON answers, query parsing, masking.

Portal views read the same ``Store`` the Batch API serves from and call the same ``Runtime``; they answer plain
JSON shaped for the page (never the Batch REST documents as such, never anything sealed). Errors are
:class:`~batchbox.emulator.errors.BatchError`, rendered by the protocol middleware as Batch error bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from batchbox.core.redact import redact
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.errors import invalid_query, not_found
from batchbox.emulator.store import Store

__all__ = [
    "Doc",
    "get_config",
    "get_job",
    "get_pool",
    "get_store",
    "json_answer",
    "masked",
    "masked_doc",
    "pick",
    "query_int",
]

Doc = dict[str, Any]


def get_config(request: Request) -> EmulatorConfig:
    return cast(EmulatorConfig, request.app.state.config)


def get_store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


def get_pool(request: Request, pool_id: str) -> Doc:
    """The pool's document, or 404 ``PoolNotFound``."""
    doc = get_store(request).get_pool(pool_id)
    if doc is None:
        raise not_found("pool", pool_id)
    return doc


def get_job(request: Request, job_id: str) -> Doc:
    """The job's document, or 404 ``JobNotFound``."""
    doc = get_store(request).get_job(job_id)
    if doc is None:
        raise not_found("job", job_id)
    return doc


def json_answer(data: Mapping[str, Any], status: int = 200) -> JSONResponse:
    """A JSON answer (the guard adds ``Cache-Control: no-store`` and the security headers)."""
    return JSONResponse(dict(data), status_code=status)


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; 400 ``InvalidQueryParameterValue`` otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_query(name, raw, "The value must be an integer.") from None
    if not low <= value <= high:
        raise invalid_query(name, raw, f"The value must be between {low} and {high}.")
    return value


def pick(doc: Mapping[str, Any], *names: str) -> Doc:
    """The named fields of ``doc`` that are present."""
    return {name: doc[name] for name in names if name in doc}


def masked(text: object) -> object:
    """A string with SAS signatures and keys masked (``batchbox.core.redact``); anything else unchanged."""
    return redact(text) if isinstance(text, str) else text


def masked_doc(value: Any) -> Any:
    """A copy of a JSON value with every string masked: command lines, resource and output file URLs,
    environment values (SAS signatures, account keys, auth headers)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: masked_doc(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked_doc(item) for item in value]
    return value
