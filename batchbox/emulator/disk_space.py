"""The state directory's disk: refuse writes before the disk is full, and keep room for the write already going.

A state change is a store transaction that follows changes of the runtime's memory (queues, slots, node runs);
a transaction that failed half-way would leave memory ahead of the database. So the space is checked *before* a
change starts: when the file system of the state directory has less than :data:`FLOOR_BYTES` free (or is mounted
read-only), every Batch write request, every store transaction and so every agent report that would write is
answered ``503 StateDiskFull`` with nothing changed, while reads go on. The checks pass again as soon as space is
freed: no restart is needed.

The transaction that was already past the check when the disk filled up still needs room to commit. The store
keeps it in its own files (:data:`ROOM_BYTES`): at open it writes that much into its write-ahead log and frees it
again, so the log keeps that many bytes allocated on disk (SQLite reuses the log from its start after each
checkpoint and does not shrink it) and the database keeps as many free pages for its checkpoints.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from batchbox.emulator.errors import BatchError

__all__ = [
    "FLOOR_BYTES",
    "ROOM_BYTES",
    "StateDisk",
    "is_disk_full",
    "state_disk_full",
]

log = logging.getLogger(__name__)

FLOOR_BYTES = 8 * 1024 * 1024
"""Below this much free space on the state directory's file system, writes are refused before they start."""
ROOM_BYTES = 8 * 1024 * 1024
"""Bytes the store keeps allocated in its write-ahead log for a commit the disk filled up under."""

_SQLITE_FULL = 13


def state_disk_full(message: str) -> BatchError:
    """``StateDiskFull`` (503): the emulator cannot write its state now; the request was not applied."""
    return BatchError(503, "StateDiskFull", message)


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full" (``SQLITE_FULL``) and an OS error ``ENOSPC``."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == 28


class StateDisk:
    """Free space checks of one state directory.

    Args:
        state_dir: the emulator's state directory (it must exist when :meth:`check` is called).
        floor: free bytes below which :meth:`check` refuses.
        room: bytes the store keeps allocated in its write-ahead log (see the module docstring).
    """

    def __init__(self, state_dir: Path, *, floor: int = FLOOR_BYTES, room: int = ROOM_BYTES) -> None:
        self.state_dir = state_dir
        self.floor = floor
        self.room = room
        self.refused = 0
        """Writes refused since the disk last had room (the log says when refusals start and stop)."""

    def free_bytes(self) -> tuple[int, bool]:
        """(free bytes for this user, whether the file system is mounted read-only)."""
        stats = os.statvfs(self.state_dir)
        return stats.f_bavail * stats.f_frsize, bool(stats.f_flag & os.ST_RDONLY)

    def check(self) -> None:
        """Raise ``StateDiskFull`` when a write must not start.

        Raises:
            BatchError: 503 ``StateDiskFull``.
        """
        free, read_only = self.free_bytes()
        if read_only or free < self.floor:
            if self.refused == 0:
                log.error("the state directory's disk is %s: refusing writes", "read-only" if read_only else "full")
            self.refused += 1
            state = "is read-only" if read_only else f"has {free} bytes free, below the {self.floor} it keeps free"
            raise state_disk_full(
                f"The emulator's state directory {self.state_dir} {state}: the request was not applied. Free space "
                "there (or make it writable again) and send it again; the emulator carries on by itself."
            )
        if self.refused:
            log.warning("the state directory's disk has room again after %d refused write(s)", self.refused)
            self.refused = 0
