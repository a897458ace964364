"""Where a test session's Batch and blob calls go, and clients for it: the local stack or live Azure.

A :class:`BatchTarget` is plain data (URLs, account, keys) plus factories for the clients a user's code needs:
a 15.x ``BatchClient``, a ``BlobServiceClient`` and a batchbox :class:`~batchbox.core.backend.Backend`. Every
client it made is closed by :meth:`BatchTarget.close`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchbox.core.settings import Settings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from batchbox.backends.local.stack import LocalEndpoints
    from batchbox.core.backend import Backend

__all__ = ["BatchTarget", "azure_target", "local_target"]


@dataclass
class BatchTarget:
    """One Batch account and one blob storage account, local or on Azure.

    Attributes:
        backend_name: ``local`` or ``azure``.
        batch_url: the Batch endpoint.
        batch_account: the Batch account name.
        batch_key: the Batch account key; None on Azure with Azure AD (``DefaultAzureCredential``).
        storage_connection_string: the storage connection string; None on Azure with an account URL.
        storage_account_url / storage_key: the storage account URL (and key) when there is no connection string.
    """

    backend_name: str
    batch_url: str
    batch_account: str | None
    batch_key: str | None = field(repr=False)
    storage_connection_string: str | None = field(repr=False)
    storage_account_url: str | None = None
    storage_key: str | None = field(default=None, repr=False)
    settings: Settings = field(default_factory=Settings, repr=False)
    local_endpoints: LocalEndpoints | None = field(default=None, repr=False)
    _opened: list[Any] = field(default_factory=list, repr=False)

    @property
    def is_local(self) -> bool:
        return self.backend_name == "local"

    @property
    def entra(self) -> bool:
        """True when the clients authenticate with Microsoft Entra ID only (``BATCHBOX_AUTH=entra``)."""
        return self.settings.entra

    def _token_credential(self) -> Any:
        """The local issuer's ``LocalTokenCredential`` on a local TLS stack, else ``DefaultAzureCredential``."""
        if self.local_endpoints is not None and self.local_endpoints.entra_issuer:
            from batchbox.backends.local.entra import LocalTokenCredential

            return LocalTokenCredential(self.local_endpoints.entra_issuer)
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def _transport_options(self) -> dict[str, Any]:
        """``connection_verify`` with the local CA when the local stack serves TLS."""
        ca_bundle = self.local_endpoints.ca_bundle if self.local_endpoints is not None else ""
        return {"connection_verify": ca_bundle} if ca_bundle else {}

    def batch_client(self) -> Any:
        """A new azure-batch 15.x ``BatchClient``: SharedKey with a key (unless ``entra``), else a token
        credential (``DefaultAzureCredential``; locally the local issuer's ``LocalTokenCredential``)."""
        from azure.batch import BatchClient

        credential: Any
        if self.batch_key and not self.entra:
            from azure.core.credentials import AzureNamedKeyCredential

            credential = AzureNamedKeyCredential(self.batch_account or "", self.batch_key)
        else:
            credential = self._token_credential()
        return self._keep(BatchClient(self.batch_url, credential, **self._transport_options()))

    def blob_service_client(self) -> BlobServiceClient:
        """A new ``BlobServiceClient`` for the target's storage account (a token credential with ``entra``)."""
        from azure.storage.blob import BlobServiceClient

        if self.entra and self.local_endpoints is not None:
            client = BlobServiceClient(
                self.local_endpoints.storage_account_url,
                credential=self._token_credential(),
                **self._transport_options(),
            )
        elif self.storage_connection_string:
            client = BlobServiceClient.from_connection_string(
                self.storage_connection_string, **self._transport_options()
            )
        elif self.storage_account_url:
            credential: Any = self.storage_key
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            client = BlobServiceClient(self.storage_account_url, credential=credential)
        else:
            raise ValueError("this target has no storage account")
        kept: BlobServiceClient = self._keep(client)
        return kept

    def backend(self) -> Backend:
        """A new batchbox backend (storage + compute) on this target."""
        from batchbox.core.backend import open_backend

        if self.local_endpoints is not None:
            from batchbox.backends.local.backend import LocalBackend

            backend: Backend = LocalBackend(self.local_endpoints, entra=self.entra)
        else:
            backend = open_backend(self.settings)
        kept: Backend = self._keep(backend)
        return kept

    def _keep(self, client: Any) -> Any:
        self._opened.append(client)
        return client

    def close(self) -> None:
        """Close every client this target made."""
        while self._opened:
            self._opened.pop().close()


def local_target(endpoints: LocalEndpoints, settings: Settings | None = None) -> BatchTarget:
    """The target of a running local stack."""
    return BatchTarget(
        backend_name="local",
        batch_url=endpoints.batch_url,
        batch_account=endpoints.batch_account,
        batch_key=endpoints.batch_key,
        storage_connection_string=endpoints.storage_connection_string,
        settings=settings or Settings(backend="local"),
        local_endpoints=endpoints,
    )


def azure_target(settings: Settings) -> BatchTarget:
    """The live Azure target of ``settings`` (``BATCHBOX_BATCH_URL`` and the storage settings).

    Raises:
        ConfigurationError: a required setting is missing (the message names its variable).
    """
    batch_url = settings.require("batch_url")
    if not settings.storage_connection_string:
        settings.require("storage_account_url")
    if settings.batch_key:
        settings.require("batch_account")
    return BatchTarget(
        backend_name="azure",
        batch_url=batch_url,
        batch_account=settings.batch_account,
        batch_key=settings.batch_key,
        storage_connection_string=settings.storage_connection_string,
        storage_account_url=settings.storage_account_url,
        storage_key=settings.storage_key,
        settings=settings,
    )
