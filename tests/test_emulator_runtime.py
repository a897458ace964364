"""The emulator's runtime end to end: real emulator process, real node containers and agents, the 15.x SDK.

Pools, start tasks, the task environment, retries, wall-clock kills, job termination (by request and by
``onAllTasksComplete``), task slots, node loss (``docker kill``) and an emulator crash with re-adoption of its nodes.
One emulator serves the module; each test uses its own jobs (and pools where it needs a fresh node layout).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

# 15.1 exports no public name for it; without a reason the SDK sends no content-type and fails client-side.
from azure.batch.models._models import BatchJobTerminateOptions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

T = TypeVar("T")

_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
_NODE_ID = re.compile(r"^tvmps_[0-9a-f]{24}_d$")
_SHARED_FILE = "shared-data.txt"
_SHARED_TEXT = "hello from the start task's resource file\n"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.25) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(emulator: Any) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server with one file; node containers (host network) download it as a resource file."""
    root: Path = tmp_path_factory.mktemp("served")
    (root / "data.txt").write_text(_SHARED_TEXT)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/data.txt"
    finally:
        server.shutdown()
        server.server_close()


def create_pool(client: BatchClient, pool_id: str, nodes: int, slots: int = 1, **extra: Any) -> None:
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=_VM,
            target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
            **extra,
        )
    )


def idle_nodes(client: BatchClient, pool_id: str, count: int) -> list[m.BatchNode]:
    def probe() -> list[m.BatchNode] | None:
        nodes = list(client.list_nodes(pool_id))
        if len(nodes) == count and all(n.state == m.BatchNodeState.IDLE for n in nodes):
            return nodes
        return None

    return wait_for(f"{count} idle node(s) in pool {pool_id}", probe)


@pytest.fixture(scope="module")
def two_node_pool(client: BatchClient, file_server: str) -> str:
    """Two nodes, one slot each; the start task copies a downloaded resource file into the shared dir."""
    pool_id = unique("two")
    start = m.BatchStartTask(
        command_line=f"/bin/sh -c 'cp data.txt $AZ_BATCH_NODE_SHARED_DIR/{_SHARED_FILE}'",
        resource_files=[m.ResourceFile(http_url=file_server, file_path="data.txt")],
        wait_for_success=True,
    )
    create_pool(client, pool_id, 2, start_task=start)
    return pool_id


@pytest.fixture(scope="module")
def slot_pool(client: BatchClient) -> str:
    """One node with two task slots."""
    pool_id = unique("slots")
    create_pool(client, pool_id, 1, slots=2)
    idle_nodes(client, pool_id, 1)
    return pool_id


def add_job(client: BatchClient, pool_id: str, **extra: Any) -> str:
    job_id = unique("job")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), **extra))
    return job_id


def completed_task(client: BatchClient, job_id: str, task_id: str, timeout: float = 90.0) -> m.BatchTask:
    def probe() -> m.BatchTask | None:
        task = client.get_task(job_id, task_id)
        return task if task.state == m.BatchTaskState.COMPLETED else None

    return wait_for(f"task {job_id}/{task_id} to complete", probe, timeout)


def all_completed(client: BatchClient, job_id: str, count: int, timeout: float = 120.0) -> m.BatchTaskCounts:
    def probe() -> m.BatchTaskCounts | None:
        counts = client.get_job_task_counts(job_id).task_counts
        return counts if counts.completed == count else None

    return wait_for(f"{count} completed task(s) in job {job_id}", probe, timeout)


def stdout_of(client: BatchClient, job_id: str, task_id: str) -> str:
    return b"".join(client.download_task_file(job_id, task_id, "stdout.txt")).decode()


def stdout_exists(client: BatchClient, job_id: str, task_id: str) -> bool:
    """True once the agent has opened the task's stdout.txt (it does so right before starting the process).

    Before that the files API answers 404 (no file yet) or 409 TaskFilesUnavailable (no task directory yet).
    """
    try:
        stdout_of(client, job_id, task_id)
    except (ResourceNotFoundError, ResourceExistsError):
        return False
    return True


# --------------------------------------------------------------------------------------------------- pools & nodes
def test_pool_of_two_nodes_reaches_idle_after_its_start_task(client: BatchClient, two_node_pool: str) -> None:
    nodes = idle_nodes(client, two_node_pool, 2)
    for node in nodes:
        assert _NODE_ID.match(node.id), node.id
        assert node.ip_address == "127.0.0.1"
        assert node.is_dedicated is True
        assert node.scheduling_state == m.SchedulingState.ENABLED
        assert node.running_tasks_count == 0
        assert node.start_task_info is not None
        assert node.start_task_info.state == m.BatchStartTaskState.COMPLETED
        assert node.start_task_info.exit_code == 0
        assert node.start_task_info.result == m.BatchTaskExecutionResult.SUCCESS
    pool = wait_for(
        "the pool to be steady",
        lambda: (p := client.get_pool(two_node_pool)).allocation_state == m.AllocationState.STEADY and p,
    )
    assert pool.current_dedicated_nodes == 2


def test_task_reads_the_file_the_start_task_put_in_the_shared_dir(client: BatchClient, two_node_pool: str) -> None:
    idle_nodes(client, two_node_pool, 2)
    job_id = add_job(client, two_node_pool)
    client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(
                id=f"read{i}", command_line=f"/bin/sh -c 'cat $AZ_BATCH_NODE_SHARED_DIR/{_SHARED_FILE}'"
            )
            for i in range(4)
        ],
    )
    counts = all_completed(client, job_id, 4)
    assert counts.succeeded == 4
    for i in range(4):
        assert stdout_of(client, job_id, f"read{i}") == _SHARED_TEXT


def test_task_environment(client: BatchClient, emulator: Any, two_node_pool: str) -> None:
    job_id = add_job(
        client,
        two_node_pool,
        common_environment_settings=[
            m.EnvironmentSetting(name="FROM_JOB", value="job"),
            m.EnvironmentSetting(name="OVERRIDDEN", value="job"),
        ],
    )
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="env",
            command_line="/usr/bin/env",
            environment_settings=[m.EnvironmentSetting(name="OVERRIDDEN", value="task")],
        ),
    )
    task = completed_task(client, job_id, "env")
    assert task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    env = dict(line.split("=", 1) for line in stdout_of(client, job_id, "env").splitlines() if "=" in line)
    node_id = task.node_info.node_id
    root = "/mnt/batch/tasks"
    expected = {
        "AZ_BATCH_ACCOUNT_NAME": emulator.account_name,
        "AZ_BATCH_ACCOUNT_URL": emulator.url,
        "AZ_BATCH_POOL_ID": two_node_pool,
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_NODE_ROOT_DIR": root,
        "AZ_BATCH_NODE_SHARED_DIR": f"{root}/shared",
        "AZ_BATCH_NODE_STARTUP_DIR": f"{root}/startup",
        "AZ_BATCH_NODE_MOUNTS_DIR": f"{root}/fsmounts",
        "AZ_BATCH_TASK_DIR": f"{root}/workitems/{job_id}/job-1/env",
        "AZ_BATCH_TASK_WORKING_DIR": f"{root}/workitems/{job_id}/job-1/env/wd",
        "AZ_BATCH_JOB_ID": job_id,
        "AZ_BATCH_TASK_ID": "env",
        "FROM_JOB": "job",
        "OVERRIDDEN": "task",
    }
    assert {name: env.get(name) for name in expected} == expected
    assert int(env["AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES"]) > 0
    assert task.node_info.task_root_directory == f"workitems/{job_id}/job-1/env"
    assert task.node_info.pool_id == two_node_pool


# --------------------------------------------------------------------------------------------------- task outcomes
def test_exit_code_1_is_retried_up_to_max_task_retry_count(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    marker = f"$AZ_BATCH_NODE_SHARED_DIR/{job_id}.attempts"
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="flaky",
            command_line=f"/bin/sh -c 'echo attempt >> {marker}; cat {marker} | wc -l; exit 1'",
            constraints=m.BatchTaskConstraints(max_task_retry_count=2),
        ),
    )
    task = completed_task(client, job_id, "flaky")
    info = task.execution_info
    assert info.result == m.BatchTaskExecutionResult.FAILURE
    assert info.exit_code == 1
    assert info.retry_count == 2
    assert info.requeue_count == 0
    assert info.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
    assert info.failure_info.code == "FailureExitCode"
    # The last attempt counted the lines the three attempts appended on the pool's only node.
    assert stdout_of(client, job_id, "flaky").strip() == "3"


def test_wall_clock_kill_completes_with_failure_info_and_is_not_retried(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="slow",
            command_line="/bin/sh -c 'sleep 60; echo finished'",
            constraints=m.BatchTaskConstraints(max_wall_clock_time=timedelta(seconds=2), max_task_retry_count=3),
        ),
    )
    task = completed_task(client, job_id, "slow")
    info = task.execution_info
    assert info.result == m.BatchTaskExecutionResult.FAILURE
    assert info.failure_info is not None
    assert info.failure_info.code != "FailureExitCode"
    assert info.retry_count == 0
    assert "finished" not in stdout_of(client, job_id, "slow")


def test_job_with_terminatejob_completes_when_its_tasks_are_done(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool, all_tasks_complete_mode=m.BatchAllTasksCompleteMode.NO_ACTION)
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true") for i in range(3)])
    client.update_job(
        job_id, m.BatchJobUpdateOptions(all_tasks_complete_mode=m.BatchAllTasksCompleteMode.TERMINATE_JOB)
    )
    job = wait_for(
        "the job to complete", lambda: (j := client.get_job(job_id)).state == m.BatchJobState.COMPLETED and j
    )
    assert job.execution_info.termination_reason == "AllTasksComplete"
    assert job.execution_info.end_time is not None
    counts = client.get_job_task_counts(job_id).task_counts
    assert (counts.active, counts.running, counts.completed, counts.succeeded, counts.failed) == (0, 0, 3, 3, 0)


def test_terminating_a_job_stops_its_running_task(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="long", command_line="/bin/sh -c 'sleep 60; echo finished'"))
    wait_for("the task to run", lambda: client.get_task(job_id, "long").state == m.BatchTaskState.RUNNING)
    wait_for("its process to start", lambda: stdout_exists(client, job_id, "long"))
    client.begin_terminate_job(
        job_id, BatchJobTerminateOptions(termination_reason="StoppedByTest"), polling_interval=1
    ).result()
    job = client.get_job(job_id)
    assert job.state == m.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "StoppedByTest"
    task = client.get_task(job_id, "long")
    assert task.state == m.BatchTaskState.COMPLETED
    assert task.execution_info.result == m.BatchTaskExecutionResult.FAILURE
    assert task.execution_info.failure_info.code == "TaskEnded"
    # The process was killed: the node's slot frees long before the 60 s sleep could end.
    node_id = task.node_info.node_id
    wait_for(
        "the node to free its slot",
        lambda: client.get_node(slot_pool, node_id).running_tasks_count == 0,
        timeout=30,
    )
    assert "finished" not in stdout_of(client, job_id, "long")


def test_task_counts_are_exact(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    tasks = [m.BatchTaskCreateOptions(id=f"ok{i}", command_line="/bin/true") for i in range(5)]
    tasks += [m.BatchTaskCreateOptions(id=f"bad{i}", command_line="/bin/sh -c 'exit 7'") for i in range(3)]
    client.create_tasks(job_id, tasks)
    counts = all_completed(client, job_id, 8)
    assert (counts.active, counts.running, counts.completed, counts.succeeded, counts.failed) == (0, 0, 8, 5, 3)
    assert client.get_task(job_id, "bad0").execution_info.exit_code == 7


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_two_slots_run_two_tasks_at_a_time(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    # One addtaskcollection request keeps the order (create_tasks submits its list back to front).
    group = m.BatchTaskGroup(
        task_values=[m.BatchTaskCreateOptions(id=f"s{i}", command_line="/bin/sleep 1") for i in range(4)]
    )
    client.create_task_collection(job_id, group)
    all_completed(client, job_id, 4)
    tasks = [client.get_task(job_id, f"s{i}") for i in range(4)]
    assert len({t.node_info.node_id for t in tasks}) == 1
    intervals = [(t.execution_info.start_time, t.execution_info.end_time) for t in tasks]
    assert _max_overlap(intervals) == 2
    # Insertion order: the first two start before either of the last two.
    assert max(intervals[0][0], intervals[1][0]) <= min(intervals[2][0], intervals[3][0])


def test_dependent_tasks_wait_for_their_parents(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool, uses_task_dependencies=True)
    tasks = [
        m.BatchTaskCreateOptions(id="1", command_line="/bin/sleep 1"),
        m.BatchTaskCreateOptions(id="2", command_line="/bin/sleep 1"),
        m.BatchTaskCreateOptions(
            id="after-range",
            command_line="/bin/true",
            depends_on=m.BatchTaskDependencies(task_id_ranges=[m.BatchTaskIdRange(start=1, end=2)]),
        ),
        m.BatchTaskCreateOptions(
            id="after-both", command_line="/bin/true", depends_on=m.BatchTaskDependencies(task_ids=["after-range"])
        ),
        m.BatchTaskCreateOptions(id="bad", command_line="/bin/sh -c 'exit 1'"),
        m.BatchTaskCreateOptions(
            id="blocked", command_line="/bin/true", depends_on=m.BatchTaskDependencies(task_ids=["bad"])
        ),
    ]
    client.create_task_collection(job_id, m.BatchTaskGroup(task_values=tasks))
    counts = all_completed(client, job_id, 5)
    assert (counts.active, counts.succeeded, counts.failed) == (1, 4, 1)
    done = {t: client.get_task(job_id, t).execution_info for t in ("1", "2", "after-range", "after-both")}
    assert done["after-range"].start_time >= max(done["1"].end_time, done["2"].end_time)
    assert done["after-both"].start_time >= done["after-range"].end_time
    # A failed parent blocks its dependent (Batch's default dependencyAction for a failure).
    assert client.get_task(job_id, "blocked").state == m.BatchTaskState.ACTIVE


def test_failing_start_task_makes_the_node_starttaskfailed(client: BatchClient) -> None:
    pool_id = unique("stfail")
    job_id = add_job(client, pool_id)  # a job may name its pool before the pool exists
    client.create_task(job_id, m.BatchTaskCreateOptions(id="never", command_line="/bin/true"))
    start = m.BatchStartTask(command_line="/bin/sh -c 'exit 3'", max_task_retry_count=1, wait_for_success=True)
    create_pool(client, pool_id, 1, start_task=start)

    def failed() -> m.BatchNode | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes[0] if nodes and nodes[0].state == m.BatchNodeState.START_TASK_FAILED else None

    node = wait_for("the node to be starttaskfailed", failed)
    info = node.start_task_info
    assert info.state == m.BatchStartTaskState.COMPLETED
    assert info.exit_code == 3
    assert info.retry_count == 1
    assert info.result == m.BatchTaskExecutionResult.FAILURE
    assert info.failure_info.code == "FailureExitCode"
    assert client.get_task(job_id, "never").state == m.BatchTaskState.ACTIVE
    client.begin_delete_pool(pool_id, polling_interval=1).result()


def test_pool_resize_down_and_delete_remove_containers(client: BatchClient, emulator: Any) -> None:
    pool_id = unique("resize")
    create_pool(client, pool_id, 2)
    idle_nodes(client, pool_id, 2)

    def pool_containers() -> list[Any]:
        return [c for c in emulator.containers() if c.labels.get("batchbox.pool") == pool_id]

    assert len(pool_containers()) == 2
    client.begin_resize_pool(pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=1).result()
    pool = wait_for(
        "the pool to shrink",
        lambda: (
            (p := client.get_pool(pool_id)).allocation_state == m.AllocationState.STEADY
            and p.current_dedicated_nodes == 1
            and p
        ),
    )
    assert pool.target_dedicated_nodes == 1
    idle_nodes(client, pool_id, 1)
    wait_for("one container left", lambda: len(pool_containers()) == 1)
    client.begin_delete_pool(pool_id, polling_interval=1).result()
    # (15.1's pool_exists raises on the 404 instead of returning False, so ask get_pool.)
    with pytest.raises(ResourceNotFoundError):
        client.get_pool(pool_id)
    assert pool_containers() == []


def test_terminated_task_can_be_reactivated(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    marker = f"$AZ_BATCH_NODE_SHARED_DIR/{job_id}.runs"
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="t", command_line=f"/bin/sh -c 'echo run >> {marker}; test $(wc -l < {marker}) -ge 2 || sleep 60'"
        ),
    )
    wait_for("the task to run", lambda: client.get_task(job_id, "t").state == m.BatchTaskState.RUNNING)
    client.terminate_task(job_id, "t")
    ended = client.get_task(job_id, "t")
    assert ended.state == m.BatchTaskState.COMPLETED
    assert ended.execution_info.failure_info.code == "TaskEnded"
    client.reactivate_task(job_id, "t")
    task = wait_for(
        "the reactivated task to succeed",
        lambda: (
            (t := client.get_task(job_id, "t")).state == m.BatchTaskState.COMPLETED
            and t.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
            and t
        ),
    )
    assert task.execution_info.retry_count == 0
    assert task.execution_info.failure_info is None


def test_higher_priority_job_gets_the_next_free_slot(client: BatchClient, slot_pool: str) -> None:
    busy = add_job(client, slot_pool)
    client.create_tasks(busy, [m.BatchTaskCreateOptions(id=f"b{i}", command_line="/bin/sleep 3") for i in range(2)])
    wait_for("both slots to be busy", lambda: client.get_job_task_counts(busy).task_counts.running == 2, interval=0.1)
    low = add_job(client, slot_pool, priority=-10)
    high = add_job(client, slot_pool, priority=100)
    client.create_task(low, m.BatchTaskCreateOptions(id="low", command_line="/bin/sleep 1"))
    client.create_task(high, m.BatchTaskCreateOptions(id="high", command_line="/bin/sleep 1"))
    assert client.get_task(low, "low").state == m.BatchTaskState.ACTIVE
    first = completed_task(client, high, "high")
    second = completed_task(client, low, "low")
    assert first.execution_info.start_time <= second.execution_info.start_time


def test_deleting_a_job_stops_its_tasks(client: BatchClient, slot_pool: str) -> None:
    job_id = add_job(client, slot_pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="long", command_line="/bin/sleep 60"))
    running = wait_for(
        "the task to run", lambda: (t := client.get_task(job_id, "long")).state == m.BatchTaskState.RUNNING and t
    )
    client.begin_delete_job(job_id, polling_interval=1).result()
    with pytest.raises(ResourceNotFoundError):
        client.get_job(job_id)
    node_id = running.node_info.node_id
    wait_for("the slot to free", lambda: client.get_node(slot_pool, node_id).running_tasks_count == 0, timeout=30)


def test_resizing_down_requeues_the_tasks_of_a_removed_node(client: BatchClient) -> None:
    pool_id = unique("shrink")
    create_pool(client, pool_id, 2)
    idle_nodes(client, pool_id, 2)
    job_id = add_job(client, pool_id)
    client.create_tasks(
        job_id, [m.BatchTaskCreateOptions(id=f"r{i}", command_line="/bin/sh -c 'sleep 3; echo ok'") for i in range(2)]
    )
    wait_for("both tasks to run", lambda: client.get_job_task_counts(job_id).task_counts.running == 2, interval=0.1)
    client.begin_resize_pool(pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=1)
    counts = all_completed(client, job_id, 2)
    assert counts.succeeded == 2
    requeues = sorted(client.get_task(job_id, f"r{i}").execution_info.requeue_count for i in range(2))
    assert requeues == [0, 1]
    assert len(idle_nodes(client, pool_id, 1)) == 1
    client.begin_delete_pool(pool_id, polling_interval=1)


# ------------------------------------------------------------------------------------------------- host failures
def test_killed_node_requeues_its_task_which_completes_elsewhere(
    client: BatchClient, emulator: Any, docker_client: docker.DockerClient, two_node_pool: str
) -> None:
    idle_nodes(client, two_node_pool, 2)
    job_id = add_job(client, two_node_pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="victim", command_line="/bin/sh -c 'sleep 4; echo done'"))
    running = wait_for(
        "the task to run", lambda: (t := client.get_task(job_id, "victim")).state == m.BatchTaskState.RUNNING and t
    )
    lost_node = running.node_info.node_id
    containers = [c for c in emulator.containers() if c.labels.get("batchbox.node") == lost_node]
    assert len(containers) == 1
    containers[0].kill()
    task = completed_task(client, job_id, "victim")
    assert task.execution_info.requeue_count == 1
    assert task.execution_info.retry_count == 0
    assert task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    assert task.node_info.node_id != lost_node
    assert stdout_of(client, job_id, "victim").strip() == "done"
    # The pool replaces the lost node to keep its target.
    nodes = idle_nodes(client, two_node_pool, 2)
    assert lost_node not in {n.id for n in nodes}


def test_emulator_crash_mid_job_re_adopts_nodes_and_the_job_completes(client: BatchClient, emulator: Any) -> None:
    pool_id = unique("crash")
    create_pool(client, pool_id, 2, slots=2)
    before = {n.id for n in idle_nodes(client, pool_id, 2)}
    job_id = add_job(client, pool_id)
    count = 12
    client.create_tasks(
        job_id,
        [m.BatchTaskCreateOptions(id=f"c{i}", command_line="/bin/sh -c 'sleep 1.5; echo ok'") for i in range(count)],
    )
    wait_for("some tasks to complete", lambda: client.get_job_task_counts(job_id).task_counts.completed >= 2)
    emulator.restart(crash=True)
    fresh = emulator.batch_client()
    counts = all_completed(fresh, job_id, count)
    assert (counts.active, counts.running, counts.completed, counts.succeeded, counts.failed) == (0, 0, count, count, 0)
    for i in range(count):
        assert stdout_of(fresh, job_id, f"c{i}").strip() == "ok"
    after = {n.id for n in idle_nodes(fresh, pool_id, 2)}
    assert after == before, "the nodes were re-adopted, not replaced"
    with contextlib.suppress(Exception):
        fresh.begin_delete_pool(pool_id, polling_interval=1)


def test_node_lost_while_the_emulator_was_down_is_replaced_and_its_task_requeued(
    client: BatchClient, emulator: Any
) -> None:
    pool_id = unique("outage")
    create_pool(client, pool_id, 2)
    idle_nodes(client, pool_id, 2)
    job_id = add_job(client, pool_id)
    client.create_tasks(
        job_id, [m.BatchTaskCreateOptions(id=f"o{i}", command_line="/bin/sh -c 'sleep 3; echo ok'") for i in range(2)]
    )
    wait_for("both tasks to run", lambda: client.get_job_task_counts(job_id).task_counts.running == 2, interval=0.1)
    victim = client.get_task(job_id, "o0").node_info.node_id
    emulator.kill()
    for container in emulator.containers():
        if container.labels.get("batchbox.node") == victim:
            container.kill()
    emulator.start()
    fresh = emulator.batch_client()
    counts = all_completed(fresh, job_id, 2)
    assert counts.succeeded == 2
    lost = fresh.get_task(job_id, "o0")
    assert lost.execution_info.requeue_count == 1
    assert lost.node_info.node_id != victim
    assert fresh.get_task(job_id, "o1").execution_info.requeue_count == 0
    nodes = idle_nodes(fresh, pool_id, 2)
    assert victim not in {n.id for n in nodes}
    assert [c for c in emulator.containers() if c.labels.get("batchbox.node") == victim] == []
    fresh.begin_delete_pool(pool_id, polling_interval=1)


# ------------------------------------------------------------------------------------------------- pure helpers
def test_failure_classification() -> None:
    from batchbox.emulator.runtime.documents import exit_code_failure, is_retryable

    assert is_retryable(1, None)
    assert is_retryable(1, exit_code_failure(1))
    assert not is_retryable(0, None)
    assert not is_retryable(None, {"code": "BlobNotFound"})  # resource file download: never retried
    assert not is_retryable(137, {"code": "TaskEnded"})  # wall clock / terminate
    assert not is_retryable(0, {"code": "FileUploadMiscError"})


def test_dependency_actions_follow_exit_conditions() -> None:
    from batchbox.emulator.runtime.dependencies import dependency_action, parent_keys

    assert parent_keys({"id": "3", "dependsOn": {"taskIds": ["A"], "taskIdRanges": [{"start": 1, "end": 3}]}}) == [
        "a",
        "1",
        "2",
    ]
    done = {"state": "completed", "executionInfo": {"result": "success", "exitCode": 0}}
    failed = {"state": "completed", "executionInfo": {"result": "failure", "exitCode": 2, "failureInfo": {}}}
    assert dependency_action(done) == "satisfy"
    assert dependency_action(failed) == "block"
    assert dependency_action({**failed, "exitConditions": {"default": {"dependencyAction": "satisfy"}}}) == "satisfy"
    ranged = {"exitCodeRanges": [{"start": 1, "end": 5, "exitOptions": {"dependencyAction": "satisfy"}}]}
    assert dependency_action({**failed, "exitConditions": ranged}) == "satisfy"
    assert dependency_action({"state": "active"}) == "block"


def test_user_identity_names() -> None:
    from batchbox.emulator.runtime.environment import user_identity

    assert user_identity(None, None) == ("nonadmin", "PoolNonAdmin")
    assert user_identity({"autoUser": {"scope": "task", "elevationLevel": "admin"}}, None) == ("admin", "TaskAdmin")
    pool = {"userAccounts": [{"name": "ops", "elevationLevel": "admin"}]}
    assert user_identity({"username": "ops"}, pool) == ("admin", "ops")
