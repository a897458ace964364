"""The data of a job's timeline: every run of its tasks (retries and requeues are runs of their own), by node.

``GET /portal/api/jobs/{id}/timeline?after=N`` answers the runs that ended after run N of the run history (all of
them for ``after=0``) and, every time, the runs going now; the page keeps what it has and asks only for what is new.
Runs travel as columns (one array per field, nodes as indexes into ``nodeIds``): 10,000 runs are a few hundred KB
of JSON that the browser parses in milliseconds. The page lays runs out on node slots and draws them on a canvas.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.portal.common import Doc, get_job, get_store, json_answer, query_int
from batchbox.emulator.run_history import RUN_OUTCOMES, TaskRun, run_from_doc

__all__ = ["OUTCOME_CODES", "routes", "runs_columns"]

OUTCOME_CODES = (*RUN_OUTCOMES, "running")
"""A run's ``outcome`` column holds its index in this tuple."""
_CODE = {name: index for index, name in enumerate(OUTCOME_CODES)}


def runs_columns(runs: Iterable[TaskRun], node_index: dict[str, int]) -> Doc:
    """Runs as columns: ``task``, ``node`` (index into the node ids, -1 unknown), ``start``, ``end`` (seconds since
    the epoch, ms precision; ``end`` null while running), ``outcome`` (index into :data:`OUTCOME_CODES`), ``exit``."""
    columns: dict[str, list[Any]] = {"task": [], "node": [], "start": [], "end": [], "outcome": [], "exit": []}
    for run in runs:
        node = -1
        if run.node_id is not None:
            node = node_index.setdefault(run.node_id, len(node_index))
        start = run.start if run.start is not None else run.end
        columns["task"].append(run.task_id)
        columns["node"].append(node)
        columns["start"].append(round(start, 3) if start is not None else None)
        columns["end"].append(round(run.end, 3) if run.end is not None else None)
        columns["outcome"].append(_CODE.get(run.outcome, _CODE["failed"]))
        columns["exit"].append(run.exit_code)
    return columns


def _slots_per_node(pool: Mapping[str, Any] | None) -> int:
    slots = (pool or {}).get("taskSlotsPerNode", 1)
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1


async def get_timeline(request: Request) -> Response:
    job = get_job(request, request.path_params["job_id"])
    store = get_store(request)
    after = query_int(request, "after", 0, low=0, high=2**62)
    ended = store.runs.list(job["id"], after_id=after)
    running = [run_from_doc(doc, "running", end=None) for doc in store.list_tasks(job["id"], states=["running"])]
    pool_id = (job.get("poolInfo") or {}).get("poolId")
    pool = store.get_pool(pool_id) if isinstance(pool_id, str) else None
    nodes = store.list_nodes(pool_id) if pool is not None else []
    node_index: dict[str, int] = {}
    for node in nodes:
        node_index.setdefault(str(node["id"]), len(node_index))
    answer = {
        "now": round(time.time(), 3),
        "last": ended[-1].run_id if ended else after,
        "slotsPerNode": _slots_per_node(pool),
        "nodes": [{"id": node["id"], "state": node.get("state")} for node in nodes],
        "outcomes": list(OUTCOME_CODES),
        "ended": runs_columns(ended, node_index),
        "running": runs_columns(running, node_index),
    }
    answer["nodeIds"] = list(node_index)
    return json_answer(answer)


routes = [Route("/api/jobs/{job_id}/timeline", get_timeline, methods=["GET"])]
"""Paths relative to ``/portal``."""
