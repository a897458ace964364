"""The server end of the node-agent protocol: register, long poll, events; the start task's progress.

See "The node-agent protocol" in docs/emulator-design.md. Runs are matched to events by assignment id; a
re-registering agent (after an emulator restart or a network hiccup) lists what it still runs: those runs are
re-bound (matched by job and task, whatever their attempt number), unknown ones are cancelled, and runs it no
longer lists stay bound for :data:`~batchbox.emulator.runtime.nodes.ORPHAN_GRACE` seconds so that their
buffered ``completed`` event is still accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from batchbox.emulator.clock import now_iso, valid_time
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.documents import exit_code_failure, is_retryable, parse_exit_code, parse_failure_info
from batchbox.emulator.runtime.environment import start_task_assignment, start_task_assignment_id
from batchbox.emulator.runtime.model import Assignment, NodeRuntime
from batchbox.emulator.runtime.pool_allocation import pool_settings
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["AgentSessions", "running_ids"]

log = logging.getLogger(__name__)

MAX_POLL_WAIT = 60.0


def running_ids(body: Mapping[str, Any]) -> set[str]:
    """The ``running`` assignment ids of a register or poll body."""
    value = body.get("running")
    if not isinstance(value, list):
        return set()
    return {item for item in value if isinstance(item, str)}


class AgentSessions:
    """Answers node agents and applies what they report."""

    def __init__(self, config: EmulatorConfig, scheduler: Scheduler, transitions: Transitions) -> None:
        self.config = config
        self.sched = scheduler
        self.trans = transitions
        self.store = scheduler.store
        self.closing = False

    # ----------------------------------------------------------------- register
    def register(self, node: NodeRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        """An agent (re)connects: re-bind its runs, move the node on from ``starting``, hand out the start task."""
        node.last_contact = time.monotonic()
        if node.removing or node.lost:
            return {"startTask": None, "pollWait": self.config.node_poll_wait}
        start_state = str(body.get("startTaskState") or "none")
        with self.sched.batch():
            self.adopt(node, running_ids(body))
            pool = self.sched.pools.get(node.pool_key)
            pool_doc = self.store.get_pool(node.pool_id)
            if pool is not None and pool_doc is not None:
                pool_settings(pool, pool_doc)
                pool.start_failures = 0
            start = start_task_assignment(self.config, pool_doc, node.node_id, node.dedicated) if pool_doc else None
            spec = (pool_doc or {}).get("startTask")
            if isinstance(spec, Mapping):
                node.doc["startTask"] = dict(spec)
            info = node.doc.get("startTaskInfo")
            succeeded = (
                isinstance(info, Mapping) and info.get("state") == "completed" and info.get("result") == "success"
            )
            run_start = (
                start is not None
                and start_state == "none"
                and (not isinstance(info, Mapping) or info.get("state") == "running")
            )
            wait = bool(spec.get("waitForSuccess", True)) if isinstance(spec, Mapping) else False
            if node.state in ("creating", "starting"):
                blocked = start is not None and wait and not succeeded
                self.sched.touch_node(node, "waitingforstarttask" if blocked else "idle")
            else:
                self.sched.touch_node(node)
            if run_start:
                node.doc["startTaskInfo"] = {"state": "running", "startTime": now_iso(), "retryCount": 0}
            self.sched.dispatch(node.pool_key)
        accounts = [a for a in (pool_doc or {}).get("userAccounts") or [] if isinstance(a, Mapping)]
        return {
            "startTask": start if run_start else None,
            "pollWait": self.config.node_poll_wait,
            "userAccounts": [dict(a) for a in accounts],
        }

    def adopt(self, node: NodeRuntime, reported: set[str]) -> None:
        """Re-bind the runs an agent reports to the runs the node holds (see the module doc)."""
        node.registered = True
        now = time.monotonic()
        by_task = {(h.job_key, h.task_key): h for h in node.running.values() if not h.cancelled}
        start_id = start_task_assignment_id(node.node_id)
        for assignment_id in sorted(reported):
            held = node.running.get(assignment_id)
            if held is not None:
                held.confirmed = True
                held.orphan_since = None
                continue
            if assignment_id == start_id:
                continue
            parts = assignment_id.split("/")
            match = by_task.get((parts[0].lower(), parts[1].lower())) if len(parts) == 3 else None
            if match is not None and parts[2].isdigit():
                node.running.pop(match.assignment_id, None)
                match.assignment_id = assignment_id
                match.attempt = int(parts[2])
                match.confirmed = True
                match.orphan_since = None
                node.running[assignment_id] = match
                continue
            stray = Assignment(
                assignment_id=assignment_id,
                kind="task",
                job_id=parts[0] if parts else "",
                task_id=parts[1] if len(parts) > 1 else "",
                attempt=0,
                slots=1,
                payload={},
                delivered_at=now,
                confirmed=True,
                cancelled=True,
                cancelled_at=now,
            )
            node.running[assignment_id] = stray
            node.cancel(assignment_id)
        for held in list(node.running.values()):
            if held.assignment_id in reported:
                continue
            if held.cancelled:
                self.sched.release(node, held)
            elif held.delivered_at is not None or held.confirmed:
                held.orphan_since = now
        self.sched.touch_node(node)

    # ----------------------------------------------------------------- poll
    async def poll(self, node: NodeRuntime, body: Mapping[str, Any], wait: float) -> dict[str, Any]:
        """The long poll (and heartbeat)."""
        node.last_contact = time.monotonic()
        if node.removing or node.lost:
            return {"assignments": [], "cancel": [], "shutdown": True}
        if self.closing:
            return {"assignments": [], "cancel": [], "shutdown": False}
        reported = running_ids(body)
        with self.sched.batch():
            if not node.registered and node.state not in ("creating", "starting"):
                self.adopt(node, reported)
            else:
                self.sched.reconcile_running(node, reported)
        return await self.sched.poll(node, min(max(wait, 0.0), MAX_POLL_WAIT))

    # ----------------------------------------------------------------- events
    def events(self, node: NodeRuntime, body: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a batch of events in one transaction; the answer carries the ack and any new work."""
        node.last_contact = time.monotonic()
        events = body.get("events")
        acked: list[str] = []
        batch = [e for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []
        # A run that started and ended within one batch needs one task write, not two.
        ended = {e.get("assignmentId") for e in batch if e.get("type") == "completed"}
        ended.discard(start_task_assignment_id(node.node_id))
        with self.sched.batch():
            for event in batch:
                event_id = event.get("eventId")
                if isinstance(event_id, str) and event_id:
                    acked.append(event_id)
                    if node.seen(event_id):
                        continue
                if event.get("type") == "started" and event.get("assignmentId") in ended:
                    continue
                try:
                    self._apply(node, event)
                except Exception:
                    log.exception("applying event %r of node %s failed", event_id, node.node_id)
            self.sched.dispatch(node.pool_key)
        assignments, cancels = node.drain() if not node.removing else ([], [])
        return {"ack": acked, "assignments": assignments, "cancel": cancels}

    def _apply(self, node: NodeRuntime, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        assignment_id = str(event.get("assignmentId") or "")
        if assignment_id == start_task_assignment_id(node.node_id):
            self.start_task_event(node, event)
            return
        held = node.running.get(assignment_id)
        if held is None:
            held = self._orphan_for(node, assignment_id)
            if held is None:
                return
        if kind == "started":
            self.trans.run_started(held)
        elif kind == "completed":
            self.trans.run_completed(node, held, event)
        elif kind == "coordinated":
            self.trans.run_coordinated(node, held, event)

    @staticmethod
    def _orphan_for(node: NodeRuntime, assignment_id: str) -> Assignment | None:
        """A result for a run re-bound at restart under another attempt number is still accepted."""
        parts = assignment_id.split("/")
        if len(parts) != 3:
            return None
        key = (parts[0].lower(), parts[1].lower())
        for held in node.running.values():
            if held.orphan_since is not None and (held.job_key, held.task_key) == key:
                return held
        return None

    # ----------------------------------------------------------------- the start task
    def start_task_event(self, node: NodeRuntime, event: Mapping[str, Any]) -> None:
        """Follow the start task's attempts in ``startTaskInfo``; the last failure of a waited-for start task
        makes the node ``starttaskfailed``, a success makes a waiting node ``idle``."""
        spec = node.doc.get("startTask") or {}
        info: dict[str, Any] = dict(node.doc.get("startTaskInfo") or {"retryCount": 0})
        info.setdefault("retryCount", 0)
        now = now_iso()
        kind = event.get("type")
        if kind == "started":
            started = valid_time(event.get("startTime") or event.get("time"), now)
            if info.get("state") == "completed" and info.get("result") == "failure":
                info["retryCount"] = int(info["retryCount"]) + 1
                info["lastRetryTime"] = started
            for name in ("endTime", "exitCode", "result", "failureInfo"):
                info.pop(name, None)
            info["state"] = "running"
            info["startTime"] = started
        elif kind == "completed":
            exit_code = parse_exit_code(event.get("exitCode"))
            failure = parse_failure_info(event.get("failureInfo"))
            if failure is None and exit_code != 0:
                failure = exit_code_failure(exit_code)
            info["state"] = "completed"
            info.setdefault("startTime", valid_time(event.get("startTime"), now))
            info["endTime"] = valid_time(event.get("endTime") or event.get("time"), now)
            if exit_code is None:
                info.pop("exitCode", None)
            else:
                info["exitCode"] = exit_code
            info["result"] = "failure" if failure else "success"
            if failure:
                info["failureInfo"] = failure
            else:
                info.pop("failureInfo", None)
            node.doc["startTaskInfo"] = info
            limit = spec.get("maxTaskRetryCount", 0) if isinstance(spec, Mapping) else 0
            limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else 0
            final = failure is not None and (
                not is_retryable(exit_code, failure) or (limit >= 0 and int(info["retryCount"]) >= limit)
            )
            waited = isinstance(spec, Mapping) and bool(spec.get("waitForSuccess", True))
            if failure is None and node.state == "waitingforstarttask":
                self.sched.touch_node(node, "idle")
            elif final and waited and node.state in ("waitingforstarttask", "starting", "creating"):
                log.warning("the start task of node %s failed: %s", node.node_id, failure)
                self.sched.touch_node(node, "starttaskfailed")
            else:
                self.sched.touch_node(node)
            return
        node.doc["startTaskInfo"] = info
        self.sched.touch_node(node)
