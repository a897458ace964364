"""Translation of azure-core / azure-storage-blob errors into batchbox's error hierarchy.

Messages are built only from safe parts (status, error code, resource names, URLs without their query
string), so ``str()`` and ``repr()`` of what we raise never show an account key or a SAS signature. The SDK
exception is kept as ``__cause__`` only when neither it nor anything it chains mentions a secret: a
connection error's text quotes the request URL, SAS query included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
)
from batchbox.core.redact import SAS_SIGNATURE

__all__ = [
    "SasRedactingFilter",
    "install_sas_redaction",
    "storage_error_code",
    "strip_query",
    "translate_storage_error",
    "translated_errors",
]


def strip_query(url: str) -> str:
    """``url`` without its query string and fragment (where a SAS lives)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _shown(name: str) -> str:
    """``name`` quoted for a one-line message (repr when it holds control characters)."""
    return f"'{name}'" if name.isprintable() else repr(name)


def storage_error_code(exc: HttpResponseError) -> str:
    """The Storage error code of an SDK error (``ContainerBeingDeleted``, ...), as letters and digits only."""
    raw_code = getattr(exc, "error_code", None) or ""
    code = str(getattr(raw_code, "value", raw_code))  # the SDK gives a StorageErrorCode enum or a str
    return re.sub(r"[^A-Za-z0-9]", "", code)[:80]  # the server's text: keep a message one clean line


def _resource(container: str | None, blob: str | None, account: str) -> tuple[str, str, str]:
    """(kind, name, label): the resource an error is about and how a message names it."""
    if blob is not None and container is not None:
        return "blob", blob, f"blob {_shown(blob)} in container '{container}'"
    if container is not None:
        return "container", container, f"container '{container}'"
    return "account", account, f"storage account '{account}'"


def translate_storage_error(
    exc: AzureError,
    *,
    endpoint: str,
    account: str,
    container: str | None = None,
    blob: str | None = None,
) -> BatchboxError:
    """Map one SDK error about a container or blob to a batchbox error with a one-line, secret-free message.

    Args:
        exc: what the SDK raised.
        endpoint: the service URL (its query string is dropped before quoting).
        account: the storage account name, named when the error is about the account.
        container: the container the call was about.
        blob: the blob the call was about.

    Returns:
        ResourceNotFoundError (``kind`` "container" or "blob" from the error code), ResourceExistsError,
        AuthenticationError (401/403 and credential failures), BackendUnavailableError (no answer, 5xx),
        InvalidRequestError (other 4xx), or a plain BatchboxError.
    """
    where = strip_query(endpoint)
    kind, name, label = _resource(container, blob, account)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return BackendUnavailableError("Blob storage", f"{where} did not answer ({network_reason(exc)})")
    if not isinstance(exc, HttpResponseError):
        return BatchboxError(f"blob storage request about {label} failed ({type(exc).__name__})")
    status = exc.status_code or 0
    code = storage_error_code(exc)
    detail = f"{status} {code}".strip() if status else (code or type(exc).__name__)
    if status in (401, 403) or (status == 0 and isinstance(exc, ClientAuthenticationError)):
        return AuthenticationError(kind, name, f"access to {label} was refused ({detail})")
    if status == 404:
        if code == "ContainerNotFound" and container is not None:
            return ResourceNotFoundError("container", container)
        return ResourceNotFoundError(kind, name, f"{label} does not exist")
    if status == 409 and code.endswith("AlreadyExists"):
        if code.startswith("Container") and container is not None:
            return ResourceExistsError("container", container)
        return ResourceExistsError(kind, name, f"{label} already exists")
    if status >= 500:
        return BackendUnavailableError("Blob storage", f"{where} failed with {detail} for {label}")
    if 400 <= status < 500:
        return InvalidRequestError(kind, name, f"the request about {label} was rejected ({detail})")
    return BatchboxError(f"blob storage request about {label} failed ({detail})")


@contextmanager
def translated_errors(
    *,
    endpoint: str,
    account: str,
    container: str | None = None,
    blob: str | None = None,
    secrets: Sequence[str] = (),
) -> Iterator[None]:
    """Run a block, re-raising SDK errors as batchbox errors (see :func:`translate_storage_error`).

    The SDK error becomes ``__cause__`` unless its chain mentions a SAS signature or one of ``secrets``;
    then it is dropped (``from None``) so tracebacks cannot print the secret.
    """
    try:
        yield
    except AzureError as exc:
        error = translate_storage_error(exc, endpoint=endpoint, account=account, container=container, blob=blob)
        raise_translated(error, exc, secrets)


class SasRedactingFilter(logging.Filter):
    """Replaces SAS signature values in a log record's message with ``*****``.

    urllib3 logs each request line, query string included, at DEBUG; this filter keeps ``sig=`` values out.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if "sig=" in message.lower():
            record.msg = SAS_SIGNATURE.sub(r"\1*****", message)
            record.args = None
        return True


_REDACTED_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


def install_sas_redaction() -> None:
    """Attach :class:`SasRedactingFilter` to the urllib3 loggers that quote request URLs (idempotent)."""
    for name in _REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(existing, SasRedactingFilter) for existing in target.filters):
            target.addFilter(SasRedactingFilter())
