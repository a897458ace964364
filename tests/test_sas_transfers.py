"""The one-request path of uploads and downloads (``_sas_transfers``) against Azurite: what it moves must be what the
SDK's path moves, byte for byte and name for name, and its errors must read the same.

Files up to ``SMALL_BLOB`` take it, larger ones the SDK's; both sizes are mixed in one transfer here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.azure._sas_transfers import SMALL_BLOB, SasTransfers
from batchbox.core.errors import ResourceExistsError, ResourceNotFoundError
from batchbox.core.storage import BlobInfo, ContainerPermission, UploadItem

NAMES = ["plain.txt", "with space.bin", "ünïcødé/名前.dat", "odd#?%&+=;chars", "deep/er/still~.x"]


def _write(directory: Path, name: str, size: int) -> Path:
    path = directory / name.replace("/", "_")
    path.write_bytes(bytes((i * 7 + len(name)) % 251 for i in range(size)))
    return path


def test_small_and_large_files_round_trip_with_their_names(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    sizes = [0, 1, 64 * 1024, SMALL_BLOB, SMALL_BLOB + 1]
    items = [UploadItem(_write(tmp_path, name, size), name) for name, size in zip(NAMES, sizes, strict=True)]
    assert blob_storage.upload_files(blob_container, items) == NAMES
    listed = {blob.name: blob.size for blob in blob_storage.list_blobs(blob_container)}
    assert listed == dict(zip(NAMES, sizes, strict=True))
    destination = tmp_path / "out"
    paths = blob_storage.download_container(blob_container, destination)
    assert [p.relative_to(destination).as_posix() for p in paths] == sorted(NAMES)
    for item in items:
        assert (destination / item.blob_name).read_bytes() == item.path.read_bytes(), item.blob_name
    assert not [p for p in destination.rglob("*") if ".part-" in p.name]


def test_without_overwrite_an_existing_blob_is_refused(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    item = UploadItem(_write(tmp_path, "once.txt", 10), "once.txt")
    blob_storage.upload_files(blob_container, [item])
    with pytest.raises(ResourceExistsError) as info:
        blob_storage.upload_files(blob_container, [item], overwrite=False)
    assert info.value.kind == "blob" and info.value.name == "once.txt"


def test_downloading_a_missing_container_names_it(blob_storage: BlobStorage, tmp_path: Path) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        blob_storage.download_container("no-such-container-here", tmp_path)
    assert info.value.kind == "container"


def test_listing_follows_every_page_and_the_prefix(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    names = [f"a/{i:02d}" for i in range(7)] + ["b/only"]
    blob_storage.upload_files(blob_container, [UploadItem(_write(tmp_path, n, 3), n) for n in names])
    sas = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.READ, ContainerPermission.LIST], expiry=timedelta(minutes=5)
    ).partition("?")[2]
    transfers = SasTransfers(
        blob_storage.container_url(blob_container),
        sas,
        api_version=blob_storage.api_version,
        retry_total=0,
        retry_backoff=0,
        connection_timeout=4,
        read_timeout=10,
        use_env_proxies=False,
    )

    async def listing(prefix: str | None) -> list[str]:
        async with transfers.pipeline() as pipeline:
            return [blob.name for blob in await transfers.list(pipeline, prefix, page_size=3)]

    assert asyncio.run(listing(None)) == names
    assert asyncio.run(listing("a/")) == names[:7]
    one = asyncio.run(_first(transfers))
    assert one.size == 3 and one.last_modified is not None


async def _first(transfers: SasTransfers) -> BlobInfo:
    async with transfers.pipeline() as pipeline:
        return (await transfers.list(pipeline, page_size=1))[0]
