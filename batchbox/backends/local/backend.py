"""The local backend: the same storage and compute classes as Azure, pointed at Azurite and the emulator.

Nothing to configure: the services are started on demand (``batchbox local up`` semantics) when not running;
``BATCHBOX_STORAGE_CONNECTION_STRING`` points it at blob storage the user runs instead of its own Azurite.

``BATCHBOX_AUTH=entra`` (``--auth entra``) runs the stack with TLS (``local up --tls``) and takes the Azure
backend's Microsoft Entra ID path (:func:`~batchbox.backends.azure.backend.entra_parts`): the only local parts are
the credential (:class:`~batchbox.backends.local.entra.LocalTokenCredential`) and the CA to trust.
"""

from __future__ import annotations

import logging

from batchbox.backends.azure.backend import entra_parts
from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.backends.azure.storage import BlobStorage
from batchbox.backends.local.entra import LocalTokenCredential
from batchbox.backends.local.stack import LocalEndpoints, LocalStack, StackMode
from batchbox.core.backend import Backend
from batchbox.core.compute import ComputeBackend
from batchbox.core.errors import ConfigurationError
from batchbox.core.settings import Settings, env_name
from batchbox.core.storage import StorageBackend

__all__ = ["LocalBackend"]

_log = logging.getLogger(__name__)


class LocalBackend(Backend):
    """Azurite + the batchbox Batch emulator on this machine, started when needed.

    Args:
        endpoints: the running stack's endpoints.
        entra: authenticate with the local Entra ID issuer's tokens instead of the development keys (the stack
            must run with TLS).

    Raises:
        ConfigurationError: ``entra`` on a stack without TLS.
    """

    name = "local"

    def __init__(self, endpoints: LocalEndpoints, *, entra: bool = False) -> None:
        self.endpoints = endpoints
        self.entra = entra
        ca_bundle = endpoints.ca_bundle or None
        storage: StorageBackend
        compute: ComputeBackend
        if entra:
            if not endpoints.entra_issuer:
                raise ConfigurationError(
                    env_name("auth"), "entra needs the local stack with TLS: `batchbox local down`, then up --tls"
                )
            credential = LocalTokenCredential(endpoints.entra_issuer)
            storage, compute = entra_parts(
                endpoints.batch_url, endpoints.storage_account_url, credential, ca_bundle=ca_bundle
            )
        else:
            storage = BlobStorage.from_connection_string(endpoints.storage_connection_string, ca_bundle=ca_bundle)
            compute = AzureBatchCompute.from_shared_key(
                endpoints.batch_url, endpoints.batch_account, endpoints.batch_key, ca_bundle=ca_bundle
            )
        super().__init__(storage, compute)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBackend:
        mode = StackMode(tls=True) if settings.entra else None
        if settings.entra and settings.storage_connection_string:
            raise ConfigurationError(
                env_name("storage_connection_string"),
                "is set but BATCHBOX_AUTH is entra: the local stack's own Azurite serves TLS and tokens",
            )
        stack = LocalStack(settings.home, storage_connection_string=settings.storage_connection_string, mode=mode)
        return cls(stack.up(progress=_log.info), entra=settings.entra)

    def describe(self) -> str:
        auth = "Entra ID tokens" if self.entra else "development keys"
        return f"local (emulator {self.endpoints.batch_url}, Azurite, {auth}, state in {self.endpoints.state_dir})"
