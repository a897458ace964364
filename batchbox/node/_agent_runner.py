"""Run one assignment: the place where a Batch task turns into a process.

:func:`run_assignment` does the five steps of the design (task dir, resource files, the process, output files,
the ``completed`` event) and returns the ``completed`` event; ``emit`` receives the ``started`` event first.

Choices where Batch leaves room or differs by OS:

* A process killed by signal N reports exit code 128 + N (137 for the SIGKILL of a wall-clock kill or a cancel),
  the shell's convention (Batch on Windows reports 0xC000013A).
* A non-zero exit code gives ``failureInfo`` ``usererror``/``FailureExitCode`` like the service.
* The wall clock limit kills the whole process group with SIGKILL (``servererror``/``TaskEnded``, as Batch
  documents for ``maxWallClockTime``); output files are then uploaded by their condition (a failure).
  The limit counts from the assignment's start, so resource file downloads count too.
* A cancel kills the process group and completes with ``usererror``/``TaskEnded``; no output files are uploaded.
* When no process ran (a resource file or the launch failed) no output files are uploaded.
* Processes a task leaves running in the background after a normal exit are not killed (those of a multi-instance
  task are, when its instance ends: see ``_agent_multi``).

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import IO, Any, Protocol

from batchbox.node._agent_common import (
    APPLICATION_PACKAGE_ERROR,
    COMMAND_LAUNCH_FAILED,
    COMMAND_PROGRAM_NOT_FOUND,
    NONADMIN_GID,
    NONADMIN_UID,
    RESOURCE_DIRECTORY_CREATE_FAILED,
    SERVER_ERROR,
    TASK_ENDED,
    UNKNOWN,
    USER_ERROR,
    FailureInfo,
    TaskFailure,
    chown_tree,
    ended_failure,
    failure_info,
    utc_now,
)
from batchbox.node._agent_container import ContainerTasks
from batchbox.node._agent_files import download_resource_files, upload_output_files
from batchbox.node._agent_multi import run_instance
from batchbox.node._agent_packages import PackageInstaller
from batchbox.node._agent_spawner import SpawnerGone, shared_spawner

__all__ = ["DEFAULT_PATH", "TaskControl", "completed_event", "run_assignment", "started_event"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` of a task whose environment does not set one."""

log = logging.getLogger("batchbox.agent")


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


def started_event(assignment_id: str, time_: str | None = None) -> dict[str, Any]:
    """A ``started`` event for ``assignment_id``."""
    return {"eventId": str(uuid.uuid4()), "type": "started", "assignmentId": assignment_id, "time": time_ or utc_now()}


def completed_event(
    assignment_id: str, start_time: str, exit_code: int | None, failure: FailureInfo | None
) -> dict[str, Any]:
    """A ``completed`` event; ``result`` is success only for exit code 0 without failureInfo."""
    end_time = utc_now()
    result = "success" if exit_code == 0 and failure is None else "failure"
    return {
        "eventId": str(uuid.uuid4()),
        "type": "completed",
        "assignmentId": assignment_id,
        "time": end_time,
        "exitCode": exit_code,
        "startTime": start_time,
        "endTime": end_time,
        "result": result,
        "failureInfo": failure,
    }


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


def _launch(
    assignment: Mapping[str, Any],
    wd: str,
    task_dir: str,
    nonadmin: bool,
    control: TaskControl,
    began: float,
    append: bool = False,
) -> tuple[int | None, FailureInfo | None, bool]:
    """Start the process and wait for it; return ``(exit code, failureInfo, ran)``.

    The wall clock limit counts from ``began`` (the assignment's start, so resource downloads count too). With
    ``append`` the process's output is added to ``stdout.txt`` / ``stderr.txt`` instead of replacing them.
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
        return _exit_code(process.wait()), _cancel_failure(), True
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


def _cancel_failure() -> FailureInfo:
    return failure_info(USER_ERROR, TASK_ENDED, "Task was ended by user request")


def _launch_container(
    assignment: Mapping[str, Any],
    control: TaskControl,
    began: float,
    containers: ContainerTasks | None,
    environment: Mapping[str, str],
) -> tuple[int | None, FailureInfo | None, bool]:
    """Have the emulator run the assignment's container; return ``(exit code, failureInfo, ran)``."""
    if containers is None:
        return None, failure_info(SERVER_ERROR, UNKNOWN, "This agent cannot run container tasks"), False
    answer, timed_out = containers.run(assignment, environment, control, began)
    exit_code = answer.get("exitCode")
    if not isinstance(exit_code, int) or isinstance(exit_code, bool):
        return None, _cancel_failure() if control.cancelled else answer.get("failureInfo") or _cancel_failure(), False
    reported = answer.get("failureInfo")
    if isinstance(reported, dict) and not (control.cancelled or timed_out):
        return exit_code, reported, True
    limit = assignment.get("maxWallClockSeconds")
    return exit_code, ended_failure(exit_code, cancelled=control.cancelled, timed_out=timed_out, limit=limit), True


def _install_packages(assignment: Mapping[str, Any], packages: PackageInstaller | None) -> dict[str, str]:
    references = assignment.get("applicationPackageReferences") or []
    if not references:
        return {}
    if packages is None:
        raise TaskFailure(SERVER_ERROR, APPLICATION_PACKAGE_ERROR, "This agent cannot install application packages")
    return packages.install(references)


def _prepare_dirs(node_root: str, task_dir_rel: str) -> tuple[str, str]:
    task_dir = os.path.normpath(os.path.join(node_root, task_dir_rel))
    if not task_dir.startswith(os.path.normpath(node_root) + os.sep):
        raise TaskFailure(
            SERVER_ERROR,
            RESOURCE_DIRECTORY_CREATE_FAILED,
            f"The task directory '{task_dir_rel}' is not below the node root",
        )
    wd = os.path.join(task_dir, "wd")
    try:
        os.makedirs(wd, exist_ok=True)
    except OSError as exc:
        raise TaskFailure(
            SERVER_ERROR,
            RESOURCE_DIRECTORY_CREATE_FAILED,
            f"The task directory '{task_dir_rel}' could not be created: {exc.strerror}",
        ) from None
    return task_dir, wd


def _node_failure(exc: Exception) -> FailureInfo:
    """The failureInfo of a run the node could not carry through (an error of the node, not of the task)."""
    return failure_info(SERVER_ERROR, UNKNOWN, f"The node could not run the task: {type(exc).__name__}: {exc}")


def _upload_outputs(
    output_files: list[Any], wd: str, task_dir: str, exit_code: int | None, failure: FailureInfo | None
) -> FailureInfo | None:
    """Upload the run's output files; the run's failureInfo afterwards (an upload error is added to it; an
    unexpected error replaces it, and the run keeps its exit code)."""
    try:
        upload_failure = upload_output_files(output_files, wd, task_dir, exit_code == 0 and failure is None)
    except Exception as exc:  # e.g. a full node disk: the run still completes, with the exit code it had
        log.exception("the output files of a run could not be uploaded")
        return _node_failure(exc)
    if upload_failure is None:
        return failure
    if failure is None:
        return upload_failure
    failure.setdefault("details", []).append({"name": "FileUploadError", "value": upload_failure["message"]})
    return failure


def _execute(
    assignment: Mapping[str, Any],
    node_root: str,
    control: TaskControl,
    began: float,
    containers: ContainerTasks | None,
    packages: PackageInstaller | None,
    emit: Callable[[dict[str, Any]], None] | None,
) -> tuple[int | None, FailureInfo | None]:
    """Directories, packages, resource files, the process or container, then the output files.

    Raises:
        TaskFailure: a step before the process failed (the run's failureInfo).
    """
    task_dir, wd = _prepare_dirs(node_root, str(assignment.get("taskDir") or ""))
    if isinstance(assignment.get("failureInfo"), dict):
        raise TaskFailure.from_info(assignment["failureInfo"])
    extra = _install_packages(assignment, packages)
    if isinstance(assignment.get("multiInstance"), Mapping):
        nonadmin = str(assignment.get("elevationLevel") or "nonadmin").lower() != "admin"
        environment = {**(assignment.get("environment") or {}), **extra}

        def launch(command_line: str, append: bool) -> tuple[int | None, FailureInfo | None, bool]:
            command = {**assignment, "commandLine": command_line, "environment": environment}
            return _launch(command, wd, task_dir, nonadmin, control, began, append)

        exit_code, failure, ran = run_instance(assignment, task_dir, wd, control, launch, emit, began)
        return exit_code, _outputs(assignment, ran, control, wd, task_dir, exit_code, failure)
    download_resource_files(assignment.get("resourceFiles") or [], wd)
    if control.cancelled:
        raise TaskFailure(USER_ERROR, TASK_ENDED, "Task was ended by user request")
    if assignment.get("container") is not None:
        exit_code, failure, ran = _launch_container(assignment, control, began, containers, extra)
    else:
        nonadmin = str(assignment.get("elevationLevel") or "nonadmin").lower() != "admin"
        environment = {**(assignment.get("environment") or {}), **extra}
        exit_code, failure, ran = _launch(
            {**assignment, "environment": environment}, wd, task_dir, nonadmin, control, began
        )
    return exit_code, _outputs(assignment, ran, control, wd, task_dir, exit_code, failure)


def _outputs(
    assignment: Mapping[str, Any],
    ran: bool,
    control: TaskControl,
    wd: str,
    task_dir: str,
    exit_code: int | None,
    failure: FailureInfo | None,
) -> FailureInfo | None:
    """Upload the output files of a run whose process ran and was not cancelled; its failureInfo afterwards."""
    output_files = assignment.get("outputFiles") or []
    if ran and output_files and not control.cancelled:
        return _upload_outputs(output_files, wd, task_dir, exit_code, failure)
    return failure


def run_assignment(
    assignment: Mapping[str, Any],
    node_root: str,
    emit: Callable[[dict[str, Any]], None] | None = None,
    control: TaskControl | None = None,
    containers: ContainerTasks | None = None,
    packages: PackageInstaller | None = None,
) -> dict[str, Any]:
    """Run one assignment (a task or the start task) to its end and return its ``completed`` event.

    Args:
        assignment: the Assignment object of the agent protocol.
        node_root: the node root directory (``$BATCHBOX_NODE_ROOT``).
        emit: receives the ``started`` event before anything else happens.
        control: lets another thread cancel the assignment.
        containers: asks the emulator to run container assignments (those with ``container``).
        packages: installs the assignment's ``applicationPackageReferences`` (and gives their variables).

    Returns:
        The ``completed`` event (exitCode None when no process ran).
    """
    assignment_id = str(assignment.get("assignmentId"))
    control = control or TaskControl()
    start_time = utc_now()
    if emit is not None:
        emit(started_event(assignment_id, start_time))
    began = time.monotonic()
    exit_code: int | None = None
    failure: FailureInfo | None = None
    try:
        exit_code, failure = _execute(assignment, node_root, control, began, containers, packages, emit)
    except TaskFailure as exc:
        failure = exc.info
    except Exception as exc:  # the assignment must complete whatever went wrong on the node
        log.exception("assignment %s failed on the node", assignment_id)
        failure = _node_failure(exc)
    event = completed_event(assignment_id, start_time, exit_code, failure)
    # One line per failed run; successful ones only at debug level (a line per task costs the agent, and Docker's
    # log driver, more CPU than starting a short task).
    log.log(
        logging.INFO if failure else logging.DEBUG,
        "assignment %s completed: exitCode=%s result=%s code=%s (%.3f s)",
        assignment_id,
        exit_code,
        event["result"],
        failure["code"] if failure else None,
        time.monotonic() - began,
    )
    return event
