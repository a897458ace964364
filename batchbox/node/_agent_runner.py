"""Run one assignment: the place where a Batch task turns into a process.

:func:`run_assignment` does the five steps of the design (task dir, resource files, the process, output files,
the ``completed`` event) and returns the ``completed`` event; ``emit`` receives the ``started`` event first. The
process itself (its user, environment, wall clock and cancel) is ``_agent_process``'s, a container task's run is
the emulator's (``_agent_container``), a multi-instance task's instance ``_agent_multi``'s.

Choices where Batch leaves room or differs by OS:

* After a wall-clock kill output files are uploaded by their condition (a failure).
* After a cancel no output files are uploaded.
* When no process ran (a resource file or the launch failed) no output files are uploaded.
* Processes a task leaves running in the background after a normal exit are not killed (those of a multi-instance
  task are, when its instance ends: see ``_agent_multi``).

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from batchbox.node._agent_common import (
    APPLICATION_PACKAGE_ERROR,
    RESOURCE_DIRECTORY_CREATE_FAILED,
    SERVER_ERROR,
    TASK_ENDED,
    UNKNOWN,
    USER_ERROR,
    FailureInfo,
    TaskFailure,
    ended_failure,
    failure_info,
    utc_now,
)
from batchbox.node._agent_container import ContainerTasks
from batchbox.node._agent_events import completed_event, started_event
from batchbox.node._agent_files import download_resource_files, upload_output_files
from batchbox.node._agent_multi import run_instance
from batchbox.node._agent_packages import PackageInstaller
from batchbox.node._agent_process import TaskControl, cancel_failure, run_process

__all__ = ["run_assignment"]

log = logging.getLogger("batchbox.agent")


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
        return None, cancel_failure() if control.cancelled else answer.get("failureInfo") or cancel_failure(), False
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
            return run_process(command, wd, task_dir, nonadmin, control, began, append)

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
        exit_code, failure, ran = run_process(
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
