"""One local stack shared by every pytest process of a run, and stopped by the last of them.

Each process (the session, or each pytest-xdist worker) takes a *lease*: a PID file in ``<home>/leases/``. The
process that found a service stopped and started it records that in ``<home>/leases/started.json``. Whoever
releases the last live lease stops exactly the services recorded there, so

- a stack the user started (``batchbox local up``) is reused and left running;
- a stack a test run started is stopped when the run's last worker is done, whichever worker started it;
- a lease of a process that died is ignored.

A file lock in the home serialises acquiring and releasing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from batchbox.backends.local.azurite_npm import Progress
from batchbox.backends.local.stack import LocalEndpoints, LocalStack
from batchbox.core.pidfiles import is_alive, read_pid_file, write_pid_file

__all__ = ["SharedLocalStack"]


def _quiet(line: str) -> None:
    """Progress receiver that says nothing."""


class SharedLocalStack:
    """A lease on ``stack`` for this process (see the module docstring)."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.leases = stack.home / "leases"
        self._lease = self.leases / f"{os.getpid()}.pid"
        self._started_record = self.leases / "started.json"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.leases.mkdir(parents=True, exist_ok=True)
        with open(self.leases / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def acquire(self, progress: Progress = _quiet, *, node_image: str | None = None) -> LocalEndpoints:
        """Start what is not running (recording it) and take this process's lease; return the endpoints."""
        with self._lock():
            was_running = {status.name for status in self.stack.status() if status.running}
            endpoints = self.stack.up(progress=progress, node_image=node_image)
            started = {status.name for status in self.stack.status() if status.running} - was_running
            if self.stack.storage_connection_string:
                started.discard("azurite")  # the user's storage: nothing of ours to stop
            if started:
                self._write_started(self._read_started() | started)
            write_pid_file(self._lease, os.getpid())
        return endpoints

    def release(self) -> list[str]:
        """Give up this process's lease; the last one out stops what test runs started.

        Returns:
            What was stopped (empty when other processes still hold leases or nothing was started by tests).
        """
        with self._lock():
            self._lease.unlink(missing_ok=True)
            if self._live_leases():
                return []
            started = self._read_started()
            self._started_record.unlink(missing_ok=True)
            if not started:
                return []
            return self.stack.down(services=sorted(started))

    def _live_leases(self) -> list[Path]:
        live = []
        for lease in self.leases.glob("*.pid"):
            record = read_pid_file(lease)
            if record is not None and is_alive(record.pid):
                live.append(lease)
            else:
                lease.unlink(missing_ok=True)
        return live

    def _read_started(self) -> set[str]:
        try:
            return set(json.loads(self._started_record.read_text())["services"])
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    def _write_started(self, services: set[str]) -> None:
        self._started_record.write_text(json.dumps({"services": sorted(services)}) + "\n")
