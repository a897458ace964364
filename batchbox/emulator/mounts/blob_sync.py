"""A blob container kept in step with a directory: how the emulator serves ``azureBlobFileSystemConfiguration``.

Batch mounts the container with blobfuse; the local emulator does not (a FUSE mount inside node containers would
need ``CAP_SYS_ADMIN`` and ``/dev/fuse`` in every node, and blobfuse is not packaged for the node image). Instead the
node's ``fsmounts/<relativeMountPath>`` is a plain directory of the node's root, which the emulator syncs both ways:

* before the node starts, every blob is downloaded (blob names with ``/`` become subdirectories);
* then every few seconds, and once more when the node goes, each side's changes since the last pass are copied to
  the other: new and changed files are uploaded, new and changed blobs downloaded, deletions on either side
  applied to the other. When both sides changed the same name, the node's file wins.

The last synced state (each name's ETag, size and modification time) is kept next to the emulator's state, so a
restart does not mistake old files for new ones. Files are made readable and writable by every task user.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

__all__ = ["BlobDirectorySync", "SyncCounts"]


@dataclass
class SyncCounts:
    """What one pass did."""

    uploaded: int = 0
    downloaded: int = 0
    deleted_blobs: int = 0
    deleted_files: int = 0


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(part not in ("", ".", "..") for part in parts)


class BlobDirectorySync:
    """Two-way sync of one container with one directory.

    Args:
        container: the container (authenticated with the mount's own key or SAS).
        directory: the host directory (the node's ``fsmounts/<path>``).
        manifest: the file keeping the last synced state.
    """

    def __init__(self, container: ContainerClient, directory: Path, manifest: Path) -> None:
        self._container = container
        self._directory = directory
        self._manifest_path = manifest
        self._manifest: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            value = json.loads(self._manifest_path.read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _save(self) -> None:
        self._manifest_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self._manifest_path.with_suffix(".partial")
        partial.write_text(json.dumps(self._manifest))
        partial.replace(self._manifest_path)

    def _local(self) -> dict[str, os.stat_result]:
        found: dict[str, os.stat_result] = {}
        for dirpath, _dirnames, filenames in os.walk(self._directory):
            for filename in filenames:
                path = Path(dirpath) / filename
                if path.is_symlink() or not path.is_file():
                    continue
                found[path.relative_to(self._directory).as_posix()] = path.stat()
        return found

    def _record(self, name: str, etag: str) -> None:
        info = (self._directory / name).stat()
        self._manifest[name] = {"etag": etag, "size": info.st_size, "mtime": info.st_mtime_ns}

    def _upload(self, name: str) -> None:
        with (self._directory / name).open("rb") as data:
            result = self._container.get_blob_client(name).upload_blob(data, overwrite=True)
        self._record(name, str(result.get("etag") or "").strip('"'))

    def _download(self, name: str, etag: str) -> None:
        path = self._directory / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o777)
        partial = path.with_name(f".{path.name}.batchbox-partial")
        with partial.open("wb") as sink:
            self._container.download_blob(name).readinto(sink)
        partial.chmod(0o666)
        partial.replace(path)
        self._record(name, etag)

    def sync(self) -> SyncCounts:
        """One pass in both directions.

        Raises:
            AzureError: the storage refused or did not answer (the pass stops; the next one starts over).
        """
        self._directory.mkdir(parents=True, exist_ok=True)
        self._directory.chmod(0o777)
        remote = {
            blob.name: str(blob.etag).strip('"') for blob in self._container.list_blobs() if _safe_name(blob.name)
        }
        local = self._local()
        counts = SyncCounts()
        try:
            for name in sorted(set(remote) | set(local) | set(self._manifest)):
                self._sync_one(name, remote.get(name), local.get(name), counts)
        finally:
            self._save()
        return counts

    def _sync_one(self, name: str, etag: str | None, info: os.stat_result | None, counts: SyncCounts) -> None:
        known = self._manifest.get(name)
        local_changed = info is not None and (
            known is None or (info.st_size, info.st_mtime_ns) != (known.get("size"), known.get("mtime"))
        )
        remote_changed = etag is not None and (known is None or etag != known.get("etag"))
        if info is not None and (local_changed or (etag is None and known is None)):
            self._upload(name)
            counts.uploaded += 1
        elif etag is not None and remote_changed:
            self._download(name, etag)
            counts.downloaded += 1
        elif info is not None and etag is None:  # synced before, the blob was deleted since
            (self._directory / name).unlink()
            self._manifest.pop(name, None)
            counts.deleted_files += 1
        elif etag is not None and info is None:  # synced before, the file was deleted since
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(name)
            self._manifest.pop(name, None)
            counts.deleted_blobs += 1
        elif etag is None and info is None:
            self._manifest.pop(name, None)
