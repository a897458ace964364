"""Autoscale in the runtime: sample every autoscale pool's system variables from real state, evaluate its formula at
its ``autoScaleEvaluationInterval``, store the ``autoScaleRun`` and apply the targets.

Every ``config.autoscale_sample_seconds`` one sample per variable goes into the pool's ``SampleHistory``:

* from the scheduler: ``$ActiveTasks`` (queued), ``$RunningTasks``, ``$PendingTasks`` (both), ``$SucceededTasks`` and
  ``$FailedTasks`` (task runs that ended on the pool's nodes since the previous sample), ``$CurrentDedicatedNodes``,
  ``$CurrentLowPriorityNodes``, ``$PreemptedNodeCount``;
* from the node containers' cgroup counters (the engine's statistics): ``$CPUPercent`` (CPU time used over the period
  per vCPU, averaged over nodes), ``$MemoryBytes``, ``$DiskReadBytes``, ``$DiskWriteBytes``, ``$DiskReadOps``,
  ``$DiskWriteOps`` (averages over nodes, per period) and ``$SampleNodeCount``;
* never sampled (formulas reading them get ``InsufficientSampleData``): ``$NetworkInBytes`` / ``$NetworkOutBytes``
  (nodes use the host's network, which has no per-container counters), ``$DiskBytes`` and ``$WallClockSeconds``.

Targets are clamped to the emulator's per-pool node cap (dedicated first). The formula's ``$NodeDeallocationOption``
is stored as the pool's removal option, so a scale-down honours it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from batchbox.emulator.autoscale import AutoScaleRun, EvaluationContext, SampleHistory, evaluate_text
from batchbox.emulator.clock import duration_seconds, now_iso
from batchbox.emulator.resources import DEFAULT_MAX_NODES
from batchbox.emulator.runtime.model import PoolRuntime
from batchbox.emulator.runtime.node_sizes import CAPPED_ERROR_CODE
from batchbox.emulator.runtime.nodes import NodeLifecycle
from batchbox.emulator.runtime.ports import NodeStats
from batchbox.emulator.vm_sizes import lookup_vm_size

__all__ = ["AutoScaler"]

log = logging.getLogger(__name__)


@dataclass
class _PoolScaling:
    """One autoscale pool's history and counters between samples."""

    history: SampleHistory
    next_evaluation: float = 0.0
    node_counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    node_stats: dict[str, tuple[float, NodeStats]] = field(default_factory=dict)


class AutoScaler:
    """Samples and evaluates the formulas of the pools with ``enableAutoScale`` (``runtime.autoscaler``)."""

    def __init__(self, lifecycle: NodeLifecycle, max_nodes: int = DEFAULT_MAX_NODES) -> None:
        self._lifecycle = lifecycle
        self._sched = lifecycle.sched
        self._store = lifecycle.store
        self._config = lifecycle.config
        self._max_nodes = max_nodes
        self._pools: dict[str, _PoolScaling] = {}
        self._loop: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Start the sampling loop (it stops with the lifecycle's background work)."""
        if self._loop is None or self._loop.done():
            self._loop = self._lifecycle.spawn(self._run(), "autoscale")

    # ----------------------------------------------------------------- requests
    def enabled(self, pool_id: str) -> None:
        """Autoscale was enabled or its formula / interval changed: evaluate at the next sample."""
        scaling = self._scaling(pool_id.lower())
        scaling.next_evaluation = 0.0

    def disabled(self, pool_id: str) -> None:
        """Autoscale was disabled: forget the pool's history."""
        self._pools.pop(pool_id.lower(), None)

    def evaluate(self, pool_doc: dict[str, Any], formula: str) -> AutoScaleRun:
        """Evaluate ``formula`` against the pool's history now, without applying it (``evaluateautoscale``)."""
        key = str(pool_doc["id"]).lower()
        scaling = self._scaling(key)
        if scaling.history.count("$PendingTasks") == 0:
            self._sample(key, scaling, datetime.now(timezone.utc), None)
        return self._run_formula(pool_doc, formula, scaling)

    # ----------------------------------------------------------------- the loop
    def _scaling(self, key: str) -> _PoolScaling:
        scaling = self._pools.get(key)
        if scaling is None:
            period = timedelta(seconds=self._config.autoscale_sample_seconds)
            scaling = _PoolScaling(SampleHistory(period=period))
            self._pools[key] = scaling
        return scaling

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._config.autoscale_sample_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("autoscale pass failed")

    async def tick(self) -> None:
        """One pass: sample every autoscale pool, evaluate those whose interval is due."""
        docs = [d for d in self._store.list_pools() if d.get("enableAutoScale") and d.get("state") == "active"]
        wanted = {str(d["id"]).lower() for d in docs}
        for key in list(self._pools):
            if key not in wanted:
                del self._pools[key]
        for doc in docs:
            key = str(doc["id"]).lower()
            scaling = self._scaling(key)
            stats = await self._node_stats(key)
            self._sample(key, scaling, datetime.now(timezone.utc), stats)
            if time.monotonic() >= scaling.next_evaluation:
                interval = duration_seconds(doc.get("autoScaleEvaluationInterval")) or 900.0
                scaling.next_evaluation = time.monotonic() + interval
                self._apply(doc, scaling)

    async def _node_stats(self, key: str) -> dict[str, NodeStats]:
        pool = self._sched.pools.get(key)
        if pool is None:
            return {}
        found: dict[str, NodeStats] = {}
        for node in pool.live_nodes():
            if node.container_id is None:
                continue
            try:
                stats = await asyncio.to_thread(self._lifecycle.driver.node_stats, node.node_id)
            except Exception as exc:
                log.debug("no statistics for node %s: %s", node.node_id, exc)
                continue
            if stats is not None:
                found[node.node_id] = stats
        return found

    # ----------------------------------------------------------------- samples
    def _sample(self, key: str, scaling: _PoolScaling, at: datetime, stats: dict[str, NodeStats] | None) -> None:
        pool = self._sched.pools.get(key)
        values = self._task_values(key)
        values.update(self._node_values(pool, scaling))
        if stats is not None and pool is not None:
            values.update(self._resource_values(pool, scaling, stats))
        try:
            scaling.history.record(at, values)
        except ValueError as exc:
            log.debug("autoscale sample of pool %s skipped: %s", key, exc)

    def _task_values(self, key: str) -> dict[str, float]:
        active = running = 0
        for job in self._sched.jobs_by_pool.get(key, {}).values():
            if job.state != "active":
                continue
            counts = self._sched.store.task_counts(job.job_id)  # kept by the store: O(1) per job
            active += int(counts["active"])
            running += int(counts["running"])
        return {"$ActiveTasks": active, "$RunningTasks": running, "$PendingTasks": active + running}

    @staticmethod
    def _node_values(pool: PoolRuntime | None, scaling: _PoolScaling) -> dict[str, float]:
        if pool is None:
            return {
                "$CurrentDedicatedNodes": 0,
                "$CurrentLowPriorityNodes": 0,
                "$PreemptedNodeCount": 0,
                "$SucceededTasks": 0,
                "$FailedTasks": 0,
            }
        live = pool.live_nodes()
        succeeded = failed = 0
        counters: dict[str, tuple[int, int]] = {}
        for node in pool.nodes.values():
            ran = int(node.doc.get("totalTasksRun") or 0)
            ok = int(node.doc.get("totalTasksSucceeded") or 0)
            before_ran, before_ok = scaling.node_counters.get(node.node_id, (0, 0))
            succeeded += max(0, ok - before_ok)
            failed += max(0, (ran - ok) - (before_ran - before_ok))
            counters[node.node_id] = (ran, ok)
        scaling.node_counters = counters
        return {
            "$CurrentDedicatedNodes": sum(1 for n in live if n.dedicated),
            "$CurrentLowPriorityNodes": sum(1 for n in live if not n.dedicated),
            "$PreemptedNodeCount": sum(1 for n in pool.nodes.values() if n.state == "preempted"),
            "$SucceededTasks": succeeded,
            "$FailedTasks": failed,
        }

    @staticmethod
    def _resource_values(pool: PoolRuntime, scaling: _PoolScaling, stats: dict[str, NodeStats]) -> dict[str, float]:
        now = time.monotonic()
        cpu: list[float] = []
        deltas: dict[str, list[float]] = {
            "$DiskReadBytes": [],
            "$DiskWriteBytes": [],
            "$DiskReadOps": [],
            "$DiskWriteOps": [],
        }
        for node_id, current in stats.items():
            before = scaling.node_stats.get(node_id)
            if before is not None and now > before[0]:
                node = pool.nodes.get(node_id)
                cpus = _node_cpus(node.doc if node is not None else {})
                cpu.append(min(100.0, 100.0 * (current.cpu_seconds - before[1].cpu_seconds) / (now - before[0]) / cpus))
                for name, attr in (
                    ("$DiskReadBytes", "disk_read_bytes"),
                    ("$DiskWriteBytes", "disk_write_bytes"),
                    ("$DiskReadOps", "disk_read_ops"),
                    ("$DiskWriteOps", "disk_write_ops"),
                ):
                    new, old = getattr(current, attr), getattr(before[1], attr)
                    if new is not None and old is not None:
                        deltas[name].append(max(0.0, new - old))
        scaling.node_stats = {node_id: (now, current) for node_id, current in stats.items()}
        values: dict[str, float] = {"$SampleNodeCount": len(stats)}
        if stats:
            values["$MemoryBytes"] = sum(s.memory_bytes for s in stats.values()) / len(stats)
        if cpu:
            values["$CPUPercent"] = max(0.0, sum(cpu) / len(cpu))
        for name, items in deltas.items():
            if items:
                values[name] = sum(items) / len(items)
        return values

    # ----------------------------------------------------------------- evaluation
    def _run_formula(self, doc: dict[str, Any], formula: str, scaling: _PoolScaling) -> AutoScaleRun:
        slots = doc.get("taskSlotsPerNode")
        context = EvaluationContext(
            now=datetime.now(timezone.utc),
            history=scaling.history,
            target_dedicated_nodes=float(doc.get("targetDedicatedNodes") or 0),
            target_low_priority_nodes=float(doc.get("targetLowPriorityNodes") or 0),
            current={"$TaskSlotsPerNode": float(slots if isinstance(slots, int) else 1)},
        )
        return evaluate_text(formula, context)

    def _apply(self, doc: dict[str, Any], scaling: _PoolScaling) -> None:
        run = self._run_formula(doc, str(doc.get("autoScaleFormula") or ""), scaling)
        current = self._store.get_pool(str(doc["id"]))
        if current is None or not current.get("enableAutoScale"):
            return
        current["autoScaleRun"] = run.to_rest()
        changed = False
        if run.succeeded and run.target_dedicated_nodes is not None and run.target_low_priority_nodes is not None:
            dedicated = min(run.target_dedicated_nodes, self._max_nodes)
            low_priority = min(run.target_low_priority_nodes, self._max_nodes - dedicated)
            changed = (dedicated, low_priority) != (
                current.get("targetDedicatedNodes"),
                current.get("targetLowPriorityNodes"),
            )
            current["targetDedicatedNodes"] = dedicated
            current["targetLowPriorityNodes"] = low_priority
            current["nodeDeallocationOption"] = run.node_deallocation_option or "requeue"
            if changed:
                current["allocationState"] = "resizing"
                current["allocationStateTransitionTime"] = now_iso()
                current.pop("resizeErrors", None)
        else:
            log.info("autoscale formula of pool %s failed: %s", doc["id"], run.error)
        with self._sched.batch():
            stored = self._store.update_pool(current)
        if changed:
            self._lifecycle.pool_changed(str(stored["id"]), resized=True)


def _node_cpus(doc: dict[str, Any]) -> float:
    """The vCPUs a node's container may use: its size's, or what the machine capped it to (1 when unknown)."""
    for error in doc.get("errors") or []:
        if isinstance(error, dict) and error.get("code") == CAPPED_ERROR_CODE:
            for detail in error.get("errorDetails") or []:
                if isinstance(detail, dict) and detail.get("name") == "vCPUs":
                    return max(1.0, float(detail.get("value") or 1))
    size = lookup_vm_size(str(doc.get("vmSize") or ""))
    return float(size.vcpus) if size is not None else 1.0
