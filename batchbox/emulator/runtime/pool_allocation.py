"""A pool's allocation bookkeeping: its runtime settings, the allocation state and counts written back to its
document, which nodes a shrink removes, and which new nodes the allocation gate grants."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.runtime.model import NodeRuntime, PoolRuntime
from batchbox.emulator.runtime.ports import AllocationGate
from batchbox.emulator.runtime.scheduler import Scheduler

__all__ = ["choose_victims", "gate_allocation", "pool_settings", "write_allocation"]


def pool_settings(pool: PoolRuntime, doc: dict[str, Any]) -> None:
    """Copy a pool document's scheduling settings onto its runtime."""
    pool.doc = doc
    slots = doc.get("taskSlotsPerNode")
    pool.slots_per_node = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1
    policy = doc.get("taskSchedulingPolicy") or {}
    pool.fill_type = "pack" if str(policy.get("nodeFillType") or "spread").lower() == "pack" else "spread"
    pool.job_order = "creationtime" if str(policy.get("jobDefaultOrder") or "").lower() == "creationtime" else "none"
    if doc.get("state") == "deleting":
        pool.deleting = True


def write_allocation(
    sched: Scheduler,
    pool: PoolRuntime,
    state: str,
    error: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> None:
    """Store the pool's ``allocationState``, its current node counts and its resize errors: ``errors`` as given, or
    one ``AllocationFailed`` with ``error``; a new resize clears the old ones. Nothing is written when nothing
    changed."""
    with sched.batch():
        doc = sched.store.get_pool(pool.pool_id)
        if doc is None:
            return
        live = pool.live_nodes()
        values: dict[str, Any] = {
            "allocationState": state,
            "currentDedicatedNodes": sum(1 for n in live if n.dedicated),
            "currentLowPriorityNodes": sum(1 for n in live if not n.dedicated),
        }
        if errors:
            values["resizeErrors"] = errors
        elif error is not None:
            values["resizeErrors"] = [{"code": "AllocationFailed", "message": error, "values": []}]
        elif state == "resizing" and not pool.allocation_failed:
            values["resizeErrors"] = None
        changed = {k: v for k, v in values.items() if doc.get(k) != v}
        if not changed:
            return
        if "allocationState" in changed:
            doc["allocationStateTransitionTime"] = now_iso()
        for name, value in changed.items():
            if value is None:
                doc.pop(name, None)
            else:
                doc[name] = value
        pool.doc = sched.store.update_pool(doc)


def choose_victims(nodes: list[NodeRuntime], count: int, removal_requests: set[str]) -> list[NodeRuntime]:
    """The ``count`` nodes a shrink removes: those a ``removenodes`` request named first, then idle ones, then the
    least busy; the chosen ones leave ``removal_requests``."""

    def busy(node: NodeRuntime) -> tuple[int, int, int]:
        runs = sum(1 for a in node.running.values() if not a.cancelled)
        return (0 if node.node_id in removal_requests else 1, 1 if runs else 0, node.used_slots)

    chosen = sorted(nodes, key=busy)[:count]
    removal_requests.difference_update(n.node_id for n in chosen)
    return chosen


def gate_allocation(
    gate: AllocationGate, pools: Iterable[PoolRuntime], doc: dict[str, Any], wanted: list[bool]
) -> tuple[list[bool], list[dict[str, Any]]]:
    """The nodes of ``wanted`` (one entry per node, True: dedicated) the allocation gate grants the pool ``doc``, given
    the nodes of every pool not being deleted (this one included), and the resize errors of those it refuses."""
    in_use = [
        (
            str((p.doc or {}).get("vmSize") or ""),
            sum(1 for n in p.live_nodes() if n.dedicated),
            sum(1 for n in p.live_nodes() if not n.dedicated),
        )
        for p in pools
        if not p.deleting
    ]
    granted, errors = gate(doc, wanted, in_use)
    return [dedicated for dedicated, ok in zip(wanted, granted, strict=True) if ok], errors
