"""Node transitions: reboot, reimage, deallocate, start, disable / enable scheduling, node users, upload of the node's
service logs, remote login settings, and preemption (the emulator's admin trigger, never a Batch API operation).

Each method checks the node's state (Batch's 409 codes), starts the change (``runtime/node_actions.py``,
``runtime/node_users.py``) and returns the node document the handler renders.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import BatchError, conflict, not_found
from batchbox.emulator.resources.nodes import LogUpload, NodeUser
from batchbox.emulator.runtime.model import NodeRuntime
from batchbox.emulator.runtime.node_actions import NodeActions
from batchbox.emulator.runtime.node_users import NodeUsers, upload_service_logs

__all__ = ["NodeOperations"]

Doc = dict[str, Any]

_STATE_CONFLICTS = {
    "rebooting": ("NodeBeingRebooted", "The specified compute node is being rebooted."),
    "reimaging": ("NodeBeingReimaged", "The specified compute node is being reimaged."),
    "creating": ("NodeBeingCreated", "The specified compute node is being created."),
    "starting": ("NodeBeingStarted", "The specified compute node is being started."),
    "unusable": ("NodeStateUnusable", "The specified compute node is unusable."),
}
_RUNNING_STATES = ("idle", "running")
_REBOOTABLE = ("idle", "running", "starttaskfailed", "waitingforstarttask")


class NodeOperations:
    """What handlers (and the admin trigger) ask of nodes (``runtime.nodes``)."""

    def __init__(self, actions: NodeActions, users: NodeUsers) -> None:
        self._actions = actions
        self._users = users
        self._sched = actions.sched
        self._store = actions.store

    def node(self, pool_id: str, node_id: str) -> NodeRuntime:
        """The node ``node_id`` of pool ``pool_id``.

        Raises:
            BatchError: PoolNotFound / NodeNotFound (404).
        """
        if self._store.get_pool(pool_id) is None:
            raise not_found("pool", pool_id)
        pool = self._sched.pools.get(pool_id.lower())
        for node in pool.nodes.values() if pool is not None else ():
            if node.node_id.lower() == node_id.lower():
                return node
        raise not_found("node", node_id)

    def _check(self, node: NodeRuntime, allowed: tuple[str, ...], operation: str) -> None:
        state = node.state
        if state in _STATE_CONFLICTS:
            code, message = _STATE_CONFLICTS[state]
            raise conflict(code, message, {"NodeId": node.node_id})
        if node.node_id in self._actions.busy or node.draining or node.removing or node.lost:
            raise self._invalid(node, f"Another operation on the node is in progress ({operation} refused).")
        if state not in allowed:
            raise self._invalid(node, f"The node is {state}: {operation} needs a node that is {' or '.join(allowed)}.")

    @staticmethod
    def _invalid(node: NodeRuntime, reason: str) -> BatchError:
        return BatchError(
            409,
            "OperationInvalidForCurrentState",
            "The specified operation is not valid for the current state of the resource.",
            {"NodeId": node.node_id, "Reason": reason},
        )

    # ----------------------------------------------------------------- lifecycle
    def reboot(self, pool_id: str, node_id: str, option: str) -> Doc:
        """Reboot a node (``nodeRebootOption``); the start task runs again."""
        node = self.node(pool_id, node_id)
        self._check(node, _REBOOTABLE, "reboot")
        self._actions.reboot(node, option)
        return node.doc

    def reimage(self, pool_id: str, node_id: str, option: str) -> Doc:
        """Reinstall a node from the image (its disk wiped); the start task runs again."""
        node = self.node(pool_id, node_id)
        self._check(node, _REBOOTABLE, "reimage")
        self._actions.reimage(node, option)
        return node.doc

    def deallocate(self, pool_id: str, node_id: str, option: str) -> Doc:
        """Deallocate a node: its container stops and stays until ``start``."""
        node = self.node(pool_id, node_id)
        self._check(node, _RUNNING_STATES, "deallocate")
        self._actions.deallocate(node, option)
        return node.doc

    def start(self, pool_id: str, node_id: str) -> Doc:
        """Start a deallocated node."""
        node = self.node(pool_id, node_id)
        self._check(node, ("deallocated",), "start")
        self._actions.start(node)
        return node.doc

    def disable_scheduling(self, pool_id: str, node_id: str, option: str) -> Doc:
        """The node takes no new tasks (``nodeDisableSchedulingOption`` settles the running ones).

        Raises:
            BatchError: NodeAlreadyInTargetSchedulingState (409) when scheduling is already disabled.
        """
        node = self.node(pool_id, node_id)
        self._scheduling_target(node, "disabled")
        self._actions.disable_scheduling(node, option)
        return node.doc

    def enable_scheduling(self, pool_id: str, node_id: str) -> Doc:
        """The node takes tasks again.

        Raises:
            BatchError: NodeAlreadyInTargetSchedulingState (409) when scheduling is already enabled.
        """
        node = self.node(pool_id, node_id)
        self._scheduling_target(node, "enabled")
        self._actions.enable_scheduling(node)
        return node.doc

    @staticmethod
    def _scheduling_target(node: NodeRuntime, target: str) -> None:
        if str(node.doc.get("schedulingState") or "enabled") == target:
            raise conflict(
                "NodeAlreadyInTargetSchedulingState",
                "The specified compute node is already in the target scheduling state.",
                {"NodeId": node.node_id},
            )

    def preempt(self, pool_id: str, node_ids: list[str]) -> list[str]:
        """Preempt low-priority nodes of a pool (all of them when ``node_ids`` is empty); returns their ids.

        Raises:
            BatchError: PoolNotFound / NodeNotFound (404); OperationInvalidForCurrentState (409) for a dedicated
                node or one already preempted.
        """
        if self._store.get_pool(pool_id) is None:
            raise not_found("pool", pool_id)
        pool = self._sched.pools.get(pool_id.lower())
        if node_ids:
            nodes = [self.node(pool_id, node_id) for node_id in node_ids]
        else:
            nodes = [n for n in (pool.nodes.values() if pool else ()) if not n.dedicated and not n.removing]
        for node in nodes:
            if node.dedicated:
                raise self._invalid(node, "Only spot/low-priority nodes can be preempted.")
            if node.removing or node.lost or node.state == "preempted":
                raise self._invalid(node, f"The node is {node.state}.")
        for node in nodes:
            self._actions.preempt(node)
        return [node.node_id for node in nodes]

    # ----------------------------------------------------------------- users, logs, remote login
    async def add_user(self, pool_id: str, node_id: str, user: NodeUser) -> None:
        """Create a Linux user on the node (``NodeUserExists`` when taken)."""
        node = self.node(pool_id, node_id)
        self._check(node, _RUNNING_STATES, "adding a user")
        await self._users.add(node, user)

    async def update_user(self, pool_id: str, node_id: str, user: NodeUser) -> None:
        """Replace a node user's password, SSH key and expiry (``NodeUserNotFound`` when missing)."""
        node = self.node(pool_id, node_id)
        self._check(node, _RUNNING_STATES, "updating a user")
        await self._users.update(node, user)

    async def delete_user(self, pool_id: str, node_id: str, name: str) -> None:
        """Delete a node user (``NodeUserNotFound`` when missing)."""
        node = self.node(pool_id, node_id)
        self._check(node, _RUNNING_STATES, "deleting a user")
        await self._users.delete(node, name)

    async def upload_logs(self, pool_id: str, node_id: str, request: LogUpload) -> dict[str, Any]:
        """Upload the node's agent log and start task output to the request's container; the Batch answer."""
        node = self.node(pool_id, node_id)
        root = self._actions.lifecycle.config.node_root(node.node_id)
        return await upload_service_logs(root, node, request)

    def remote_login(self, pool_id: str, node_id: str) -> Doc:
        """Batch's answer for a node without remote access: the local node containers run no SSH server.

        Raises:
            BatchError: NodeNotFound (404); OperationInvalidForCurrentState (409) always otherwise.
        """
        node = self.node(pool_id, node_id)
        raise self._invalid(
            node,
            "The node has no remote login endpoint: local node containers run no SSH server. Open a shell with "
            "`docker exec -it <node container> bash` instead.",
        )
