"""The storage contract (:class:`batchbox.core.storage.StorageBackend`) as tests, for every backend.

A target subclasses :class:`StorageContract` and provides the fixtures ``storage`` (the backend under test),
``sas_client`` (how a node uses the SAS URLs it signs) and ``put_unsafe_blob`` (stores a blob under a name that
would escape a download directory, which a well-behaved client cannot upload).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from batchbox.core.errors import BatchboxError, InvalidRequestError, ResourceExistsError, ResourceNotFoundError
from batchbox.core.storage import BlobInfo, ContainerPermission, StorageBackend, UploadItem
from tests.contract.helpers import SasClient, unique

__all__ = ["StorageContract", "make_tree", "sas_params", "tamper"]

READ, LIST, WRITE, CREATE = (
    ContainerPermission.READ,
    ContainerPermission.LIST,
    ContainerPermission.WRITE,
    ContainerPermission.CREATE,
)
HOUR = timedelta(hours=1)


def make_tree(root: Path, names: list[str]) -> list[UploadItem]:
    """Files under ``root`` named like their blobs, each with distinct content."""
    items = []
    for index, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{index}:{name}\n".encode() * (index % 7 + 1))
        items.append(UploadItem(path=path, blob_name=name))
    return items


def sas_params(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def tamper(url: str) -> str:
    """``url`` with the first character of its signature changed."""
    base, query = url.split("?", 1)
    parts = query.split("&")
    for index, part in enumerate(parts):
        if part.startswith("sig="):
            signature = unquote(part[4:])
            parts[index] = "sig=" + quote(("B" if signature[0] == "A" else "A") + signature[1:], safe="")
    tampered = f"{base}?{'&'.join(parts)}"
    assert sas_params(tampered)["sig"] != sas_params(url)["sig"]
    return tampered


class StorageContract:
    """What every StorageBackend does; the fixtures below the marker line are the target's to provide."""

    # -- provided by each target ------------------------------------------------------------------------------

    @pytest.fixture
    def storage(self) -> StorageBackend:
        raise NotImplementedError("a storage contract target provides the storage fixture")

    @pytest.fixture
    def sas_client(self) -> SasClient:
        raise NotImplementedError("a storage contract target provides the sas_client fixture")

    @pytest.fixture
    def put_unsafe_blob(self) -> Callable[[str, str, bytes], None]:
        raise NotImplementedError("a storage contract target provides the put_unsafe_blob fixture")

    # -- shared -------------------------------------------------------------------------------------------------

    @pytest.fixture
    def new_container(self, storage: StorageBackend) -> Iterator[Callable[[], str]]:
        """Call it for a container name no other test uses; the container is deleted afterwards."""
        names: list[str] = []

        def make() -> str:
            names.append(unique("t"))
            return names[-1]

        yield make
        for name in names:
            with contextlib.suppress(BatchboxError):
                storage.delete_container(name)

    @pytest.fixture
    def container(self, storage: StorageBackend, new_container: Callable[[], str]) -> str:
        """A fresh container, created and empty."""
        name = new_container()
        storage.create_container(name)
        return name

    # -- round trips ------------------------------------------------------------------------------------------

    def test_round_trip_nested_names(self, storage: StorageBackend, container: str, tmp_path: Path) -> None:
        names = ["top.txt", "a/b/c.txt", "a/b/d.bin", "a/e f.txt", "deep/1/2/3/4/x.csv", "ünï/cødé.txt"]
        items = make_tree(tmp_path / "src", names)

        assert storage.upload_files(container, items, max_concurrency=3) == names

        listed = {blob.name: blob.size for blob in storage.list_blobs(container)}
        assert listed == {item.blob_name: item.path.stat().st_size for item in items}
        assert storage.read_blob(container, "a/b/c.txt") == (tmp_path / "src/a/b/c.txt").read_bytes()

        destination = tmp_path / "dst"
        paths = storage.download_container(container, destination)
        assert sorted(paths) == sorted(destination / name for name in names)
        for name in names:
            assert (destination / name).read_bytes() == (tmp_path / "src" / name).read_bytes()

    def test_prefix_filters_list_and_download(self, storage: StorageBackend, container: str, tmp_path: Path) -> None:
        storage.upload_files(container, make_tree(tmp_path / "src", ["in/a.txt", "in/b.txt", "out/c.txt"]))

        assert [blob.name for blob in storage.list_blobs(container, prefix="in/")] == ["in/a.txt", "in/b.txt"]
        paths = storage.download_container(container, tmp_path / "dst", prefix="out/")
        assert paths == [tmp_path / "dst" / "out" / "c.txt"]
        assert not (tmp_path / "dst" / "in").exists()

    def test_many_files_bounded_concurrency_and_progress(
        self, storage: StorageBackend, container: str, tmp_path: Path
    ) -> None:
        names = [f"batch/{index // 50}/file-{index:03d}.txt" for index in range(200)]
        items = make_tree(tmp_path / "src", names)
        calls: list[tuple[str, int]] = []
        threads: set[str] = set()
        lock = threading.Lock()

        def progress(blob_name: str, size: int) -> None:
            with lock:
                calls.append((blob_name, size))
                threads.add(threading.current_thread().name)

        assert storage.upload_files(container, items, max_concurrency=8, progress=progress) == names
        assert sorted(calls) == sorted((item.blob_name, item.path.stat().st_size) for item in items)
        assert 1 <= len(threads) <= 8

        calls.clear()
        threads.clear()
        paths = storage.download_container(container, tmp_path / "dst", max_concurrency=8, progress=progress)
        assert len(paths) == 200
        assert sorted(name for name, _ in calls) == sorted(names)
        assert 1 <= len(threads) <= 8
        assert all((tmp_path / "dst" / name).read_bytes() == (tmp_path / "src" / name).read_bytes() for name in names)
        with pytest.raises(ValueError, match="max_concurrency"):
            storage.upload_files(container, items[:1], max_concurrency=0)

    def test_upload_checks_local_files_before_sending(
        self, storage: StorageBackend, container: str, tmp_path: Path
    ) -> None:
        items = make_tree(tmp_path, ["one.txt", "two.txt"])
        items.insert(1, UploadItem(path=tmp_path / "missing.txt", blob_name="missing.txt"))

        with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
            storage.upload_files(container, items)
        assert storage.list_blobs(container) == []

    def test_upload_bytes_overwrite_rules(self, storage: StorageBackend, container: str) -> None:
        storage.upload_bytes(container, "x.txt", b"first")
        storage.upload_bytes(container, "x.txt", b"second")
        assert storage.read_blob(container, "x.txt") == b"second"

        with pytest.raises(ResourceExistsError) as caught:
            storage.upload_bytes(container, "x.txt", b"third", overwrite=False)
        assert (caught.value.kind, caught.value.name) == ("blob", "x.txt")
        assert storage.read_blob(container, "x.txt") == b"second"

    def test_create_and_delete_are_idempotent(self, storage: StorageBackend, new_container: Callable[[], str]) -> None:
        name = new_container()
        storage.create_container(name)
        storage.upload_bytes(name, "keep.txt", b"kept")
        storage.create_container(name)
        assert [blob.name for blob in storage.list_blobs(name)] == ["keep.txt"]

        storage.delete_container(name)
        storage.delete_container(name)
        with pytest.raises(ResourceNotFoundError) as caught:
            storage.list_blobs(name)
        assert caught.value.kind == "container"

    def test_invalid_container_name_is_refused_before_any_call(self, storage: StorageBackend) -> None:
        with pytest.raises(ValueError, match="invalid container name"):
            storage.create_container("Bad_Name")

    def test_blob_info_of_listing(self, storage: StorageBackend, container: str) -> None:
        storage.upload_bytes(container, "x.txt", b"12345")
        [info] = storage.list_blobs(container)
        assert isinstance(info, BlobInfo)
        assert (info.name, info.size) == ("x.txt", 5)
        assert info.last_modified is not None

    # -- downloads ------------------------------------------------------------------------------------------------

    def test_download_leaves_no_part_files_even_when_a_rename_fails(
        self, storage: StorageBackend, container: str, tmp_path: Path
    ) -> None:
        storage.upload_files(container, make_tree(tmp_path / "src", ["a.txt", "sub/b.txt", "sub/c.txt"]))
        destination = tmp_path / "dst"
        storage.download_container(container, destination)
        written = sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*") if p.is_file())
        assert written == ["a.txt", "sub/b.txt", "sub/c.txt"]

        blocked = tmp_path / "blocked"
        (blocked / "a.txt").mkdir(parents=True)  # a directory where the file must go: the final rename fails
        with pytest.raises(OSError):
            storage.download_container(container, blocked, max_concurrency=1)
        assert [p.name for p in blocked.rglob("*") if ".part-" in p.name] == []

    def test_download_refuses_names_escaping_destination(
        self,
        storage: StorageBackend,
        container: str,
        put_unsafe_blob: Callable[[str, str, bytes], None],
        tmp_path: Path,
    ) -> None:
        put_unsafe_blob(container, "../evil", b"evil")
        storage.upload_bytes(container, "fine.txt", b"fine")
        assert "../evil" in {blob.name for blob in storage.list_blobs(container)}

        destination = tmp_path / "box" / "dst"
        with pytest.raises(InvalidRequestError) as caught:
            storage.download_container(container, destination)
        assert (caught.value.kind, caught.value.name) == ("blob", "../evil")
        assert not (tmp_path / "box" / "evil").exists()
        assert not destination.exists() or list(destination.iterdir()) == []

    def test_skip_existing_keeps_files_of_the_blob_size(
        self, storage: StorageBackend, container: str, tmp_path: Path
    ) -> None:
        storage.upload_bytes(container, "same.txt", b"0123456789")
        storage.upload_bytes(container, "other.txt", b"remote content")
        destination = tmp_path / "dst"
        destination.mkdir()
        (destination / "same.txt").write_bytes(b"abcdefghij")  # same size: kept as is
        (destination / "other.txt").write_bytes(b"short")  # other size: downloaded again
        fetched: list[str] = []

        paths = storage.download_container(
            container, destination, skip_existing=True, progress=lambda name, size: fetched.append(name)
        )
        assert sorted(paths) == [destination / "other.txt", destination / "same.txt"]
        assert fetched == ["other.txt"]
        assert (destination / "same.txt").read_bytes() == b"abcdefghij"
        assert (destination / "other.txt").read_bytes() == b"remote content"

        storage.download_container(container, destination, skip_existing=False)
        assert (destination / "same.txt").read_bytes() == b"0123456789"

    def test_download_with_the_callers_listing_fetches_only_what_it_lists(
        self, storage: StorageBackend, container: str, tmp_path: Path
    ) -> None:
        storage.upload_bytes(container, "out/a.txt", b"a")
        storage.upload_bytes(container, "out/b.txt", b"bb")
        storage.upload_bytes(container, "log.txt", b"log")
        listing = storage.list_blobs(container)
        storage.upload_bytes(container, "out/c.txt", b"written after the listing")
        destination = tmp_path / "dst"

        paths = storage.download_container(container, destination, prefix="out/", listing=listing)

        assert sorted(paths) == [destination / "out" / "a.txt", destination / "out" / "b.txt"]
        assert (destination / "out" / "b.txt").read_bytes() == b"bb"
        assert not (destination / "out" / "c.txt").exists(), "not in the listing: left for a later call"
        assert not (destination / "log.txt").exists(), "outside the prefix"

    def test_missing_container_and_blob_are_told_apart(
        self, storage: StorageBackend, container: str, new_container: Callable[[], str], tmp_path: Path
    ) -> None:
        absent = new_container()
        for call in (
            lambda: storage.read_blob(absent, "x.txt"),
            lambda: storage.list_blobs(absent),
            lambda: storage.upload_bytes(absent, "x.txt", b"x"),
            lambda: storage.upload_files(absent, make_tree(tmp_path, ["x.txt"])),
            lambda: storage.download_container(absent, tmp_path / "dst"),
        ):
            with pytest.raises(ResourceNotFoundError) as caught:
                call()
            assert (caught.value.kind, caught.value.name) == ("container", absent)

        with pytest.raises(ResourceNotFoundError) as missing_blob:
            storage.read_blob(container, "nope/x.txt")
        assert (missing_blob.value.kind, missing_blob.value.name) == ("blob", "nope/x.txt")
        assert "\n" not in str(missing_blob.value)

    # -- SAS ------------------------------------------------------------------------------------------------------

    def test_blob_sas_reads_its_blob_and_nothing_else(
        self, storage: StorageBackend, container: str, sas_client: SasClient
    ) -> None:
        storage.upload_bytes(container, "dir/data.bin", b"\x00payload\xff")
        storage.upload_bytes(container, "other.bin", b"other")
        url = storage.blob_sas_url(container, "dir/data.bin", expiry=HOUR)

        assert url.startswith(storage.blob_url(container, "dir/data.bin") + "?")
        assert sas_params(url)["sp"] == "r"
        assert sas_client.read(url) == (200, b"\x00payload\xff")
        blob_sas_on_the_container = storage.container_url(container) + "?" + url.split("?", 1)[1]
        assert sas_client.write(blob_sas_on_the_container, "new.bin", b"x") == 403
        assert [blob.name for blob in storage.list_blobs(container)] == ["dir/data.bin", "other.bin"]

    def test_sas_expiry_accepts_a_datetime(
        self, storage: StorageBackend, container: str, sas_client: SasClient
    ) -> None:
        expiry = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        url = storage.container_sas_url(container, [LIST], expiry=expiry)
        assert sas_params(url)["se"] == "2031-01-02T03:04:05Z"
        assert sas_client.list(url) == 200

    def test_container_sas_grants_exactly_the_permissions_asked(
        self, storage: StorageBackend, container: str, sas_client: SasClient
    ) -> None:
        storage.upload_bytes(container, "existing.txt", b"secret data")
        write_url = storage.container_sas_url(container, [WRITE, CREATE], expiry=HOUR)
        assert write_url.startswith(storage.container_url(container) + "?")
        assert sas_params(write_url)["sp"] == "cw"

        assert sas_client.write(write_url, "new.txt", b"written") == 201
        assert storage.read_blob(container, "new.txt") == b"written"
        assert sas_client.list(write_url) == 403
        assert sas_client.read(write_url, "existing.txt")[0] == 403

        read_list = storage.container_sas_url(container, [LIST, READ], expiry=HOUR)
        assert sas_params(read_list)["sp"] == "rl"
        assert sas_client.list(read_list) == 200
        assert sas_client.read(read_list, "existing.txt") == (200, b"secret data")
        assert sas_client.write(read_list, "x.txt", b"x") == 403
        with pytest.raises(ValueError, match="at least one permission"):
            storage.container_sas_url(container, [], expiry=HOUR)

    def test_expired_sas_is_refused(self, storage: StorageBackend, container: str, sas_client: SasClient) -> None:
        storage.upload_bytes(container, "x.txt", b"x")
        assert sas_client.read(storage.blob_sas_url(container, "x.txt", expiry=timedelta(minutes=-1)))[0] == 403
        expired = storage.container_sas_url(container, [READ, LIST], expiry=timedelta(minutes=-1))
        assert sas_client.read(expired, "x.txt")[0] == 403
        assert sas_client.list(expired) == 403

    def test_tampered_sas_is_refused(self, storage: StorageBackend, container: str, sas_client: SasClient) -> None:
        storage.upload_bytes(container, "x.txt", b"x")
        good = storage.blob_sas_url(container, "x.txt", expiry=HOUR)
        assert sas_client.read(good) == (200, b"x")
        assert sas_client.read(tamper(good))[0] == 403
        container_sas = storage.container_sas_url(container, [READ, WRITE], expiry=HOUR)
        assert sas_client.write(tamper(container_sas), "y.txt", b"y") == 403
        assert [blob.name for blob in storage.list_blobs(container)] == ["x.txt"]

    def test_read_only_sas_cannot_write(self, storage: StorageBackend, container: str, sas_client: SasClient) -> None:
        storage.upload_bytes(container, "x.txt", b"original")
        read_only = storage.container_sas_url(container, [READ], expiry=HOUR)
        assert sas_client.read(read_only, "x.txt") == (200, b"original")
        assert sas_client.write(read_only, "x.txt", b"overwrite") == 403
        assert storage.read_blob(container, "x.txt") == b"original"
