"""Downloading a job's outputs while it runs, so that the last task's end is not followed by every download.

The workflow's collect step downloads the output container once every task has completed. With thousands of
outputs that step alone can take as long as the run. An :class:`OutputCollector` runs beside the monitor step in
a thread of its own: every time enough new tasks completed (or enough time passed), it downloads the container
again with ``skip_existing``, so only outputs not yet on disk move. The collect step that follows then has only
the outputs of the last passes' gap left.

Each pass lists the whole container, and a listing costs the storage service in proportion to the blobs it holds
(Azurite answers 20,000 names in about 7 s on its one thread, holding back the nodes' uploads meanwhile). So
passes are spaced geometrically (the next once the completed count has grown by ``growth``) and in time by what
the last pass took, which keeps the listing work of a whole run proportional to its outputs, not their square.

An output can be written again after it was downloaded (a task retried after it uploaded with
``taskcompletion``). Each pass notes, from a listing made just before it, the last-modified time of every blob it
downloads; :meth:`OutputCollector.finish` compares them with a listing made after the run and removes the local
copies of blobs that changed since, or whose time was not noted, so the collect step downloads those again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime
from pathlib import Path

from batchbox.core.errors import BatchboxError
from batchbox.core.storage import StorageBackend
from batchbox.core.transfers import download_plan

__all__ = ["OutputCollector"]


class OutputCollector:
    """Downloads new outputs in a background thread while :meth:`completed` reports progress.

    Args:
        storage: where the outputs are.
        container: the output container.
        destination: the local directory (as the collect step uses it).
        max_concurrency: downloads in flight per pass.
        every_tasks: start a pass once this many more tasks completed since the last one, and ...
        growth: ... the completed count reached this multiple of its value at the last pass.
        every_seconds: or once this long passed since the last pass (and ``idle_share`` times what the last pass
            took) and some task completed.
        idle_share: how many times its own duration the collector waits between passes started by time.
    """

    def __init__(
        self,
        storage: StorageBackend,
        container: str,
        destination: Path,
        *,
        max_concurrency: int,
        every_tasks: int = 500,
        growth: float = 1.5,
        every_seconds: float = 10.0,
        idle_share: float = 9.0,
    ) -> None:
        self._storage = storage
        self._container = container
        self._destination = destination
        self._concurrency = max_concurrency
        self._every_tasks = max(1, every_tasks)
        self._growth = max(1.0, growth)
        self._every_seconds = every_seconds
        self._idle_share = max(0.0, idle_share)
        self._completed = 0
        self._collected_at = 0
        self._last_pass = time.monotonic()
        self._last_duration = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._noted: dict[str, datetime | None] = {}
        self.passes = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="batchbox-collector", daemon=True)
        self._thread.start()

    def completed(self, count: int) -> None:
        """The monitor saw ``count`` tasks completed (wakes a pass when enough changed)."""
        self._completed = count
        grown = count - self._collected_at
        if grown <= 0:
            return
        enough = grown >= self._every_tasks and count >= self._collected_at * self._growth
        waited = time.monotonic() - self._last_pass
        if enough or waited >= max(self._every_seconds, self._idle_share * self._last_duration):
            self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            self._collected_at = self._completed
            started = time.monotonic()
            try:
                self._pass()
            except Exception as exc:  # the collect step downloads everything anyway; note why this pass failed
                self.errors.append(str(exc) if isinstance(exc, BatchboxError) else type(exc).__name__)
            self._last_pass = time.monotonic()
            self._last_duration = self._last_pass - started

    def _pass(self) -> None:
        listing = self._storage.list_blobs(self._container)
        before = {blob.name: blob.last_modified for blob in listing}

        def note(name: str, _size: int) -> None:
            self._noted[name] = before.get(name)

        self._storage.download_container(
            self._container,
            self._destination,
            max_concurrency=self._concurrency,
            skip_existing=True,
            progress=note,
            listing=listing,
        )
        self.passes += 1

    def finish(self) -> None:
        """Stop after the pass in progress, then forget the local copies of outputs written again since."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        if not self._noted:
            return
        blobs = self._storage.list_blobs(self._container)
        for blob, target in download_plan(blobs, self._destination, self._container):
            if blob.name in self._noted and (
                self._noted[blob.name] is None or self._noted[blob.name] != blob.last_modified
            ):
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
