"""The storage contract every blob backend fulfils (Azure Blob Storage and Azurite share one implementation)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path

__all__ = [
    "BlobInfo",
    "ContainerPermission",
    "ProgressCallback",
    "StorageBackend",
    "UploadItem",
    "expiry_time",
    "permission_string",
    "validate_container_name",
]

ProgressCallback = Callable[[str, int], None]
"""Called as ``progress(blob_name, size_in_bytes)`` once per finished transfer, maybe from another thread."""

_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


def validate_container_name(name: object) -> str:
    """Check a blob container name (3-63 lowercase letters, digits and single hyphens) and return it.

    Raises:
        ValueError: naming the bad name.
    """
    if not isinstance(name, str) or not _CONTAINER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid container name {name!r}: use 3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def expiry_time(expiry: datetime | timedelta) -> datetime:
    """A SAS expiry as an aware UTC time: a duration counts from now, a naive time is taken as UTC."""
    if isinstance(expiry, timedelta):
        return datetime.now(timezone.utc) + expiry
    if expiry.tzinfo is None:
        return expiry.replace(tzinfo=timezone.utc)
    return expiry.astimezone(timezone.utc)


class ContainerPermission(str, Enum):
    """Permissions a container SAS can grant; inputs get READ+LIST, outputs CREATE+WRITE."""

    READ = "r"
    ADD = "a"
    CREATE = "c"
    WRITE = "w"
    DELETE = "d"
    LIST = "l"


def permission_string(permissions: Sequence[ContainerPermission]) -> str:
    """The ``sp`` of a container SAS: each permission once, in the order Azure Storage requires (``racwdl``).

    Raises:
        ValueError: no permission is given.
    """
    wanted = {ContainerPermission(p).value for p in permissions}
    if not wanted:
        raise ValueError("a container SAS needs at least one permission")
    return "".join(p for p in "racwdl" if p in wanted)


@dataclass(frozen=True)
class UploadItem:
    """A local file and the blob name it is stored under."""

    path: Path
    blob_name: str


@dataclass(frozen=True)
class BlobInfo:
    """One blob of a listing."""

    name: str
    size: int
    last_modified: datetime | None = None


class StorageBackend(ABC):
    """Blob storage used to stage a workload's inputs and collect its outputs.

    Every method raises :class:`~batchbox.core.errors.BackendUnavailableError` when the service does not answer
    and :class:`~batchbox.core.errors.AuthenticationError` when the credential is refused; messages never
    include keys or SAS signatures.
    """

    @property
    @abstractmethod
    def account_name(self) -> str:
        """The storage account name."""

    @abstractmethod
    def create_container(self, container: str) -> None:
        """Create a container; does nothing when it exists already.

        Raises:
            ValueError: the name is not a valid container name.
        """

    @abstractmethod
    def delete_container(self, container: str) -> None:
        """Delete a container and its blobs; does nothing when it does not exist."""

    @abstractmethod
    def upload_files(
        self,
        container: str,
        items: Sequence[UploadItem],
        *,
        max_concurrency: int = 8,
        overwrite: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Upload local files concurrently, at most ``max_concurrency`` transfers at a time.

        Returns:
            The blob names, in the order of ``items``.

        Raises:
            ResourceNotFoundError: the container does not exist.
            FileNotFoundError: a local file is missing (checked before anything is sent).
        """

    @abstractmethod
    def upload_bytes(self, container: str, blob_name: str, data: bytes, *, overwrite: bool = True) -> None:
        """Store ``data`` as one blob.

        Raises:
            ResourceNotFoundError: the container does not exist.
            ResourceExistsError: the blob exists and ``overwrite`` is False.
        """

    @abstractmethod
    def list_blobs(self, container: str, prefix: str | None = None) -> list[BlobInfo]:
        """List the blobs of a container, optionally those whose names start with ``prefix``.

        Raises:
            ResourceNotFoundError: the container does not exist.
        """

    @abstractmethod
    def read_blob(self, container: str, blob_name: str) -> bytes:
        """Return a blob's content.

        Raises:
            ResourceNotFoundError: the container or the blob does not exist (``kind`` says which).
        """

    @abstractmethod
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
        """Download every blob (or those under ``prefix``) into ``destination``, concurrently.

        Each file is written under a temporary name and renamed when complete, so an interrupted download
        never leaves a partial file under a final name. With ``skip_existing``, a local file of the blob's
        size is kept and not downloaded again. Blob names that would escape ``destination`` are refused.
        ``listing``: the container's blobs as the caller just listed them (``list_blobs``); the container is then
        not listed again, and blobs written since are left for a later call.

        Returns:
            The local paths of the downloaded (or kept) files.

        Raises:
            ResourceNotFoundError: the container does not exist.
        """

    @abstractmethod
    def blob_url(self, container: str, blob_name: str) -> str:
        """The plain URL of a blob (no SAS)."""

    @abstractmethod
    def container_url(self, container: str) -> str:
        """The plain URL of a container (no SAS)."""

    @abstractmethod
    def blob_sas_url(self, container: str, blob_name: str, *, expiry: datetime | timedelta) -> str:
        """A read-only SAS URL for one blob, valid until ``expiry`` (a time, or a duration from now)."""

    @abstractmethod
    def container_sas_url(
        self,
        container: str,
        permissions: Sequence[ContainerPermission],
        *,
        expiry: datetime | timedelta,
    ) -> str:
        """A SAS URL for a container granting exactly ``permissions``, valid until ``expiry``.

        The SAS starts 15 minutes in the past (clock skew) and allows plain http only when the endpoint is
        plain http (Azurite).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default does nothing."""
