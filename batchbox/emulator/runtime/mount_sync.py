"""Nodes' blob mounts over time: the first full download before a node starts, a pass every few seconds, a last
pass when the node goes (the mechanics of one mount are in ``batchbox.emulator.mounts.blob_sync``).

A mount that cannot be synced at node start makes the node ``unusable`` with the node error ``MountFailed`` (the
emulator's code; the mount's path and the storage's answer are in its details). Later failures are logged and the
next pass tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import AzureError

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.mounts import BlobDirectorySync
from batchbox.emulator.node_layout import MOUNTS_DIR
from batchbox.emulator.resources.node_features import mount_secret_name
from batchbox.emulator.runtime.ports import StoreLike
from batchbox.emulator.secret_owners import lookup_names, pool_owner
from batchbox.emulator.storage_link import LinkedStorage

__all__ = ["MOUNT_FAILED", "SYNC_INTERVAL", "MountSync"]

log = logging.getLogger(__name__)

SYNC_INTERVAL = 3.0
"""Seconds between two sync passes of every mounted container."""
MOUNT_FAILED = "MountFailed"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


class MountSync:
    """The blob mounts of every node of the emulator.

    Args:
        config: the emulator's settings (node directories, state directory).
        store: the state store (the mounts' keys and SAS are its sealed secrets).
        storage: the linked storage account (``None``: pools cannot have mounts, validation refuses them).
    """

    def __init__(self, config: EmulatorConfig, store: StoreLike, storage: LinkedStorage | None) -> None:
        self._config = config
        self._store = store
        self._storage = storage
        self._mounts: dict[str, list[tuple[str, BlobDirectorySync]]] = {}
        self._loop: asyncio.Task[None] | None = None

    def _build(self, pool_doc: Mapping[str, Any], node_id: str) -> list[tuple[str, BlobDirectorySync]]:
        mounts: list[tuple[str, BlobDirectorySync]] = []
        for item in pool_doc.get("mountConfiguration") or []:
            blob = item.get("azureBlobFileSystemConfiguration") if isinstance(item, Mapping) else None
            if not isinstance(blob, Mapping) or self._storage is None:
                continue
            path = str(blob["relativeMountPath"])
            names = lookup_names([pool_owner(str(pool_doc["id"]))], mount_secret_name(str(pool_doc["id"]), path))
            credential = self._store.find_secret(names) or ""
            kind, _, value = credential.partition(":")
            client = self._storage.container_with(
                str(blob["containerName"]), key=value if kind == "key" else None, sas=value if kind == "sas" else None
            )
            digest = hashlib.sha256(path.encode()).hexdigest()[:16]
            manifest = self._config.state_dir / "mounts" / node_id / f"{digest}.json"
            directory = self._config.node_root(node_id) / MOUNTS_DIR / path
            mounts.append((path, BlobDirectorySync(client, directory, manifest)))
        return mounts

    async def attach(self, pool_doc: Mapping[str, Any], node_id: str) -> dict[str, Any] | None:
        """Download a starting node's mounts; return the node error when one cannot be mounted."""
        mounts = self._build(pool_doc, node_id)
        for path, mount in mounts:
            try:
                await asyncio.to_thread(mount.sync)
            except (AzureError, OSError) as exc:
                log.warning("mounting %s on node %s failed: %s", path, node_id, _one_line(exc))
                return {
                    "code": MOUNT_FAILED,
                    "message": "A file system of the pool's mountConfiguration could not be mounted",
                    "errorDetails": [
                        {"name": "MountPath", "value": path},
                        {"name": "Message", "value": _one_line(exc)},
                    ],
                }
        self.resume(mounts, node_id)
        return None

    def resume(self, mounts: list[tuple[str, BlobDirectorySync]] | Mapping[str, Any], node_id: str) -> None:
        """Keep syncing a node's mounts (a pool document: those of a node re-adopted at restart)."""
        built = self._build(mounts, node_id) if isinstance(mounts, Mapping) else mounts
        if built:
            self._mounts[node_id] = built
            if self._loop is None:
                self._loop = asyncio.get_running_loop().create_task(self._run(), name="mount-sync")

    async def detach(self, node_id: str) -> None:
        """A last pass for a node that goes, then stop syncing it."""
        for path, mount in self._mounts.pop(node_id, []):
            try:
                await asyncio.to_thread(mount.sync)
            except (AzureError, OSError) as exc:
                log.warning("the last sync of %s of node %s failed: %s", path, node_id, _one_line(exc))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            for node_id, mounts in list(self._mounts.items()):
                for path, mount in mounts:
                    try:
                        await asyncio.to_thread(mount.sync)
                    except (AzureError, OSError) as exc:
                        log.warning("syncing %s of node %s failed: %s", path, node_id, _one_line(exc))

    async def stop(self) -> None:
        """Stop the passes (the directories stay; the next start takes them up)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
