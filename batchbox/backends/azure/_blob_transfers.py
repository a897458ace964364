"""Many blob transfers at once: the SDK's asyncio client (on aiohttp) driven by one event loop in a private thread.

Staging many small files is bound by per-request CPU, in the client as much as in the service (Azurite serves on
one JavaScript thread). A thread pool spends part of the client's share handing the GIL between threads that each
run the SDK's pipeline; one event loop runs the same pipeline without those hand-offs (bench/RESULTS.md, benchmark 4,
has the figures side by side).

The loop runs in a thread of its own, so callers may themselves be inside an event loop. A synchronous Azure AD
``TokenCredential`` is adapted to the async protocol by fetching tokens in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.credentials import AccessToken, AzureNamedKeyCredential, AzureSasCredential, TokenCredential

if TYPE_CHECKING:  # aiohttp and the SDK's aio package cost ~150 ms to import: only a transfer loads them
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

__all__ = ["BlobTransfers", "TransferWork"]

_T = TypeVar("_T")
_R = TypeVar("_R")

TransferWork = Callable[["AsyncBlobServiceClient", _T], Awaitable[_R]]
"""One transfer: given the async service client and one item, move it and return its result."""


class _AsyncTokenAdapter:
    """The async token protocol over a synchronous azure-identity credential."""

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> _AsyncTokenAdapter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


@dataclass(frozen=True)
class BlobTransfers:
    """Runs bounded batches of async transfers against one blob endpoint.

    Attributes:
        endpoint: the account's blob endpoint (no query string).
        credential: the same credential the synchronous client uses.
        api_version: the x-ms-version to send (None: the SDK's).
        retry_total / retry_backoff: linear retries, as the synchronous client's.
        connection_timeout / read_timeout: seconds, per attempt.
        use_env_proxies: honour ``HTTP(S)_PROXY`` (off for loopback endpoints).
        ca_bundle: the CA certificate to verify the endpoint with (None: the system's).
    """

    endpoint: str
    credential: str | AzureNamedKeyCredential | AzureSasCredential | TokenCredential = field(repr=False)
    api_version: str | None
    retry_total: int
    retry_backoff: int
    connection_timeout: float
    read_timeout: float
    use_env_proxies: bool
    ca_bundle: str | None = None

    def run(
        self,
        work: Callable[[Any, _T], Awaitable[_R]],
        items: Sequence[_T],
        max_concurrency: int,
        *,
        opener: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> list[_R]:
        """Apply ``work`` to every item, at most ``max_concurrency`` at a time; results in item order.

        ``work`` gets the SDK's async service client, or what ``opener`` opens instead (e.g. a lighter pipeline),
        once for all items. The first error (in item order among those that failed) is raised once the transfers
        in flight have been cancelled; transfers not yet started do not start.
        """
        if not items:
            return []
        opened = opener or self._client
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchbox-blob") as loop_thread:
            return loop_thread.submit(asyncio.run, self._run_all(opened, work, items, max_concurrency)).result()

    def _client(self) -> AsyncBlobServiceClient:
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
        from azure.storage.blob.aio import LinearRetry as AsyncLinearRetry

        credential: Any = self.credential
        if not isinstance(credential, str | AzureNamedKeyCredential | AzureSasCredential):
            credential = _AsyncTokenAdapter(credential)
        return AsyncBlobServiceClient(
            self.endpoint,
            credential=credential,
            api_version=self.api_version,
            retry_policy=AsyncLinearRetry(
                backoff=self.retry_backoff,
                retry_total=self.retry_total,
                random_jitter_range=1 if self.retry_backoff >= 2 else 0,
            ),
            transport=AioHttpTransport(
                connection_timeout=self.connection_timeout,
                read_timeout=self.read_timeout,
                use_env_settings=self.use_env_proxies,
                connection_verify=self.ca_bundle or True,
            ),
        )

    async def _run_all(
        self,
        opener: Callable[[], AbstractAsyncContextManager[Any]],
        work: Callable[[Any, _T], Awaitable[_R]],
        items: Sequence[_T],
        limit: int,
    ) -> list[_R]:
        async with opener() as client:
            gate = asyncio.Semaphore(limit)

            async def one(item: _T) -> _R:
                async with gate:
                    return await work(client, item)

            tasks = [asyncio.ensure_future(one(item)) for item in items]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in tasks:
                    error = task.exception() if task.done() and not task.cancelled() else None
                    if error is not None:
                        raise error
                return [task.result() for task in tasks]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
