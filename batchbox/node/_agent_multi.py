"""One instance of a multi-instance task on this node: the primary or a subtask (the assignment's ``multiInstance``).

Every instance downloads the ``commonResourceFiles`` into the task directory (``AZ_BATCH_TASK_SHARED_DIR``) and runs
the coordination command line; its output goes to the task directory's ``stdout.txt`` / ``stderr.txt``.

* A subtask reports a ``coordinated`` event with the coordination command's result, then keeps running (with what
  the command left in the background) until the emulator cancels it (the task's run is over) or the wall clock
  limit passes; its process groups are then killed. A failed coordination command ends it at once.
* The primary's assignment arrives once every subtask's coordination command succeeded. After its own coordination
  command it downloads the task's ``resourceFiles`` into the working directory and runs the application command
  line, whose output is appended to the same files; when that ends, the processes both left behind are killed.

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from batchbox.node._agent_common import TASK_ENDED, USER_ERROR, FailureInfo, TaskFailure, ended_failure, utc_now
from batchbox.node._agent_files import download_resource_files

__all__ = ["InstanceControl", "Launch", "coordinated_event", "run_instance"]


class Launch(Protocol):
    """Runs one command line of the task (its output appended to the earlier one's or not)."""

    def __call__(self, command_line: str, append: bool) -> tuple[int | None, FailureInfo | None, bool]:
        """Returns ``(exit code, failureInfo, ran)``."""


class InstanceControl(Protocol):
    """What an instance needs of its assignment's ``TaskControl`` (see ``_agent_process``)."""

    cancelled: bool

    def wait_cancelled(self, timeout: float | None) -> bool:
        """Wait until the assignment is cancelled (True) or ``timeout`` seconds passed (False)."""

    def end(self) -> None:
        """Kill every process group the assignment started."""


def coordinated_event(assignment_id: str, exit_code: int | None, failure: FailureInfo | None) -> dict[str, Any]:
    """A ``coordinated`` event: a subtask's coordination command ended with ``exit_code`` (and ``failure``)."""
    return {
        "eventId": str(uuid.uuid4()),
        "type": "coordinated",
        "assignmentId": assignment_id,
        "time": utc_now(),
        "exitCode": exit_code,
        "result": "success" if exit_code == 0 and failure is None else "failure",
        "failureInfo": failure,
    }


def run_instance(
    assignment: Mapping[str, Any],
    task_dir: str,
    wd: str,
    control: InstanceControl,
    launch: Launch,
    emit: Callable[[dict[str, Any]], None] | None,
    began: float,
) -> tuple[int | None, FailureInfo | None, bool]:
    """Run this node's instance to its end; returns ``(exit code, failureInfo, ran)`` of its completed event.

    Raises:
        TaskFailure: a common resource file (or, on the primary, a resource file) could not be downloaded.
    """
    settings = assignment.get("multiInstance") or {}
    download_resource_files(settings.get("commonResourceFiles") or [], task_dir)
    if control.cancelled:
        raise TaskFailure(USER_ERROR, TASK_ENDED, "Task was ended by user request")
    try:
        exit_code, failure, ran = launch(str(settings.get("coordinationCommandLine") or ""), False)
        if settings.get("primary") is not True:
            return _subtask(assignment, control, emit, began, exit_code, failure, ran)
        if failure is not None:
            return exit_code, failure, ran
        download_resource_files(assignment.get("resourceFiles") or [], wd)
        return launch(str(assignment.get("commandLine") or ""), True)
    finally:
        control.end()


def _subtask(
    assignment: Mapping[str, Any],
    control: InstanceControl,
    emit: Callable[[dict[str, Any]], None] | None,
    began: float,
    exit_code: int | None,
    failure: FailureInfo | None,
    ran: bool,
) -> tuple[int | None, FailureInfo | None, bool]:
    if emit is not None:
        emit(coordinated_event(str(assignment.get("assignmentId")), exit_code, failure))
    if failure is not None:
        return exit_code, failure, ran
    limit = assignment.get("maxWallClockSeconds")
    remaining = None if limit is None else max(0.0, began + float(limit) - time.monotonic())
    cancelled = control.wait_cancelled(remaining)
    code = 0 if exit_code is None else exit_code
    return exit_code, ended_failure(code, cancelled=cancelled, timed_out=not cancelled, limit=limit), ran
