"""The node's assignments as the agent tracks them: the tasks it runs, each in its own thread, and the start task.

An assignment stays known from its start until the emulator acknowledges its ``completed`` event, so that a
registration after a lost connection names it as running. The start task runs at most once per node (retried
on a non-zero exit code up to its ``maxTaskRetryCount``); its completion is recorded under the node root
(``_agent_state``) so that an agent restarted on the same node does not run it again.

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from batchbox.node._agent_common import FAILURE_EXIT_CODE
from batchbox.node._agent_container import ContainerTasks
from batchbox.node._agent_events import EventQueue
from batchbox.node._agent_packages import PackageInstaller
from batchbox.node._agent_process import TaskControl
from batchbox.node._agent_runner import run_assignment
from batchbox.node._agent_state import load_completed_start_task, save_completed_start_task

__all__ = ["Assignments"]

log = logging.getLogger("batchbox.agent")


class _Active:
    """An assignment the emulator must still hear about: running, or its completed event not yet acknowledged."""

    def __init__(self) -> None:
        self.control = TaskControl()
        self.completed_event_id: str | None = None


class Assignments:
    """The assignments of one node: start, cancel, and forget them once their completion is acknowledged.

    Args:
        node_root: the node root directory.
        events: receives every run's ``started`` and ``completed`` events.
        containers: runs container assignments through the emulator.
        packages: installs application packages.
        stopping: set when the agent stops; no assignment starts after it and the start task is not retried.
    """

    def __init__(
        self,
        node_root: str,
        events: EventQueue,
        containers: ContainerTasks,
        packages: PackageInstaller,
        stopping: threading.Event,
    ) -> None:
        self._node_root = node_root
        self._events = events
        self._containers = containers
        self._packages = packages
        self._stopping = stopping
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._start_task_state = "none"
        self._start_task_control = TaskControl()
        self._start_task_id: str | None = None
        recorded = load_completed_start_task(node_root)
        if recorded is not None:
            self._start_task_state = "completed"
            self._start_task_id = recorded.get("assignmentId")

    @property
    def start_task_state(self) -> str:
        """``none``, ``running`` or ``completed``."""
        return self._start_task_state

    def running_ids(self) -> list[str]:
        """Assignments running, or finished but whose completed event is not acknowledged yet."""
        with self._lock:
            return sorted(self._active)

    def start(self, assignment: dict[str, Any]) -> None:
        """Run an assignment in its own thread (a duplicate of a known one is ignored)."""
        assignment_id = str(assignment.get("assignmentId"))
        if assignment.get("kind") == "starttask":
            self.start_start_task(assignment)
            return
        with self._lock:
            if assignment_id in self._active or self._stopping.is_set():
                log.info("ignoring assignment %s: already known or stopping", assignment_id)
                return
            active = self._active[assignment_id] = _Active()
        threading.Thread(
            target=self._run_task, args=(assignment, active), name=f"task {assignment_id}", daemon=True
        ).start()

    def _run_task(self, assignment: dict[str, Any], active: _Active) -> None:
        log.debug("assignment %s started", assignment.get("assignmentId"))
        event = run_assignment(
            assignment,
            self._node_root,
            emit=self._events.put,
            control=active.control,
            containers=self._containers,
            packages=self._packages,
        )
        with self._lock:
            active.completed_event_id = event["eventId"]
            self._events.put(event)

    def cancel(self, assignment_id: str) -> None:
        """Kill an assignment's processes; its completed event follows as usual."""
        with self._lock:
            active = self._active.get(assignment_id)
        if active is not None:
            log.info("cancelling assignment %s", assignment_id)
            active.control.cancel()
        elif assignment_id == self._start_task_id and self._start_task_state == "running":
            self._start_task_control.cancel()

    def cancel_all(self) -> None:
        """Kill the processes of every known assignment and of the start task."""
        with self._lock:
            actives = list(self._active.values())
        for active in actives:
            active.control.cancel()
        self._start_task_control.cancel()

    def start_start_task(self, assignment: dict[str, Any]) -> None:
        """Run the start task unless it is running or completed already."""
        with self._lock:
            if self._start_task_state != "none":
                return
            self._start_task_state = "running"
            self._start_task_id = str(assignment.get("assignmentId"))
            self._start_task_control = TaskControl()
        threading.Thread(target=self._run_start_task, args=(assignment,), name="start task", daemon=True).start()

    def _run_start_task(self, assignment: dict[str, Any]) -> None:
        retries = int(assignment.get("maxTaskRetryCount") or 0)
        attempt = 0
        while True:
            log.info("start task %s attempt %d", self._start_task_id, attempt)
            event = run_assignment(
                {**assignment, "attempt": attempt},
                self._node_root,
                emit=self._events.put,
                control=self._start_task_control,
                containers=self._containers,
                packages=self._packages,
            )
            self._events.put(event)
            failure = event.get("failureInfo") or {}
            retry = failure.get("code") == FAILURE_EXIT_CODE and (retries < 0 or attempt < retries)
            if not retry or self._stopping.is_set() or self._start_task_control.cancelled:
                break
            attempt += 1
        try:
            save_completed_start_task(self._node_root, self._start_task_id, event["result"], event["exitCode"])
        except OSError as exc:
            log.error("cannot record the start task's completion under %s: %s", self._node_root, exc)
        self._start_task_state = "completed"

    def task_running(self) -> bool:
        """Whether an assignment still runs (its completed event not queued yet)."""
        with self._lock:
            return any(active.completed_event_id is None for active in self._active.values())

    def acknowledged(self, removed: list[dict[str, Any]]) -> None:
        """Forget the assignments whose completed event left the outbox (``removed``: acknowledged or dropped)."""
        done = {event["assignmentId"] for event in removed if event["type"] == "completed"}
        with self._lock:
            for assignment_id in done:
                active = self._active.get(assignment_id)
                if active is not None and active.completed_event_id is not None:
                    del self._active[assignment_id]
