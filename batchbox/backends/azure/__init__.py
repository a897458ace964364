"""Azure backends: Blob Storage through azure-storage-blob (also used for Azurite)."""

from batchbox.backends.azure.storage import BlobStorage

__all__ = ["BlobStorage"]
