"""Benchmark 4, staging: upload 500 files of 64 KiB to Azurite, then download them.

Baseline: the Azure Batch Python tutorial's loop, one ``upload_blob`` per file on a plain ``BlobServiceClient``,
one after another, and the same for download (``download_blob().readall()`` per blob, then write the file).
batchbox: :meth:`BlobStorage.upload_files` and :meth:`BlobStorage.download_container` with their default
``max_concurrency``, plus a sweep over a few other values. Both sides run against the same Azurite process in the
same run, alternating which goes first; every download is compared byte for byte with the source files. In the
same rounds, ``staging_probe.js`` (the cheapest client we could write) measures what Azurite itself allows, and
the download is taken apart: the same files written by a plain loop, batchbox's download to tmpfs, and to tmpfs with
the listing passed in.

Run: ``.venv/bin/python -m bench.bench_staging [--repeat 5] [--sweep 1,4,16,32] [--no-write]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Literal

from azure.storage.blob import BlobServiceClient

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import ContainerPermission, UploadItem
from bench.common import (
    azurite,
    base_parser,
    fmt_seconds,
    process_cpu_seconds,
    provenance,
    publish,
    self_cpu_seconds,
)
from bench.staging_probe import run_probe
from bench.staging_report import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DOWNLOAD_CONCURRENCY,
    PROBE_IN_FLIGHT,
    Phase,
    Series,
    render,
)

__all__ = [
    "BenchmarkError",
    "baseline_download",
    "baseline_upload",
    "main",
    "make_files",
    "verify_download",
    "verify_upload",
]

SECTION = "staging"
FILE_COUNT = 500
FILE_SIZE = 64 * 1024
SEED = 20240604


def memory_file_system() -> Path | None:
    """``/dev/shm`` when it is a tmpfs (the download rows that leave the disk out write there), else None."""
    mounts = Path("/proc/mounts")
    if not mounts.exists():
        return None
    for fields in map(str.split, mounts.read_text().splitlines()):
        if fields[1:3] == ["/dev/shm", "tmpfs"]:
            return Path(fields[1])
    return None


class BenchmarkError(Exception):
    """The benchmark produced a wrong result (a download differs from its source)."""


def make_files(directory: Path, count: int, size: int, seed: int = SEED) -> list[Path]:
    """Write ``count`` files of ``size`` pseudo-random bytes (same seed, same bytes) into ``directory``."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"input-{i:04d}.bin"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


# -- the tutorial's way ---------------------------------------------------------------------------------------


def baseline_upload(service: BlobServiceClient, container: str, files: Sequence[Path]) -> None:
    """The tutorial's ``upload_file_to_container``, called once per file, one after another."""
    for file_path in files:
        blob_client = service.get_blob_client(container, file_path.name)
        with open(file_path, "rb") as data:
            blob_client.upload_blob(data, overwrite=True)


def baseline_download(service: BlobServiceClient, container: str, destination: Path) -> None:
    """List the container, then ``download_blob().readall()`` and write each blob, one after another."""
    container_client = service.get_container_client(container)
    for blob in container_client.list_blobs():
        data = service.get_blob_client(container, blob.name).download_blob().readall()
        with open(destination / blob.name, "wb") as f:
            f.write(data)


# -- checks -----------------------------------------------------------------------------------------------------


def verify_download(sources: Sequence[Path], destination: Path) -> None:
    """Raise :class:`BenchmarkError` unless ``destination`` holds exactly the source files, byte for byte."""
    expected = {p.name for p in sources}
    found = {p.name for p in destination.iterdir()}
    if found != expected:
        missing, extra = sorted(expected - found)[:3], sorted(found - expected)[:3]
        raise BenchmarkError(f"{destination}: missing {missing}, unexpected {extra}")
    for source in sources:
        if (destination / source.name).read_bytes() != source.read_bytes():
            raise BenchmarkError(f"{destination / source.name} differs from {source}")


def verify_upload(storage: BlobStorage, container: str, sources: Sequence[Path]) -> None:
    """Raise :class:`BenchmarkError` unless the container lists exactly the source names with their sizes."""
    listed = {b.name: b.size for b in storage.list_blobs(container)}
    expected = {p.name: p.stat().st_size for p in sources}
    if listed != expected:
        raise BenchmarkError(f"container {container}: {len(listed)} blobs listed, sizes or names differ from sources")


# -- measurement ------------------------------------------------------------------------------------------------


class Staging:
    """One Azurite, the two clients and the source files; measures one round trip (upload + download) per call."""

    def __init__(self, server_pid: int, connection_string: str, sources: list[Path], work: Path) -> None:
        self.server_pid = server_pid
        self.sources = sources
        self.work = work
        self.service = BlobServiceClient.from_connection_string(connection_string)
        self.storage = BlobStorage.from_connection_string(connection_string)
        self.items = [UploadItem(p, p.name) for p in sources]

    def close(self) -> None:
        self.service.close()
        self.storage.close()

    def _timed(self, action: Callable[[], object]) -> Phase:
        pid = self.server_pid
        server, main, client = process_cpu_seconds(pid), process_cpu_seconds(pid, pid), self_cpu_seconds()
        start = time.perf_counter()
        action()
        wall = time.perf_counter() - start
        return Phase(
            wall,
            process_cpu_seconds(pid) - server,
            process_cpu_seconds(pid, pid) - main,
            self_cpu_seconds() - client,
        )

    def _fresh(self, tag: str) -> str:
        """A new container (its creation also warms the connection pools of both clients)."""
        container = f"bench-{tag}-{uuid.uuid4().hex[:12]}"
        self.storage.create_container(container)
        self.service.get_container_client(container).get_container_properties()
        return container

    def _folder(self, name: str, root: Path | None = None) -> Path:
        """A new folder to download into, under ``root`` (default: the run's temporary directory)."""
        folder = (root or self.work) / name
        folder.mkdir()
        return folder

    def baseline(self) -> tuple[Phase, Phase]:
        """(upload, download) of the tutorial's loops, verified."""
        container = self._fresh("base")
        destination = self._folder(container)
        try:
            up = self._timed(lambda: baseline_upload(self.service, container, self.sources))
            verify_upload(self.storage, container, self.sources)
            down = self._timed(lambda: baseline_download(self.service, container, destination))
            verify_download(self.sources, destination)
        finally:
            self._cleanup(container)
        return up, down

    def batchbox(
        self, concurrency: int | None = None, *, root: Path | None = None, listed: bool = False
    ) -> tuple[Phase, Phase]:
        """(upload, download) of BlobStorage, verified; its default ``max_concurrency`` when None.

        ``root``: where the download's folder goes (default: the run's temporary directory). ``listed``: the
        container's listing is taken before the download's clock starts and passed in (``listing=``), so the
        download is the transfers and the file writes alone.
        """
        container = self._fresh("bbx")
        destination = self._folder(container, root)
        up_concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
        down_concurrency = DEFAULT_DOWNLOAD_CONCURRENCY if concurrency is None else concurrency
        try:
            up = self._timed(lambda: self.storage.upload_files(container, self.items, max_concurrency=up_concurrency))
            verify_upload(self.storage, container, self.sources)
            listing = self.storage.list_blobs(container) if listed else None
            down = self._timed(
                lambda: self.storage.download_container(
                    container, destination, max_concurrency=down_concurrency, listing=listing
                )
            )
            verify_download(self.sources, destination)
        finally:
            self._cleanup(container)
        return up, down

    def probe(self) -> tuple[Phase, Phase]:
        """(upload, download) by the cheapest client we could write (``bench/staging_probe.js``), checked."""
        container = self._fresh("probe")
        permissions = [ContainerPermission.READ, ContainerPermission.CREATE, ContainerPermission.WRITE]
        url, _, sas = self.storage.container_sas_url(container, permissions, expiry=timedelta(hours=1)).partition("?")
        try:
            up = self._probed(url, sas, "up")
            verify_upload(self.storage, container, self.sources)
            down = self._probed(url, sas, "down")
        finally:
            self._cleanup(container)
        return up, down

    def writes_alone(self) -> Phase:
        """The download's files written to a new folder on the disk in a plain loop, no network: what any client
        that saves them here pays (the contents are read into memory before the clock starts)."""
        destination = self._folder(f"bench-writes-{uuid.uuid4().hex[:12]}")
        contents = [(destination / p.name, p.read_bytes()) for p in self.sources]

        def write_all() -> None:
            for path, data in contents:
                path.write_bytes(data)

        written = self._timed(write_all)
        verify_download(self.sources, destination)
        return written

    def _probed(self, url: str, sas: str, mode: Literal["up", "down"]) -> Phase:
        """One probe transfer; wall and client CPU as the probe measured them, Azurite's CPU around it."""
        pid = self.server_pid
        server, main = process_cpu_seconds(pid), process_cpu_seconds(pid, pid)
        run = run_probe(url, sas, mode, self.sources[0].parent, PROBE_IN_FLIGHT)
        expected = sum(p.stat().st_size for p in self.sources)
        if (run.requests, run.bytes) != (len(self.sources), expected):
            raise BenchmarkError(f"probe {mode}: {run.requests} files, {run.bytes} bytes; expected {expected}")
        return Phase(run.wall, process_cpu_seconds(pid) - server, process_cpu_seconds(pid, pid) - main, run.client_cpu)

    def _cleanup(self, container: str) -> None:
        """Delete the container; the downloaded files stay until the run's temporary directory goes.

        Deleting 500 files right before the next round creates 500 more makes the file system slower to create
        them (ext4 passes over recently freed inodes), a cost of the benchmark's own cleanup that a user's
        download into a new folder does not pay.
        """
        self.storage.delete_container(container)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "staging benchmark", repeat=5)
    parser.add_argument("--files", type=int, default=FILE_COUNT, help=f"files to stage (default {FILE_COUNT})")
    parser.add_argument("--file-kib", type=int, default=FILE_SIZE // 1024, help="size of each file in KiB (64)")
    parser.add_argument(
        "--sweep", default="1,8,16", help="other max_concurrency values to measure for batchbox ('' for none)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    args = _parse_args(argv)
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()]
    load = os.getloadavg()
    size = args.file_kib * 1024
    results: dict[tuple[str, str], Series] = defaultdict(Series)
    os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="batchbox-bench-staging-"))
        az = stack.enter_context(azurite(Path(tmp) / "azurite"))
        sources = make_files(Path(tmp) / "src", args.files, size)
        staging = Staging(az.pid, az.connection_string, sources, Path(tmp))
        shm = memory_file_system()
        memory = (
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchbox-bench-", dir=shm))) if shm else None
        )
        try:
            staging.baseline()  # warm-up round (imports, Azurite's JIT, page cache), not counted
            staging.batchbox()
            for rep in range(args.repeat):
                sides: list[tuple[str, Callable[[], tuple[Phase, Phase]]]] = [
                    ("baseline", staging.baseline),
                    ("batchbox", staging.batchbox),
                ]
                sides += [(f"c{c}", functools.partial(staging.batchbox, c)) for c in sweep]
                if memory is not None:
                    sides.append(("tmpfs", functools.partial(staging.batchbox, root=memory)))
                    sides.append(("tmpfs-listed", functools.partial(staging.batchbox, root=memory, listed=True)))
                sides.append(("probe", staging.probe))
                if rep % 2:
                    sides[:2] = sides[1::-1]
                for name, run in sides:
                    up, down = run()
                    results[name, "up"].phases.append(up)
                    results[name, "down"].phases.append(down)
                    print(
                        f"run {rep + 1}: {name:8s} upload {fmt_seconds(up.wall)}, download {fmt_seconds(down.wall)}",
                        flush=True,
                    )
                written = staging.writes_alone()
                results["writes", "down"].phases.append(written)
                print(f"run {rep + 1}: writes   {fmt_seconds(written.wall)}", flush=True)
        finally:
            staging.close()
    load_after = os.getloadavg()
    body = render(results, files=args.files, file_kib=args.file_kib, repeat=args.repeat, sweep=sweep)
    body += "\n\n" + provenance(load) + f" Load average after: {load_after[0]:.2f}."
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
