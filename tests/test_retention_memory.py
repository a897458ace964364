"""The retention keeper holds in memory only the task directories due within its horizon.

A real store, scheduler, transitions and keeper (no containers): completed tasks whose directories are due beyond the
horizon cost no memory, are taken up from the store when the horizon reaches them, and their node is told to remove
them when they are due; a completed task deleted before its time keeps its entry, since the store no longer has it.
A multi-instance task's directory goes from each of its subtasks' nodes too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.node_layout import task_dir
from batchbox.emulator.runtime.model import JobRuntime, NodeRuntime
from batchbox.emulator.runtime.retention import HORIZON, Retention
from batchbox.emulator.runtime.scheduler import Scheduler
from batchbox.emulator.runtime.transitions import Transitions
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import Store
from tests.fixtures.emulator import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME

JOB = "job-r"
NODE = "tvmps_retention_0"
ENDED = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _completed(task_id: str, retention: str | None) -> dict[str, Any]:
    constraints = {} if retention is None else {"retentionTime": retention}
    return {
        "id": task_id,
        "commandLine": "/bin/true",
        "state": "completed",
        "constraints": constraints,
        "executionInfo": {"endTime": ENDED.isoformat().replace("+00:00", "Z"), "result": "success", "exitCode": 0},
        "nodeInfo": {"nodeId": NODE, "taskRootDirectory": task_dir(JOB, task_id)},
    }


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[tuple[Retention, Store, NodeRuntime]]:
    store = Store(tmp_path / "state.db", Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME))
    sched = Scheduler(EmulatorConfig(state_dir=tmp_path), store)
    node = NodeRuntime(node_id=NODE, pool_id="pool-r", secret="s" * 32, doc={"state": "idle"}, capacity=1)
    sched.nodes[NODE] = node
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the keeper's wake-up event belongs to a loop
    try:
        yield Retention(Transitions(sched)), store, node
    finally:
        store.close()
        asyncio.set_event_loop(None)
        loop.close()


def test_directories_due_beyond_the_horizon_are_read_again_from_the_store_when_it_reaches_them(
    keeper: tuple[Retention, Store, NodeRuntime],
) -> None:
    retention, store, node = keeper
    store.insert_job({"id": JOB, "poolInfo": {"poolId": "pool-r"}, "state": "active"})
    store.insert_tasks(JOB, [_completed(f"t{i:05d}", None) for i in range(2000)] + [_completed("soon", "PT1H")])
    start = ENDED.timestamp()
    retention.load(start)
    assert retention.held() == 1, "only the directory due within the horizon is held"

    retention.remove_due(start + 3600)
    assert node.removals == [task_dir(JOB, "soon")]
    node.removals.clear()

    week = start + timedelta(days=7).total_seconds()
    now = start
    while retention.held() == 0 and now < week:  # the keeper's loop moves the horizon as time passes
        now += HORIZON / 4
        retention.advance(now)
    assert retention.held() == 2000, "the store was read again once the week's end came within the horizon"
    assert week - HORIZON <= now <= week - HORIZON / 4
    retention.remove_due(week - 1)
    assert node.removals == []
    retention.remove_due(week)
    assert sorted(node.removals) == sorted(task_dir(JOB, f"t{i:05d}") for i in range(2000))
    assert retention.held() == 0


def test_a_completed_task_seen_after_start_is_held_only_within_the_horizon_and_a_deleted_one_keeps_its_entry(
    keeper: tuple[Retention, Store, NodeRuntime],
) -> None:
    retention, store, node = keeper
    store.insert_job({"id": JOB, "poolInfo": {"poolId": "pool-r"}, "state": "active"})
    start = ENDED.timestamp()
    retention.load(start)
    kept, deleted = _completed("kept", "P2D"), _completed("deleted", "P2D")
    store.insert_tasks(JOB, [kept, deleted])
    retention.task_completed(JOB, kept)
    retention.task_completed(JOB, deleted)
    assert retention.held() == 0

    store.delete_task(JOB, "deleted")
    retention.trans.task_deleted(JobRuntime(job_id=JOB, order=0), deleted)
    assert retention.held() == 1, "a deleted task's directory is held: the store cannot give it back"

    two_days = start + timedelta(days=2).total_seconds()
    now = start
    while now < two_days:
        now += HORIZON / 4
        retention.advance(now)
    retention.remove_due(two_days)
    assert sorted(node.removals) == sorted([task_dir(JOB, "kept"), task_dir(JOB, "deleted")])


def test_a_multi_instance_task_directory_goes_from_every_subtask_node_too(
    keeper: tuple[Retention, Store, NodeRuntime],
) -> None:
    retention, store, node = keeper
    others = [NodeRuntime(node_id=f"{NODE}_{n}", pool_id="pool-r", secret="s" * 32, doc={}, capacity=1) for n in (1, 2)]
    retention.sched.nodes.update({other.node_id: other for other in others})
    store.insert_job({"id": JOB, "poolInfo": {"poolId": "pool-r"}, "state": "active"})
    settings = {"numberOfInstances": 3, "coordinationCommandLine": "/bin/true"}
    soon, deleted = _completed("soon", "PT1H"), _completed("deleted", "P2D")
    store.insert_tasks(JOB, [{**doc, "multiInstanceSettings": settings} for doc in (soon, deleted)])
    for task_id in ("soon", "deleted"):
        subtasks = [
            {
                "id": n,
                "state": "completed",
                "nodeInfo": {"nodeId": other.node_id, "taskRootDirectory": task_dir(JOB, task_id)},
            }
            for n, other in enumerate(others, start=1)
        ]
        store.put_subtasks(JOB, task_id, subtasks)
    start = ENDED.timestamp()
    retention.load(start)
    assert retention.held() == 3, "the master's directory and each subtask's copy"
    retention.remove_due(start + 3600)
    assert [n.removals for n in (node, *others)] == [[task_dir(JOB, "soon")]] * 3

    gone = store.get_task(JOB, "deleted")
    assert gone is not None
    store.delete_task(JOB, "deleted")
    retention.trans.task_deleted(JobRuntime(job_id=JOB, order=0), gone)  # before its subtasks leave the store
    store.delete_subtasks(JOB, "deleted")
    assert retention.held() == 3
    two_days = start + timedelta(days=2).total_seconds()
    retention.remove_due(two_days)
    assert [n.removals for n in (node, *others)] == [[task_dir(JOB, "soon"), task_dir(JOB, "deleted")]] * 3
