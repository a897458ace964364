"""The local backend: the same storage and compute classes as Azure, pointed at Azurite and the emulator.

Nothing to configure: the services are started on demand (``batchbox local up`` semantics) when not running.
"""

from __future__ import annotations

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.backends.azure.storage import BlobStorage
from batchbox.backends.local.stack import LocalEndpoints, LocalStack
from batchbox.core.backend import Backend
from batchbox.core.compute import ComputeBackend
from batchbox.core.settings import Settings
from batchbox.core.storage import StorageBackend

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    """Azurite + the batchbox Batch emulator on this machine, started when needed."""

    name = "local"

    def __init__(self, endpoints: LocalEndpoints) -> None:
        self.endpoints = endpoints
        self._storage = BlobStorage.from_connection_string(endpoints.storage_connection_string)
        self._compute = AzureBatchCompute.from_shared_key(
            endpoints.batch_url, endpoints.batch_account, endpoints.batch_key
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBackend:
        return cls(LocalStack(settings.home).up())

    @property
    def storage(self) -> StorageBackend:
        return self._storage

    @property
    def compute(self) -> ComputeBackend:
        return self._compute

    def describe(self) -> str:
        return f"local (emulator {self.endpoints.batch_url}, Azurite, state in {self.endpoints.state_dir})"
