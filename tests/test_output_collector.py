"""Outputs downloaded while tasks run (``batchbox.core.collector``): passes bring new outputs, and an output written
again after its download is fetched again by the collect step, on the in-memory storage and on Azurite."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from batchbox.backends.azure import BlobStorage
from batchbox.backends.memory import MemoryStorage
from batchbox.core.collector import OutputCollector
from batchbox.core.storage import StorageBackend


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _collect_while_writing(storage: StorageBackend, container: str, destination: Path) -> None:
    storage.upload_bytes(container, "a.txt", b"first")
    storage.upload_bytes(container, "b.txt", b"bbbbb")
    collector = OutputCollector(storage, container, destination, max_concurrency=4, every_tasks=2)
    collector.completed(1)  # not enough yet: no pass
    time.sleep(0.1)
    assert collector.passes == 0 and not destination.exists()
    collector.completed(2)
    _wait_for(lambda: collector.passes == 1, "a pass")
    assert (destination / "a.txt").read_bytes() == b"first"
    time.sleep(1.1)  # a blob's last-modified time has a resolution of one second
    storage.upload_bytes(container, "a.txt", b"again")  # written again, same size
    storage.upload_bytes(container, "c.txt", b"c")
    collector.completed(4)
    _wait_for(lambda: collector.passes == 2, "a second pass")
    assert (destination / "c.txt").read_bytes() == b"c"
    assert (destination / "a.txt").read_bytes() == b"first", "same size: the pass keeps it"
    collector.finish()
    assert not (destination / "a.txt").exists(), "changed since its download: left for the collect step"
    assert (destination / "b.txt").read_bytes() == b"bbbbb"
    storage.download_container(container, destination, skip_existing=True)
    assert (destination / "a.txt").read_bytes() == b"again"
    assert collector.errors == []


def test_collector_on_the_memory_storage(tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.create_container("outputs")
    _collect_while_writing(storage, "outputs", tmp_path / "out")


def test_collector_on_azurite(blob_storage: BlobStorage, blob_container: str, tmp_path: Path) -> None:
    _collect_while_writing(blob_storage, blob_container, tmp_path / "out")


def test_a_failing_pass_is_noted_and_finish_still_returns(tmp_path: Path) -> None:
    storage = MemoryStorage()
    collector = OutputCollector(storage, "missing-container", tmp_path / "out", max_concurrency=2, every_tasks=1)
    collector.completed(1)
    _wait_for(lambda: collector.errors, "the failed pass to be noted")
    collector.finish()
    assert "missing-container" in collector.errors[0]


def test_passes_are_spaced_geometrically_so_listings_stay_linear_in_the_outputs(tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.create_container("outputs")
    collector = OutputCollector(
        storage, "outputs", tmp_path / "out", max_concurrency=2, every_tasks=1, growth=2.0, every_seconds=3600
    )
    expected_passes = 0
    for count in range(1, 17):
        storage.upload_bytes("outputs", f"result-{count:02d}.txt", b"r")
        collector.completed(count)
        if count in (1, 2, 4, 8, 16):  # each pass once the count doubled since the last one
            expected_passes += 1
            _wait_for(lambda n=expected_passes: collector.passes == n, f"pass {expected_passes} at {count} tasks")
        else:
            time.sleep(0.05)
            assert collector.passes == expected_passes, f"no pass at {count} tasks"
    collector.finish()
    assert len(list((tmp_path / "out").iterdir())) == 16
    assert collector.errors == []
