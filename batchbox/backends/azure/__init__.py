"""The Azure backend: Azure Batch through azure-batch 15.x (:class:`~batchbox.backends.azure.compute.AzureBatchCompute`,
imported from its module so that blob-only users do not load the Batch SDK) and Blob Storage through
azure-storage-blob (:class:`BlobStorage`). The local backend drives the same two classes against the batchbox
emulator and Azurite."""

from batchbox.backends.azure.storage import BlobStorage

__all__ = ["BlobStorage"]
