"""Mounted file systems of nodes: blob containers of the linked storage account, as synced directories."""

from batchbox.emulator.mounts.blob_sync import BlobDirectorySync, SyncCounts

__all__ = ["BlobDirectorySync", "SyncCounts"]
