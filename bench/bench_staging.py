"""Benchmark 4, staging: upload 500 files of 64 KiB to Azurite, then download them.

Baseline: the Azure Batch Python tutorial's loop, one ``upload_blob`` per file on a plain ``BlobServiceClient``,
one after another, and the same for download (``download_blob().readall()`` per blob, then write the file).
batchbox: :meth:`BlobStorage.upload_files` and :meth:`BlobStorage.download_container` with their default
``max_concurrency``, plus a sweep over a few other values. Both sides run against the same Azurite process in the
same run, alternating which goes first; every download is compared byte for byte with the source files.

Run: ``.venv/bin/python -m bench.bench_staging [--repeat 5] [--sweep 1,4,16,32] [--no-write]``.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import UploadItem
from bench.common import (
    Row,
    azurite,
    base_parser,
    fmt_ratio,
    fmt_seconds,
    median,
    process_cpu_seconds,
    provenance,
    publish,
    render_table,
    self_cpu_seconds,
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
TARGET = 5.0
_TICK = 0.01  # /proc CPU times come in clock ticks; a ceiling never divides by less
DEFAULT_CONCURRENCY: int = inspect.signature(BlobStorage.upload_files).parameters["max_concurrency"].default
DEFAULT_DOWNLOAD_CONCURRENCY: int = (
    inspect.signature(BlobStorage.download_container).parameters["max_concurrency"].default
)


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


@dataclass(frozen=True)
class Phase:
    """One timed transfer of all files: wall seconds and the CPU seconds Azurite and this process spent."""

    wall: float
    server_cpu: float
    """Azurite, all threads (the JavaScript thread, V8's garbage collector helpers, libuv's file I/O pool)."""
    server_main_cpu: float
    """Azurite's main thread alone: the JavaScript event loop that handles every request in turn."""
    client_cpu: float


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

    def _fresh(self, tag: str) -> tuple[str, Path]:
        container = f"bench-{tag}-{uuid.uuid4().hex[:12]}"
        self.storage.create_container(container)  # also warms the connection pools of both clients
        self.service.get_container_client(container).get_container_properties()
        destination = self.work / container
        destination.mkdir()
        return container, destination

    def baseline(self) -> tuple[Phase, Phase]:
        """(upload, download) of the tutorial's loops, verified."""
        container, destination = self._fresh("base")
        try:
            up = self._timed(lambda: baseline_upload(self.service, container, self.sources))
            verify_upload(self.storage, container, self.sources)
            down = self._timed(lambda: baseline_download(self.service, container, destination))
            verify_download(self.sources, destination)
        finally:
            self._cleanup(container, destination)
        return up, down

    def batchbox(self, concurrency: int | None = None) -> tuple[Phase, Phase]:
        """(upload, download) of BlobStorage, verified; its default ``max_concurrency`` when None."""
        container, destination = self._fresh("bbx")
        up_concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
        down_concurrency = DEFAULT_DOWNLOAD_CONCURRENCY if concurrency is None else concurrency
        try:
            up = self._timed(lambda: self.storage.upload_files(container, self.items, max_concurrency=up_concurrency))
            verify_upload(self.storage, container, self.sources)
            down = self._timed(
                lambda: self.storage.download_container(container, destination, max_concurrency=down_concurrency)
            )
            verify_download(self.sources, destination)
        finally:
            self._cleanup(container, destination)
        return up, down

    def _cleanup(self, container: str, destination: Path) -> None:
        self.storage.delete_container(container)
        shutil.rmtree(destination, ignore_errors=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "staging benchmark", repeat=5)
    parser.add_argument("--files", type=int, default=FILE_COUNT, help=f"files to stage (default {FILE_COUNT})")
    parser.add_argument("--file-kib", type=int, default=FILE_SIZE // 1024, help="size of each file in KiB (64)")
    parser.add_argument(
        "--sweep", default="1,4,16,32", help="other max_concurrency values to measure for batchbox ('' for none)"
    )
    return parser.parse_args(argv)


@dataclass
class Series:
    """The phases measured for one side and direction."""

    phases: list[Phase] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return median([p.wall for p in self.phases])

    @property
    def server_cpu(self) -> float:
        return median([p.server_cpu for p in self.phases])

    @property
    def server_main_cpu(self) -> float:
        return median([p.server_main_cpu for p in self.phases])

    @property
    def client_cpu(self) -> float:
        return median([p.client_cpu for p in self.phases])

    def runs(self) -> str:
        return ", ".join(f"{p.wall:.3f}" for p in self.phases)


def _ceiling(baseline: Series, batchbox: Series, cores: int, *, client: bool = True) -> float:
    """The largest speed-up possible on an idle machine with ``cores`` cores, at the CPU costs measured.

    The sequential loop spends Azurite's CPU and the client's one after the other, so on an idle machine it takes
    at least their sum (its wall time is used only when smaller, which it never is on loopback). Azurite handles
    requests on one JavaScript thread and both processes share the cores, so batchbox's round takes at least
    max(Azurite main-thread CPU, (Azurite CPU + client CPU) / cores), however many requests are in flight. With
    ``client=False`` batchbox's client CPU is taken as zero. Wall times on a shared machine include waiting for a
    core, which is why the loop's CPU, not its wall time, is the numerator.
    """
    loop = min(baseline.wall, baseline.server_cpu + baseline.client_cpu)
    total = batchbox.server_cpu + (batchbox.client_cpu if client else 0.0)
    floor = max(batchbox.server_main_cpu, total / cores)
    return loop / max(floor, _TICK)


def _per_file(seconds: float, files: int) -> str:
    return f"{seconds / files * 1e3:.2f} ms"


def _rate(series: Series, files: int, total_bytes: int) -> str:
    return f"{total_bytes / series.wall / 1e6:.1f} MB/s, {files / series.wall:.0f} files/s"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    args = _parse_args(argv)
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()]
    load = os.getloadavg()
    size = args.file_kib * 1024
    total = args.files * size
    results: dict[tuple[str, str], Series] = defaultdict(Series)
    os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    with tempfile.TemporaryDirectory(prefix="batchbox-bench-staging-") as tmp, azurite(Path(tmp) / "azurite") as az:
        sources = make_files(Path(tmp) / "src", args.files, size)
        staging = Staging(az.pid, az.connection_string, sources, Path(tmp))
        try:
            staging.baseline()  # warm-up round (imports, Azurite's JIT, page cache), not counted
            staging.batchbox()
            for rep in range(args.repeat):
                sides: list[tuple[str, Callable[[], tuple[Phase, Phase]]]] = [
                    ("baseline", staging.baseline),
                    ("batchbox", staging.batchbox),
                ]
                sides += [(f"c{c}", functools.partial(staging.batchbox, c)) for c in sweep]
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
        finally:
            staging.close()
    load_after = os.getloadavg()
    cores = os.cpu_count() or 1
    label = f"{args.files} x {args.file_kib} KiB"
    rows: list[Row] = []
    ratios: dict[str, float] = {}
    ceilings: dict[str, float] = {}
    free: dict[str, float] = {}
    busy: list[float] = []
    for direction, verb in (("up", "upload"), ("down", "download")):
        base, bbx = results["baseline", direction], results["batchbox", direction]
        ratios[direction] = base.wall / bbx.wall
        ceilings[direction] = _ceiling(base, bbx, cores)
        free[direction] = _ceiling(base, bbx, cores, client=False)
        busy.append((base.server_cpu + base.client_cpu) / base.wall)
        rows += [
            Row(
                f"**{verb} {label}**, median wall time",
                fmt_seconds(base.wall),
                fmt_seconds(bbx.wall),
                fmt_ratio(ratios[direction]),
                f"≥ {TARGET:g}x faster",
                ratios[direction] >= TARGET,
            ),
            Row(f"{verb} rate", _rate(base, args.files, total), _rate(bbx, args.files, total)),
            Row(
                f"{verb}: Azurite CPU per file, all threads (main thread)",
                f"{_per_file(base.server_cpu, args.files)} ({_per_file(base.server_main_cpu, args.files)})",
                f"{_per_file(bbx.server_cpu, args.files)} ({_per_file(bbx.server_main_cpu, args.files)})",
            ),
            Row(
                f"{verb}: client CPU per file (all threads)",
                _per_file(base.client_cpu, args.files),
                _per_file(bbx.client_cpu, args.files),
            ),
            Row(
                f"{verb}: CPU-busy share of the wall time, (Azurite + client CPU) / wall",
                f"{(base.server_cpu + base.client_cpu) / base.wall:.0%}",
                f"{(bbx.server_cpu + bbx.client_cpu) / bbx.wall:.0%}",
            ),
            Row(
                f"{verb}: ceiling on an idle {cores}-core machine at batchbox's CPU cost (see below)",
                "",
                "",
                fmt_ratio(ceilings[direction]),
            ),
            Row(
                f"{verb}: ceiling on an idle {cores}-core machine with a client that costs no CPU",
                "",
                "",
                fmt_ratio(free[direction]),
            ),
        ]
    for concurrency in sweep:
        for direction, verb in (("up", "upload"), ("down", "download")):
            base, other = results["baseline", direction], results[f"c{concurrency}", direction]
            rows.append(
                Row(
                    f"{verb}, batchbox max_concurrency={concurrency}",
                    fmt_seconds(base.wall),
                    fmt_seconds(other.wall),
                    fmt_ratio(base.wall / other.wall),
                )
            )
    runs = "; ".join(
        f"{side} {verb} {results[side, d].runs()}"
        for d, verb in (("up", "upload"), ("down", "download"))
        for side in ("baseline", "batchbox")
    )
    default = f"{DEFAULT_CONCURRENCY} / {DEFAULT_DOWNLOAD_CONCURRENCY}"
    body = "\n".join(
        [
            f"## 4. Staging: {args.files} files of {args.file_kib} KiB to Azurite and back",
            "",
            "Baseline: the tutorial's sequential loop (one `upload_blob` per file on a plain `BlobServiceClient`; "
            "`list_blobs`, then `download_blob().readall()` and a file write per blob). batchbox: "
            f"`BlobStorage.upload_files` / `download_container` at their default `max_concurrency` ({default}); the "
            "`max_concurrency=N` lines are batchbox at that setting against the same baseline. One Azurite (disk "
            f"persistence, as `batchbox local up` runs it) serves both; {args.repeat} runs of each after one "
            "warm-up round, alternating which side goes first; medians shown. Every run's upload is checked by a "
            "listing (names and sizes) and its download compared byte for byte with the source files. CPU is read "
            "from `/proc/PID/stat` (Azurite) and `getrusage(RUSAGE_SELF)` (the benchmark process, i.e. the client).",
            "",
            render_table(rows),
            "",
            f"Wall times of every run (s): {runs}.",
            "",
            _interpretation(ratios, ceilings, free, median(busy), cores),
            "",
            PROFILE_NOTES,
            "",
            provenance(load) + f" Load average after: {load_after[0]:.2f}.",
        ]
    )
    publish(SECTION, body, write=not args.no_write)
    return 0


PROFILE_NOTES = (
    "**Profile and fix** (2026-11-26, this machine). With a pool of 8 threads each driving the synchronous SDK, "
    "batchbox's client spent more CPU per downloaded file than the sequential loop (4.17 vs 3.46 ms; upload 1.96 vs "
    "2.17 ms), and in that run staging was 2.07x faster up but only 1.29x down: the threads' GIL hand-offs cost "
    "about as much as the overlap gained. In a side experiment against one Azurite (500 x 64 KiB, two rounds), the "
    "SDK's asyncio client (aiohttp) on one event loop, 8 transfers in flight, used 1.75-2.37 ms of client CPU per "
    "uploaded file and 1.77-1.87 ms per downloaded one, against 2.34-2.54 ms and 2.27-2.74 ms for 8 threads. "
    "`upload_files` and `download_container` now run their transfers on such a loop in a private thread "
    "(`batchbox/backends/azure/_blob_transfers.py`); the table above is measured with it."
)


def _interpretation(
    ratios: dict[str, float], ceilings: dict[str, float], free: dict[str, float], busy: float, cores: int
) -> str:
    up, down = ratios["up"], ratios["down"]
    if all(r >= TARGET for r in ratios.values()):
        return (
            f"batchbox stages {up:.1f}x faster up and {down:.1f}x faster down than the tutorial's loop: the loop "
            "waits for one round trip at a time, batchbox keeps several requests in flight."
        )
    text = (
        f"**Target missed** ({up:.1f}x up, {down:.1f}x down). The sequential loop hardly waits on the network: "
        f"Azurite's CPU plus the client's, taken in turn, fill {busy:.0%} of its wall time (median of both "
        "directions; Azurite finishes some work after it has answered, so this can pass 100%). "
        "Concurrency can overlap the two but cannot add cores. Azurite handles every request on its one "
        "JavaScript thread, so a round cannot end before that thread's CPU time, nor before all the CPU "
        f"(Azurite's threads and the client's) spread over {cores} cores. At the CPU costs per file measured in "
        "this run, that caps the speed-up over the loop on an idle machine at "
        f"{ceilings['up']:.1f}x up and {ceilings['down']:.1f}x down; a client that cost no CPU at all would be "
        f"capped at {free['up']:.1f}x and {free['down']:.1f}x."
    )
    if max(free.values()) < TARGET:
        text += (
            f" Even that stays below {TARGET:g}x both ways, so no client-side change reaches the target against "
            "Azurite on this machine: it presumes latency-bound transfers (Azure Storage, a network round trip "
            "per request), which a loopback emulator does not have."
        )
    elif max(ceilings.values()) < TARGET:
        text += (
            " Only a cheaper client could get there: the client's CPU per file (the SDK's request pipeline, the "
            "file writes) is what keeps the ceiling below the target."
        )
    text += " The ceilings are upper bounds, not predictions."
    return text


if __name__ == "__main__":
    sys.exit(main())
