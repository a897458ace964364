"""Restart: rebuild the runtime from the store and re-adopt the node containers that are still running.

* nodes whose container runs keep their state and wait for their agent to re-register (they get an extra
  ``heartbeat_timeout`` of grace for it); their running tasks stay bound until the agent says otherwise;
* nodes without a running container, and nodes that were still ``creating``, are lost: their running tasks are
  requeued, their documents removed, and the pool reconciliation creates replacements;
* containers of this emulator instance that the store does not know are removed;
* jobs that were ``terminating`` or ``deleting`` when the emulator stopped finish that now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from batchbox.emulator.runtime.dependencies import dependency_action
from batchbox.emulator.runtime.model import Assignment, JobRuntime, NodeRuntime, PoolRuntime, task_assignment_id
from batchbox.emulator.runtime.nodes import NodeLifecycle, pool_settings
from batchbox.emulator.runtime.ports import container_status

__all__ = ["restore"]

log = logging.getLogger(__name__)

_DEAD_STATES = frozenset({"creating", "leavingpool", "unusable"})


async def restore(lifecycle: NodeLifecycle) -> None:
    """Load pools, nodes, jobs and unfinished tasks; re-adopt containers; start reconciling pools."""
    sched, store, trans = lifecycle.sched, lifecycle.store, lifecycle.trans
    try:
        containers: dict[str, Any] | None = dict(await asyncio.to_thread(lifecycle.driver.list_nodes))
    except Exception as exc:
        log.warning("listing node containers at start failed (nodes are kept until the monitor decides): %s", exc)
        containers = None
    dead: list[str] = []
    grace = time.monotonic() + lifecycle.config.heartbeat_timeout
    with sched.batch():
        for pool_doc in store.list_pools():
            pool = PoolRuntime(pool_id=str(pool_doc["id"]))
            pool_settings(pool, pool_doc)
            sched.pools[pool.key] = pool
            for node_doc in store.list_nodes(pool.pool_id):
                node = _adopt_node(lifecycle, pool, node_doc, containers, grace)
                if node is None:
                    dead.append(str(node_doc["id"]))
        adopted = set(sched.nodes)
        for node_doc in store.list_nodes(None):
            node_id = str(node_doc["id"])
            if node_id not in adopted and node_id not in dead:
                dead.append(node_id)
        jobs = sorted(store.list_jobs(), key=lambda d: (str(d.get("creationTime") or ""), str(d["id"]).lower()))
        finishing: list[tuple[JobRuntime, str]] = []
        for job_doc in jobs:
            state = str(job_doc.get("state") or "active")
            if state == "completed":
                continue
            job = sched.job_from_doc(job_doc)
            _load_tasks(lifecycle, job)
            if state in ("terminating", "deleting"):
                finishing.append((job, state))
        for node_id in adopted:
            sched.touch_node(sched.nodes[node_id])
        for node_id in dead:
            store.delete_node(node_id)
        for job, state in finishing:
            if state == "deleting":
                trans.delete_job(job)
            else:
                reason = (store.get_job(job.job_id) or {}).get("executionInfo", {}).get("terminateReason")
                trans.end_job(job, str(reason or "UserTerminate"))
        for job in list(sched.jobs.values()):
            trans.check_job_end(job)
    strays = [node_id for node_id in (containers or {}) if node_id not in sched.nodes]
    for node_id in strays:
        try:
            await asyncio.to_thread(lifecycle.driver.remove_node, node_id)
        except Exception as exc:
            log.warning("removing the stray container of node %s failed: %s", node_id, exc)
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


def _adopt_node(
    lifecycle: NodeLifecycle, pool: PoolRuntime, doc: dict[str, Any], containers: dict[str, Any] | None, grace: float
) -> NodeRuntime | None:
    store = lifecycle.store
    node_id = str(doc["id"])
    secret = store.get_node_secret(node_id)
    if containers is None:
        status = "running"
    else:
        status = container_status(containers[node_id]) if node_id in containers else "missing"
    if secret is None or status != "running" or doc.get("state") in _DEAD_STATES or pool.deleting:
        return None
    node = NodeRuntime(
        node_id=node_id,
        pool_id=pool.pool_id,
        secret=secret,
        doc=doc,
        capacity=pool.slots_per_node,
        dedicated=doc.get("isDedicated") is not False,
        container_id=store.get_node_container(node_id) or node_id,
    )
    node.last_contact = grace
    pool.nodes[node_id] = node
    lifecycle.sched.nodes[node_id] = node
    return node


def _load_tasks(lifecycle: NodeLifecycle, job: JobRuntime) -> None:
    sched = lifecycle.sched
    now = time.monotonic()
    if job.uses_dependencies:
        for doc in lifecycle.store.list_tasks(job.job_id, states=["completed"]):
            if dependency_action(doc) == "satisfy":
                job.satisfied.add(str(doc["id"]).lower())
    for doc in lifecycle.store.list_tasks(job.job_id, states=["active", "running"]):
        key = str(doc["id"]).lower()
        slots = doc.get("requiredSlots")
        slots = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1
        if doc.get("state") == "active":
            sched.activate(job, doc)
            continue
        node = sched.nodes.get(str((doc.get("nodeInfo") or {}).get("nodeId") or ""))
        if node is None:
            lifecycle.trans.requeue_doc(job, doc)
            continue
        job.note_task(key, slots)
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
