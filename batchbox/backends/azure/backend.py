"""The Azure backend: Azure Blob Storage + Azure Batch, with shared keys or Microsoft Entra ID."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.backends.azure.storage import BlobStorage
from batchbox.core.backend import Backend
from batchbox.core.compute import ComputeBackend
from batchbox.core.errors import ConfigurationError
from batchbox.core.settings import Settings, env_name
from batchbox.core.storage import StorageBackend

__all__ = ["AzureBackend", "entra_parts"]

_KEY_SETTINGS = ("batch_key", "storage_key", "storage_connection_string")


def entra_parts(
    batch_url: str, storage_account_url: str, credential: TokenCredential, *, ca_bundle: str | None = None
) -> tuple[BlobStorage, AzureBatchCompute]:
    """Storage and compute authenticated with Microsoft Entra ID only: the one path of Azure and local Entra ID.

    Both halves ask ``credential`` for tokens (Batch: ``https://batch.core.windows.net//.default``; storage:
    ``https://storage.azure.com/.default``); the SAS handed to nodes are user delegation SAS. The Azure backend
    passes ``DefaultAzureCredential``; the local backend passes its ``LocalTokenCredential`` and the local CA.

    Args:
        batch_url: the Batch account URL.
        storage_account_url: the blob endpoint.
        credential: the token credential (closed by the caller).
        ca_bundle: a CA certificate to verify both endpoints with (None: the system's CAs).
    """
    storage = BlobStorage(storage_account_url, credential, ca_bundle=ca_bundle)
    try:
        compute = AzureBatchCompute(batch_url, credential, ca_bundle=ca_bundle)
    except BaseException:
        storage.close()
        raise
    return storage, compute


def _refuse_keys(settings: Settings) -> None:
    """With ``auth = "entra"`` no key may be configured: it would never be used, and a key-less run must not
    depend on one by accident.

    Raises:
        ConfigurationError: a key or connection string is set.
    """
    for name in _KEY_SETTINGS:
        if getattr(settings, name):
            raise ConfigurationError(
                env_name(name), "is set but BATCHBOX_AUTH is entra: unset it (Entra ID never falls back to keys)"
            )


class AzureBackend(Backend):
    """Azure Batch for compute and Azure Blob Storage for files.

    Settings (see :mod:`batchbox.core.settings`): ``BATCHBOX_BATCH_URL`` always. With ``BATCHBOX_AUTH=entra``:
    ``BATCHBOX_STORAGE_ACCOUNT_URL`` and Microsoft Entra ID (``DefaultAzureCredential``) for both, no key. With
    ``key``: ``BATCHBOX_BATCH_ACCOUNT`` + ``BATCHBOX_BATCH_KEY`` and a storage key or connection string. Unset:
    a key where one is set, Entra ID where none is.

    Args:
        storage: the blob storage half.
        compute: the Batch half.
        batch_url: the Batch account URL (for ``describe``).
        credential: a credential the backend made and closes with itself.
    """

    name = "azure"

    def __init__(
        self, storage: StorageBackend, compute: ComputeBackend, batch_url: str, credential: Any = None
    ) -> None:
        super().__init__(storage, compute)
        self._batch_url = batch_url
        self._credential = credential

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureBackend:
        batch_url = settings.require("batch_url")
        if settings.entra:
            _refuse_keys(settings)
            storage_url = settings.require("storage_account_url")
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
            try:
                storage, compute = entra_parts(batch_url, storage_url, credential)
            except BaseException:
                credential.close()
                raise
            return cls(storage, compute, batch_url, credential)
        if not settings.storage_connection_string and not settings.storage_account_url:
            settings.require("storage_connection_string")
        if settings.auth == "key" and not settings.storage_connection_string:
            settings.require("storage_key")
        if settings.batch_key or settings.auth == "key":
            account = settings.require("batch_account")
            compute = AzureBatchCompute.from_shared_key(batch_url, account, settings.require("batch_key"))
        else:
            compute = AzureBatchCompute.from_default_azure_credential(batch_url)
        if settings.storage_connection_string:
            storage = BlobStorage.from_connection_string(settings.storage_connection_string)
        elif settings.storage_key:
            storage = BlobStorage(settings.require("storage_account_url"), settings.storage_key)
        else:
            storage = BlobStorage.from_default_azure_credential(settings.require("storage_account_url"))
        return cls(storage, compute, batch_url)

    def describe(self) -> str:
        auth = ", Entra ID" if self._credential is not None else ""
        return f"azure (Batch {urlsplit(self._batch_url).netloc}, storage account {self._storage.account_name}{auth})"

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._credential is not None:
                self._credential.close()
                self._credential = None
