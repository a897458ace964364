"""The Batch account's linked storage account: where application packages and mounted blob containers live.

A Batch account on Azure has one "auto-storage" account; the emulator gets one by connection string
(``batchbox emulator --storage-connection-string``, or ``$BATCHBOX_STORAGE_CONNECTION_STRING``; ``batchbox local up``
gives it the local stack's Azurite). :class:`LinkedStorage` opens blob clients on it and makes the short-lived
read SAS URLs nodes download packages with. The account key never leaves this object (not in ``repr``, not logged).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

__all__ = ["LOCAL_BLOB_API_VERSION", "LinkedStorage"]

LOCAL_BLOB_API_VERSION = "2025-11-05"
"""The x-ms-version sent to plain-http or loopback endpoints (Azurite 3.35+ accepts it without
``--skipApiVersionCheck``; the SDK's newest is refused). The storage backend pins the same version."""

_SAS_SKEW = timedelta(minutes=15)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LinkedStorage:
    """Blob access to the linked storage account.

    Args:
        connection_string: the account's connection string (with its key).
        ca_bundle: a CA certificate to verify an HTTPS endpoint with (the local stack's CA with ``--tls``).

    Raises:
        ValueError: the connection string names no account or key (one line, without the key).
    """

    def __init__(self, connection_string: str, *, ca_bundle: str | None = None) -> None:
        try:
            probe = BlobServiceClient.from_connection_string(connection_string)
        except ValueError as exc:
            raise ValueError(f"the storage connection string is not usable: {str(exc).splitlines()[0]}") from None
        key = getattr(probe.credential, "account_key", None)
        if not probe.account_name or not key:
            raise ValueError("the storage connection string must give AccountName and AccountKey")
        self.account_name: str = probe.account_name
        self.endpoint = probe.url.rstrip("/")
        self._key: str = key
        parts = urlsplit(self.endpoint)
        local = parts.scheme == "http" or (parts.hostname or "") in _LOOPBACK
        self._verify: str | bool = ca_bundle or True
        self._client = BlobServiceClient.from_connection_string(
            connection_string, api_version=LOCAL_BLOB_API_VERSION if local else None, connection_verify=self._verify
        )
        probe.close()

    def __repr__(self) -> str:
        return f"LinkedStorage({self.account_name!r}, {self.endpoint!r})"

    def container(self, name: str) -> ContainerClient:
        """A client of one blob container of the account."""
        return self._client.get_container_client(name)

    def container_with(self, name: str, *, key: str | None = None, sas: str | None = None) -> ContainerClient:
        """A client of one container authenticated with the credential a user gave (an account key or a SAS)."""
        credential: str | None = key if key is not None else None
        url = f"{self.endpoint}/{quote(name)}"
        if sas is not None:
            url = f"{url}?{sas.lstrip('?')}"
        return ContainerClient.from_container_url(
            url, credential=credential, api_version=self._client.api_version, connection_verify=self._verify
        )

    def blob_read_url(self, container: str, blob: str, hours: float = 2.0) -> str:
        """A URL with a read SAS for one blob, valid for ``hours`` (nodes download with it)."""
        now = datetime.now(timezone.utc)
        sas = generate_blob_sas(
            self.account_name,
            container,
            blob,
            account_key=self._key,
            permission=BlobSasPermissions(read=True),
            start=now - _SAS_SKEW,
            expiry=now + timedelta(hours=hours),
            protocol="https,http",
        )
        return f"{self.endpoint}/{quote(container)}/{quote(blob)}?{sas}"

    def container_sas(self, container: str, hours: float = 2.0) -> str:
        """A read/write/list/delete SAS for one container (the emulator's own syncing)."""
        now = datetime.now(timezone.utc)
        return generate_container_sas(
            self.account_name,
            container,
            account_key=self._key,
            permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
            start=now - _SAS_SKEW,
            expiry=now + timedelta(hours=hours),
            protocol="https,http",
        )

    def close(self) -> None:
        """Close the account's client."""
        self._client.close()
