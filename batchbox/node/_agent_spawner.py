"""Starting nonadmin task processes cheaply, through a helper process that already runs as the task user.

CPython starts a child with ``vfork()`` (no copy of the parent's page tables) only when the child keeps the
parent's user and groups. A nonadmin task started straight from the agent (root, several threads, ~25 MB)
therefore costs a full ``fork()``, and the agent then takes a copy-on-write fault for every page it writes
afterwards: ~2 ms of CPU per task on the project's 2-core VMs, more than half of what a short task costs on the
node. The helper runs as ``batchuser`` in the Batch group without supplementary groups, exactly what a nonadmin
task gets, so its ``Popen`` can use ``vfork()``.

Protocol over a ``SOCK_SEQPACKET`` socket pair (one JSON object per message; descriptors ride as SCM_RIGHTS):

* agent -> helper: ``{"seq": N, "argv": [...], "cwd": "...", "env": {...}}`` with the task's stdout and stderr
  descriptors;
* helper -> agent: ``{"seq": N, "pid": P}`` or ``{"seq": N, "errno": E, "message": "..."}`` (the ``OSError``
  the helper's ``Popen`` raised), and later ``{"exit": P, "returncode": R}`` (``Popen.returncode``: negative for
  a signal).

The helper exits when the agent's end closes; the tasks it started keep running. When the helper cannot be
started or dies, :func:`shared_spawner` returns None and the agent starts processes itself, as before.

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_MESSAGE", "SpawnedProcess", "Spawner", "SpawnerGone", "serve", "shared_spawner"]

MAX_MESSAGE = 256 * 1024
"""Largest request (command line + environment) sent to the helper; a larger one is started by the agent."""

log = logging.getLogger("batchbox.agent")


class SpawnerGone(Exception):
    """The helper is not there (any more): the caller starts the process itself."""


class SpawnedProcess:
    """A process the helper started: the part of ``subprocess.Popen`` the runner uses (``pid``, ``wait``)."""

    def __init__(self, spawner: Spawner, pid: int) -> None:
        self._spawner = spawner
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; raise ``subprocess.TimeoutExpired`` after ``timeout`` seconds.

        Raises:
            OSError: the helper died, so the exit status cannot be known.
        """
        if self.returncode is None:
            self.returncode = self._spawner.wait_exit(self.pid, timeout)
        return self.returncode


class Spawner:
    """The agent's end: starts the helper, sends requests, collects replies and exit statuses."""

    def __init__(self, uid: int, gid: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE * 2)
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PYTHONPATH": here, "PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        try:
            self._helper = subprocess.Popen(
                [sys.executable, "-S", "-m", "batchbox.node._agent_spawner", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                cwd="/",
                env=env,
                stdin=subprocess.DEVNULL,
                user=uid,
                group=gid,
                extra_groups=[],
            )
        finally:
            theirs.close()
        self._sock = ours
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._seq = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self.alive = True
        threading.Thread(target=self._read, name="spawner", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data.decode("utf-8"))
            with self._cond:
                if "exit" in message:
                    self._exits[int(message["exit"])] = int(message["returncode"])
                else:
                    self._replies[int(message["seq"])] = message
                self._cond.notify_all()
        with self._cond:
            self.alive = False
            self._cond.notify_all()
        log.warning("the process helper exited (code %s); tasks are now started by the agent", self._helper.wait())

    def spawn(self, argv: Sequence[str], cwd: str, env: Mapping[str, str], stdout: int, stderr: int) -> SpawnedProcess:
        """Start ``argv`` as the helper's user with the given working directory, environment and output files.

        Raises:
            OSError: what ``Popen`` raised in the helper (``FileNotFoundError``, ``PermissionError``, ...).
            SpawnerGone: the helper is gone, or the request is larger than :data:`MAX_MESSAGE`.
        """
        with self._send_lock:
            self._seq += 1
            seq = self._seq
            payload = json.dumps({"seq": seq, "argv": list(argv), "cwd": cwd, "env": dict(env)}).encode("utf-8")
            if len(payload) > MAX_MESSAGE:
                raise SpawnerGone("request too large for the process helper")
            try:
                socket.send_fds(self._sock, [payload], [stdout, stderr])
            except OSError as exc:
                raise SpawnerGone(f"the process helper is gone ({exc})") from None
        with self._cond:
            while seq not in self._replies:
                if not self.alive:
                    raise SpawnerGone("the process helper is gone")
                self._cond.wait()
            reply = self._replies.pop(seq)
        if "pid" in reply:
            return SpawnedProcess(self, int(reply["pid"]))
        number = int(reply.get("errno") or 0)
        raise OSError(number, str(reply.get("message") or os.strerror(number)))

    def wait_exit(self, pid: int, timeout: float | None) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: pid in self._exits or not self.alive, timeout):
                raise subprocess.TimeoutExpired(str(pid), timeout or 0.0)
            if pid not in self._exits:
                raise OSError(f"the process helper died: the exit status of process {pid} is lost")
            return self._exits.pop(pid)


_shared: Spawner | None = None
_shared_failed = False
_shared_lock = threading.Lock()


def shared_spawner(uid: int, gid: int) -> Spawner | None:
    """The process-wide helper for ``uid:gid`` (started on first use); None when it cannot run or has died."""
    global _shared, _shared_failed
    with _shared_lock:
        if _shared is not None and _shared.alive:
            return _shared
        if _shared_failed or _shared is not None:
            return None
        try:
            _shared = Spawner(uid, gid)
        except (OSError, subprocess.SubprocessError) as exc:
            _shared_failed = True
            log.warning("cannot start the process helper (%s); tasks are started by the agent", exc)
            return None
        return _shared


# -- the helper ----------------------------------------------------------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode("utf-8"))


def _reap(sock: socket.socket, children: dict[int, subprocess.Popen[bytes]]) -> None:
    for pid, child in list(children.items()):
        if child.poll() is not None:
            del children[pid]
            _send(sock, {"exit": pid, "returncode": child.returncode})


def serve(fd: int) -> None:
    """The helper's loop: start what the agent asks for, report each child's exit, end when the agent does."""
    sock = socket.socket(fileno=fd)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_write)
    devnull = os.open(os.devnull, os.O_RDONLY)
    children: dict[int, subprocess.Popen[bytes]] = {}
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_read], [], [], 1.0)
        if wake_read in ready:
            while True:
                try:
                    if not os.read(wake_read, 512):
                        break
                except BlockingIOError:
                    break
        if sock.fileno() in ready:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE + 1024, 2)
            if not data:
                return
            request = json.loads(data.decode("utf-8"))
            try:
                child = subprocess.Popen(
                    request["argv"],
                    cwd=request["cwd"],
                    env=request["env"],
                    stdin=devnull,
                    stdout=fds[0],
                    stderr=fds[1],
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as exc:
                _send(sock, {"seq": request["seq"], "errno": exc.errno or 0, "message": exc.strerror or str(exc)})
            else:
                children[child.pid] = child
                _send(sock, {"seq": request["seq"], "pid": child.pid})
            finally:
                for descriptor in fds:
                    os.close(descriptor)
        _reap(sock, children)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
