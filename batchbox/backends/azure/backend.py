"""The Azure backend: Azure Blob Storage + Azure Batch, with shared keys or Azure AD (DefaultAzureCredential)."""

from __future__ import annotations

from urllib.parse import urlsplit

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.backends.azure.storage import BlobStorage
from batchbox.core.backend import Backend
from batchbox.core.compute import ComputeBackend
from batchbox.core.settings import Settings
from batchbox.core.storage import StorageBackend

__all__ = ["AzureBackend"]


class AzureBackend(Backend):
    """Azure Batch for compute and Azure Blob Storage for files.

    Settings (see :mod:`batchbox.core.settings`): ``BATCHBOX_BATCH_URL`` always; ``BATCHBOX_BATCH_ACCOUNT`` +
    ``BATCHBOX_BATCH_KEY`` for shared-key auth, else Azure AD through ``DefaultAzureCredential``; storage from
    ``BATCHBOX_STORAGE_CONNECTION_STRING``, or ``BATCHBOX_STORAGE_ACCOUNT_URL`` with ``BATCHBOX_STORAGE_KEY`` or
    Azure AD.
    """

    name = "azure"

    def __init__(self, storage: StorageBackend, compute: ComputeBackend, batch_url: str) -> None:
        super().__init__(storage, compute)
        self._batch_url = batch_url

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureBackend:
        batch_url = settings.require("batch_url")
        if not settings.storage_connection_string and not settings.storage_account_url:
            settings.require("storage_connection_string")
        if settings.batch_key:
            account = settings.require("batch_account")
            compute = AzureBatchCompute.from_shared_key(batch_url, account, settings.batch_key)
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
        return f"azure (Batch {urlsplit(self._batch_url).netloc}, storage account {self._storage.account_name})"
