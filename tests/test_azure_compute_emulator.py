"""AzureBatchCompute (the azure-batch 15.x SDK) against a real batchbox emulator process.

Most tests use pools of 0 nodes (no container starts); one test runs real tasks on a real one-node pool.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.core.errors import (
    AuthenticationError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from batchbox.core.models import JobSpec, PoolSpec, StartTask, TaskConstraints, TaskSpec
from batchbox.core.states import ComputeNodeState, ElevationLevel, JobState, TaskExecutionResult, TaskState
from tests.fixtures.emulator import EmulatorProcess

T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], *, timeout: float = 120.0, what: str = "") -> T:
    """Poll ``probe`` until ``accept`` holds; fail the test (with the last value) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what or 'condition'} not reached in {timeout:.0f} s; last value: {value!r}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def compute(emulator: EmulatorProcess) -> Iterator[AzureBatchCompute]:
    backend = AzureBatchCompute.from_shared_key(
        emulator.url,
        emulator.account_name,
        emulator.account_key,
        retry_total=2,
        retry_backoff_factor=0.1,
        lro_polling_interval=1,
    )
    yield backend
    backend.close()


def test_pool_lifecycle_without_nodes(compute: AzureBatchCompute) -> None:
    pool_id = unique("pool")
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0, task_slots_per_node=2, metadata=(("k", "v"),)))
    with pytest.raises(ResourceExistsError) as exists:
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
    assert (exists.value.kind, exists.value.name) == ("pool", pool_id)

    info = compute.get_pool(pool_id)
    assert (info.id, info.state, info.target_dedicated_nodes, info.current_dedicated_nodes) == (pool_id, "active", 0, 0)
    assert info.task_slots_per_node == 2 and info.vm_size.lower() == "standard_d2s_v3"
    assert compute.pool_exists(pool_id)
    assert pool_id in [pool.id for pool in compute.list_pools()]
    assert compute.list_nodes(pool_id) == []

    compute.resize_pool(pool_id, 0)
    eventually(lambda: compute.get_pool(pool_id).allocation_state, lambda state: state == "steady", what="steady")

    compute.delete_pool(pool_id)
    assert not compute.pool_exists(pool_id)
    compute.wait_for_pool_deleted(pool_id, timeout=60, poll_interval=0.2)
    assert pool_id not in [pool.id for pool in compute.list_pools()]
    compute.delete_pool(pool_id)  # gone already: nothing happens
    with pytest.raises(ResourceNotFoundError) as missing:
        compute.get_pool(pool_id)
    assert (missing.value.kind, missing.value.name) == ("pool", pool_id)
    with pytest.raises(ResourceNotFoundError):
        compute.list_nodes(pool_id)
    with pytest.raises(ResourceNotFoundError):
        compute.resize_pool(pool_id, 1)


def test_job_and_many_tasks_on_an_empty_pool(compute: AzureBatchCompute) -> None:
    pool_id, job_id = unique("pool"), unique("job")
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
    compute.create_job(JobSpec(id=job_id, pool_id=pool_id, priority=10))
    with pytest.raises(ResourceExistsError) as exists:
        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
    assert (exists.value.kind, exists.value.name) == ("job", job_id)
    assert compute.job_exists(job_id) and compute.job_state(job_id) == JobState.ACTIVE.value
    assert (job_id, "active") in compute.list_jobs()

    tasks = [
        TaskSpec(
            id=f"t{i:03d}",
            command_line=f"/bin/sh -c 'echo {i}'",
            constraints=TaskConstraints(max_wall_clock_time=None, max_task_retry_count=1),
        )
        for i in range(250)
    ]
    first = compute.add_tasks(job_id, tasks[:120], max_concurrency=3)
    assert first.added == tuple(t.id for t in tasks[:120]) and first.already_existed == ()
    rerun = compute.add_tasks(job_id, tasks, max_concurrency=3)  # a rerun after a crash half-way
    assert rerun.already_existed == tuple(t.id for t in tasks[:120])
    assert rerun.added == tuple(t.id for t in tasks[120:])

    counts = compute.task_counts(job_id)
    assert (counts.active, counts.running, counts.completed, counts.total) == (250, 0, 0, 250)
    active = compute.list_tasks(job_id, state=TaskState.ACTIVE)
    assert sorted(t.id for t in active) == [t.id for t in tasks]
    assert compute.list_tasks(job_id, failed_only=True) == []
    assert compute.list_tasks(job_id, state=TaskState.COMPLETED) == []
    task = compute.get_task(job_id, "t007")
    assert (task.id, task.state, task.exit_code, task.node_id) == ("t007", TaskState.ACTIVE, None, None)

    compute.terminate_task(job_id, "t007")
    stopped = eventually(
        lambda: compute.get_task(job_id, "t007"),
        lambda t: t.state is TaskState.COMPLETED,
        what="terminated task completed",
    )
    assert stopped.state is TaskState.COMPLETED
    compute.terminate_task(job_id, "t007")  # completed already: nothing happens

    compute.terminate_job(job_id)
    eventually(lambda: compute.job_state(job_id), lambda state: state == JobState.COMPLETED.value, what="job completed")
    compute.terminate_job(job_id)  # completed already: nothing happens

    compute.delete_job(job_id)
    assert not compute.job_exists(job_id)
    compute.wait_for_job_deleted(job_id, timeout=60, poll_interval=0.2)
    compute.delete_job(job_id)  # gone already: nothing happens
    with pytest.raises(ResourceNotFoundError) as missing:
        compute.job_state(job_id)
    assert (missing.value.kind, missing.value.name) == ("job", job_id)
    compute.delete_pool(pool_id)


def test_errors_name_the_resource(compute: AzureBatchCompute, emulator: EmulatorProcess) -> None:
    pool_id, job_id = unique("pool"), unique("job")
    with pytest.raises(ResourceNotFoundError) as no_job:
        compute.get_task(job_id, "t1")
    assert (no_job.value.kind, no_job.value.name) == ("job", job_id)
    with pytest.raises(ResourceNotFoundError) as no_job_for_tasks:
        compute.add_tasks(job_id, [TaskSpec(id="t1", command_line="true")])
    assert (no_job_for_tasks.value.kind, no_job_for_tasks.value.name) == ("job", job_id)
    with pytest.raises(ResourceNotFoundError):
        compute.task_counts(job_id)
    with pytest.raises(ResourceNotFoundError):
        compute.list_tasks(job_id)
    with pytest.raises(ResourceNotFoundError):
        compute.terminate_job(job_id)
    assert not compute.job_exists(job_id)

    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
    compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
    try:
        with pytest.raises(ResourceNotFoundError) as no_task:
            compute.get_task(job_id, "nosuchtask")
        assert (no_task.value.kind, no_task.value.name) == ("task", "nosuchtask")
        with pytest.raises(ResourceNotFoundError) as no_task_file:
            compute.read_task_file(job_id, "nosuchtask", "stdout.txt")
        assert no_task_file.value.kind == "task"

        with pytest.raises(InvalidRequestError) as invalid:
            compute.create_pool(PoolSpec(id=unique("pool"), dedicated_nodes=0, task_slots_per_node=1000))
        assert "InvalidPropertyValue" in str(invalid.value) and "taskSlotsPerNode" in str(invalid.value)

        wrong = AzureBatchCompute.from_shared_key(
            emulator.url, emulator.account_name, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=", retry_total=0
        )
        with wrong, pytest.raises(AuthenticationError) as refused:
            wrong.get_pool(pool_id)
        assert (refused.value.kind, refused.value.name) == ("pool", pool_id)
        assert emulator.account_key not in str(refused.value)
    finally:
        compute.delete_job(job_id)
        compute.delete_pool(pool_id)


def test_tasks_run_on_a_real_node(compute: AzureBatchCompute) -> None:
    pool_id, job_id = unique("pool"), unique("job")
    start = StartTask(
        command_line="/bin/sh -c 'echo ready > $AZ_BATCH_NODE_SHARED_DIR/marker'", elevation=ElevationLevel.ADMIN
    )
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=1, task_slots_per_node=3, start_task=start))
    try:
        nodes = compute.wait_for_nodes(pool_id, timeout=180, poll_interval=0.5)
        assert len(nodes) == 1 and nodes[0].state in (ComputeNodeState.IDLE, ComputeNodeState.RUNNING)
        assert compute.get_pool(pool_id).current_dedicated_nodes == 1

        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        result = compute.add_tasks(
            job_id,
            [
                TaskSpec(
                    id="ok", command_line="/bin/sh -c 'cat $AZ_BATCH_NODE_SHARED_DIR/marker; echo out > result.txt'"
                ),
                TaskSpec(id="bad", command_line="/bin/sh -c 'echo oops >&2; exit 3'"),
                TaskSpec(id="long", command_line="sleep 600"),
            ],
        )
        assert result.added == ("ok", "bad", "long")
        eventually(
            lambda: compute.get_task(job_id, "long").state, lambda s: s is TaskState.RUNNING, what="long task running"
        )
        assert compute.list_nodes(pool_id)[0].running_tasks >= 1
        eventually(lambda: compute.task_counts(job_id), lambda c: c.completed == 2, what="two tasks completed")

        ok = compute.get_task(job_id, "ok")
        assert (ok.exit_code, ok.result, ok.node_id) == (0, TaskExecutionResult.SUCCESS, nodes[0].id)
        assert compute.read_task_file(job_id, "ok", "stdout.txt") == b"ready\n"
        assert compute.read_task_file(job_id, "ok", "wd/result.txt") == b"out\n"
        with pytest.raises(ResourceNotFoundError) as no_file:
            compute.read_task_file(job_id, "ok", "wd/nothing.txt")
        assert (no_file.value.kind, no_file.value.name) == ("file", "wd/nothing.txt")

        failed = compute.list_tasks(job_id, failed_only=True)
        assert [(t.id, t.exit_code, t.failed) for t in failed] == [("bad", 3, True)]
        assert compute.read_task_file(job_id, "bad", "stderr.txt") == b"oops\n"
        assert sorted(t.id for t in compute.list_tasks(job_id, state=TaskState.COMPLETED)) == ["bad", "ok"]

        compute.terminate_task(job_id, "long")
        stopped = eventually(
            lambda: compute.get_task(job_id, "long"),
            lambda t: t.state is TaskState.COMPLETED,
            what="long task terminated",
        )
        assert stopped.failed
        counts = compute.task_counts(job_id)
        assert (counts.completed, counts.succeeded, counts.failed) == (3, 1, 2)
    finally:
        compute.delete_job(job_id)
        compute.delete_pool(pool_id)
    compute.wait_for_pool_deleted(pool_id, timeout=120, poll_interval=0.5)
    assert not compute.pool_exists(pool_id)
