"""Benchmark 11, staging over a simulated network: Azurite behind a proxy that adds a 20 ms round trip.

What users meet is Azure Storage across a network, where every request waits a round trip; on loopback the
sequential loop hardly waits at all (benchmark 4). Here ``bench/latency_proxy.py`` (its own process, loopback
only) holds every byte for half the round trip in each direction and makes each new connection pay one round
trip. For 200 files of 64 KiB and 20 files of 8 MiB, both directions: the tutorial's sequential loop against
``BlobStorage.upload_files`` / ``download_container`` at their defaults, through the proxy and (for the plot)
directly. Every upload is checked by a listing, every download byte for byte.

Run: ``.venv/bin/python -m bench.bench_staging_wan [--repeat 3] [--rtt-ms 20] [--no-write]``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import connection_string
from batchbox.core.storage import UploadItem
from bench.bench_staging import baseline_download, baseline_upload, make_files, verify_download, verify_upload
from bench.common import azurite, base_parser, process_cpu_seconds, provenance, publish, self_cpu_seconds
from bench.latency_proxy import run_proxy
from bench.staging_wan_report import CASES, Case, Measured, plot, render

__all__ = ["main"]

SECTION = "staging-wan"


class Sides:
    """The loop's client and batchbox's, both towards one endpoint; one round trip of files per call."""

    def __init__(self, conn_str: str, work: Path, pids: tuple[int, int]) -> None:
        self.service = BlobServiceClient.from_connection_string(conn_str)
        self.storage = BlobStorage.from_connection_string(conn_str)
        self.work = work
        self.pids = pids
        self.cpu: list[tuple[float, float, float]] = []
        """(Azurite, client, proxy) CPU seconds of each timed transfer, in order."""

    def _cpu(self) -> tuple[float, float, float]:
        return process_cpu_seconds(self.pids[0]), self_cpu_seconds(), process_cpu_seconds(self.pids[1])

    def _timed(self, action: Callable[[], object]) -> float:
        before = self._cpu()
        began = time.perf_counter()
        action()
        wall = time.perf_counter() - began
        after = self._cpu()
        self.cpu.append((after[0] - before[0], after[1] - before[1], after[2] - before[2]))
        return wall

    def close(self) -> None:
        self.service.close()
        self.storage.close()

    def _round(
        self, files: list[Path], upload: Callable[[str], object], download: Callable[[str, Path], object]
    ) -> tuple[float, float]:
        container = f"wan-{uuid.uuid4().hex[:12]}"
        self.storage.create_container(container)
        self.service.get_container_client(container).get_container_properties()  # both clients connected
        destination = self.work / container
        destination.mkdir()
        try:
            up = self._timed(lambda: upload(container))
            verify_upload(self.storage, container, files)
            down = self._timed(lambda: download(container, destination))
            verify_download(files, destination)
            return up, down
        finally:
            self.storage.delete_container(container)
            shutil.rmtree(destination, ignore_errors=True)

    def loop(self, files: list[Path]) -> tuple[float, float]:
        return self._round(
            files,
            lambda c: baseline_upload(self.service, c, files),
            lambda c, d: baseline_download(self.service, c, d),
        )

    def batchbox(self, files: list[Path]) -> tuple[float, float]:
        items = [UploadItem(p, p.name) for p in files]
        return self._round(
            files,
            lambda c: self.storage.upload_files(c, items),
            lambda c, d: self.storage.download_container(c, d),
        )


def _measure(sides: Sides, case: Case, files: list[Path], repeat: int, where: str, into: Measured) -> None:
    sides.batchbox(files)  # warm-up: connections, imports
    for rep in range(repeat):
        order = ("loop", "batchbox") if rep % 2 == 0 else ("batchbox", "loop")
        for side in order:
            up, down = sides.loop(files) if side == "loop" else sides.batchbox(files)
            into.add(case, where, side, up, down, sides.cpu[-2], sides.cpu[-1])
            print(f"{case.label} {where} round {rep + 1}: {side:8s} up {up:.3f} s, down {down:.3f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md and the plot."""
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "staging over a network", repeat=3)
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round trip the proxy adds (20 ms)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    measured = Measured(rtt_ms=args.rtt_ms, repeat=args.repeat)
    os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    with (
        tempfile.TemporaryDirectory(prefix="batchbox-bench-wan-") as tmp,
        azurite(Path(tmp) / "azurite") as az,
        run_proxy(az.port, args.rtt_ms) as proxy,
    ):
        for case in CASES:
            files = make_files(Path(tmp) / f"src-{case.count}", case.count, case.size)
            for where, port in (("wan", proxy.port), ("local", az.port)):
                sides = Sides(connection_string("127.0.0.1", port), Path(tmp), (az.pid, proxy.process.pid))
                try:
                    _measure(sides, case, files, args.repeat, where, measured)
                finally:
                    sides.close()
    load_after = os.getloadavg()
    if not args.no_write:
        plot(measured)
    body = render(measured) + "\n\n" + provenance(load) + f" Load average after: {load_after[0]:.2f}."
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
