"""core/pidfiles: liveness (zombies count as gone), PID records in both formats, claiming, stopping by PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from batchbox.core.pidfiles import (
    PidRecord,
    claim_pid_file,
    command_line_mentions,
    is_alive,
    read_pid_file,
    release_pid_file,
    stop_process,
    write_pid_file,
)

_SLEEPER = [sys.executable, "-c", "import time; print(1, flush=True); time.sleep(60)", "pidfiles-test-sleeper"]


def _start_sleeper() -> subprocess.Popen[bytes]:
    """A process whose command line names it, returned once it runs its own program (not the forked parent's)."""
    sleeper = subprocess.Popen(_SLEEPER, stdout=subprocess.PIPE)
    assert sleeper.stdout is not None and sleeper.stdout.readline() == b"1\n"
    return sleeper


def _wait_until(predicate: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_a_zombie_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped yet: the PID still exists, as a zombie.
        assert _wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
        assert not is_alive(child.pid)
    finally:
        child.wait()
    assert not is_alive(child.pid)


def test_a_running_process_is_alive_and_named_by_its_command_line() -> None:
    sleeper = _start_sleeper()
    try:
        assert is_alive(sleeper.pid)
        assert command_line_mentions(sleeper.pid, ["PIDFILES-test-sleeper"])
        assert not command_line_mentions(sleeper.pid, ["azurite"])
        assert command_line_mentions(sleeper.pid, [])  # no markers: no check
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_process_ends_only_a_process_with_the_marker() -> None:
    sleeper = _start_sleeper()
    try:
        assert stop_process(sleeper.pid, timeout=5, markers=["azurite"]) is False
        assert sleeper.poll() is None
        assert stop_process(sleeper.pid, timeout=5, markers=["pidfiles-test-sleeper"]) is True
        assert sleeper.wait(5) == -15
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert stop_process(sleeper.pid, timeout=1) is False  # gone: nothing to stop


def test_stop_process_kills_what_ignores_sigterm() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"1\n"
        assert stop_process(stubborn.pid, timeout=0.3) is True
        assert stubborn.wait(5) == -9
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_records_round_trip_as_json_and_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "service.pid"
    write_pid_file(path, 4321, host="127.0.0.1", port=10000)
    assert read_pid_file(path) == PidRecord(4321, {"host": "127.0.0.1", "port": 10000})
    assert read_pid_file(path).text("port") == "10000"  # type: ignore[union-attr]
    path.write_text("77\n")
    assert read_pid_file(path) == PidRecord(77)
    for garbage in ("", "not a pid", '{"port": 1}', "[1, 2]"):
        path.write_text(garbage)
        assert read_pid_file(path) is None, garbage
    assert read_pid_file(tmp_path / "missing.pid") is None


def test_claim_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path: Path) -> None:
    path = tmp_path / "emulator.pid"
    sleeper = _start_sleeper()
    try:
        path.write_text(f"{sleeper.pid}\n")
        assert claim_pid_file(path) == sleeper.pid
        assert path.read_text() == f"{sleeper.pid}\n"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert claim_pid_file(path) is None
    assert path.read_text() == f"{os.getpid()}\n"
    release_pid_file(path)
    assert not path.exists()


def test_release_leaves_another_process_claim_alone(tmp_path: Path) -> None:
    path = tmp_path / "emulator.pid"
    path.write_text("1\n")
    release_pid_file(path)
    assert path.read_text() == "1\n"
