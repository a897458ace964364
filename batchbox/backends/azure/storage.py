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

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureSasCredential, TokenCredential
from azure.core.exceptions import HttpResponseError

from batchbox.backends.azure._blob_transfers import BlobTransfers
from batchbox.backends.azure._bulk_transfers import DEFAULT_TRANSFER_CONCURRENCY, BulkTransfers
from batchbox.backends.azure._sas_signing import SAS_START_SKEW, SasSigner
from batchbox.backends.azure._sas_transfers import SasTransfers
from batchbox.backends.azure._storage_client import (
    AZURITE_API_VERSION,
    StorageCredential,
    credential_from_connection_string,
    is_local_endpoint,
    key_or_token,
    service_client,
)
from batchbox.backends.azure._storage_errors import (
    install_sas_redaction,
    storage_error_code,
    strip_query,
    translated_errors,
)
from batchbox.core.errors import ResourceError, ResourceExistsError, ResourceNotFoundError
from batchbox.core.polling import poll_until
from batchbox.core.storage import (
    BlobInfo,
    ContainerPermission,
    ProgressCallback,
    StorageBackend,
    UploadItem,
    validate_container_name,
)
from batchbox.core.transfers import already_downloaded, check_max_concurrency, checked_uploads, download_plan

__all__ = [
    "AZURITE_API_VERSION",
    "DEFAULT_TRANSFER_CONCURRENCY",
    "SAS_START_SKEW",
    "BlobStorage",
    "StorageCredential",
]

_FAST_PATH_SAS_LIFETIME = timedelta(hours=24)
"""Lifetime of the container SAS one upload or download signs for itself (it never leaves the process)."""
_BEING_DELETED = "ContainerBeingDeleted"
_BEING_DELETED_POLL = 5.0

log = logging.getLogger(__name__)


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
        self._endpoint = strip_query(account_url).rstrip("/")
        self._local = is_local_endpoint(self._endpoint)
        self._container_delete_wait = container_delete_wait
        self._owned_credential: TokenCredential | None = None
        self._account_key, self._token_credential = key_or_token(credential)
        self._sas_credential = credential if isinstance(credential, AzureSasCredential) else None
        self._retry_total, self._retry_backoff = retry_total, retry_backoff
        self._connection_timeout, self._read_timeout = connection_timeout, read_timeout
        install_sas_redaction()
        self._client = service_client(
            self._endpoint,
            credential,
            api_version=api_version,
            retry_total=retry_total,
            retry_backoff=retry_backoff,
            connection_timeout=connection_timeout,
            read_timeout=read_timeout,
            pool_size=pool_size,
            ca_bundle=ca_bundle,
        )
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
        self._bulk = BulkTransfers(self._transfers, self._errors)
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
        url, credential = credential_from_connection_string(conn_str)
        return cls(url, credential, **options)

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
        fast = self._fast_path(container, [ContainerPermission.CREATE, ContainerPermission.WRITE])
        self._bulk.upload(
            container, items, fast, max_concurrency=max_concurrency, overwrite=overwrite, progress=progress
        )
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
        listing: Sequence[BlobInfo] | None = None,
    ) -> list[Path]:
        check_max_concurrency(max_concurrency)
        validate_container_name(container)
        fast = self._fast_path(container, [ContainerPermission.READ, ContainerPermission.LIST])
        if listing is not None:
            blobs = [blob for blob in listing if not prefix or blob.name.startswith(prefix)]
        elif fast is None:
            blobs = self.list_blobs(container, prefix)
        else:
            blobs = self._bulk.list_blobs(container, prefix, fast)
        plan = download_plan(blobs, destination, container)
        wanted = [entry for entry in plan if not (skip_existing and already_downloaded(entry[1], entry[0]))]
        self._bulk.download(container, wanted, fast, max_concurrency=max_concurrency, progress=progress)
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
