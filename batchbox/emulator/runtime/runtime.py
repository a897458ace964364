"""The runtime: the one object handlers talk to for everything that moves, and the lifecycle of that machinery.

Its interface is its four attributes, one per concern (``runtime/operations/``)::

    runtime.pools      PoolOperations      add, update, resize, stop_resize, delete, remove_nodes, autoscale
    runtime.nodes      NodeOperations      reboot, reimage, deallocate, start, scheduling, users, logs, preempt
    runtime.jobs       JobOperations       add, update, disable, enable, terminate, delete
    runtime.schedules  ScheduleOperations  add, update, disable, enable, terminate, delete
    runtime.tasks      TaskOperations      add, terminate, delete, reactivate, subtasks
    runtime.agents     AgentOperations     authenticate, register, poll, events, task containers (the node-agent API)

Behind them: the :class:`Scheduler` (queues, node slots, long polls), :class:`Transitions` (task and job state
changes), :class:`JobControl` (disable / enable, job actions of finished tasks), :class:`JobTasks` (job preparation
and release tasks), :class:`MultiInstance` (multi-instance tasks and their subtasks), :class:`Preemption`,
:class:`ScheduleRunner` (jobs from job schedules, on time), :class:`AutoPools` (the pools of jobs with an auto pool
specification), :class:`Retention` (task directories removed after their ``retentionTime``), :class:`NodeLifecycle`
(containers, heartbeats, node loss) and :class:`AgentSessions` (the agent protocol). All of it runs on the event
loop; Docker calls go to worker threads.
"""

from __future__ import annotations

import logging

from batchbox.emulator.applications import PackageCatalog
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.runtime.auto_pools import AutoPools
from batchbox.emulator.runtime.autoscale import AutoScaler
from batchbox.emulator.runtime.job_control import JobControl
from batchbox.emulator.runtime.job_tasks import JobTasks
from batchbox.emulator.runtime.mount_sync import MountSync
from batchbox.emulator.runtime.multi_instance import MultiInstance
from batchbox.emulator.runtime.node_actions import NodeActions
from batchbox.emulator.runtime.node_users import NodeUsers
from batchbox.emulator.runtime.nodes import NodeLifecycle
from batchbox.emulator.runtime.operations import (
    AgentOperations,
    JobOperations,
    NodeOperations,
    PoolOperations,
    ScheduleOperations,
    TaskOperations,
)
from batchbox.emulator.runtime.ports import AllocationGate, NodeDriverLike, PoolQuota, StoreLike
from batchbox.emulator.runtime.preemption import Preemption
from batchbox.emulator.runtime.recovery import restore
from batchbox.emulator.runtime.retention import Retention
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.schedules import ScheduleRunner
from batchbox.emulator.runtime.sessions import AgentSessions
from batchbox.emulator.runtime.task_containers import TaskContainerRuns
from batchbox.emulator.runtime.transitions import Transitions
from batchbox.emulator.storage_link import LinkedStorage

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


class Runtime:
    """Schedules tasks onto node containers and keeps the stored states moving.

    Args:
        config: the emulator settings.
        store: the state store (``batchbox.emulator.store.Store``).
        driver: the node container driver (``batchbox.emulator.nodes.docker_driver.NodeDriver``).
        allocation_gate: decides which nodes a resize gets (the fault layer's quotas); None grants them all.
        pool_quota: the account's pool quota now (the fault layer's), which auto pools respect; None: no quota.

    Attributes:
        pools: pool transitions.
        nodes: node operations (and the preemption trigger).
        jobs: job transitions.
        schedules: job schedule transitions.
        tasks: task transitions.
        agents: the node-agent API.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        store: StoreLike,
        driver: NodeDriverLike,
        *,
        allocation_gate: AllocationGate | None = None,
        pool_quota: PoolQuota | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.scheduler = Scheduler(config, store)
        self.transitions = Transitions(self.scheduler)
        self.storage = (
            LinkedStorage(config.storage_connection_string, ca_bundle=str(config.ca_file) if config.ca_file else None)
            if config.storage_connection_string
            else None
        )
        self.applications = PackageCatalog(self.storage) if self.storage is not None else None
        self.mounts = MountSync(config, store, self.storage)
        self.control = JobControl(self.transitions)
        self.retention = Retention(self.transitions)
        self.job_tasks = JobTasks(self.transitions, self.retention)
        self.multi_instance = MultiInstance(self.transitions)
        self.preemption = Preemption(self.transitions)
        self.lifecycle = NodeLifecycle(
            config, driver, self.scheduler, self.transitions, allocation_gate, mounts=self.mounts
        )
        self.sessions = AgentSessions(config, self.scheduler, self.transitions)
        self.containers = TaskContainerRuns(config, store, driver.task_containers)
        self.transitions.container_info = self.containers.take_container_info
        self.containers.container_started = self.transitions.container_started
        self.autoscaler = AutoScaler(self.lifecycle)
        self.actions = NodeActions(self.lifecycle)
        self.actions.restarted = self.job_tasks.node_rebooted
        self.pools = PoolOperations(self.lifecycle, self.autoscaler)
        self.nodes = NodeOperations(self.actions, NodeUsers(driver))
        self.jobs = JobOperations(self.transitions, self.control)
        self.runner = ScheduleRunner(config, self.transitions, self.jobs)
        self.schedules = ScheduleOperations(self.runner)
        self.auto_pools = AutoPools(
            config, self.transitions, self.pools, self.jobs, self.runner, self.applications, pool_quota
        )
        self.tasks = TaskOperations(self.transitions)
        self.agents = AgentOperations(self.sessions, self.containers, self.applications)
        self._running = False

    async def start(self) -> None:
        """Re-adopt containers, reload queues from the store and start the node monitor."""
        if self._running:
            return
        self._running = True
        if not self.config.vm_size_limits:
            log.warning("--vm-size-limits off: node containers get no CPU or memory limits; any vmSize is accepted")
        self.job_tasks.load()
        await restore(self.lifecycle)
        self.auto_pools.resume()
        self.lifecycle.start_monitor()
        self.autoscaler.start()
        self.actions.start_chaos(self.config.preempt_rate)
        self.runner.start()
        self.retention.start()

    async def stop(self) -> None:
        """Stop the background work; node containers keep running and are re-adopted at the next start."""
        self.release_polls()
        if not self._running:
            return
        self._running = False
        await self.runner.stop()
        await self.auto_pools.stop()
        await self.retention.stop()
        await self.lifecycle.stop()
        await self.mounts.stop()
        if self.storage is not None:
            self.storage.close()

    def release_polls(self) -> None:
        """Answer every held long poll now (empty) and every later one at once: the server is shutting down.

        Call it when a stop signal arrives, before the server waits for open requests to finish; agents simply
        poll again (and re-register with the next emulator process).
        """
        self.agents.release_polls()
