"""Many files into a container, a whole container down: the bulk transfers of
:class:`~batchbox.backends.azure.storage.BlobStorage`.

Blobs up to :data:`~batchbox.backends.azure._sas_transfers.SMALL_BLOB` go on the SAS fast path when the caller has
one (one request each); larger blobs, and all blobs without a fast path, go through the SDK's asyncio client, which
splits them into ranges or blocks sent in parallel. Both run on the one event loop of
:class:`~batchbox.backends.azure._blob_transfers.BlobTransfers`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchbox.backends.azure._blob_transfers import BlobTransfers
from batchbox.backends.azure._sas_transfers import SMALL_BLOB, SasTransfers
from batchbox.core.storage import BlobInfo, ProgressCallback, UploadItem
from batchbox.core.transfers import partial_path

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

__all__ = ["DEFAULT_TRANSFER_CONCURRENCY", "BulkTransfers", "DownloadEntry"]

DEFAULT_TRANSFER_CONCURRENCY = 32
"""Blob transfers in flight by default: over a network each request waits a round trip, so more in flight means
more overlap (bench/RESULTS.md, staging over a simulated network); on loopback 32 costs no more than 8."""

DownloadEntry = tuple[BlobInfo, Path]
"""A blob to download and the file it goes to."""

_WRITER_THREADS = 2


@dataclass(frozen=True)
class BulkTransfers:
    """Uploads, listings and downloads of many blobs of one container at once.

    Attributes:
        runner: the event loop the transfers run on.
        errors: translated errors of a call about a container, or about one of its blobs (a context manager).
    """

    runner: BlobTransfers
    errors: Callable[[str, str | None], AbstractContextManager[None]]

    def upload(
        self,
        container: str,
        items: Sequence[UploadItem],
        fast: SasTransfers | None,
        *,
        max_concurrency: int,
        overwrite: bool,
        progress: ProgressCallback | None,
    ) -> None:
        """Upload ``items`` (already checked), the small ones on ``fast`` when there is one."""
        sizes = {item.blob_name: item.path.stat().st_size for item in items}
        small = [item for item in items if fast is not None and sizes[item.blob_name] <= SMALL_BLOB]
        large = [item for item in items if fast is None or sizes[item.blob_name] > SMALL_BLOB]
        per_blob = _per_transfer_concurrency(max_concurrency, len(large))

        def done(item: UploadItem) -> str:
            if progress is not None:
                progress(item.blob_name, sizes[item.blob_name])
            return item.blob_name

        async def put(pipeline: Any, item: UploadItem) -> str:
            assert fast is not None
            with self.errors(container, item.blob_name):
                await fast.put(pipeline, item.blob_name, item.path.read_bytes(), overwrite=overwrite)
            return done(item)

        async def upload(client: AsyncBlobServiceClient, item: UploadItem) -> str:
            with self.errors(container, item.blob_name), open(item.path, "rb") as stream:
                await client.get_blob_client(container, item.blob_name).upload_blob(
                    stream, length=sizes[item.blob_name], overwrite=overwrite, max_concurrency=per_blob
                )
            return done(item)

        if fast is not None:
            self.runner.run(put, small, max_concurrency, opener=fast.pipeline)
        self.runner.run(upload, large, max_concurrency)

    def list_blobs(self, container: str, prefix: str | None, fast: SasTransfers) -> list[BlobInfo]:
        """The blobs of ``container`` whose names start with ``prefix``, listed on the fast path."""

        async def listing(pipeline: Any, _: None) -> list[BlobInfo]:
            with self.errors(container, None):
                return await fast.list(pipeline, prefix)

        return self.runner.run(listing, [None], 1, opener=fast.pipeline)[0]

    def download(
        self,
        container: str,
        entries: Sequence[DownloadEntry],
        fast: SasTransfers | None,
        *,
        max_concurrency: int,
        progress: ProgressCallback | None,
    ) -> None:
        """Download each blob of ``entries`` to its file (through a partial file renamed when complete), the small
        ones on ``fast`` when there is one."""
        small = [entry for entry in entries if fast is not None and entry[0].size <= SMALL_BLOB]
        large = [entry for entry in entries if fast is None or entry[0].size > SMALL_BLOB]
        per_blob = _per_transfer_concurrency(max_concurrency, len(large))
        folders_made: set[Path] = set()  # the transfers share one event loop: no lock needed

        def part_for(target: Path) -> Path:
            if target.parent not in folders_made:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders_made.add(target.parent)
            return partial_path(target)

        def done(blob: BlobInfo, target: Path) -> Path:
            if progress is not None:
                progress(blob.name, blob.size)
            return target

        async def get(pipeline: Any, entry: DownloadEntry) -> Path:
            assert fast is not None
            blob, target = entry
            with self.errors(container, blob.name):
                data = await fast.get(pipeline, blob.name)
            # Creating a file is mostly kernel time: in a writer thread it overlaps the loop's requests.
            await asyncio.get_running_loop().run_in_executor(writers, _write_atomically, part_for(target), data, target)
            return done(blob, target)

        async def download(client: AsyncBlobServiceClient, entry: DownloadEntry) -> Path:
            blob, target = entry
            part = part_for(target)
            try:
                with self.errors(container, blob.name), open(part, "wb") as sink:
                    stream = await client.get_blob_client(container, blob.name).download_blob(max_concurrency=per_blob)
                    await stream.readinto(sink)
                os.replace(part, target)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            return done(blob, target)

        if fast is not None:
            with ThreadPoolExecutor(max_workers=_WRITER_THREADS, thread_name_prefix="batchbox-write") as writers:
                self.runner.run(get, small, max_concurrency, opener=fast.pipeline)
        self.runner.run(download, large, max_concurrency)


def _write_atomically(part: Path, data: bytes, target: Path) -> None:
    """Write ``data`` to ``part``, then rename it to ``target`` (no partial ``target`` is ever seen)."""
    try:
        part.write_bytes(data)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _per_transfer_concurrency(max_concurrency: int, transfers: int) -> int:
    """Connections one blob transfer may use: the pool's share, so a lone large file still goes in parallel."""
    return max(1, max_concurrency // max(1, transfers))
