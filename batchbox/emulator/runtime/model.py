"""The runtime's in-memory view: pools, nodes, jobs and their queues, rebuilt from the store at start.

The store holds the truth (REST documents); these objects hold what the scheduler needs to decide quickly
(free slots, queued task keys, mailboxes) and what is not a REST property (node secrets, assignment ids,
long-poll wake-ups). Everything here is touched only from the event-loop thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SCHEDULABLE_NODE_STATES",
    "TASK_KINDS",
    "Assignment",
    "Gang",
    "JobRuntime",
    "ManagerSettings",
    "NodeRuntime",
    "PoolRuntime",
    "task_assignment_id",
]

SCHEDULABLE_NODE_STATES = frozenset({"idle", "running"})
TASK_KINDS = frozenset({"task", "subtask"})
"""Assignment kinds that run (part of) a task of a job: a task, or a subtask of a multi-instance task."""
_OUTSIDE_TARGET_STATES = frozenset({"preempted", "leavingpool"})
_SEEN_EVENTS_KEPT = 4096


def task_assignment_id(job_id: str, task_id: str, attempt: int) -> str:
    """The id of one run of a task: ``<job>/<task>/<attempt>`` (ids cannot contain ``/``)."""
    return f"{job_id}/{task_id}/{attempt}"


@dataclass
class Assignment:
    """One run of a task (or of a node's start task) handed to a node.

    Attributes:
        assignment_id: the protocol id, ``job/task/attempt`` for tasks (``job/task/attempt/n`` for subtask n).
        kind: ``task``, ``subtask`` (of a multi-instance task), ``starttask``, or a job preparation / release.
        payload: the Assignment JSON sent to the agent (kept for redelivery).
        slots: task slots it occupies on the node.
        delivered_at: monotonic time it left the mailbox (``None`` while still queued there).
        confirmed: the agent reported it (running list or an event), so it is never redelivered.
        cancelled: the task is no longer bound to this run (terminated / deleted); the slot stays busy until
            the agent reports the process gone.
        orphan_since: set after a re-registration that did not list it: a buffered ``completed`` event may
            still arrive; after a grace period the task is requeued.
        gang: the run of a multi-instance task this assignment is the primary or a subtask of.
    """

    assignment_id: str
    kind: str
    job_id: str
    task_id: str
    attempt: int
    slots: int
    payload: dict[str, Any]
    delivered_at: float | None = None
    confirmed: bool = False
    cancelled: bool = False
    cancelled_at: float | None = None
    orphan_since: float | None = None
    gang: Gang | None = None

    @property
    def job_key(self) -> str:
        return self.job_id.lower()

    @property
    def task_key(self) -> str:
        return self.task_id.lower()


@dataclass
class Gang:
    """One run of a multi-instance task: its primary and subtasks, one per node, placed together.

    Attributes:
        members: ``(node, assignment)`` of every instance; index 0 is the primary (on the master node), index n
            is subtask n.
        coordinated: exit codes of the subtasks whose coordination command succeeded, by subtask id.
        ended: the primary's run is over (completed, cancelled or lost): the subtasks are being ended.
    """

    members: list[tuple[NodeRuntime, Assignment]] = field(default_factory=list)
    coordinated: dict[int, int] = field(default_factory=dict)
    ended: bool = False

    @property
    def primary(self) -> tuple[NodeRuntime, Assignment]:
        return self.members[0]

    def index_of(self, held: Assignment) -> int | None:
        """The instance number of ``held`` (0: the primary), or None when it is not a member."""
        for index, (_node, member) in enumerate(self.members):
            if member is held:
                return index
        return None


@dataclass
class NodeRuntime:
    """A compute node: its REST document plus the agent session state."""

    node_id: str
    pool_id: str
    secret: str
    doc: dict[str, Any]
    capacity: int
    dedicated: bool = True
    container_id: str | None = None
    running: dict[str, Assignment] = field(default_factory=dict)
    mailbox: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    shutdown: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    poll_generation: int = 0
    polls_waiting: int = 0
    last_contact: float = field(default_factory=time.monotonic)
    registered: bool = False
    removing: bool = False
    lost: bool = False
    draining: bool = False
    """Takes no new work while its running tasks finish (a removal, reboot or deallocation waiting for them)."""
    start_task_failures: int = 0
    seen_events: OrderedDict[str, None] = field(default_factory=OrderedDict)
    removals: list[str] = field(default_factory=list)
    """Directories (relative to the node root) the agent is to remove: retention over, or their job deleted."""

    @property
    def pool_key(self) -> str:
        return self.pool_id.lower()

    @property
    def state(self) -> str:
        return str(self.doc.get("state", "unknown"))

    @property
    def used_slots(self) -> int:
        return sum(a.slots for a in self.running.values())

    @property
    def free_slots(self) -> int:
        return self.capacity - self.used_slots

    def schedulable(self) -> bool:
        """Whether new tasks may be placed here now."""
        return (
            self.registered
            and not self.removing
            and not self.lost
            and not self.draining
            and self.state in SCHEDULABLE_NODE_STATES
            and self.doc.get("schedulingState", "enabled") == "enabled"
        )

    def seen(self, event_id: str) -> bool:
        """Record an event id; ``True`` when it was processed before (events are idempotent)."""
        if event_id in self.seen_events:
            return True
        self.seen_events[event_id] = None
        while len(self.seen_events) > _SEEN_EVENTS_KEPT:
            self.seen_events.popitem(last=False)
        return False

    def deliver(self, payload: dict[str, Any]) -> None:
        """Put an assignment in the mailbox and wake the long poll."""
        self.mailbox.append(payload)
        self.wake.set()

    def cancel(self, assignment_id: str) -> None:
        """Ask the agent to stop a run; wakes the long poll."""
        if assignment_id not in self.cancels:
            self.cancels.append(assignment_id)
        self.mailbox = [p for p in self.mailbox if p.get("assignmentId") != assignment_id]
        self.wake.set()

    def remove(self, directory: str) -> None:
        """Ask the agent to remove a directory under its node root; wakes the long poll."""
        if directory not in self.removals:
            self.removals.append(directory)
        self.wake.set()

    def drain(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Take everything waiting for the agent (assignments are marked delivered)."""
        assignments, cancels = self.mailbox, self.cancels
        self.mailbox, self.cancels = [], []
        now = time.monotonic()
        for payload in assignments:
            held = self.running.get(str(payload.get("assignmentId")))
            if held is not None:
                held.delivered_at = now
        return assignments, cancels


@dataclass
class PoolRuntime:
    """A pool's scheduling settings and its nodes."""

    pool_id: str
    slots_per_node: int = 1
    fill_type: str = "spread"
    nodes: dict[str, NodeRuntime] = field(default_factory=dict)
    deleting: bool = False
    dirty: bool = False
    reconciler: asyncio.Task[None] | None = None
    allocation_failed: bool = False
    start_failures: int = 0
    doc: dict[str, Any] | None = None
    job_order: str = "none"
    """``taskSchedulingPolicy.jobDefaultOrder``: ``none`` (equal-priority jobs take turns) or ``creationtime``."""
    preempting: int = 0
    """Runs cancelled to make room for a higher-priority job's task, whose slots are not free yet."""

    @property
    def key(self) -> str:
        return self.pool_id.lower()

    def live_nodes(self) -> list[NodeRuntime]:
        """Nodes that count towards the pool's size (not leaving, not lost, not preempted)."""
        return [
            n for n in self.nodes.values() if not n.removing and not n.lost and n.state not in _OUTSIDE_TARGET_STATES
        ]


@dataclass(frozen=True)
class ManagerSettings:
    """A job manager task's scheduling flags (its task key is ``key``)."""

    key: str
    run_exclusive: bool = True
    allow_low_priority: bool = True
    kill_job_on_completion: bool = True


@dataclass
class JobRuntime:
    """A job's scheduling view: its settings, its running tasks and (with dependencies) its waiting tasks.

    Its queue is not here: the active tasks that do not wait for a parent are the store's queue
    (``Store.queued_tasks``, in insertion order), so a job of a million queued tasks costs no memory here.
    """

    job_id: str
    order: int
    pool_key: str | None = None
    priority: int = 0
    state: str = "active"
    max_parallel: int = -1
    on_all_tasks_complete: str = "noaction"
    common_environment: list[dict[str, Any]] = field(default_factory=list)
    max_task_retry_count: int = 0
    running: set[str] = field(default_factory=set)
    ending: bool = False
    deadline: float | None = None
    uses_dependencies: bool = False
    satisfied: set[str] = field(default_factory=set)
    waiting: dict[str, set[str]] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)
    on_task_failure: str = "noaction"
    preemptible: bool = False
    manager: ManagerSettings | None = None
    preparation: dict[str, Any] | None = None
    release: dict[str, Any] | None = None
    excluded_nodes: set[str] = field(default_factory=set)
    """Nodes where the job's preparation task failed for good: none of its tasks run there."""
    affinity: dict[str, str] = field(default_factory=dict)
    """``affinityInfo.affinityId`` of queued tasks that have one (the node they prefer)."""
    last_placed: int = 0
    task_slots: dict[str, int] = field(default_factory=dict)
    """Slots of the tasks the scheduler looked at and that have not finished (queued ones live in the store)."""
    task_order: dict[str, int] = field(default_factory=dict)
    """The order in which running tasks were started (the latest is preempted first)."""
    next_task_order: int = 0

    @property
    def key(self) -> str:
        return self.job_id.lower()

    def schedulable(self) -> bool:
        """Whether this job's queued tasks may be started now."""
        if self.state != "active" or self.ending:
            return False
        return self.max_parallel < 0 or len(self.running) < self.max_parallel

    def enqueue(self, task_key: str, slots: int = 1) -> None:
        """A task is active again in the store (retried, requeued): it no longer runs; the store queues it."""
        self.running.discard(task_key)

    def take(self, task_key: str) -> None:
        """A queued task starts running."""
        self.running.add(task_key)
        self.task_order[task_key] = self.next_task_order
        self.next_task_order += 1

    def forget(self, task_key: str) -> None:
        """The task is completed or deleted."""
        self.running.discard(task_key)
        self.waiting.pop(task_key, None)
        self.affinity.pop(task_key, None)
        self.task_slots.pop(task_key, None)
        self.task_order.pop(task_key, None)
