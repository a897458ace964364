"""A task's process on the node: who it runs as, its environment, its start, its wall clock and its cancel.

:func:`run_process` starts an assignment's command line and waits for it; :class:`TaskControl` lets another
thread cancel the assignment by killing the process groups it started.

Choices where Batch leaves room or differs by OS:

* A process killed by signal N reports exit code 128 + N (137 for the SIGKILL of a wall-clock kill or a cancel),
  the shell's convention (Batch on Windows reports 0xC000013A).
* A non-zero exit code gives ``failureInfo`` ``usererror``/``FailureExitCode`` like the service.
* The wall clock limit kills the whole process group with SIGKILL (``servererror``/``TaskEnded``, as Batch
  documents for ``maxWallClockTime``). The limit counts from the assignment's start, so resource file downloads
  count too.
* A cancel kills the process group and completes with ``usererror``/``TaskEnded``.

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, Protocol

from batchbox.node._agent_common import (
    COMMAND_LAUNCH_FAILED,
    COMMAND_PROGRAM_NOT_FOUND,
    NONADMIN_GID,
    NONADMIN_UID,
    TASK_ENDED,
    USER_ERROR,
    FailureInfo,
    TaskFailure,
    chown_tree,
    ended_failure,
    failure_info,
)
from batchbox.node._agent_spawner import SpawnerGone, shared_spawner

__all__ = ["DEFAULT_PATH", "TaskControl", "cancel_failure", "run_process"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` of a task whose environment does not set one."""


class _Process(Protocol):
    """A started task process: ``subprocess.Popen`` or the process helper's ``SpawnedProcess``."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...


class TaskControl:
    """Lets another thread cancel a running assignment (kills its process groups, or prevents their start)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[_Process] = []
        self._cancel = threading.Event()
        self.cancelled = False

    def cancel(self) -> None:
        """Cancel: kill the process groups now, or make the process never start."""
        with self._lock:
            self.cancelled = True
            self._cancel.set()
            for process in self._processes:
                _kill_group(process)

    def attach(self, process: _Process) -> bool:
        """Record a started process; False (and the process killed) when a cancel came first."""
        with self._lock:
            if self.cancelled:
                _kill_group(process)
                return False
            self._processes.append(process)
            return True

    def wait_cancelled(self, timeout: float | None) -> bool:
        """Wait until a cancel comes (True) or ``timeout`` seconds passed (False)."""
        return self._cancel.wait(timeout)

    def end(self) -> None:
        """Kill the process groups of every process started so far (what they left in the background)."""
        with self._lock:
            for process in self._processes:
                _kill_group(process)


def _kill_group(process: _Process) -> None:
    kill_task = getattr(process, "kill_task", None)  # a task container: the emulator kills it
    if kill_task is not None:
        kill_task()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _home(nonadmin: bool, wd: str, user: pwd.struct_passwd | None = None) -> str:
    if user is not None:
        return user.pw_dir
    if not nonadmin:
        return "/root"
    try:
        return pwd.getpwuid(NONADMIN_UID).pw_dir
    except KeyError:
        return wd


def _named_user(assignment: Mapping[str, Any]) -> pwd.struct_passwd | None:
    """The pool user account a task runs as (``userIdentity.username``), or None for the auto users.

    Raises:
        TaskFailure: the account does not exist on the node.
    """
    name = assignment.get("userName")
    if not isinstance(name, str) or not name:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise TaskFailure(
            USER_ERROR, COMMAND_LAUNCH_FAILED, f"The user account '{name}' does not exist on the node"
        ) from None


def _task_environment(
    assignment: Mapping[str, Any], nonadmin: bool, wd: str, user: pwd.struct_passwd | None = None
) -> dict[str, str]:
    env = {"PATH": DEFAULT_PATH, "HOME": _home(nonadmin, wd, user), "LANG": "C.UTF-8"}
    for name, value in (assignment.get("environment") or {}).items():
        env[str(name)] = "" if value is None else str(value)
    return env


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _start(
    argv: list[str],
    wd: str,
    env: dict[str, str],
    out: IO[bytes],
    err: IO[bytes],
    nonadmin: bool,
    options: dict[str, Any],
) -> _Process:
    """Start the task process: a nonadmin one through the process helper when it runs (see ``_agent_spawner``)."""
    if nonadmin:
        spawner = shared_spawner(NONADMIN_UID, NONADMIN_GID)
        if spawner is not None:
            try:
                return spawner.spawn(argv, wd, env, out.fileno(), err.fileno())
            except SpawnerGone:
                pass
    return subprocess.Popen(
        argv,
        cwd=wd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        close_fds=True,
        start_new_session=True,
        **options,
    )


def run_process(
    assignment: Mapping[str, Any],
    wd: str,
    task_dir: str,
    nonadmin: bool,
    control: TaskControl,
    began: float,
    append: bool = False,
) -> tuple[int | None, FailureInfo | None, bool]:
    """Start the assignment's command line and wait for it; return ``(exit code, failureInfo, ran)``.

    The wall clock limit counts from ``began`` (the assignment's start, so resource downloads count too). With
    ``append`` the process's output is added to ``stdout.txt`` / ``stderr.txt`` instead of replacing them.

    Args:
        assignment: the Assignment (``commandLine``, ``environment``, ``userName``, ``maxWallClockSeconds``).
        wd: the working directory of the process.
        task_dir: the task directory, which receives ``stdout.txt`` and ``stderr.txt``.
        nonadmin: run as the node's nonadmin auto user (unless ``userName`` names a pool user account).
        control: the assignment's cancel control; the process is attached to it.
        began: ``time.monotonic()`` at the assignment's start.
        append: add to the output files of an earlier command line instead of replacing them.

    Raises:
        TaskFailure: ``userName`` names an account that does not exist on the node.
    """
    try:
        argv = shlex.split(str(assignment.get("commandLine") or ""))
    except ValueError as exc:
        return None, failure_info(USER_ERROR, COMMAND_LAUNCH_FAILED, f"The command line cannot be parsed: {exc}"), False
    if not argv:
        return None, failure_info(USER_ERROR, COMMAND_LAUNCH_FAILED, "The command line is empty"), False
    user = _named_user(assignment)
    options, owner = _process_identity(user, nonadmin)
    mode = "ab" if append else "wb"
    with (
        open(os.path.join(task_dir, "stdout.txt"), mode) as out,
        open(os.path.join(task_dir, "stderr.txt"), mode) as err,
    ):
        chown_tree(task_dir, owner, NONADMIN_GID)
        try:
            env = _task_environment(assignment, nonadmin, wd, user)
            process = _start(argv, wd, env, out, err, nonadmin and user is None, options)
        except OSError as exc:
            code, failure = _start_failure(exc, argv[0])
            return code, failure, False
    if not control.attach(process):
        return _exit_code(process.wait()), cancel_failure(), True
    limit = assignment.get("maxWallClockSeconds")
    timed_out = False
    try:
        remaining = None if limit is None else max(0.0, began + float(limit) - time.monotonic())
        returncode = process.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
        returncode = process.wait()
    exit_code = _exit_code(returncode)
    return exit_code, ended_failure(exit_code, cancelled=control.cancelled, timed_out=timed_out, limit=limit), True


def _process_identity(user: pwd.struct_passwd | None, nonadmin: bool) -> tuple[dict[str, Any], int]:
    """The ``Popen`` user and group options of a task's process, and the uid that owns its directory."""
    # Every task shares the node's Batch group (like Batch's auto-user group), so files an admin start task
    # writes with the default mode 0770 stay readable by nonadmin tasks.
    options: dict[str, Any] = {"group": NONADMIN_GID, "extra_groups": []}
    if user is not None:
        # A pool user account: its own uid, the Batch group first, its own groups (sudo for an admin) after.
        options.update(user=user.pw_uid, extra_groups=os.getgrouplist(user.pw_name, user.pw_gid))
        return options, user.pw_uid
    if nonadmin:
        options["user"] = NONADMIN_UID
        return options, NONADMIN_UID
    return options, 0


def _start_failure(exc: OSError, program: str) -> tuple[int, FailureInfo]:
    """The exit code and failureInfo of a command line whose program could not be started."""
    details = {"Program": program}
    if isinstance(exc, FileNotFoundError):
        message = f"The program '{program}' of the command line was not found"
        return 127, failure_info(USER_ERROR, COMMAND_PROGRAM_NOT_FOUND, message, details)
    if isinstance(exc, PermissionError):
        message = f"The program '{program}' of the command line is not executable"
        return 126, failure_info(USER_ERROR, COMMAND_LAUNCH_FAILED, message, details)
    message = f"The program '{program}' could not be started: {exc.strerror}"
    return 126, failure_info(USER_ERROR, COMMAND_LAUNCH_FAILED, message, details)


def cancel_failure() -> FailureInfo:
    """The failureInfo of a run ended by a cancel (``usererror``/``TaskEnded``)."""
    return failure_info(USER_ERROR, TASK_ENDED, "Task was ended by user request")
