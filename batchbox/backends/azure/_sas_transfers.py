"""Small blobs in one request each, under one container SAS: the fast path of staging many files.

A download through the SDK's asyncio ``BlobClient.download_blob`` costs about 1.4 ms of client CPU per blob on the
benchmark machine (py-spy, bench/RESULTS.md benchmark 4): a new ``BlobClient`` and generated client per blob
(12%), a dozen pipeline policies with per-request SharedKey signing, the generated code deserializing every
response header into ``BlobProperties`` and a ``StorageStreamDownloader`` around the body. For a blob that fits
in one request none of that is needed: here a container SAS is made once per transfer, and each blob is one GET
(or one Put Blob) through an azure-core pipeline that holds only a retry policy and the aiohttp transport. Errors
are raised as the SDK raises them (``HttpResponseError`` with the Storage error code), so callers translate them
the same way.

Blobs above :data:`SMALL_BLOB` keep the SDK's path, which splits them into ranges or blocks sent in parallel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from batchbox.core.storage import BlobInfo

if TYPE_CHECKING:  # aiohttp costs ~100 ms to import: only a transfer loads it
    from azure.core.pipeline import AsyncPipeline

__all__ = ["SMALL_BLOB", "SasTransfers"]

SMALL_BLOB = 4 * 1024 * 1024
"""Blobs up to this size move in one request on the fast path (the SDK's block size)."""


@dataclass(frozen=True)
class SasTransfers:
    """Get and put whole small blobs of one container with a SAS.

    Attributes:
        container_url: the container's URL, no query string.
        sas: the SAS query string (no ``?``), with read, or create and write, permission as the transfer needs.
        api_version: the ``x-ms-version`` to send.
        retry_total / retry_backoff: retries per request (connection failures, timeouts, 408, 429, 5xx) and the
            fixed seconds between them.
        connection_timeout / read_timeout: seconds, per attempt.
        use_env_proxies: honour ``HTTP(S)_PROXY`` (off for loopback endpoints).
        ca_bundle: the CA certificate to verify the endpoint with (None: the system's).
    """

    container_url: str
    sas: str = field(repr=False)
    api_version: str
    retry_total: int
    retry_backoff: int
    connection_timeout: float
    read_timeout: float
    use_env_proxies: bool
    ca_bundle: str | None = None

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[AsyncPipeline[Any, Any]]:
        """An azure-core pipeline with retries over one aiohttp session (closed on exit)."""
        from azure.core.pipeline import AsyncPipeline
        from azure.core.pipeline.policies import AsyncRetryPolicy, RetryMode
        from azure.core.pipeline.transport import AioHttpTransport

        retry = AsyncRetryPolicy(
            retry_total=self.retry_total,
            retry_backoff_factor=self.retry_backoff,
            retry_mode=RetryMode.Fixed,
        )
        transport = AioHttpTransport(
            connection_timeout=self.connection_timeout,
            read_timeout=self.read_timeout,
            use_env_settings=self.use_env_proxies,
            connection_verify=self.ca_bundle or True,
        )
        async with AsyncPipeline(transport, policies=[retry]) as pipeline:
            yield pipeline

    def _url(self, blob_name: str) -> str:
        return f"{self.container_url}/{quote(blob_name, safe='/~')}?{self.sas}"

    async def get(self, pipeline: AsyncPipeline[Any, Any], blob_name: str) -> bytes:
        """The whole content of a blob (one GET).

        Raises:
            HttpResponseError: the service refused (``ResourceNotFoundError`` for 404), after retries.
        """
        request = HttpRequest("GET", self._url(blob_name), headers={"x-ms-version": self.api_version})
        response = (await pipeline.run(request)).http_response
        if response.status_code != 200:
            raise _error(response)
        return bytes(response.body())

    async def list(
        self, pipeline: AsyncPipeline[Any, Any], prefix: str | None = None, *, page_size: int = 5000
    ) -> list[BlobInfo]:
        """Every blob of the container (names, sizes, times), ``page_size`` per request, parsed with the standard
        library's XML parser (the SDK's deserializer cost a fifth of a small-file download's CPU).

        Raises:
            HttpResponseError: the service refused (``ResourceNotFoundError`` for a missing container).
        """
        found: list[BlobInfo] = []
        marker = ""
        while True:
            query = f"restype=container&comp=list&maxresults={page_size}"
            if prefix:
                query += f"&prefix={quote(prefix, safe='')}"
            if marker:
                query += f"&marker={quote(marker, safe='')}"
            url = f"{self.container_url}?{query}&{self.sas}"
            request = HttpRequest("GET", url, headers={"x-ms-version": self.api_version})
            response = (await pipeline.run(request)).http_response
            if response.status_code != 200:
                raise _error(response)
            root = ElementTree.fromstring(response.body())
            for blob in root.iterfind("Blobs/Blob"):
                found.append(_blob_info(blob))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return found

    async def put(self, pipeline: AsyncPipeline[Any, Any], blob_name: str, data: bytes, *, overwrite: bool) -> None:
        """Write a block blob in one Put Blob; without ``overwrite`` an existing blob is an error.

        Raises:
            HttpResponseError: the service refused (``ResourceExistsError`` for an existing blob), after retries.
        """
        headers = {
            "x-ms-version": self.api_version,
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
        }
        if not overwrite:
            headers["If-None-Match"] = "*"
        request = HttpRequest("PUT", self._url(blob_name), headers=headers, content=data)
        response = (await pipeline.run(request)).http_response
        if response.status_code != 201:
            raise _error(response)


def _blob_info(element: ElementTree.Element) -> BlobInfo:
    """One ``<Blob>`` of a listing (names with characters XML cannot carry come percent-encoded)."""
    name_element = element.find("Name")
    name = (name_element.text if name_element is not None else None) or ""
    if name_element is not None and name_element.get("Encoded") == "true":
        name = unquote(name)
    modified = element.findtext("Properties/Last-Modified")
    return BlobInfo(
        name=name,
        size=int(element.findtext("Properties/Content-Length") or 0),
        last_modified=parsedate_to_datetime(modified) if modified else None,
    )


def _error(response: Any) -> HttpResponseError:
    """The SDK's exception for a refused request, with the Storage error code of the answer."""
    code = str(response.headers.get("x-ms-error-code") or "")
    status = int(response.status_code)
    kind: type[HttpResponseError] = HttpResponseError
    if status == 404:
        kind = ResourceNotFoundError
    elif status == 409 and code.endswith("AlreadyExists"):
        kind = ResourceExistsError
    error = kind(message=f"{status} {code}".strip(), response=response)
    error.error_code = code or None  # type: ignore[attr-defined]  # what the Storage SDK sets too
    return error
