"""Real workflows against the emulator with one of Azure's failures switched on (issue: each failure, handled).

Each test checks what the user sees (the error names the code and the resource, and comes back in bounded time:
short timeouts everywhere, pytest-timeout around each test) and what is left behind (clean-up ran, or with
``keep_*`` exactly what was kept). The faults come from the emulator's fault layer (``tests/fixtures/faults.py``).
"""

from __future__ import annotations

import logging
import shlex
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import docker
import pytest

from batchbox.core import (
    ComputeNodeState,
    NoNodeCanRunError,
    OutputFile,
    PoolAllocationError,
    PoolSpec,
    Reporter,
    ResourceFile,
    ResourceNotFoundError,
    RunOptions,
    StagedFiles,
    StartTask,
    TaskSpec,
    TaskState,
    WaitTimeoutError,
    Workflow,
    Workload,
)
from batchbox.core.backend import Backend
from batchbox.core.polling import poll_until
from batchbox.core.workload import SAS_MARGIN
from tests.fixtures.faults import FaultStack

pytestmark = pytest.mark.timeout(300)

POOL_TIMEOUT = 120.0


class Tiny(Workload):
    """``count`` tasks writing ``out<i>.txt`` (uploaded); tasks in ``failing`` print to stderr and exit 3; with
    ``start`` the pool's start task copies the application file ``app.sh`` into the shared directory."""

    def __init__(
        self,
        app_dir: Path,
        *,
        count: int = 2,
        failing: Sequence[int] = (),
        command: str | None = None,
        start: bool = False,
        nodes: int = 1,
    ) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.job_id = f"tiny-{suffix}"
        self.pool_id = f"tiny-pool-{suffix}"
        self.node_count = nodes
        self.count, self.failing, self.command, self.start = count, set(failing), command, start
        self.app = app_dir / "app.sh"
        self.app.write_text("#!/bin/sh\necho app\n")

    def application_files(self) -> Sequence[Path]:
        return [self.app] if self.start else []

    def start_task(self, staged: StagedFiles) -> StartTask | None:
        if not self.start:
            return None
        return StartTask(
            command_line="/bin/sh -c 'cp app.sh \"$AZ_BATCH_NODE_SHARED_DIR/\"'",
            resource_files=(staged.application_file("app.sh"),),
        )

    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        output = (OutputFile(file_pattern="out*.txt", container_url=staged.output_container_url),)
        specs = []
        for i in range(self.count):
            script = self.command or f"echo {i} > out{i}.txt"
            if i in self.failing:
                script += "; echo broken >&2; exit 3"
            specs.append(TaskSpec(id=f"t{i}", command_line=f"/bin/sh -c {shlex.quote(script)}", output_files=output))
        return specs


class Recorder(Reporter):
    """Records steps and messages; ``on_step`` runs a hook when a step starts (to make a fault happen there)."""

    def __init__(self, on_step: dict[str, Callable[[], None]] | None = None) -> None:
        self.steps: list[str] = []
        self.messages: list[str] = []
        self.on_step = on_step or {}

    def step_started(self, step: str) -> None:
        self.steps.append(step)
        hook = self.on_step.get(step)
        if hook is not None:
            hook()

    def message(self, text: str) -> None:
        self.messages.append(text)


@pytest.fixture
def stack(fault_stack: FaultStack) -> Iterator[FaultStack]:
    fault_stack.clear()
    yield fault_stack
    fault_stack.clear()


@pytest.fixture
def backend(stack: FaultStack) -> Iterator[Backend]:
    opened = stack.backend(compute={"retry_budget": 30.0}, storage={"container_delete_wait": 30.0})
    with opened:
        yield opened


def options(tmp_path: Path, **changes: Any) -> RunOptions:
    settings: dict[str, Any] = {
        "output_dir": tmp_path / "out",
        "poll_interval": 0.2,
        "pool_timeout": POOL_TIMEOUT,
        "job_timeout": 120.0,
        "node_check_interval": 0.5,
        **changes,
    }
    return RunOptions(**settings)


def gone(backend: Backend, workload: Workload) -> None:
    """Assert clean-up ran: no job, the pool deleted (it may still be leaving), no containers."""
    compute = backend.compute
    assert not compute.job_exists(workload.job_id)
    compute.wait_for_pool_deleted(workload.pool_id, timeout=60, poll_interval=0.2)
    for container in workload.containers().all():
        with pytest.raises(ResourceNotFoundError):
            backend.storage.list_blobs(container)


def sas_expiry(url: str) -> datetime:
    return datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))


# -- 1. allocation failures -----------------------------------------------------------------------------------------


def test_a_family_core_quota_stops_the_run_with_the_resize_error_and_cleans_up(
    stack: FaultStack, backend: Backend, tmp_path: Path
) -> None:
    stack.set_faults(core_quotas={"Dsv3": 0})
    workload, reporter = Tiny(tmp_path), Recorder()
    began = time.monotonic()
    with pytest.raises(PoolAllocationError) as refused:
        Workflow(backend, workload, options(tmp_path), reporter).run()
    assert time.monotonic() - began < POOL_TIMEOUT  # it stopped on the resize error, not on the timeout
    message = str(refused.value)
    assert f"pool '{workload.pool_id}'" in message
    assert "AccountVMSeriesCoreQuotaReached: The specified account has reached VM series core quota for " in message
    assert "standardDSv3Family" in message
    assert refused.value.resize_errors[0][0] == "AccountVMSeriesCoreQuotaReached"
    assert reporter.steps == ["stage", "pool", "cleanup"]
    gone(backend, workload)


def test_an_allocation_failure_is_reported_with_its_code(stack: FaultStack, backend: Backend, tmp_path: Path) -> None:
    stack.set_faults(allocation_failure_rate=1.0)
    workload = Tiny(tmp_path)
    with pytest.raises(PoolAllocationError) as failed:
        Workflow(backend, workload, options(tmp_path)).run()
    assert "AllocationFailed: Desired number of dedicated nodes could not be allocated" in str(failed.value)
    gone(backend, workload)


def test_a_pool_short_of_its_target_runs_on_the_nodes_it_got(
    stack: FaultStack, backend: Backend, tmp_path: Path
) -> None:
    stack.set_faults(dedicated_core_quota=2)  # one standard_d2s_v3 node
    workload, reporter = Tiny(tmp_path, count=3, nodes=2), Recorder()
    result = Workflow(backend, workload, options(tmp_path), reporter).run()
    assert result.ok and result.counts.succeeded == 3
    assert (
        f"pool {workload.pool_id} has 1 usable node(s) of 2: "
        "AccountCoreQuotaReached: The specified account has reached core quota"
    ) in reporter.messages
    gone(backend, workload)


def test_low_priority_core_quota_is_a_resize_error_of_the_pool(stack: FaultStack, backend: Backend) -> None:
    stack.set_faults(low_priority_core_quota=0)
    pool_id = f"spot-{uuid.uuid4().hex[:8]}"
    compute = backend.compute
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0, low_priority_nodes=1))
    try:
        pool = compute.wait_for_steady(pool_id, timeout=60, poll_interval=0.2)
        assert [error.code for error in pool.resize_errors] == ["AccountLowPriorityCoreQuotaReached"]
        assert compute.list_nodes(pool_id) == []
    finally:
        compute.delete_pool(pool_id)


# -- 2. a container being deleted ---------------------------------------------------------------------------------


def test_a_rerun_right_after_clean_up_waits_for_the_containers_being_deleted(
    stack: FaultStack, backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack.set_faults(storage={"container_delete_seconds": 3})
    workload = Tiny(tmp_path)
    assert Workflow(backend, workload, options(tmp_path)).run().ok
    caplog.set_level(logging.INFO, logger="batchbox.backends.azure.storage")
    second = Workflow(backend, workload, options(tmp_path)).run()  # the same containers, deleted a moment ago
    assert second.ok and second.counts.succeeded == 2
    waited = {r.getMessage() for r in caplog.records if "is being deleted; waiting" in r.getMessage()}
    names = workload.containers()
    # The first container made (the application's) certainly waited; the others may have outlived the 3 s.
    assert f"container {names.application} is being deleted; waiting to create it again" in waited
    assert waited <= {f"container {name} is being deleted; waiting to create it again" for name in names.all()}
    gone(backend, workload)


def test_waiting_for_a_container_being_deleted_is_bounded(stack: FaultStack) -> None:
    stack.set_faults(storage={"container_delete_seconds": 120})
    name = f"bounded-{uuid.uuid4().hex[:8]}"
    with stack.storage(container_delete_wait=1.0) as storage:
        storage.create_container(name)
        storage.delete_container(name)
        began = time.monotonic()
        with pytest.raises(WaitTimeoutError) as late:
            storage.create_container(name)
        assert time.monotonic() - began < 30
    assert f"container '{name}' was still being deleted after 1 s (409 ContainerBeingDeleted)" in str(late.value)


# -- 3. stale SAS -------------------------------------------------------------------------------------------------


def test_sas_urls_last_as_long_as_the_job_may_run(stack: FaultStack, backend: Backend, tmp_path: Path) -> None:
    workload = Tiny(tmp_path, count=1)
    workload.job_time_limit = timedelta(minutes=30)
    before = datetime.now(timezone.utc)
    assert Workflow(backend, workload, options(tmp_path, keep_job=True)).run().ok
    after = datetime.now(timezone.utc)
    client = stack.emulator.batch_client()
    try:
        job = client.get_job(workload.job_id)
        assert job.constraints.max_wall_clock_time == timedelta(minutes=30)
        [task] = list(client.list_tasks(workload.job_id))
        [output] = task.output_files
        expiry = sas_expiry(output.destination.container.container_url)
        lifetime = timedelta(minutes=30) + SAS_MARGIN
        assert before + lifetime <= expiry <= after + lifetime + timedelta(seconds=POOL_TIMEOUT + 5)
    finally:
        backend.compute.delete_job(workload.job_id)


def test_a_reused_pool_gets_a_fresh_start_task_and_a_kept_pool_keeps_its_files(
    stack: FaultStack, backend: Backend, tmp_path: Path
) -> None:
    workload = Tiny(tmp_path, count=1, start=True)
    names = workload.containers()
    compute, storage = backend.compute, backend.storage
    reporter = Recorder()
    assert Workflow(backend, workload, options(tmp_path, keep_pool=True), reporter).run().ok
    # What a kept pool needs stays: the pool and the application container its start task reads.
    assert compute.pool_exists(workload.pool_id)
    assert [blob.name for blob in storage.list_blobs(names.application)] == ["app.sh"]
    for container in (names.input, names.output):
        with pytest.raises(ResourceNotFoundError):
            storage.list_blobs(container)
    assert f"keeping container {names.application}: the kept pool's start task reads it" in reporter.messages
    kept_url = stack.emulator.batch_client().get_pool(workload.pool_id).start_task.resource_files[0].http_url
    assert sas_expiry(kept_url) > datetime.now(timezone.utc) + timedelta(days=5)

    # Time passes: the start task's SAS expires. A node that runs the start task now fails it.
    stale = storage.blob_sas_url(names.application, "app.sh", expiry=timedelta(minutes=-5))
    compute.update_start_task(
        workload.pool_id,
        StartTask(
            command_line="/bin/sh -c 'cp app.sh \"$AZ_BATCH_NODE_SHARED_DIR/\"'",
            resource_files=(ResourceFile(http_url=stale, file_path="app.sh"),),
        ),
    )
    compute.resize_pool(workload.pool_id, 2)
    states = settled_states(backend, workload.pool_id, 2)
    assert sorted(states) == [ComputeNodeState.IDLE, ComputeNodeState.START_TASK_FAILED]

    # The next run refreshes the start task before it grows the pool: its new node starts.
    workload.node_count = 3
    assert Workflow(backend, workload, options(tmp_path, keep_pool=True)).run().ok
    fresh_url = stack.emulator.batch_client().get_pool(workload.pool_id).start_task.resource_files[0].http_url
    assert sas_expiry(fresh_url) > datetime.now(timezone.utc) + timedelta(days=5)
    states = settled_states(backend, workload.pool_id, 3)
    assert sorted(states) == [ComputeNodeState.IDLE, ComputeNodeState.IDLE, ComputeNodeState.START_TASK_FAILED]
    assert Workflow(backend, workload, options(tmp_path)).run().ok  # not kept this time: everything goes
    gone(backend, workload)


def settled_states(backend: Backend, pool_id: str, count: int) -> list[ComputeNodeState]:
    nodes = poll_until(
        lambda: backend.compute.list_nodes(pool_id),
        lambda nodes: len(nodes) == count and all(n.state.is_settled for n in nodes),
        timeout=60,
        poll_interval=0.2,
        timeout_message=lambda nodes: f"nodes did not settle: {[n.state.value for n in nodes]}",
    )
    return [n.state for n in nodes]


# -- 4. files on a node going away --------------------------------------------------------------------------------


def test_failure_reporting_survives_a_node_leaving_and_clean_up_still_runs(
    stack: FaultStack, backend: Backend, tmp_path: Path
) -> None:
    stack.set_faults(node_not_ready=True)
    workload = Tiny(tmp_path, count=2, failing=[1])

    def take_the_node_away() -> None:
        backend.compute.resize_pool(workload.pool_id, 0)
        poll_until(
            lambda: backend.compute.list_nodes(workload.pool_id),
            lambda nodes: not nodes,
            timeout=60,
            poll_interval=0.2,
            timeout_message=lambda nodes: f"nodes still there: {nodes}",
        )

    reporter = Recorder(on_step={"failures": take_the_node_away})
    result = Workflow(backend, workload, options(tmp_path), reporter).run()
    assert not result.ok and result.counts.failed == 1
    [failed] = result.failed
    assert failed.task_id == "t1" and failed.exit_code == 3
    assert failed.failure is not None and failed.failure.code == "FailureExitCode"
    assert failed.stderr_tail.startswith("(stderr.txt could not be read: ")
    assert "NodeNotReady" in failed.stderr_tail
    assert reporter.steps[-2:] == ["failures", "cleanup"]
    gone(backend, workload)


# -- 5. nothing can run -------------------------------------------------------------------------------------------


def test_a_pool_deleted_under_waiting_tasks_ends_the_run(stack: FaultStack, backend: Backend, tmp_path: Path) -> None:
    workload = Tiny(tmp_path, count=2, command="sleep 60")
    reporter = Recorder(on_step={"monitor": lambda: backend.compute.delete_pool(workload.pool_id)})
    began = time.monotonic()
    with pytest.raises(NoNodeCanRunError) as stuck:
        Workflow(backend, workload, options(tmp_path), reporter).run()
    assert time.monotonic() - began < 100
    message = str(stuck.value)
    assert f"no node of pool '{workload.pool_id}' can run the tasks of job '{workload.job_id}'" in message
    assert "the pool is being deleted" in message or "the pool no longer exists" in message
    assert reporter.steps[-2:] == ["monitor", "cleanup"]
    gone(backend, workload)


def test_nodes_that_fail_their_start_task_end_the_run_with_their_states_and_errors(
    stack: FaultStack, backend: Backend, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    workload = Tiny(tmp_path, count=1, command="sleep 60", start=True)

    def break_the_pool() -> None:
        # The running task's node dies and its start task's file is gone: the replacement node cannot start.
        poll_until(
            lambda: backend.compute.list_tasks(workload.job_id, state=TaskState.RUNNING),
            bool,
            timeout=60,
            poll_interval=0.2,
            timeout_message=lambda _tasks: "the task never ran",
        )
        backend.storage.delete_container(workload.containers().application)
        label = f"batchbox.emulator={stack.emulator.instance_label}"
        for container in docker_client.containers.list(
            ignore_removed=True, filters={"label": [label, f"batchbox.pool={workload.pool_id}"]}
        ):
            container.kill()

    reporter = Recorder(on_step={"monitor": break_the_pool})
    with pytest.raises(NoNodeCanRunError) as stuck:
        Workflow(backend, workload, options(tmp_path), reporter).run()
    message = str(stuck.value)
    assert f"no node of pool '{workload.pool_id}'" in message and "starttaskfailed" in message
    assert "(1 task(s) waiting)" in message
    [state] = stuck.value.node_states.values()
    assert state.startswith("starttaskfailed (") and "Blob" in state
    gone(backend, workload)


# -- 6. throttling and cut connections ----------------------------------------------------------------------------


def test_a_whole_run_rides_out_throttling_and_cut_connections(
    stack: FaultStack, backend: Backend, tmp_path: Path
) -> None:
    stack.set_faults(
        seed=17, throttle_rate=0.3, retry_after_share=0.5, connection_reset_rate=0.05, storage={"busy_rate": 0.05}
    )
    workload = Tiny(tmp_path, count=20)
    result = Workflow(backend, workload, options(tmp_path)).run()
    stack.clear()
    assert result.ok and (result.counts.succeeded, result.total_tasks) == (20, 20)
    assert sorted(p.name for p in result.outputs) == sorted(f"out{i}.txt" for i in range(20))
    gone(backend, workload)


# -- 7. the smaller ones ------------------------------------------------------------------------------------------


def test_failed_tasks_are_listed_even_when_lagging_counts_say_none_failed(
    stack: FaultStack, backend: Backend, tmp_path: Path
) -> None:
    workload = Tiny(tmp_path, count=2, failing=[0])
    flow = Workflow(backend, workload, options(tmp_path))
    staged = flow.stage()
    flow.ensure_pool(staged)
    flow.ensure_job()
    stack.set_faults(task_counts_lag=300)
    flow.result.counts = backend.compute.task_counts(workload.job_id)  # counted before any task ran
    flow.submit_tasks(staged)
    poll_until(
        lambda: backend.compute.list_tasks(workload.job_id),
        lambda tasks: len(tasks) == 2 and all(t.state is TaskState.COMPLETED for t in tasks),
        timeout=60,
        poll_interval=0.2,
        timeout_message=lambda tasks: f"tasks did not complete: {tasks}",
    )
    flow.result.counts = backend.compute.task_counts(workload.job_id)
    assert flow.result.counts.failed == 0 and flow.result.counts.completed == 0  # the counts lag
    failed = flow.collect_failures()
    assert [f.task_id for f in failed] == ["t0"] and not flow.result.ok
    stack.clear()
    flow.cleanup()
    gone(backend, workload)


def test_a_reused_pool_is_resized_only_once_it_is_steady(stack: FaultStack, backend: Backend, tmp_path: Path) -> None:
    workload = Tiny(tmp_path, count=1)
    assert Workflow(backend, workload, options(tmp_path, keep_pool=True)).run().ok
    reporter = Recorder()
    workload.node_count = 3
    flow = Workflow(backend, workload, options(tmp_path), reporter)
    staged = flow.stage()
    backend.compute.resize_pool(workload.pool_id, 2)  # someone else's resize is in progress
    flow.ensure_pool(staged)  # resizing now would be 409 PoolBeingResized
    assert f"waiting for pool {workload.pool_id} to finish resizing (resizing)" in reporter.messages
    assert backend.compute.get_pool(workload.pool_id).target_dedicated_nodes == 3
    flow.cleanup()
    gone(backend, workload)


def test_a_chunk_over_the_request_size_limit_is_split(stack: FaultStack, backend: Backend) -> None:
    pool_id, job_id = f"big-pool-{uuid.uuid4().hex[:6]}", f"big-job-{uuid.uuid4().hex[:6]}"
    compute = backend.compute
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
    try:
        from batchbox.core import EnvironmentSetting, JobSpec

        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        bulky = (EnvironmentSetting("PAYLOAD", "x" * 60_000),)  # 100 of these pass the emulator's 4 MiB limit
        tasks = [TaskSpec(id=f"b{i}", command_line="/bin/true", environment=bulky) for i in range(100)]
        result = compute.add_tasks(job_id, tasks, max_concurrency=2)
        assert len(result.added) == 100 and compute.task_counts(job_id).active == 100
    finally:
        compute.delete_job(job_id)
        compute.delete_pool(pool_id)
