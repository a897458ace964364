"""A staging workload to run under a profiler: what the staging benchmarks' profiles were taken on.

``small``: 500 files of 64 KiB uploaded once to a fresh Azurite, then ``download_container`` ``--rounds`` times;
with ``--fresh``, each round uploads them to a new container first and deletes it after, and with ``--keep``
each round's downloads stay until the end, as benchmark 4 does.
``wan8``: 20 files of 8 MiB uploaded and downloaded ``--rounds`` times through ``bench/latency_proxy.py`` (20 ms).
Each round prints its wall time and the CPU seconds of Azurite, the proxy (``wan8``) and this process (user and
system apart).

Run: ``.venv/bin/py-spy record -r 200 -f raw -o OUT -- .venv/bin/python -m bench.profile_staging small``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import connection_string
from batchbox.core.storage import UploadItem
from bench.bench_staging import make_files
from bench.common import azurite, process_cpu_seconds
from bench.latency_proxy import run_proxy

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=["small", "wan8"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--fresh", action="store_true", help="small: a new container uploaded before each round")
    parser.add_argument("--keep", action="store_true", help="keep each round's downloads (benchmark 4 does)")
    args = parser.parse_args(argv)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    count, size = (500, 64 * 1024) if args.mode == "small" else (20, 8 * 1024 * 1024)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchbox-profile-")))
        az = stack.enter_context(azurite(tmp / "azurite"))
        port, proxy_pid = az.port, None
        if args.mode == "wan8":
            proxy = stack.enter_context(run_proxy(az.port, 20.0))
            port, proxy_pid = proxy.port, proxy.process.pid
        storage = stack.enter_context(BlobStorage.from_connection_string(connection_string("127.0.0.1", port)))
        files = make_files(tmp / "src", count, size)
        items = [UploadItem(p, p.name) for p in files]
        if not args.fresh:
            storage.create_container("profiled")
            storage.upload_files("profiled", items)
        for index in range(args.rounds):
            container = f"profiled-{index}" if args.fresh else "profiled"
            if args.fresh:
                storage.create_container(container)
                storage.upload_files(container, items)
            for direction in ("up", "down") if args.mode == "wan8" else ("down",):
                before = (process_cpu_seconds(az.pid), process_cpu_seconds(proxy_pid) if proxy_pid else 0.0)
                times, began = os.times(), time.perf_counter()
                if direction == "up":
                    storage.upload_files(container, items)
                else:
                    storage.download_container(container, tmp / f"out{index}")
                wall = time.perf_counter() - began
                after = os.times()
                proxy_cpu = process_cpu_seconds(proxy_pid) - before[1] if proxy_pid else 0.0
                print(
                    f"round {index + 1} {direction}: {wall:.3f} s; CPU s: Azurite "
                    f"{process_cpu_seconds(az.pid) - before[0]:.2f}, proxy {proxy_cpu:.2f}, "
                    f"client user {after.user - times.user:.2f} system {after.system - times.system:.2f}",
                    flush=True,
                )
                if not args.keep:
                    shutil.rmtree(tmp / f"out{index}", ignore_errors=True)
            if args.fresh:
                storage.delete_container(container)
    return 0


if __name__ == "__main__":
    sys.exit(main())
