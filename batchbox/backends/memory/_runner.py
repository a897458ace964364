"""One run of a task as a local process: its directories, ``AZ_BATCH_*`` environment, resource files, the process
with its wall-clock limit, and its output files.

The rules are the node agent's (:mod:`batchbox.node._agent_runner`, :mod:`batchbox.node._agent_process`): the
command line is split like a shell would but not run by one; a missing program is exit code 127
(``CommandProgramNotFound``), one that cannot be executed 126 (``CommandLaunchFailed``); a process killed by signal
N reports 128 + N; a non-zero exit code fails with ``FailureExitCode``; the wall-clock limit (counted from the start
of the run, downloads included) kills the process group and fails with ``TaskEnded``; output files are uploaded
only when the process ran.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from batchbox.backends.memory._files import fetch_resource_files, store_output_files
from batchbox.backends.memory._records import Run, utc_now
from batchbox.backends.memory.storage import MemoryStorage
from batchbox.core.models import FailureInfo, OutputFile, ResourceFile
from batchbox.node._agent_common import (
    COMMAND_LAUNCH_FAILED,
    COMMAND_PROGRAM_NOT_FOUND,
    FAILURE_EXIT_CODE,
    SERVER_ERROR,
    TASK_ENDED,
    USER_ERROR,
)

__all__ = ["HOST_VARIABLES", "Outcome", "RunRequest", "run_process"]

HOST_VARIABLES = ("PATH", "HOME", "LANG", "TMPDIR")
"""The only variables of this process a task inherits (then come the ``AZ_BATCH_*`` ones and the settings)."""


@dataclass(frozen=True)
class RunRequest:
    """Everything one run needs."""

    command_line: str
    task_dir: Path
    environment: Mapping[str, str]
    resource_files: Sequence[ResourceFile] = ()
    output_files: Sequence[OutputFile] = ()
    max_wall_clock_time: timedelta | None = None


@dataclass(frozen=True)
class Outcome:
    """How a run ended; ``ran`` is False when no process started (a resource file or the launch failed)."""

    exit_code: int | None
    failure: FailureInfo | None
    ran: bool
    start_time: datetime
    end_time: datetime

    @property
    def retryable(self) -> bool:
        """Only a process that exited non-zero counts against the retry limit (as Batch retries)."""
        return self.exit_code not in (None, 0) and self.failure is not None and self.failure.code == FAILURE_EXIT_CODE


def _environment(request: RunRequest) -> dict[str, str]:
    env = {name: os.environ[name] for name in HOST_VARIABLES if name in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(request.environment)
    return env


def _launch(request: RunRequest, run: Run, began: float) -> tuple[int | None, FailureInfo | None, bool]:
    try:
        argv = shlex.split(request.command_line)
    except ValueError as exc:
        return None, FailureInfo(USER_ERROR, COMMAND_LAUNCH_FAILED, f"The command line cannot be parsed: {exc}"), False
    wd = request.task_dir / "wd"
    with open(request.task_dir / "stdout.txt", "wb") as out, open(request.task_dir / "stderr.txt", "wb") as err:
        try:
            process = subprocess.Popen(
                argv,
                cwd=wd,
                env=_environment(request),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                close_fds=True,
                start_new_session=True,
            )
        except FileNotFoundError:
            message = f"The program '{argv[0]}' of the command line was not found"
            return 127, FailureInfo(USER_ERROR, COMMAND_PROGRAM_NOT_FOUND, message), False
        except OSError as exc:
            message = f"The program '{argv[0]}' could not be started: {exc.strerror}"
            return 126, FailureInfo(USER_ERROR, COMMAND_LAUNCH_FAILED, message), False
    if not run.attach(process):
        return _exit_code(process.wait()), _ended_by_request(), True
    limit = request.max_wall_clock_time
    try:
        remaining = None if limit is None else max(0.0, began + limit.total_seconds() - time.monotonic())
        exit_code = _exit_code(process.wait(timeout=remaining))
    except subprocess.TimeoutExpired:
        run.kill()
        exit_code = _exit_code(process.wait())
        message = f"The task ran longer than its maximum wall clock time ({limit}) and was killed"
        return exit_code, FailureInfo(SERVER_ERROR, TASK_ENDED, message), True
    if run.cancelled:
        return exit_code, _ended_by_request(), True
    if exit_code != 0:
        message = "The task process exited with an unexpected exit code"
        return exit_code, FailureInfo(USER_ERROR, FAILURE_EXIT_CODE, message), True
    return exit_code, None, True


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _ended_by_request() -> FailureInfo:
    return FailureInfo(USER_ERROR, TASK_ENDED, "Task was ended by user request")


def run_process(storage: MemoryStorage, request: RunRequest, run: Run) -> Outcome:
    """Run one task to its end: resource files, the process, output files. Never raises for the task's faults."""
    start_time = utc_now()
    began = time.monotonic()
    wd = request.task_dir / "wd"
    wd.mkdir(parents=True, exist_ok=True)
    failure = fetch_resource_files(storage, request.resource_files, str(wd))
    exit_code: int | None = None
    ran = False
    if failure is None and run.cancelled:
        failure = _ended_by_request()
    if failure is None:
        exit_code, failure, ran = _launch(request, run, began)
    if ran and request.output_files and not run.cancelled:
        succeeded = exit_code == 0 and failure is None
        upload_failure = store_output_files(storage, request.output_files, str(wd), str(request.task_dir), succeeded)
        failure = failure or upload_failure
    return Outcome(exit_code, failure, ran, start_time, utc_now())
