"""Blob storage on azure-storage-blob: one implementation for Azure Storage accounts and for Azurite.

The client is tuned for both: against a plain-http or loopback endpoint (Azurite) it pins an API version the
emulator knows and lets SAS allow http. Retries and timeouts are bounded so a dead endpoint fails with
:class:`~batchbox.core.errors.BackendUnavailableError` instead of hanging: with the defaults (3 retries 2 s
apart, 4 s to connect) a refused connection fails in under 10 s and an unroutable host in under 30 s. A server
that accepts connections but never answers is bounded by ``read_timeout`` per attempt instead.

Azure Storage refuses to create a container for a while (30 s or more) after a container of the same name was
deleted (``409 ContainerBeingDeleted``); :meth:`BlobStorage.create_container` waits and tries again, for at most
``container_delete_wait`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import (
    BlobServiceClient,
    LinearRetry,
)
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from batchbox.backends.azure._blob_transfers import BlobTransfers
from batchbox.backends.azure._sas_signing import SAS_START_SKEW, SasSigner
from batchbox.backends.azure._sas_transfers import SMALL_BLOB, SasTransfers
from batchbox.backends.azure._storage_errors import (
    install_sas_redaction,
    storage_error_code,
    strip_query,
    translated_errors,
)
from batchbox.core.errors import ConfigurationError, ResourceError, ResourceExistsError, ResourceNotFoundError
from batchbox.core.polling import poll_until
from batchbox.core.storage import (
    BlobInfo,
    ContainerPermission,
    ProgressCallback,
    StorageBackend,
    UploadItem,
    validate_container_name,
)
from batchbox.core.transfers import (
    already_downloaded,
    check_max_concurrency,
    checked_uploads,
    download_plan,
    partial_path,
)

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

__all__ = [
    "AZURITE_API_VERSION",
    "DEFAULT_TRANSFER_CONCURRENCY",
    "SAS_START_SKEW",
    "BlobStorage",
    "StorageCredential",
]

StorageCredential = str | AzureNamedKeyCredential | AzureSasCredential | TokenCredential
"""An account key, a named key, a SAS (no SAS generation then) or an Azure AD token credential."""

AZURITE_API_VERSION = "2025-11-05"
"""The x-ms-version pinned for Azurite (accepted by Azurite 3.35 to 3.37 without --skipApiVersionCheck)."""


_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

DEFAULT_TRANSFER_CONCURRENCY = 32
"""Blob transfers in flight by default: over a network each request waits a round trip, so more in flight means
more overlap (bench/RESULTS.md, staging over a simulated network); on loopback 32 costs no more than 8."""

_WRITER_THREADS = 2
_FAST_PATH_SAS_LIFETIME = timedelta(hours=24)
"""Lifetime of the container SAS one upload or download signs for itself (it never leaves the process)."""
_BEING_DELETED = "ContainerBeingDeleted"
_BEING_DELETED_POLL = 5.0

log = logging.getLogger(__name__)


def _key_or_token(credential: StorageCredential) -> tuple[str | None, TokenCredential | None]:
    """The account key (signing SAS with it) or the token credential (signing them with a user delegation key)
    of ``credential``; neither for a SAS credential."""
    if isinstance(credential, str):
        return credential, None
    if isinstance(credential, AzureNamedKeyCredential):
        return credential.named_key.key, None
    if isinstance(credential, AzureSasCredential):
        return None, None
    return None, credential


class BlobStorage(StorageBackend):
    """:class:`~batchbox.core.storage.StorageBackend` on Azure Blob Storage or Azurite.

    Args:
        account_url: the blob endpoint, e.g. ``https://ACCOUNT.blob.core.windows.net`` or
            ``http://127.0.0.1:10000/devstoreaccount1``.
        credential: an account key, an ``AzureNamedKeyCredential``, an ``AzureSasCredential`` or an azure-identity
            ``TokenCredential``. With a token credential, SAS are signed with a user delegation key.
        api_version: the x-ms-version to send; by default :data:`AZURITE_API_VERSION` for plain-http or loopback
            endpoints and the SDK's newest otherwise.
        retry_total: retries per request (connection failures, 5xx, timeouts).
        retry_backoff: seconds between retries (about one second of jitter is added when it is 2 or more).
        connection_timeout: seconds to wait for a TCP connection.
        read_timeout: seconds to wait for each read from the socket.
        pool_size: HTTP connections kept per host (bounds useful ``max_concurrency``).
        container_delete_wait: seconds :meth:`create_container` keeps trying while the service answers
            ``ContainerBeingDeleted``.
        ca_bundle: a CA certificate (PEM file) to verify the endpoint's TLS certificate with, instead of the
            system's (the local stack's CA with ``batchbox local up --tls``).
    """

    def __init__(
        self,
        account_url: str,
        credential: StorageCredential,
        *,
        api_version: str | None = None,
        retry_total: int = 3,
        retry_backoff: int = 2,
        connection_timeout: float = 4.0,
        read_timeout: float = 60.0,
        pool_size: int = 32,
        container_delete_wait: float = 120.0,
        ca_bundle: str | None = None,
    ) -> None:
        parts = urlsplit(account_url)
        self._container_delete_wait = container_delete_wait
        self._owned_credential: TokenCredential | None = None
        self._local = parts.scheme == "http" or (parts.hostname or "") in _LOOPBACK_HOSTS
        self._endpoint = strip_query(account_url).rstrip("/")
        self._account_key, self._token_credential = _key_or_token(credential)
        self._sas_credential = credential if isinstance(credential, AzureSasCredential) else None
        self._retry_total, self._retry_backoff = retry_total, retry_backoff
        self._connection_timeout, self._read_timeout = connection_timeout, read_timeout
        install_sas_redaction()
        session = _http_session(pool_size, use_env_proxies=not self._local)
        try:
            self._client = BlobServiceClient(
                self._endpoint,
                credential=credential,
                api_version=api_version or (AZURITE_API_VERSION if self._local else None),
                retry_policy=LinearRetry(
                    backoff=retry_backoff, retry_total=retry_total, random_jitter_range=1 if retry_backoff >= 2 else 0
                ),
                connection_timeout=connection_timeout,
                read_timeout=read_timeout,
                session=session,
                connection_verify=ca_bundle or True,
            )
        except ValueError as exc:  # e.g. no account name in the URL, unknown api_version
            session.close()
            raise ConfigurationError("blob storage", str(exc).splitlines()[0]) from None
        self._transfers = BlobTransfers(
            self._endpoint,
            credential,
            api_version=self._client.api_version,
            retry_total=retry_total,
            retry_backoff=retry_backoff,
            connection_timeout=connection_timeout,
            read_timeout=read_timeout,
            use_env_proxies=not self._local,
            ca_bundle=ca_bundle,
        )
        self._account_name = self._client.account_name or ""
        self._secrets = tuple(s for s in (self._account_key,) if s)
        self._signer = SasSigner(
            self._client,
            self._account_name,
            self._account_key,
            self._token_credential,
            self.sas_protocol,
            lambda container: self._errors(container),
        )

    @classmethod
    def from_connection_string(cls, conn_str: str, **options: Any) -> BlobStorage:
        """Build from a connection string (account key or SAS; ``UseDevelopmentStorage=true`` means Azurite).

        Args:
            conn_str: the connection string.
            options: keyword arguments of :class:`BlobStorage` (``retry_total``, ``connection_timeout``, ...).

        Raises:
            ConfigurationError: the connection string is malformed or carries no credential.
        """
        try:
            parsed = BlobServiceClient.from_connection_string(conn_str)
        except ValueError as exc:
            raise ConfigurationError("connection string", str(exc).splitlines()[0]) from None
        with parsed:
            url = parsed.url
            account_name = getattr(parsed.credential, "account_name", None)
            account_key = getattr(parsed.credential, "account_key", None)
        credential: StorageCredential
        if isinstance(account_name, str) and isinstance(account_key, str):
            credential = AzureNamedKeyCredential(account_name, account_key)
        elif urlsplit(url).query:
            credential = AzureSasCredential(urlsplit(url).query)
        else:
            raise ConfigurationError("connection string", "has neither AccountKey nor SharedAccessSignature")
        return cls(strip_query(url), credential, **options)

    @classmethod
    def from_default_azure_credential(cls, account_url: str, **options: Any) -> BlobStorage:
        """Azure AD authentication through azure-identity's ``DefaultAzureCredential`` (closed with this object).

        Args:
            account_url: the blob endpoint.
            options: keyword arguments of :class:`BlobStorage`.
        """
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        try:
            storage = cls(account_url, credential, **options)
        except BaseException:
            credential.close()
            raise
        storage._owned_credential = credential
        return storage

    @property
    def account_name(self) -> str:
        return self._account_name

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint, without any query string."""
        return self._endpoint

    @property
    def api_version(self) -> str:
        """The x-ms-version this client sends."""
        return str(self._client.api_version)

    def _errors(self, container: str | None = None, blob: str | None = None) -> AbstractContextManager[None]:
        return translated_errors(
            endpoint=self._endpoint, account=self._account_name, container=container, blob=blob, secrets=self._secrets
        )

    # -- containers -------------------------------------------------------------------------------------------

    def create_container(self, container: str) -> None:
        """Create ``container`` (nothing when it exists); while a container of that name is being deleted, wait
        and try again, for at most ``container_delete_wait`` seconds.

        Raises:
            WaitTimeoutError: the container was still being deleted after ``container_delete_wait`` seconds.
        """
        waited = False

        def created() -> bool:
            nonlocal waited
            with self._container_errors(container, except_about_it=ResourceExistsError):
                try:
                    self._client.create_container(container)
                except HttpResponseError as exc:
                    if storage_error_code(exc) != _BEING_DELETED:
                        raise
                    if not waited:
                        log.info("container %s is being deleted; waiting to create it again", container)
                    waited = True
                    return False
            return True

        poll_until(
            created,
            bool,
            timeout=self._container_delete_wait,
            poll_interval=_BEING_DELETED_POLL,
            timeout_message=lambda _created: (
                f"container '{container}' was still being deleted after {self._container_delete_wait:.0f} s "
                f"(409 {_BEING_DELETED}): try again later"
            ),
        )

    def delete_container(self, container: str) -> None:
        with self._container_errors(container, except_about_it=ResourceNotFoundError):
            self._client.delete_container(container)

    @contextmanager
    def _container_errors(self, container: str, *, except_about_it: type[ResourceError]) -> Iterator[None]:
        """Translated errors of a container call, but none of type ``except_about_it`` about the container itself."""
        validate_container_name(container)
        try:
            with self._errors(container):
                yield
        except except_about_it as exc:
            if exc.kind != "container":
                raise

    # -- blobs --------------------------------------------------------------------------------------------------

    def upload_files(
        self,
        container: str,
        items: Sequence[UploadItem],
        *,
        max_concurrency: int = DEFAULT_TRANSFER_CONCURRENCY,
        overwrite: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        items = checked_uploads(container, items, max_concurrency)
        sizes = {item.blob_name: item.path.stat().st_size for item in items}
        fast = self._fast_path(container, [ContainerPermission.CREATE, ContainerPermission.WRITE])
        small = [item for item in items if fast is not None and sizes[item.blob_name] <= SMALL_BLOB]
        large = [item for item in items if fast is None or sizes[item.blob_name] > SMALL_BLOB]
        per_blob = _per_transfer_concurrency(max_concurrency, len(large))

        def done(item: UploadItem) -> str:
            if progress is not None:
                progress(item.blob_name, sizes[item.blob_name])
            return item.blob_name

        async def put(pipeline: Any, item: UploadItem) -> str:
            assert fast is not None
            with self._errors(container, item.blob_name):
                await fast.put(pipeline, item.blob_name, item.path.read_bytes(), overwrite=overwrite)
            return done(item)

        async def upload(client: AsyncBlobServiceClient, item: UploadItem) -> str:
            with self._errors(container, item.blob_name), open(item.path, "rb") as stream:
                await client.get_blob_client(container, item.blob_name).upload_blob(
                    stream, length=sizes[item.blob_name], overwrite=overwrite, max_concurrency=per_blob
                )
            return done(item)

        if fast is not None:
            self._transfers.run(put, small, max_concurrency, opener=fast.pipeline)
        self._transfers.run(upload, large, max_concurrency)
        return [item.blob_name for item in items]

    def _fast_path(self, container: str, permissions: Sequence[ContainerPermission]) -> SasTransfers | None:
        """One-request transfers of small blobs under a container SAS (``_sas_transfers``): with an account key
        (signed here) or a SAS credential (used as given); None with an Azure AD credential, which keeps the
        SDK's path."""
        if self._sas_credential is not None:
            sas = self._sas_credential.signature.lstrip("?")
        elif self._account_key is not None:
            sas = self._signer.container_sas(container, permissions, _FAST_PATH_SAS_LIFETIME)
        else:
            return None
        return SasTransfers(
            self.container_url(container),
            sas,
            api_version=self.api_version,
            retry_total=self._retry_total,
            retry_backoff=self._retry_backoff,
            connection_timeout=self._connection_timeout,
            read_timeout=self._read_timeout,
            use_env_proxies=not self._local,
            ca_bundle=self._transfers.ca_bundle,
        )

    def upload_bytes(self, container: str, blob_name: str, data: bytes, *, overwrite: bool = True) -> None:
        validate_container_name(container)
        with self._errors(container, blob_name):
            self._client.get_blob_client(container, blob_name).upload_blob(data, overwrite=overwrite)

    def list_blobs(self, container: str, prefix: str | None = None) -> list[BlobInfo]:
        validate_container_name(container)
        with self._errors(container):
            return [
                BlobInfo(name=blob.name, size=int(blob.size or 0), last_modified=blob.last_modified)
                for blob in self._client.get_container_client(container).list_blobs(name_starts_with=prefix)
            ]

    def read_blob(self, container: str, blob_name: str) -> bytes:
        validate_container_name(container)
        with self._errors(container, blob_name):
            return self._client.get_blob_client(container, blob_name).download_blob().readall()

    def download_container(
        self,
        container: str,
        destination: Path,
        *,
        prefix: str | None = None,
        max_concurrency: int = DEFAULT_TRANSFER_CONCURRENCY,
        skip_existing: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[Path]:
        check_max_concurrency(max_concurrency)
        validate_container_name(container)
        fast = self._fast_path(container, [ContainerPermission.READ, ContainerPermission.LIST])
        if fast is None:
            blobs = self.list_blobs(container, prefix)
        else:

            async def listing(pipeline: Any, _: None) -> list[BlobInfo]:
                with self._errors(container):
                    return await fast.list(pipeline, prefix)

            blobs = self._transfers.run(listing, [None], 1, opener=fast.pipeline)[0]
        plan = download_plan(blobs, destination, container)
        wanted = [entry for entry in plan if not (skip_existing and already_downloaded(entry[1], entry[0]))]
        small = [entry for entry in wanted if fast is not None and entry[0].size <= SMALL_BLOB]
        large = [entry for entry in wanted if fast is None or entry[0].size > SMALL_BLOB]
        per_blob = _per_transfer_concurrency(max_concurrency, len(large))
        folders_made: set[Path] = set()  # the transfers share one event loop: no lock needed

        def part_for(target: Path) -> Path:
            if target.parent not in folders_made:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders_made.add(target.parent)
            return partial_path(target)

        def done(blob: BlobInfo, target: Path) -> Path:
            if progress is not None:
                progress(blob.name, blob.size)
            return target

        async def get(pipeline: Any, entry: tuple[BlobInfo, Path]) -> Path:
            assert fast is not None
            blob, target = entry
            with self._errors(container, blob.name):
                data = await fast.get(pipeline, blob.name)
            # Creating a file is mostly kernel time: in a writer thread it overlaps the loop's requests.
            await asyncio.get_running_loop().run_in_executor(writers, _write_atomically, part_for(target), data, target)
            return done(blob, target)

        async def download(client: AsyncBlobServiceClient, entry: tuple[BlobInfo, Path]) -> Path:
            blob, target = entry
            part = part_for(target)
            try:
                with self._errors(container, blob.name), open(part, "wb") as sink:
                    stream = await client.get_blob_client(container, blob.name).download_blob(max_concurrency=per_blob)
                    await stream.readinto(sink)
                os.replace(part, target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            return done(blob, target)

        if fast is not None:
            with ThreadPoolExecutor(max_workers=_WRITER_THREADS, thread_name_prefix="batchbox-write") as writers:
                self._transfers.run(get, small, max_concurrency, opener=fast.pipeline)
        self._transfers.run(download, large, max_concurrency)
        return [target for _, target in plan]

    # -- URLs and SAS -------------------------------------------------------------------------------------------

    def blob_url(self, container: str, blob_name: str) -> str:
        validate_container_name(container)
        return strip_query(self._client.get_blob_client(container, blob_name).url)

    def container_url(self, container: str) -> str:
        validate_container_name(container)
        return strip_query(self._client.get_container_client(container).url)

    @property
    def sas_protocol(self) -> str:
        """The protocols SAS allow: ``https,http`` for a plain-http endpoint (Azurite), else ``https``."""
        return "https,http" if urlsplit(self._endpoint).scheme == "http" else "https"

    def blob_sas_url(self, container: str, blob_name: str, *, expiry: datetime | timedelta) -> str:
        return f"{self.blob_url(container, blob_name)}?{self._signer.blob_sas(container, blob_name, expiry)}"

    def container_sas_url(
        self,
        container: str,
        permissions: Sequence[ContainerPermission],
        *,
        expiry: datetime | timedelta,
    ) -> str:
        return f"{self.container_url(container)}?{self._signer.container_sas(container, permissions, expiry)}"

    def close(self) -> None:
        """Close the HTTP session (and the credential this object created)."""
        self._client.close()
        if self._owned_credential is not None:
            owned, self._owned_credential = self._owned_credential, None
            close = getattr(owned, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> BlobStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _write_atomically(part: Path, data: bytes, target: Path) -> None:
    """Write ``data`` to ``part``, then rename it to ``target`` (no partial ``target`` is ever seen)."""
    try:
        part.write_bytes(data)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _http_session(pool_size: int, *, use_env_proxies: bool) -> requests.Session:
    """The SDK's HTTP session: ``pool_size`` connections per host, no urllib3 retries (the SDK retries), and no
    environment proxy towards a local endpoint."""
    session = requests.Session()
    session.trust_env = use_env_proxies
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _per_transfer_concurrency(max_concurrency: int, transfers: int) -> int:
    """Connections one blob transfer may use: the pool's share, so a lone large file still goes in parallel."""
    return max(1, max_concurrency // max(1, transfers))
