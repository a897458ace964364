"""Checks and steps every :class:`~batchbox.core.storage.StorageBackend` shares around its transfers: what an
upload verifies before sending anything, which blobs a container download writes and where, and how a download
never leaves a partial file under a final name."""

from __future__ import annotations

import errno
import itertools
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from batchbox.core.errors import InvalidRequestError
from batchbox.core.storage import BlobInfo, UploadItem, validate_container_name

_PART_TOKEN = secrets.token_hex(4)
_part_numbers = itertools.count()

__all__ = [
    "already_downloaded",
    "check_max_concurrency",
    "checked_uploads",
    "download_plan",
    "local_path_for_blob",
    "partial_path",
]


def check_max_concurrency(max_concurrency: int) -> None:
    """Refuse a transfer concurrency below 1.

    Raises:
        ValueError: naming the value.
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")


def checked_uploads(container: str, items: Sequence[UploadItem], max_concurrency: int) -> list[UploadItem]:
    """The items of an upload, checked before anything is sent.

    Raises:
        ValueError: the container name or the concurrency is invalid.
        FileNotFoundError: a local file is missing.
    """
    validate_container_name(container)
    check_max_concurrency(max_concurrency)
    checked = list(items)
    for item in checked:
        if not Path(item.path).is_file():
            raise FileNotFoundError(errno.ENOENT, "file to upload does not exist", str(item.path))
    return checked


def local_path_for_blob(destination: Path, container: str, blob_name: str) -> Path:
    """Where ``blob_name`` lands under ``destination`` when a container is downloaded.

    Raises:
        InvalidRequestError: (kind ``blob``) the name would leave ``destination`` (``..``, an absolute name, a NUL,
            a symlink inside ``destination``; on Windows also a backslash or a drive letter).
    """
    parts = blob_name.split("/")
    unsafe = blob_name.startswith("/") or "\0" in blob_name or any(part in ("", ".", "..") for part in parts)
    if os.sep != "/" or os.altsep:
        unsafe = unsafe or "\\" in blob_name or ":" in blob_name
    target = destination.joinpath(*parts)
    if unsafe or not target.resolve().is_relative_to(destination.resolve()):
        raise InvalidRequestError(
            "blob", blob_name, f"blob {blob_name!r} in container '{container}' would be written outside {destination}"
        )
    return target


def download_plan(blobs: Sequence[BlobInfo], destination: Path, container: str) -> list[tuple[BlobInfo, Path]]:
    """Each blob to write and its local path; empty blobs named ``dir/`` (folder markers of a hierarchical
    namespace or Storage Explorer) have nothing to write and are left out.

    Raises:
        InvalidRequestError: a blob name would leave ``destination`` (checked for all before anything is written).
    """
    wanted = [blob for blob in blobs if not (blob.name.endswith("/") and blob.size == 0)]
    return [(blob, local_path_for_blob(Path(destination), container, blob.name)) for blob in wanted]


def already_downloaded(target: Path, blob: BlobInfo) -> bool:
    """True when ``target`` is a file of the blob's size (what ``skip_existing`` keeps)."""
    return target.is_file() and target.stat().st_size == blob.size


def partial_path(target: Path) -> Path:
    """A fresh temporary name next to ``target``; a download writes there and renames it when complete.

    The name is the process id, a random token and a counter: unique without asking the kernel for random bytes
    for every file of a large download.
    """
    return target.with_name(f"{target.name}.part-{os.getpid()}-{_PART_TOKEN}-{next(_part_numbers)}")
