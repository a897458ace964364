"""PID files and process liveness: whether a recorded process still runs, and ending exactly that process.

A PID file holds either a JSON object with a ``pid`` key plus whatever its writer records (``host``, ``port``,
``program``, ...) or a plain decimal PID (the emulator's ``emulator.pid``); both read back as a :class:`PidRecord`.

A process that has exited but was not reaped yet by its parent (a zombie) counts as gone. A PID can be reused by
an unrelated process after the recorded one ended, so callers name *markers*: a process is only signalled when
its command line contains one of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PidRecord",
    "claim_pid_file",
    "command_line_mentions",
    "is_alive",
    "read_pid_file",
    "release_pid_file",
    "stop_process",
    "write_pid_file",
]

_POLL_SECONDS = 0.05
_KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class PidRecord:
    """What a PID file says: the PID and the other fields its writer recorded."""

    pid: int
    fields: Mapping[str, Any] = field(default_factory=dict)

    def text(self, name: str, default: str = "") -> str:
        """A recorded field as text (``default`` when absent)."""
        value = self.fields.get(name)
        return default if value is None else str(value)


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie (exited, only its parent's ``wait`` missing) counts as not running."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal check is all there is


def command_line_mentions(pid: int, markers: Sequence[str]) -> bool:
    """True when the command line of ``pid`` contains one of ``markers`` (case-insensitive).

    Empty markers are ignored; no markers at all means no check (True). Where there is no ``/proc`` to read, the
    answer is True: the recorded PID is all there is to go by.
    """
    wanted = [os.fsencode(marker).lower() for marker in markers if marker]
    if not wanted:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().lower()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return any(marker in cmdline for marker in wanted)


def stop_process(pid: int, timeout: float = 10.0, *, markers: Sequence[str] = ()) -> bool:
    """End exactly ``pid``: SIGTERM, then SIGKILL when it still runs after ``timeout`` seconds.

    A process whose command line mentions none of ``markers`` is left alone (see :func:`command_line_mentions`).

    Returns:
        True when the process was running (and was signalled).
    """
    if not is_alive(pid) or not command_line_mentions(pid, markers):
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, _KILL_WAIT_SECONDS)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def write_pid_file(path: Path, pid: int, **fields: Any) -> None:
    """Record ``pid`` and ``fields`` as one JSON object, replacing ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": pid, **fields}) + "\n")
    os.replace(tmp, path)


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in ``path`` (JSON object or plain PID); None when it is missing or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text.isdigit():
        return PidRecord(int(text))
    try:
        data = json.loads(text)
        fields = {key: value for key, value in data.items() if key != "pid"}
        return PidRecord(int(data["pid"]), fields)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def claim_pid_file(path: Path) -> int | None:
    """Write this process's PID (plain text) into ``path`` unless another live process holds it.

    Returns:
        None when claimed; else the PID of the live process that holds the file (nothing is written).
    """
    record = read_pid_file(path)
    if record is not None and record.pid != os.getpid() and is_alive(record.pid):
        return record.pid
    path.write_text(f"{os.getpid()}\n")
    return None


def release_pid_file(path: Path) -> None:
    """Remove ``path`` when it names this process (another process's claim is left alone)."""
    record = read_pid_file(path)
    if record is not None and record.pid == os.getpid():
        path.unlink(missing_ok=True)
