"""The in-memory blob storage: containers of blobs in a dict, SAS URLs checked on every use.

Transfers are copies in memory (downloads still go through a temporary file and a rename). Its URLs use the
``memory://`` scheme (see :mod:`batchbox.backends.memory._sas`): only the paired :class:`MemoryCompute`, which
resolves them through :meth:`MemoryStorage.sas_access`, can use them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from batchbox.backends.memory._sas import SasGrant, SasRefused, SasSigner, plain_url
from batchbox.core.errors import ResourceExistsError, ResourceNotFoundError
from batchbox.core.storage import (
    BlobInfo,
    ContainerPermission,
    ProgressCallback,
    StorageBackend,
    UploadItem,
    expiry_time,
    permission_string,
    validate_container_name,
)
from batchbox.core.transfers import (
    already_downloaded,
    check_max_concurrency,
    checked_uploads,
    download_plan,
    partial_path,
)

__all__ = ["DEFAULT_ACCOUNT", "MemoryStorage", "SasAccess"]

DEFAULT_ACCOUNT = "memory"


@dataclass(frozen=True)
class _Blob:
    data: bytes
    last_modified: datetime


class MemoryStorage(StorageBackend):
    """:class:`~batchbox.core.storage.StorageBackend` whose blobs live in this process's memory.

    Args:
        account_name: the name in URLs and in ``AZ_BATCH_*``-style messages.
    """

    def __init__(self, account_name: str = DEFAULT_ACCOUNT) -> None:
        self._account = account_name
        self._signer = SasSigner(account_name)
        self._containers: dict[str, dict[str, _Blob]] = {}
        self._lock = threading.Lock()

    @property
    def account_name(self) -> str:
        return self._account

    # -- containers -------------------------------------------------------------------------------------------

    def create_container(self, container: str) -> None:
        validate_container_name(container)
        with self._lock:
            self._containers.setdefault(container, {})

    def delete_container(self, container: str) -> None:
        validate_container_name(container)
        with self._lock:
            self._containers.pop(container, None)

    def _blobs(self, container: str) -> dict[str, _Blob]:
        """The container's blobs (call with the lock held)."""
        validate_container_name(container)
        blobs = self._containers.get(container)
        if blobs is None:
            raise ResourceNotFoundError("container", container)
        return blobs

    # -- blobs --------------------------------------------------------------------------------------------------

    def upload_files(
        self,
        container: str,
        items: Sequence[UploadItem],
        *,
        max_concurrency: int = 8,
        overwrite: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        items = checked_uploads(container, items, max_concurrency)
        with self._lock:
            self._blobs(container)
        for item in items:
            data = Path(item.path).read_bytes()
            self.upload_bytes(container, item.blob_name, data, overwrite=overwrite)
            if progress is not None:
                progress(item.blob_name, len(data))
        return [item.blob_name for item in items]

    def upload_bytes(self, container: str, blob_name: str, data: bytes, *, overwrite: bool = True) -> None:
        with self._lock:
            blobs = self._blobs(container)
            if not overwrite and blob_name in blobs:
                raise ResourceExistsError("blob", blob_name, f"blob '{blob_name}' in container '{container}' exists")
            blobs[blob_name] = _Blob(bytes(data), datetime.now(timezone.utc))

    def list_blobs(self, container: str, prefix: str | None = None) -> list[BlobInfo]:
        with self._lock:
            blobs = dict(self._blobs(container))
        return [
            BlobInfo(name=name, size=len(blob.data), last_modified=blob.last_modified)
            for name, blob in sorted(blobs.items())
            if prefix is None or name.startswith(prefix)
        ]

    def read_blob(self, container: str, blob_name: str) -> bytes:
        with self._lock:
            blob = self._blobs(container).get(blob_name)
        if blob is None:
            raise ResourceNotFoundError(
                "blob", blob_name, f"blob '{blob_name}' in container '{container}' does not exist"
            )
        return blob.data

    def download_container(
        self,
        container: str,
        destination: Path,
        *,
        prefix: str | None = None,
        max_concurrency: int = 8,
        skip_existing: bool = False,
        progress: ProgressCallback | None = None,
        listing: Sequence[BlobInfo] | None = None,
    ) -> list[Path]:
        check_max_concurrency(max_concurrency)
        if listing is None:
            blobs = self.list_blobs(container, prefix)
        else:
            blobs = [blob for blob in listing if not prefix or blob.name.startswith(prefix)]
        paths: list[Path] = []
        for blob, target in download_plan(blobs, destination, container):
            paths.append(target)
            if skip_existing and already_downloaded(target, blob):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = partial_path(target)
            try:
                part.write_bytes(self.read_blob(container, blob.name))
                os.replace(part, target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            if progress is not None:
                progress(blob.name, blob.size)
        return paths

    # -- URLs and SAS -------------------------------------------------------------------------------------------

    def blob_url(self, container: str, blob_name: str) -> str:
        validate_container_name(container)
        return plain_url(self._account, container, blob_name)

    def container_url(self, container: str) -> str:
        validate_container_name(container)
        return plain_url(self._account, container)

    def blob_sas_url(self, container: str, blob_name: str, *, expiry: datetime | timedelta) -> str:
        validate_container_name(container)
        return self._signer.sign(container, blob_name, "r", expiry_time(expiry))

    def container_sas_url(
        self,
        container: str,
        permissions: Sequence[ContainerPermission],
        *,
        expiry: datetime | timedelta,
    ) -> str:
        validate_container_name(container)
        return self._signer.sign(container, None, permission_string(permissions), expiry_time(expiry))

    def verify_sas(self, url: str) -> SasGrant:
        """What a SAS URL of this account grants.

        Raises:
            SasRefused: the URL is not a valid, unexpired SAS of this account.
        """
        return self._signer.verify(url)

    def sas_access(self, url: str) -> SasAccess:
        """What a node holding only ``url`` may do with this storage (the SAS is checked again at every call).

        Raises:
            SasRefused: the URL is not a valid, unexpired SAS of this account.
        """
        return SasAccess(self, self.verify_sas(url), url)


class SasAccess:
    """Blob operations through one SAS URL, as a task node would make them."""

    def __init__(self, storage: MemoryStorage, grant: SasGrant, url: str) -> None:
        self._storage = storage
        self._grant = grant
        self._url = url

    @property
    def blob(self) -> str | None:
        """The blob a blob SAS names (None for a container SAS)."""
        return self._grant.blob

    def _recheck(self) -> None:
        self._storage.verify_sas(self._url)

    def read(self, blob: str) -> bytes:
        """A blob's content (needs ``r``).

        Raises:
            SasRefused: 403 without permission or with an expired SAS; 404 no such container or blob.
        """
        self._grant.require("r", blob)
        self._recheck()
        try:
            return self._storage.read_blob(self._grant.container, blob)
        except ResourceNotFoundError as exc:
            code = "ContainerNotFound" if exc.kind == "container" else "BlobNotFound"
            raise SasRefused(404, code, str(exc)) from None

    def list(self, prefix: str = "") -> list[str]:
        """Names of the container's blobs starting with ``prefix`` (needs ``l``)."""
        self._grant.require("l")
        self._recheck()
        try:
            return [blob.name for blob in self._storage.list_blobs(self._grant.container, prefix or None)]
        except ResourceNotFoundError as exc:
            raise SasRefused(404, "ContainerNotFound", str(exc)) from None

    def write(self, blob: str, data: bytes) -> None:
        """Store a blob: a new one needs ``c`` or ``w``, replacing one needs ``w``."""
        self._recheck()
        container = self._grant.container
        try:
            exists = any(info.name == blob for info in self._storage.list_blobs(container, blob))
            self._grant.require("w" if exists or "c" not in self._grant.permissions else "c", blob)
            self._storage.upload_bytes(container, blob, data)
        except ResourceNotFoundError as exc:
            raise SasRefused(404, "ContainerNotFound", str(exc)) from None
