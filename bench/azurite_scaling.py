"""Azurite's cost per request against the number of blobs it holds (for benchmark 12's reading).

Fills one container of a fresh Azurite (disk persistence) with 1 KiB blobs in steps, and after each step sends
``--sample`` Get Blob and then as many Put Blob requests (overwrites) for random blobs of that container, one at a
time, reading Azurite's CPU from ``/proc`` around them. Prints one line per step: blobs held, Azurite CPU per Get and
per Put. Not a benchmark of its own: benchmark 12's reading quotes what it prints.

Run: ``.venv/bin/python -m bench.azurite_scaling [--to 20000] [--step 4000] [--sample 400]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import UploadItem
from bench.common import azurite, process_cpu_seconds

__all__ = ["main", "measure"]


def measure(to: int, step: int, sample: int) -> list[tuple[int, float, float]]:
    """[(blobs held, Azurite CPU per Get Blob, per Put Blob)] at each step (the sampled requests one at a time)."""
    found = []
    with tempfile.TemporaryDirectory(prefix="batchbox-azurite-scaling-") as tmp, azurite(Path(tmp) / "az") as az:
        source = Path(tmp) / "blob.bin"
        data = os.urandom(1024)
        source.write_bytes(data)
        storage = BlobStorage.from_connection_string(az.connection_string)
        storage.create_container("scaling")
        held = 0
        rng = random.Random(7)
        while held < to:
            batch = [UploadItem(source, f"blob-{i:06d}") for i in range(held, held + step)]
            storage.upload_files("scaling", batch, max_concurrency=8)
            held += step
            names = [f"blob-{rng.randrange(held):06d}" for _ in range(sample)]
            cpu = process_cpu_seconds(az.pid)
            for name in names:
                storage.read_blob("scaling", name)
            get_cpu = (process_cpu_seconds(az.pid) - cpu) / sample
            cpu = process_cpu_seconds(az.pid)
            for name in names:
                storage.upload_bytes("scaling", name, data)
            put_cpu = (process_cpu_seconds(az.pid) - cpu) / sample
            found.append((held, get_cpu, put_cpu))
            print(
                f"{held:6d} blobs: Azurite CPU per Get {get_cpu * 1e3:.2f} ms, per Put {put_cpu * 1e3:.2f} ms",
                flush=True,
            )
        storage.close()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--to", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=4000)
    parser.add_argument("--sample", type=int, default=400)
    args = parser.parse_args(argv)
    measure(args.to, args.step, args.sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
