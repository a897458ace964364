"""The local backend: the same storage and compute classes as Azure, pointed at Azurite and the emulator.

Nothing to configure: the services are started on demand (``batchbox local up`` semantics) when not running;
``BATCHBOX_STORAGE_CONNECTION_STRING`` points it at blob storage the user runs instead of its own Azurite.
"""

from __future__ import annotations

import logging

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.backends.azure.storage import BlobStorage
from batchbox.backends.local.stack import LocalEndpoints, LocalStack
from batchbox.core.backend import Backend
from batchbox.core.settings import Settings

__all__ = ["LocalBackend"]

_log = logging.getLogger(__name__)


class LocalBackend(Backend):
    """Azurite + the batchbox Batch emulator on this machine, started when needed."""

    name = "local"

    def __init__(self, endpoints: LocalEndpoints) -> None:
        self.endpoints = endpoints
        super().__init__(
            BlobStorage.from_connection_string(endpoints.storage_connection_string),
            AzureBatchCompute.from_shared_key(endpoints.batch_url, endpoints.batch_account, endpoints.batch_key),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBackend:
        stack = LocalStack(settings.home, storage_connection_string=settings.storage_connection_string)
        return cls(stack.up(progress=_log.info))

    def describe(self) -> str:
        return f"local (emulator {self.endpoints.batch_url}, Azurite, state in {self.endpoints.state_dir})"
