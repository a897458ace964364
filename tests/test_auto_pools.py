"""Auto pools on a real emulator with real node containers, driven by the 15.x SDK: a job's auto pool runs its task
and goes when the job ends (or stays with keepAlive); a schedule's ``jobschedule`` pool serves its jobs and goes with
the schedule; a pool that cannot be created becomes the job's scheduling error; what Batch refuses at once is
refused; the pool's lifetime survives an emulator restart and a crash (a pool whose owner ended while the emulator
was down goes at the next start); a pool past the pool quota becomes the job's scheduling error; a user may delete a
job's auto pool, and the job then waits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from batchbox.emulator.crash_points import CRASH_ARM_ENV, CRASH_AT_ENV
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import Store
from tests.fixtures.emulator import EmulatorProcess, running_emulator
from tests.job_helpers import VM, error_code, gone, stdout_of, task_of, terminate, unique, wait_for, wait_state
from tests.portal_helpers import portal_session

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def fast_emulator(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorProcess]:
    yield from running_emulator(docker_client, node_image, tmp_path_factory, ["--min-schedule-interval", "1"])


@pytest.fixture(scope="module")
def client(fast_emulator: EmulatorProcess) -> BatchClient:
    return fast_emulator.batch_client()


def _auto_pool(
    lifetime: m.BatchPoolLifetimeOption, *, nodes: int = 1, keep_alive: bool = False, prefix: str = "auto", **pool: Any
) -> m.BatchPoolInfo:
    return m.BatchPoolInfo(
        auto_pool_specification=m.BatchAutoPoolSpecification(
            auto_pool_id_prefix=prefix,
            pool_lifetime_option=lifetime,
            keep_alive=keep_alive,
            pool=m.BatchPoolSpecification(
                vm_size="standard_d2_v3",
                virtual_machine_configuration=VM,
                target_dedicated_nodes=nodes,
                **pool,
            ),
        )
    )


def _pool_of(client: BatchClient, job_id: str) -> str:
    """The id of the job's auto pool, once the job exists (a schedule creates its job on time) and has one."""

    def probe() -> str | None:
        try:
            job = client.get_job(job_id)
        except ResourceNotFoundError:
            return None
        return (job.execution_info or m.BatchJobExecutionInfo()).pool_id or None

    return wait_for(f"job {job_id} has its auto pool", probe)


def _completed(client: BatchClient, job_id: str) -> m.BatchJob:
    """Wait until the job exists (a schedule creates it on time) and has completed."""

    def probe() -> m.BatchJob | None:
        try:
            job = client.get_job(job_id)
        except ResourceNotFoundError:
            return None
        return job if job.state == m.BatchJobState.COMPLETED else None

    return wait_for(f"job {job_id} completed", probe, timeout=180)


def _pool_ids(client: BatchClient) -> set[str]:
    return {str(pool.id) for pool in client.list_pools()}


def _pool_gone(client: BatchClient, pool_id: str) -> None:
    wait_for(f"auto pool {pool_id} deleted", lambda: gone(lambda: client.get_pool(pool_id)), timeout=120)


def test_job_auto_pool_runs_the_task_and_is_deleted_when_the_job_ends(
    client: BatchClient, fast_emulator: EmulatorProcess
) -> None:
    job_id = unique("apjob")
    client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, prefix="apjob"))
    )
    pool_id = _pool_of(client, job_id)
    assert pool_id.startswith("apjob_") and len(pool_id) == len("apjob_") + 36
    assert pool_id in _pool_ids(client)
    job = client.get_job(job_id)
    assert job.pool_info.pool_id is None
    assert job.pool_info.auto_pool_specification.pool_lifetime_option == m.BatchPoolLifetimeOption.JOB
    assert job.pool_info.auto_pool_specification.pool.task_slots_per_node == 1
    portal = portal_session(fast_emulator)
    try:
        assert portal.get(f"/portal/api/jobs/{job_id}").json()["job"]["poolId"] == pool_id
    finally:
        portal.close()

    client.create_task(
        job_id, m.BatchTaskCreateOptions(id="hello", command_line="/bin/sh -c 'echo on $AZ_BATCH_POOL_ID'")
    )
    task = task_of(client, job_id, "hello", m.BatchTaskState.COMPLETED, timeout=180)
    assert task.execution_info.exit_code == 0
    assert task.node_info.pool_id == pool_id
    assert stdout_of(client, job_id, "hello").strip() == f"on {pool_id}"
    assert client.get_pool(pool_id).state == m.BatchPoolState.ACTIVE

    terminate(client, job_id)
    wait_state(client, job_id, m.BatchJobState.COMPLETED)
    _pool_gone(client, pool_id)
    client.begin_delete_job(job_id, polling_interval=1).result()


def test_keep_alive_keeps_the_auto_pool_after_its_job(client: BatchClient) -> None:
    job_id = unique("apkeep")
    client.create_job(
        m.BatchJobCreateOptions(
            id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, nodes=0, keep_alive=True, prefix="keep")
        )
    )
    pool_id = _pool_of(client, job_id)
    job = client.get_job(job_id)
    job.priority = 7
    client.replace_job(job_id, job)  # the same auto pool specification back: accepted
    assert client.get_job(job_id).priority == 7
    job.pool_info.auto_pool_specification.keep_alive = False
    assert error_code(lambda: client.replace_job(job_id, job)) == (400, "UnsupportedProperty")
    terminate(client, job_id)
    wait_state(client, job_id, m.BatchJobState.COMPLETED)
    client.begin_delete_job(job_id, polling_interval=1).result()
    wait_for(f"job {job_id} deleted", lambda: gone(lambda: client.get_job(job_id)))
    assert client.get_pool(pool_id).state == m.BatchPoolState.ACTIVE
    client.begin_delete_pool(pool_id, polling_interval=1)
    _pool_gone(client, pool_id)


def test_schedule_pool_serves_every_job_and_goes_with_the_schedule(client: BatchClient) -> None:
    schedule_id = unique("apsch")
    spec = m.BatchJobSpecification(
        pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB_SCHEDULE, prefix="sched"),
        job_manager_task=m.BatchJobManagerTask(id="manager", command_line="/bin/sh -c 'echo $AZ_BATCH_POOL_ID'"),
    )
    client.create_job_schedule(
        m.BatchJobScheduleCreateOptions(
            id=schedule_id,
            schedule=m.BatchJobScheduleConfiguration(recurrence_interval=timedelta(seconds=2)),
            job_specification=spec,
        )
    )
    first, second = f"{schedule_id}:job-1", f"{schedule_id}:job-2"
    _completed(client, first)
    pool_id = _pool_of(client, first)
    assert pool_id.startswith("sched_")
    _completed(client, second)
    assert _pool_of(client, second) == pool_id
    assert stdout_of(client, second, "manager").strip() == pool_id
    assert client.get_pool(pool_id).state == m.BatchPoolState.ACTIVE  # the schedule still lives

    client.begin_delete_job_schedule(schedule_id, polling_interval=1).result()
    _pool_gone(client, pool_id)
    assert gone(lambda: client.get_job_schedule(schedule_id))


def _scheduling_error(client: BatchClient, job_id: str) -> m.BatchJobSchedulingError:
    job = wait_state(client, job_id, m.BatchJobState.COMPLETED)
    info = job.execution_info
    assert info is not None and info.scheduling_error is not None and info.end_time is not None
    assert job.previous_state == m.BatchJobState.ACTIVE
    assert info.termination_reason is None
    assert info.pool_id and info.pool_id not in _pool_ids(client)
    return info.scheduling_error


def test_a_pool_that_cannot_be_created_becomes_the_jobs_scheduling_error(client: BatchClient) -> None:
    retired = unique("apbad")
    body = {
        "id": retired,
        "poolInfo": {
            "autoPoolSpecification": {
                "poolLifetimeOption": "job",
                "pool": {"vmSize": "standard_d2_v3", "cloudServiceConfiguration": {"osFamily": "6"}},
            }
        },
    }
    client.create_job(body)  # type: ignore[arg-type]  # a raw body: the 15.x models have no cloud service pools
    error = _scheduling_error(client, retired)
    assert str(error.category).lower() == "usererror"
    assert error.code == "InvalidPropertyValue"
    assert {(d.name, d.value) for d in error.details or []} >= {("PropertyName", "cloudServiceConfiguration")}

    missing_package = unique("apapp")
    client.create_job(
        m.BatchJobCreateOptions(
            id=missing_package,
            pool_info=_auto_pool(
                m.BatchPoolLifetimeOption.JOB,
                nodes=0,
                application_package_references=[m.BatchApplicationPackageReference(application_id="nosuchapp")],
            ),
        )
    )
    error = _scheduling_error(client, missing_package)
    assert error.code == "InvalidApplicationPackageReferencesInAutoPool"
    assert [d.name for d in error.details or []] == ["nosuchapp"]


def test_what_batch_refuses_at_once_is_refused(client: BatchClient) -> None:
    def create(pool_info: m.BatchPoolInfo) -> None:
        client.create_job(m.BatchJobCreateOptions(id=unique("aprefused"), pool_info=pool_info))

    assert error_code(lambda: create(_auto_pool(m.BatchPoolLifetimeOption.JOB_SCHEDULE))) == (
        400,
        "InvalidPropertyValue",
    )
    assert error_code(lambda: create(_auto_pool(m.BatchPoolLifetimeOption.JOB, prefix="p" * 21))) == (
        400,
        "InvalidPropertyValue",
    )
    both = _auto_pool(m.BatchPoolLifetimeOption.JOB)
    both.pool_id = "named"
    assert error_code(lambda: create(both)) == (400, "InvalidPropertyValue")


def test_the_pool_lifetime_survives_a_restart(fast_emulator: EmulatorProcess) -> None:
    client = fast_emulator.batch_client()
    job_id = unique("aprestart")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB)))
    pool_id = _pool_of(client, job_id)
    fast_emulator.restart()
    client = fast_emulator.batch_client()
    assert client.get_job(job_id).execution_info.pool_id == pool_id
    client.create_task(job_id, m.BatchTaskCreateOptions(id="after", command_line="/bin/sh -c 'echo $AZ_BATCH_POOL_ID'"))
    assert task_of(client, job_id, "after", m.BatchTaskState.COMPLETED, timeout=180).node_info.pool_id == pool_id
    client.begin_delete_job(job_id, polling_interval=1).result()
    _pool_gone(client, pool_id)


def _set_faults(client: BatchClient, settings: dict[str, Any] | None) -> None:
    """Replace the emulator's faults (``None``: all off) through its admin API."""
    method = "PUT" if settings is not None else "DELETE"
    request = HttpRequest(method, "/_admin/v1/faults?api-version=2025-06-01", json=settings)
    client.send_request(request).raise_for_status()


def test_an_auto_pool_past_the_pool_quota_becomes_the_jobs_scheduling_error(client: BatchClient) -> None:
    quota = len(_pool_ids(client))
    _set_faults(client, {"pool_quota": quota})
    try:
        job_id = unique("apquota")
        client.create_job(
            m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, nodes=0))
        )
        error = _scheduling_error(client, job_id)
    finally:
        _set_faults(client, None)
    assert str(error.category).lower() == "usererror"
    assert error.code == "AutoPoolCreationFailedWithQuotaReached"
    assert {(d.name, d.value) for d in error.details or []} == {("PoolQuota", str(quota))}

    below = unique("apquota")
    client.create_job(m.BatchJobCreateOptions(id=below, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, nodes=0)))
    pool_id = _pool_of(client, below)
    assert client.get_pool(pool_id).state == m.BatchPoolState.ACTIVE  # without the quota, the pool is created
    client.begin_delete_job(below, polling_interval=1).result()
    _pool_gone(client, pool_id)


def test_deleting_a_jobs_auto_pool_leaves_the_job_waiting_without_a_new_pool(client: BatchClient) -> None:
    job_id = unique("apdel")
    client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, nodes=0, prefix="apdel"))
    )
    pool_id = _pool_of(client, job_id)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="waits", command_line="/bin/true"))
    client.begin_delete_pool(pool_id, polling_interval=1)  # accepted, as on Batch
    _pool_gone(client, pool_id)

    job = client.get_job(job_id)
    assert job.state == m.BatchJobState.ACTIVE
    assert job.execution_info.pool_id == pool_id and job.execution_info.scheduling_error is None
    assert client.get_task(job_id, "waits").state == m.BatchTaskState.ACTIVE
    assert not [pool for pool in _pool_ids(client) if pool.startswith("apdel_")]  # no pool in its place

    terminate(client, job_id)
    job = wait_state(client, job_id, m.BatchJobState.COMPLETED)
    assert job.execution_info.scheduling_error is None
    client.begin_delete_job(job_id, polling_interval=1).result()


def _crashed(emulator: EmulatorProcess, point: str) -> None:
    wait_for(f"the emulator killed itself at {point}", lambda: emulator.returncode is not None, timeout=60)
    shown = point if "/" in point else f"{point}/"
    assert f"crash point {shown} hit 1: SIGKILL" in emulator.log_text()


@contextlib.contextmanager
def _crash_plan(emulator: EmulatorProcess, point: str, arm: Path) -> Iterator[None]:
    """Restart the emulator with a crash plan (counted only while ``arm`` exists); after the block, it runs again
    without one."""
    emulator.extra_env = {CRASH_AT_ENV: f"{point}:1", CRASH_ARM_ENV: str(arm)}
    try:
        emulator.restart()
        yield
    finally:
        arm.unlink(missing_ok=True)
        emulator.extra_env = {}
        emulator.restart()


def test_a_crash_as_a_job_ends_leaves_no_orphan_auto_pool(fast_emulator: EmulatorProcess, tmp_path: Path) -> None:
    arm = tmp_path / "arm"
    job_id = unique("apcrash")
    with _crash_plan(fast_emulator, "auto_pools.owner_ended/job", arm):
        client = fast_emulator.batch_client()
        client.create_job(
            m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, nodes=0))
        )
        pool_id = _pool_of(client, job_id)
        arm.touch()
        with contextlib.suppress(AzureError):
            terminate(client, job_id)
        _crashed(fast_emulator, "auto_pools.owner_ended/job")
    client = fast_emulator.batch_client()
    # the kill came inside the transaction of the job's end: neither the end nor the pool's deletion happened
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE
    assert client.get_pool(pool_id).state == m.BatchPoolState.ACTIVE
    terminate(client, job_id)
    wait_state(client, job_id, m.BatchJobState.COMPLETED)
    _pool_gone(client, pool_id)

    job_id = unique("apcrash")
    with _crash_plan(fast_emulator, "driver.removed", arm):
        client = fast_emulator.batch_client()
        client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB)))
        pool_id = _pool_of(client, job_id)
        wait_for(
            f"auto pool {pool_id} has its node",
            lambda: [n for n in client.list_nodes(pool_id) if n.state == m.BatchNodeState.IDLE],
            timeout=180,
        )
        arm.touch()
        with contextlib.suppress(AzureError):
            terminate(client, job_id)
        _crashed(fast_emulator, "driver.removed")  # the job's end committed; its pool's node was being removed
    client = fast_emulator.batch_client()
    assert client.get_job(job_id).state == m.BatchJobState.COMPLETED
    _pool_gone(client, pool_id)
    assert not [c for c in fast_emulator.containers() if c.labels.get("batchbox.pool") == pool_id]


def test_pools_whose_owners_ended_while_the_emulator_was_down_are_deleted_at_start(
    fast_emulator: EmulatorProcess,
) -> None:
    client = fast_emulator.batch_client()
    job_id = unique("aporphan")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB, nodes=0)))
    job_pool = _pool_of(client, job_id)
    schedule_pools: dict[str, str] = {}
    for keep_alive in (False, True):
        schedule_id = unique("aporphan")
        spec = m.BatchJobSpecification(
            pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB_SCHEDULE, nodes=0, keep_alive=keep_alive)
        )
        client.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id=schedule_id,
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval=timedelta(hours=1)),
                job_specification=spec,
            )
        )
        schedule_pools[schedule_id] = _pool_of(client, f"{schedule_id}:job-1")

    fast_emulator.kill()  # a crash, then owners gone without their pools (as a lost end would leave them)
    store = Store(fast_emulator.state_dir / "state.db", Sealer(fast_emulator.account_key, fast_emulator.account_name))
    try:
        with store.transaction():
            store.delete_job(job_id)
            for schedule_id in schedule_pools:
                store.delete_job(f"{schedule_id}:job-1")
                store.schedules.delete(schedule_id)
    finally:
        store.close()
    fast_emulator.start()

    client = fast_emulator.batch_client()
    dropped, kept = schedule_pools.values()
    _pool_gone(client, job_pool)
    _pool_gone(client, dropped)
    assert client.get_pool(kept).state == m.BatchPoolState.ACTIVE  # keepAlive: the pool outlives its schedule
    client.begin_delete_pool(kept, polling_interval=1)
    _pool_gone(client, kept)


def test_a_crash_as_a_schedule_ends_leaves_no_orphan_auto_pool(fast_emulator: EmulatorProcess, tmp_path: Path) -> None:
    arm = tmp_path / "arm"
    schedule_id = unique("apschcrash")
    with _crash_plan(fast_emulator, "auto_pools.owner_ended/jobschedule", arm):
        client = fast_emulator.batch_client()
        spec = m.BatchJobSpecification(pool_info=_auto_pool(m.BatchPoolLifetimeOption.JOB_SCHEDULE, nodes=0))
        client.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id=schedule_id,
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval=timedelta(hours=1)),
                job_specification=spec,
            )
        )
        pool_id = _pool_of(client, f"{schedule_id}:job-1")
        arm.touch()
        with contextlib.suppress(AzureError):
            client.begin_delete_job_schedule(schedule_id, polling_interval=1).result()
        _crashed(fast_emulator, "auto_pools.owner_ended/jobschedule")
    client = fast_emulator.batch_client()
    # the schedule's removal did not commit; the restarted emulator finishes it, and its pool goes with it
    wait_for(f"job schedule {schedule_id} deleted", lambda: gone(lambda: client.get_job_schedule(schedule_id)))
    _pool_gone(client, pool_id)
