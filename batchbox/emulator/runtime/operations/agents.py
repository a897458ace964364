"""The node-agent API by node id: authenticate, register, poll, events (``handlers/agent.py`` calls these).

A node the runtime does not know (removed, or never created) gets answers that make its agent stop: no start task,
``shutdown`` on a poll, and its events acknowledged so it does not resend them forever.
"""

from __future__ import annotations

import hmac
from typing import Any

from batchbox.emulator.applications import PackageCatalog
from batchbox.emulator.applications.references import delivery
from batchbox.emulator.runtime.model import NodeRuntime
from batchbox.emulator.runtime.sessions import AgentSessions
from batchbox.emulator.runtime.task_containers import TaskContainerRuns

__all__ = ["AgentOperations"]

_UNKNOWN_SECRET = "\x00unknown-node"


class AgentOperations:
    """What the node-agent handlers ask of the runtime (``runtime.agents``)."""

    def __init__(
        self, sessions: AgentSessions, containers: TaskContainerRuns, applications: PackageCatalog | None
    ) -> None:
        self._sessions = sessions
        self._containers = containers
        self._applications = applications
        self._sched = sessions.sched
        self._config = sessions.config

    def _node(self, node_id: str) -> NodeRuntime | None:
        return self._sched.nodes.get(node_id)

    def authenticate(self, node_id: str, secret: str) -> bool:
        """Constant-time check of a node's secret; unknown nodes never authenticate."""
        node = self._node(node_id)
        expected = node.secret if node is not None else _UNKNOWN_SECRET
        ok = hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
        return ok and node is not None

    async def register(self, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/register``: returns ``{"startTask": ..., "pollWait": ...}``."""
        node = self._node(node_id)
        if node is None:
            return {"startTask": None, "pollWait": self._config.node_poll_wait}
        return self._sessions.register(node, body)

    async def poll(self, node_id: str, body: dict[str, Any], wait: float) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/poll``: held until there is work for the node or ``wait`` passed."""
        node = self._node(node_id)
        if node is None:
            return {"assignments": [], "cancel": [], "shutdown": True}
        return await self._sessions.poll(node, body, wait)

    async def events(self, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/events``: applies the events; the answer acks them and carries new work."""
        node = self._node(node_id)
        if node is None:
            events = body.get("events")
            acked = (
                [e["eventId"] for e in events if isinstance(e, dict) and isinstance(e.get("eventId"), str)]
                if isinstance(events, list)
                else []
            )
            return {"ack": acked, "assignments": [], "cancel": []}
        return self._sessions.events(node, body)

    async def container(self, node_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/containers/{run|wait|kill}``: the node's container tasks (see
        ``runtime/task_containers.py``); an unknown node or assignment answers ``{"state": "missing"}``."""
        node = self._node(node_id)
        assignment_id = body.get("assignmentId")
        if node is None or node.removing or not isinstance(assignment_id, str) or not assignment_id:
            return {"state": "missing"}
        wait = body.get("wait")
        wait = float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else 0.0
        if action == "run":
            extra = body.get("environment")
            environment = extra if isinstance(extra, dict) else {}
            retry = body.get("retry") is True
            return await self._containers.run(node, assignment_id, environment, wait, retry=retry)
        if action == "wait":
            return await self._containers.wait(node, assignment_id, wait)
        return await self._containers.kill(node, assignment_id)

    async def packages(self, node_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_agent/v1/nodes/{id}/packages``: download URLs, directories and variables of the application
        packages of an assignment (``{"references": [...]}``), or the ``failureInfo`` of the first that fails."""
        if self._node(node_id) is None:
            return {"packages": []}
        return await delivery(self._applications, body.get("references"))

    def release_polls(self) -> None:
        """Answer every held long poll now (empty) and every later one at once: the server is shutting down."""
        self._sessions.closing = True
        for node in self._sched.nodes.values():
            node.poll_generation += 1
            node.wake.set()
