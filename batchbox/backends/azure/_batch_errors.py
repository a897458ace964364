"""Translation of azure-core / azure-batch errors into batchbox's error hierarchy.

A Batch error body is ``{"code": ..., "message": {"value": ...}, "values": [{"key": ..., "value": ...}]}``; the
15.x SDK raises it as an ``HttpResponseError`` whose ``.error`` carries the code, message and values (``error_code``
stays ``None``). We map it to a core error naming the resource the code is about (``PoolNotFound`` -> pool,
``TaskExists`` -> task, ``FileNotFound`` -> file, ...).

Everything quoted (messages, property values) is cut to one line and passed through :func:`batchbox.core.redact.redact`
(SAS signatures, keys, authorization headers).
The SDK exception is kept as ``__cause__`` only when neither it nor anything it chains shows a SAS signature or a
known secret: a rejected resource file URL, for one, is quoted in full by the SDK's own message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from batchbox.backends.azure._error_chains import raise_translated
from batchbox.backends.azure._network_reasons import network_reason
from batchbox.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    BatchboxError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceBusyError,
)
from batchbox.core.redact import redact

__all__ = [
    "BATCH_SERVICE",
    "BatchErrorInfo",
    "ServiceKeepsFailing",
    "batch_error_info",
    "describe_batch_error_json",
    "read_error_body",
    "refused_tasks_error",
    "safe_endpoint",
    "translate_add_tasks_error",
    "translate_batch_error",
    "translated_batch_errors",
]

BATCH_SERVICE = "Batch service"

_MAX_QUOTED = 300
_BUSY_STATUSES = (429, 503)
# Details the service adds to authentication failures quote the request's signature: never repeat them.
_AUTH_STATUSES = (401, 403)
# The resource each "not found" / "exists" code is about; other codes name the resource the call was about.
_NOT_FOUND_KINDS = {
    "PoolNotFound": "pool",
    "JobNotFound": "job",
    "TaskNotFound": "task",
    "NodeNotFound": "node",
    "FileNotFound": "file",
    "JobScheduleNotFound": "job schedule",
    "NodeUserNotFound": "node user",
    "CertificateNotFound": "certificate",
    "ApplicationNotFound": "application",
}
_EXISTS_KINDS = {
    "PoolExists": "pool",
    "JobExists": "job",
    "TaskExists": "task",
    "JobScheduleExists": "job schedule",
    "NodeUserExists": "node user",
    "CertificateExists": "certificate",
    "JobWithSameIdExists": "job",
    "JobScheduleWithSameIdExists": "job schedule",
}


def _quote(text: str | None) -> str:
    """One safe line of service-provided text: first line, no request id, signatures redacted, bounded length."""
    if not text:
        return ""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    line = redact(line)
    if len(line) > _MAX_QUOTED:
        line = line[: _MAX_QUOTED - 3] + "..."
    return line


def safe_endpoint(endpoint: str) -> str:
    """The endpoint as shown in messages: scheme, host, port and path, without credentials or query."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return "<endpoint>"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) or "<endpoint>"


@dataclass(frozen=True)
class BatchErrorInfo:
    """What a Batch error response says, already redacted: HTTP status, Batch code, message and values."""

    status: int | None
    code: str | None
    message: str
    values: Mapping[str, str] = field(default_factory=dict)

    def detail(self, *, with_values: bool = True) -> str:
        """``Code: message (Key=value, ...)`` for a message; values are left out for authentication failures."""
        first = self.code or (str(self.status) if self.status else "")
        head = ": ".join(part for part in (first, self.message) if part)
        if with_values and self.values:
            head += " (" + ", ".join(f"{key}={value}" for key, value in self.values.items()) + ")"
        return head or "no details"


def _info_from_json(status: int | None, error: Mapping[str, Any]) -> BatchErrorInfo:
    """Read a Batch error body (REST JSON, or the SDK's ``BatchError`` model, a mapping of it) defensively."""
    message = error.get("message")
    text = message.get("value") if isinstance(message, Mapping) else message
    values: dict[str, str] = {}
    for item in error.get("values") or ():
        if isinstance(item, Mapping) and item.get("key"):
            values[str(item["key"])] = _quote(str(item.get("value") or ""))
    code = error.get("code")
    return BatchErrorInfo(status, str(code) if code else None, _quote(text if isinstance(text, str) else None), values)


def batch_error_info(exc: BaseException) -> BatchErrorInfo:
    """The Batch code, message and values of an SDK error (all empty when the response had no body, e.g. HEAD)."""
    status = getattr(exc, "status_code", None)
    status = int(status) if isinstance(status, int) else None
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        values = {
            str(detail.code): _quote(str(detail.message or ""))
            for detail in (getattr(error, "details", None) or ())
            if getattr(detail, "code", None)
        }
        return BatchErrorInfo(status, str(error.code), _quote(getattr(error, "message", None)), values)
    model = getattr(exc, "model", None)
    if isinstance(model, Mapping) and model.get("code"):
        return _info_from_json(status, model)
    return BatchErrorInfo(status, None, "")


def describe_batch_error_json(error: Mapping[str, Any]) -> BatchErrorInfo:
    """The same for the REST JSON ``error`` of a per-task answer of ``addtaskcollection``."""
    return _info_from_json(None, error)


def _resource_name(kind: str, about: Sequence[tuple[str, str]], values: Mapping[str, str]) -> str:
    for known_kind, name in reversed(about):
        if known_kind == kind:
            return name
    for key, value in values.items():
        if key.lower() == kind.replace(" ", "") + "id" and value:
            return value
    return about[-1][1]


def _label(about: Sequence[tuple[str, str]]) -> str:
    """``task 't1' of job 'j1'``: the primary resource last, its parents after it."""
    parts = [f"{kind} '{name}'" for kind, name in reversed(about)]
    return " of ".join(parts)


def translate_batch_error(exc: BaseException, *, endpoint: str, about: Sequence[tuple[str, str]]) -> BatchboxError:
    """Map one SDK error to a batchbox error with a one-line, secret-free message.

    Args:
        exc: what the SDK raised.
        endpoint: the Batch account URL (shown without credentials or query).
        about: the resources the call was about, outermost first, e.g. ``[("job", "j1"), ("task", "t1")]``;
            the last one is named when the error code does not say which resource it is about.

    Returns:
        ResourceNotFoundError (404; ``kind`` from the code: pool, job, task, node, file), ResourceExistsError
        (409 ``*Exists``), AuthenticationError (401, 403, token failures), ServiceBusyError (429 and 503, after
        the retry policy gave up), BackendUnavailableError (no answer, other 5xx), InvalidRequestError (other
        4xx, with the Batch code, message and values), else BatchboxError.
    """
    if not about:
        raise ValueError("about must name at least one resource")
    where = safe_endpoint(endpoint)
    kind, name = about[-1]
    label = _label(about)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return BackendUnavailableError(BATCH_SERVICE, f"no answer at {where} ({network_reason(exc)})")
    if not isinstance(exc, HttpResponseError):
        return BatchboxError(f"Batch request about {label} failed ({type(exc).__name__}: {_quote(str(exc))})")
    info = batch_error_info(exc)
    status = info.status or 0
    code = info.code or ""
    if status in _AUTH_STATUSES or (status == 0 and isinstance(exc, ClientAuthenticationError)):
        why = info.detail(with_values=False) if status else _quote(str(exc)) or type(exc).__name__
        return AuthenticationError(
            kind, name, f"the Batch service at {where} refused the credential for {label} ({why})"
        )
    if status == 404:
        found_kind = _NOT_FOUND_KINDS.get(code)
        if found_kind:
            found_name = _resource_name(found_kind, about, info.values)
            owners = [item for item in about if item[0] != "file"]
            if found_kind == "file" and owners:
                return ResourceNotFoundError(
                    "file", found_name, f"file '{found_name}' of {_label(owners)} does not exist"
                )
            return ResourceNotFoundError(found_kind, found_name)
        return ResourceNotFoundError(kind, name, f"{label} does not exist")
    if status == 409 and code:
        exists_kind = _EXISTS_KINDS.get(code)
        if exists_kind:
            return ResourceExistsError(exists_kind, _resource_name(exists_kind, about, info.values))
    if status in _BUSY_STATUSES:
        return ServiceBusyError(
            BATCH_SERVICE,
            f"{where} kept answering {status} for {label} until batchbox stopped retrying: {info.detail()}",
        )
    if status >= 500:
        return BackendUnavailableError(BATCH_SERVICE, f"{where} answered {status} for {label}: {info.detail()}")
    if 400 <= status < 500:
        return InvalidRequestError(kind, name, f"the Batch service rejected the request about {label}: {info.detail()}")
    return BatchboxError(f"Batch request about {label} failed ({status or type(exc).__name__}: {info.detail()})")


class ServiceKeepsFailing(Exception):
    """Adding tasks gave up: some tasks kept coming back ``serverError`` (or unanswered, or their answer was lost)
    for longer than the retry budget."""


def read_error_body(pipeline_response: Any) -> None:
    """A ``raw_response_hook`` for calls made with ``stream=True``: reads an error answer's body, so that the
    SDK can parse its Batch code and message into the error it raises."""
    response = pipeline_response.http_response
    if int(response.status_code) >= 400:
        response.read()


def translate_add_tasks_error(
    exc: BaseException, *, endpoint: str, job_id: str, budget: float | None = None
) -> BatchboxError:
    """One core error for an ``addtaskcollection`` request that failed as a whole.

    Args:
        exc: what the request raised (an SDK error, or :class:`ServiceKeepsFailing`).
        endpoint: the Batch account URL.
        job_id: the job the tasks were for.
        budget: the retry budget, in seconds (named in the message of a request that kept failing).
    """
    tried = f" (retried for {budget:.0f} s)" if budget is not None else ""
    if isinstance(exc, ServiceKeepsFailing):
        return BackendUnavailableError(
            BATCH_SERVICE,
            f"{safe_endpoint(endpoint)} kept failing while adding tasks to job '{job_id}'{tried}: {_quote(str(exc))}",
        )
    if isinstance(exc, AzureError):
        info = batch_error_info(exc)
        if info.status == 413:
            return InvalidRequestError(
                "job",
                job_id,
                f"a task for job '{job_id}' is larger than a Batch request may be "
                f"({info.code or 'HTTP 413'}): move big inputs to resource files",
            )
        if info.status is not None and (info.status in _BUSY_STATUSES or info.status >= 500):
            kind = ServiceBusyError if info.status in _BUSY_STATUSES else BackendUnavailableError
            return kind(
                BATCH_SERVICE,
                f"{safe_endpoint(endpoint)} kept answering {info.status} while adding tasks to job '{job_id}'"
                f"{tried}: {info.detail()}",
            )
        return translate_batch_error(exc, endpoint=endpoint, about=[("job", job_id)])
    return BatchboxError(f"adding tasks to job '{job_id}' failed ({type(exc).__name__}: {_quote(str(exc))})")


def refused_tasks_error(
    refused: Mapping[str, Mapping[str, Any]], *, job_id: str, order: Sequence[str]
) -> BatchboxError:
    """One core error naming the first refused task in submission order and counting the others.

    Args:
        refused: the REST JSON ``error`` of each refused task, keyed by lower-cased task id.
        job_id: the job the tasks were for.
        order: the submitted task ids, in submission order.
    """
    named = sorted((index, task_id) for index, task_id in enumerate(order) if task_id.lower() in refused)
    if not named:
        return BatchboxError(f"adding tasks to job '{job_id}' failed")
    task_id = named[0][1]
    info = describe_batch_error_json(refused[task_id.lower()])
    message = f"the Batch service refused task '{task_id}' of job '{job_id}': {info.detail()}"
    if len(named) > 1:
        others = ", ".join(name for _, name in named[1:6]) + (" ..." if len(named) > 6 else "")
        message += f"; {len(named) - 1} more refused: {others}"
    return InvalidRequestError("task", task_id, message)


@contextmanager
def translated_batch_errors(
    *,
    endpoint: str,
    about: Sequence[tuple[str, str]],
    ignore_status: Collection[int] = (),
    ignore_codes: Collection[str] = (),
    secrets: Collection[str] = (),
) -> Iterator[None]:
    """Run a block, re-raising SDK errors as batchbox errors (see :func:`translate_batch_error`).

    Args:
        endpoint: the Batch account URL.
        about: the resources the block is about, outermost first.
        ignore_status: HTTP statuses to swallow (e.g. 404 for an idempotent delete).
        ignore_codes: Batch error codes to swallow (e.g. ``JobCompleted`` when terminating).
        secrets: strings that must never reach a traceback (the account key).
    """
    try:
        yield
    except AzureError as exc:
        if isinstance(exc, HttpResponseError):
            info = batch_error_info(exc)
            if info.status in ignore_status or (info.code is not None and info.code in ignore_codes):
                return
        raise_translated(translate_batch_error(exc, endpoint=endpoint, about=about), exc, secrets)
