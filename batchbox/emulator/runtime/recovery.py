"""Restart: rebuild the runtime from the store and re-adopt the node containers that are still running.

* nodes whose container runs keep their state and wait for their agent to re-register (they get an extra
  ``heartbeat_timeout`` of grace for it); their running tasks stay bound until the agent says otherwise;
* nodes without a running container, and nodes that were still ``creating``, are lost: their running tasks are
  requeued, their documents removed, and the pool reconciliation creates replacements;
* containers of this emulator instance that the store does not know are removed, and so are the task containers
  (container tasks) of nodes that are gone;
* jobs that were ``terminating`` or ``deleting`` when the emulator stopped finish that now (their release tasks run
  again), tasks that were ``preparing`` are queued again, and so are running multi-instance tasks (their runs on
  the nodes are cancelled when the agents re-register, so none of their nodes stays held).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from batchbox.emulator.resources.multi_instance import instance_count
from batchbox.emulator.runtime.dependencies import dependency_action
from batchbox.emulator.runtime.documents import DEFAULT_TERMINATE_REASON
from batchbox.emulator.runtime.model import Assignment, JobRuntime, NodeRuntime, PoolRuntime, task_assignment_id
from batchbox.emulator.runtime.nodes import NodeLifecycle
from batchbox.emulator.runtime.pool_allocation import pool_settings
from batchbox.emulator.runtime.ports import NodeContainer

__all__ = ["restore"]

log = logging.getLogger(__name__)

_DEAD_STATES = frozenset({"creating", "leavingpool", "unusable"})


async def restore(lifecycle: NodeLifecycle) -> None:
    """Load pools, nodes, jobs and unfinished tasks; re-adopt containers; start reconciling pools."""
    sched, store = lifecycle.sched, lifecycle.store
    containers = await _list_containers(lifecycle)
    with sched.batch():
        adopted, dead = _restore_nodes(lifecycle, containers)
        finishing = _restore_jobs(lifecycle)
        for node_id in adopted:
            sched.touch_node(sched.nodes[node_id])
        for node_id in dead:
            store.delete_node(node_id)
        _finish_jobs(lifecycle, finishing)
    strays = await _remove_strays(lifecycle, containers)
    if dead or strays:
        log.info(
            "restart: %d node(s) re-adopted, %d lost, %d stray container(s) removed",
            len(adopted),
            len(dead),
            len(strays),
        )
    for pool in list(sched.pools.values()):
        lifecycle.pool_changed(pool.pool_id)
    with sched.batch():
        sched.dispatch_all()


async def _list_containers(lifecycle: NodeLifecycle) -> dict[str, NodeContainer] | None:
    """The driver's containers by node id; ``None`` when the engine cannot be asked (nodes are then kept)."""
    try:
        return dict(await asyncio.to_thread(lifecycle.driver.list_nodes))
    except Exception as exc:
        log.warning("listing node containers at start failed (nodes are kept until the monitor decides): %s", exc)
        return None


def _restore_nodes(lifecycle: NodeLifecycle, containers: dict[str, NodeContainer] | None) -> tuple[set[str], list[str]]:
    """Register the pools and re-adopt their nodes; returns the adopted node ids and the lost ones."""
    sched, store = lifecycle.sched, lifecycle.store
    dead: list[str] = []
    grace = time.monotonic() + lifecycle.config.heartbeat_timeout
    for pool_doc in store.list_pools():
        pool = PoolRuntime(pool_id=str(pool_doc["id"]))
        pool_settings(pool, pool_doc)
        sched.pools[pool.key] = pool
        for node_doc in store.list_nodes(pool.pool_id):
            if _adopt_node(lifecycle, pool, node_doc, containers, grace) is None:
                dead.append(str(node_doc["id"]))
    adopted = set(sched.nodes)
    for node_doc in store.list_nodes(None):
        node_id = str(node_doc["id"])
        if node_id not in adopted and node_id not in dead:
            dead.append(node_id)
    return adopted, dead


def _restore_jobs(lifecycle: NodeLifecycle) -> list[tuple[JobRuntime, str]]:
    """Register the unfinished jobs (in creation order) with their tasks; returns those that were ``terminating``
    or ``deleting`` when the emulator stopped, with that state."""
    jobs = sorted(lifecycle.store.list_jobs(), key=lambda d: (str(d.get("creationTime") or ""), str(d["id"]).lower()))
    finishing: list[tuple[JobRuntime, str]] = []
    for job_doc in jobs:
        state = str(job_doc.get("state") or "active")
        if state == "completed":
            continue
        job = lifecycle.sched.job_from_doc(job_doc)
        _load_tasks(lifecycle, job)
        if state in ("terminating", "deleting"):
            finishing.append((job, state))
    return finishing


def _finish_jobs(lifecycle: NodeLifecycle, finishing: list[tuple[JobRuntime, str]]) -> None:
    """Complete the deletes and terminations the last run started, then end jobs with nothing left to run."""
    trans = lifecycle.trans
    for job, state in finishing:
        if state == "deleting":
            trans.delete_job(job)
        else:
            reason = (lifecycle.store.get_job(job.job_id) or {}).get("executionInfo", {}).get("terminateReason")
            trans.end_job(job, str(reason or DEFAULT_TERMINATE_REASON))
    for job in list(lifecycle.sched.jobs.values()):
        trans.run_ended(job)  # a job left disabling with nothing running is now disabled
        trans.check_job_end(job)


async def _remove_strays(lifecycle: NodeLifecycle, containers: dict[str, NodeContainer] | None) -> list[str]:
    """Remove the containers of this instance that belong to no known node; returns their node ids."""
    strays = [node_id for node_id in (containers or {}) if node_id not in lifecycle.sched.nodes]
    for node_id in strays:
        try:
            await asyncio.to_thread(lifecycle.driver.remove_node, node_id)
        except Exception as exc:
            log.warning("removing the stray container of node %s failed: %s", node_id, exc)
    if containers is not None:
        try:
            await asyncio.to_thread(lifecycle.driver.task_containers.remove_orphans, set(lifecycle.sched.nodes))
        except Exception as exc:
            log.warning("removing the task containers of lost nodes failed: %s", exc)
    return strays


def _adopt_node(
    lifecycle: NodeLifecycle,
    pool: PoolRuntime,
    doc: dict[str, Any],
    containers: dict[str, NodeContainer] | None,
    grace: float,
) -> NodeRuntime | None:
    store = lifecycle.store
    node_id = str(doc["id"])
    secret = store.get_node_secret(node_id)
    status = "running" if containers is None else _status(containers, node_id)
    if secret is None or status != "running" or doc.get("state") in _DEAD_STATES or pool.deleting:
        return None
    container_id = store.get_node_container(node_id) or node_id
    node = lifecycle.sched.add_node(
        pool, doc, secret, dedicated=doc.get("isDedicated") is not False, container_id=container_id
    )
    node.last_contact = grace
    if lifecycle.mounts is not None:
        lifecycle.mounts.resume(pool.doc or {}, node_id)
    return node


def _status(containers: dict[str, NodeContainer], node_id: str) -> str:
    container = containers.get(node_id)
    return "missing" if container is None else container.status


def _load_tasks(lifecycle: NodeLifecycle, job: JobRuntime) -> None:
    """Rebuild a job's runtime view: its running tasks on their nodes (or requeued) and, with dependencies, which
    active tasks wait for which parents. Queued tasks need nothing: the store is their queue."""
    sched = lifecycle.sched
    now = time.monotonic()
    if job.uses_dependencies:
        for doc in lifecycle.store.list_tasks(job.job_id, states=["completed"]):
            if dependency_action(doc) == "satisfy":
                job.satisfied.add(str(doc["id"]).lower())
        for doc in lifecycle.store.list_tasks(job.job_id, states=["active"]):
            sched.activate(job, doc)
    for doc in lifecycle.store.list_tasks(job.job_id, states=["running", "preparing"]):
        key = str(doc["id"]).lower()
        slots = doc.get("requiredSlots")
        slots = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1
        if doc.get("state") == "preparing" or instance_count(doc) is not None:
            # its preparation task's run, or its subtasks, are not known any more: place it again
            lifecycle.trans.requeue_doc(job, doc)
            continue
        node = sched.nodes.get(str((doc.get("nodeInfo") or {}).get("nodeId") or ""))
        if node is None:
            lifecycle.trans.requeue_doc(job, doc)
            continue
        job.running.add(key)
        attempt = sched.next_attempt(job, key, doc)
        held = Assignment(
            assignment_id=task_assignment_id(job.job_id, str(doc["id"]), attempt),
            kind="task",
            job_id=job.job_id,
            task_id=str(doc["id"]),
            attempt=attempt,
            slots=slots,
            payload={},
            delivered_at=now,
        )
        node.running[held.assignment_id] = held
        sched.placements[(job.key, key)] = (node, held)
