"""The events the agent reports: a run's ``started`` and ``completed`` events, and the outbox that holds events
until the emulator acknowledges them, in the order they happened.

Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from batchbox.node._agent_common import FailureInfo, utc_now

__all__ = ["MAX_BATCH", "MAX_REFUSALS", "STARTED_LINGER", "EventQueue", "completed_event", "started_event"]

MAX_REFUSALS = 10
"""An event the emulator answers without acknowledging this many times is dropped (and logged)."""
MAX_BATCH = 500
"""At most this many events go in one ``POST /events``."""
STARTED_LINGER = 0.05
"""Seconds a batch of ``started`` events alone waits for more events, so that a short task's ``started`` and
``completed`` travel in one request (the emulator needs no ``started`` to mark a task running)."""

log = logging.getLogger("batchbox.agent")


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


class EventQueue:
    """Events waiting for the emulator's acknowledgement, in the order they happened."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._refusals: dict[str, int] = {}

    def put(self, event: dict[str, Any]) -> None:
        """Queue an event and wake the reporter."""
        with self._cond:
            self._pending.append(event)
            self._cond.notify_all()

    def peek(self, timeout: float, linger: float = 0.0) -> list[dict[str, Any]]:
        """Wait up to ``timeout`` seconds for events; return (without removing) the oldest ones.

        When only ``started`` events are pending, wait up to ``linger`` seconds more for another kind.
        """
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            if linger > 0 and self._pending:
                deadline = time.monotonic() + linger
                while all(event["type"] == "started" for event in self._pending):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            return list(self._pending[:MAX_BATCH])

    def settle(self, sent: list[dict[str, Any]], acked: set[str]) -> list[dict[str, Any]]:
        """Remove the acknowledged events of ``sent`` and those refused too often; return all removed ones."""
        with self._cond:
            removed: list[dict[str, Any]] = []
            for event in sent:
                event_id = event["eventId"]
                if event_id not in acked:
                    self._refusals[event_id] = self._refusals.get(event_id, 0) + 1
                    if self._refusals[event_id] < MAX_REFUSALS:
                        continue
                    log.error(
                        "dropping event %s (%s of %s): never acknowledged",
                        event_id,
                        event["type"],
                        event["assignmentId"],
                    )
                self._refusals.pop(event_id, None)
                removed.append(event)
            gone = {event["eventId"] for event in removed}
            self._pending = [event for event in self._pending if event["eventId"] not in gone]
            return removed

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)
