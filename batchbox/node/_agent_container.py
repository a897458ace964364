"""Container tasks on the node: the agent asks the emulator to run them (nodes hold no Docker socket).

For an Assignment with ``container``, the agent prepares the task directory and resource files as usual, then:

1. ``POST containers/run`` ``{"assignmentId", "environment": {AZ_BATCH_APP_PACKAGE_*}, "wait": s}``: the emulator
   starts the container it built from the Assignment and answers when it exits, or after ``wait`` seconds with
   ``{"state": "running"}``;
2. ``POST containers/wait`` ``{"assignmentId", "wait": s}`` until ``{"state": "exited", "exitCode", "failureInfo"}``;
3. ``POST containers/kill`` ``{"assignmentId"}`` for a cancel (terminate) or when ``maxWallClockSeconds`` passed.

While the emulator is unreachable the agent retries with backoff (the container keeps running; a restarted emulator
takes it up: a repeated ``run`` says ``retry``, and ``wait`` follows a container it did not start).
The container's stdout and stderr are written into the task directory by the emulator. Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from batchbox.node._agent_common import SERVER_ERROR, UNKNOWN, FailureInfo, failure_info
from batchbox.node._agent_http import Backoff, NodeApi, ServerUnreachable

__all__ = ["WAIT_WINDOW", "ContainerHandle", "ContainerTasks"]

WAIT_WINDOW = 20.0
"""Seconds one ``run`` or ``wait`` request may be held by the emulator."""

log = logging.getLogger("batchbox.agent")


class _Control(Protocol):
    cancelled: bool

    def attach(self, process: Any) -> bool: ...


class ContainerHandle:
    """Stands for a running task container in the agent's :class:`TaskControl` (its kill is the emulator's)."""

    pid = 0

    def __init__(self, tasks: ContainerTasks, assignment_id: str) -> None:
        self._tasks = tasks
        self._assignment_id = assignment_id

    def kill_task(self) -> None:
        """Ask the emulator to kill the container (best effort: the run loop asks again while it runs)."""
        try:
            self._tasks.post("kill", {"assignmentId": self._assignment_id})
        except ServerUnreachable as exc:
            log.warning("cannot ask the emulator to kill the container of %s: %s", self._assignment_id, exc)

    def wait(self, timeout: float | None = None) -> int:
        """Nothing to wait for here: the run loop waits through the emulator."""
        return 0


class ContainerTasks:
    """Talks to the emulator about this node's container tasks.

    Args:
        api: the node's agent API (one HTTP connection per thread).
    """

    def __init__(self, api: NodeApi) -> None:
        self._api = api

    def post(self, action: str, body: Mapping[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """POST to ``containers/<action>``; a refusal (node unknown, removed) reads as ``{"state": "missing"}``.

        Raises:
            ServerUnreachable: the emulator did not answer.
        """
        status, answer = self._api.post(f"containers/{action}", body, timeout=timeout)
        if status != 200 or not isinstance(answer, dict):
            log.warning("containers/%s answered HTTP %d", action, status)
            return {"state": "missing"}
        return answer

    def _ask(self, action: str, body: dict[str, Any], wait: float) -> dict[str, Any]:
        """``run`` or ``wait``, retried until the emulator answers. A ``run`` sent again says ``retry``: the emulator
        then takes up the container if the first request started one before it went away."""
        backoff = Backoff(0.2, 2.0)
        while True:
            try:
                return self.post(action, {**body, "wait": wait}, timeout=wait + 30.0)
            except ServerUnreachable as exc:
                log.warning(
                    "containers/%s of %s: emulator unreachable (%s); retrying", action, body["assignmentId"], exc
                )
                time.sleep(backoff.next_delay())
                if action == "run":
                    body = {**body, "retry": True}

    def run(
        self, assignment: Mapping[str, Any], environment: Mapping[str, str], control: _Control, began: float
    ) -> tuple[dict[str, Any], bool]:
        """Run the assignment's container to its end.

        Args:
            assignment: the Assignment (with ``container``).
            environment: variables the agent adds (the installed application packages').
            control: the assignment's cancel switch.
            began: ``time.monotonic()`` at the assignment's start (the wall clock limit counts from it).

        Returns:
            The emulator's last answer (``exitCode``, ``failureInfo``) and whether the wall clock limit killed it.
        """
        assignment_id = str(assignment.get("assignmentId"))
        handle = ContainerHandle(self, assignment_id)
        if not control.attach(handle):
            return {"state": "cancelled", "exitCode": None}, False
        limit = assignment.get("maxWallClockSeconds")
        deadline = None if limit is None else began + float(limit)
        timed_out = killed = False
        answer = self._ask(
            "run", {"assignmentId": assignment_id, "environment": dict(environment)}, self._window(deadline)
        )
        while answer.get("state") == "running":
            if deadline is not None and time.monotonic() >= deadline and not timed_out:
                timed_out = True
            if (timed_out or control.cancelled) and not killed:
                handle.kill_task()
                killed = True
            answer = self._ask("wait", {"assignmentId": assignment_id}, self._window(deadline))
        if answer.get("state") == "missing":
            answer = {"exitCode": None, "failureInfo": _missing(assignment_id)}
        return answer, timed_out

    @staticmethod
    def _window(deadline: float | None) -> float:
        remaining = WAIT_WINDOW if deadline is None else deadline - time.monotonic()
        return min(WAIT_WINDOW, remaining) if remaining > 0 else WAIT_WINDOW


def _missing(assignment_id: str) -> FailureInfo:
    return failure_info(
        SERVER_ERROR,
        UNKNOWN,
        f"The emulator has no container for {assignment_id} (its node is leaving, or it was lost)",
    )
