"""Job schedules on a real emulator with real node containers, driven by the 15.x SDK: jobs created on time and none
after doNotRunAfter, never two active jobs, disable / enable, terminate and delete ending the schedule's job, patch
and update, statistics, and each operation's errors. The emulator runs with ``--min-schedule-interval 1`` so that a
test can use intervals of seconds (Batch's minimum is one minute; the last test checks it is kept by default)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.emulator.errors import BatchError
from batchbox.emulator.resources.schedules import build_schedule
from tests.fixtures.emulator import EmulatorProcess, running_emulator
from tests.job_helpers import add_job, create_pool, error_code, gone, idle_nodes, moment, unique, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def fast_emulator(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorProcess]:
    yield from running_emulator(docker_client, node_image, tmp_path_factory, ["--min-schedule-interval", "1"])


@pytest.fixture(scope="module")
def client(fast_emulator: EmulatorProcess) -> BatchClient:
    return fast_emulator.batch_client()


@pytest.fixture(scope="module")
def pool(client: BatchClient) -> str:
    pool_id = create_pool(client, unique("sched"), 1, slots=4)
    idle_nodes(client, pool_id, 1)
    return pool_id


def _spec(pool_id: str, command: str = "/bin/sh -c 'echo job $AZ_BATCH_JOB_ID'", **extra: object) -> object:
    return m.BatchJobSpecification(
        pool_info=m.BatchPoolInfo(pool_id=pool_id),
        job_manager_task=m.BatchJobManagerTask(id="manager", command_line=command),
        **extra,
    )


def _create(client: BatchClient, schedule: m.BatchJobScheduleConfiguration, spec: object) -> str:
    schedule_id = unique("sch")
    client.create_job_schedule(
        m.BatchJobScheduleCreateOptions(id=schedule_id, schedule=schedule, job_specification=spec)
    )
    return schedule_id


def _completed(client: BatchClient, schedule_id: str, timeout: float = 60) -> m.BatchJobSchedule:
    return wait_for(
        f"schedule {schedule_id} completed",
        lambda: (s := client.get_job_schedule(schedule_id)).state == m.BatchJobScheduleState.COMPLETED and s,
        timeout=timeout,
    )


def _jobs(client: BatchClient, schedule_id: str) -> list[m.BatchJob]:
    return list(client.list_jobs_from_schedule(schedule_id))


def _terminate(client: BatchClient, schedule_id: str) -> None:
    client.begin_terminate_job_schedule(schedule_id, polling_interval=1).result()


def test_recurring_schedule_creates_jobs_on_time_and_none_after_do_not_run_after(
    client: BatchClient, pool: str
) -> None:
    start = datetime.now(timezone.utc) + timedelta(seconds=2)
    interval = timedelta(seconds=3)
    end = start + timedelta(seconds=10)
    schedule_id = _create(
        client,
        m.BatchJobScheduleConfiguration(do_not_run_until=start, do_not_run_after=end, recurrence_interval=interval),
        _spec(pool, display_name="scheduled"),
    )
    fresh = client.get_job_schedule(schedule_id)
    assert fresh.state == m.BatchJobScheduleState.ACTIVE
    assert moment(fresh.execution_info.next_run_time) == start.replace(microsecond=start.microsecond)
    assert fresh.execution_info.recent_job is None
    done = _completed(client, schedule_id)
    jobs = sorted(_jobs(client, schedule_id), key=lambda j: moment(j.creation_time))
    assert len(jobs) >= 3
    assert [j.id for j in jobs] == [f"{schedule_id}:job-{n}" for n in range(1, len(jobs) + 1)]
    for number, job in enumerate(jobs):
        created = moment(job.creation_time)
        assert created >= start + number * interval, f"{job.id} was created early"
        assert created < end, f"{job.id} was created after doNotRunAfter"
        assert job.display_name == "scheduled" and job.state == m.BatchJobState.COMPLETED
        assert job.execution_info.termination_reason == "JMComplete"
        manager = client.get_task(job.id, "manager")
        assert b"".join(client.download_task_file(job.id, "manager", "stdout.txt")).decode() == f"job {job.id}\n"
        assert manager.execution_info.exit_code == 0
    for earlier, later in itertools.pairwise(jobs):
        assert moment(later.creation_time) >= moment(earlier.execution_info.end_time), "two active jobs at once"
    assert done.execution_info.recent_job.id == jobs[-1].id
    assert moment(done.execution_info.end_time) >= end
    assert done.execution_info.next_run_time is None
    stats = client.get_job_schedule(schedule_id, expand=["stats"]).job_schedule_statistics
    assert stats.succeeded_tasks_count == len(jobs) and stats.failed_tasks_count == 0
    assert stats.wall_clock_time > timedelta(0)
    assert client.get_job_schedule(schedule_id).job_schedule_statistics is None


def test_an_occurrence_missed_for_its_start_window_is_skipped(client: BatchClient, pool: str) -> None:
    start = datetime.now(timezone.utc) + timedelta(seconds=1)
    interval, window = timedelta(seconds=2), timedelta(seconds=1)
    schedule_id = _create(
        client,
        m.BatchJobScheduleConfiguration(
            do_not_run_until=start,
            do_not_run_after=start + timedelta(seconds=11),
            recurrence_interval=interval,
            start_window=window,
        ),
        _spec(pool, command="/bin/sleep 4"),  # each job outlives the next occurrence's window
    )
    _completed(client, schedule_id)
    jobs = sorted(_jobs(client, schedule_id), key=lambda j: moment(j.creation_time))
    assert 2 <= len(jobs) <= 3  # at 0 s, about 4 s and about 8 s: the occurrences between were missed
    for job in jobs:
        offset = moment(job.creation_time) - start
        assert offset % interval < window, f"{job.id} was created {offset} after the start: outside a window"
    for earlier, later in itertools.pairwise(jobs):
        assert moment(later.creation_time) - moment(earlier.creation_time) >= 2 * interval, "no occurrence skipped"


def test_a_running_job_holds_the_next_one_back_and_terminate_ends_it(client: BatchClient, pool: str) -> None:
    schedule_id = _create(
        client,
        m.BatchJobScheduleConfiguration(recurrence_interval=timedelta(seconds=1)),
        _spec(pool, command="/bin/sleep 30"),
    )
    first = wait_for("the first job", lambda: _jobs(client, schedule_id))[0]
    time.sleep(3)  # three intervals pass while the first job runs
    assert [j.id for j in _jobs(client, schedule_id)] == [first.id]
    _terminate(client, schedule_id)
    done = client.get_job_schedule(schedule_id)
    assert done.state == m.BatchJobScheduleState.COMPLETED
    assert done.previous_state == m.BatchJobScheduleState.TERMINATING
    job = client.get_job(first.id)
    assert job.state == m.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "TerminateJobSchedule"
    assert error_code(lambda: _terminate(client, schedule_id)) == (409, "JobScheduleCompleted")
    assert error_code(lambda: client.disable_job_schedule(schedule_id)) == (409, "JobScheduleCompleted")


def test_disabled_schedule_creates_nothing_until_enabled(client: BatchClient, pool: str) -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    schedule_id = _create(client, m.BatchJobScheduleConfiguration(do_not_run_until=later), _spec(pool))
    client.disable_job_schedule(schedule_id)
    client.disable_job_schedule(schedule_id)  # disabling a disabled schedule changes nothing
    disabled = client.get_job_schedule(schedule_id)
    assert disabled.state == m.BatchJobScheduleState.DISABLED
    wait_for("the due time to pass", lambda: datetime.now(timezone.utc) > later + timedelta(seconds=1))
    assert _jobs(client, schedule_id) == []
    client.enable_job_schedule(schedule_id)
    assert error_code(lambda: client.enable_job_schedule(schedule_id)) == (409, "OperationInvalidForCurrentState")
    done = _completed(client, schedule_id)  # its one job ran: a schedule without recurrence then completes
    jobs = _jobs(client, schedule_id)
    assert [j.id for j in jobs] == [f"{schedule_id}:job-1"]
    assert moment(jobs[0].creation_time) >= moment(disabled.state_transition_time)
    assert done.execution_info.recent_job.id == jobs[0].id


def test_patch_and_update_apply_to_the_next_jobs(client: BatchClient, pool: str) -> None:
    far = datetime.now(timezone.utc) + timedelta(hours=1)
    schedule_id = _create(client, m.BatchJobScheduleConfiguration(do_not_run_until=far), _spec(pool))
    assert _jobs(client, schedule_id) == []
    client.update_job_schedule(
        schedule_id,
        m.BatchJobScheduleUpdateOptions(
            job_specification=_spec(pool, display_name="patched"),
            metadata=[m.BatchMetadataItem(name="k", value="v")],
        ),
    )
    patched = client.get_job_schedule(schedule_id)
    assert patched.job_specification.display_name == "patched" and patched.metadata[0].value == "v"
    assert moment(patched.execution_info.next_run_time) == far.replace(microsecond=far.microsecond)
    replaced = client.get_job_schedule(schedule_id)
    replaced.schedule = m.BatchJobScheduleConfiguration()  # now
    client.replace_job_schedule(schedule_id, replaced)
    _completed(client, schedule_id)
    job = _jobs(client, schedule_id)[0]
    assert job.display_name == "patched"
    assert client.get_job_schedule(schedule_id).metadata[0].name == "k"


def test_delete_removes_the_schedule_and_its_jobs(client: BatchClient, pool: str) -> None:
    schedule_id = _create(
        client, m.BatchJobScheduleConfiguration(recurrence_interval=timedelta(seconds=1)), _spec(pool, "/bin/sleep 30")
    )
    job = wait_for("the first job", lambda: _jobs(client, schedule_id))[0]
    assert client.job_schedule_exists(schedule_id) is True
    listed = [s.id for s in client.list_job_schedules(filter=f"id eq '{schedule_id}'")]
    assert listed == [schedule_id]
    client.begin_delete_job_schedule(schedule_id, polling_interval=1).result()
    wait_for("the schedule gone", lambda: gone(lambda: client.get_job_schedule(schedule_id)))
    assert gone(lambda: client.get_job(job.id))
    # azure-batch 15.1's error policy raises on every 404, so the exists call cannot answer False (an SDK quirk).
    assert gone(lambda: client.job_schedule_exists(schedule_id))


def test_schedule_errors(client: BatchClient, pool: str) -> None:
    missing = unique("nosched")
    for call in (
        lambda: client.get_job_schedule(missing),
        lambda: client.disable_job_schedule(missing),
        lambda: client.enable_job_schedule(missing),
        lambda: _terminate(client, missing),
        lambda: client.begin_delete_job_schedule(missing),
        lambda: _jobs(client, missing),
        lambda: client.update_job_schedule(missing, m.BatchJobScheduleUpdateOptions(metadata=[])),
    ):
        assert error_code(call) == (404, "JobScheduleNotFound")
    far = m.BatchJobScheduleConfiguration(do_not_run_until=datetime.now(timezone.utc) + timedelta(hours=1))
    schedule_id = _create(client, far, _spec(pool))
    duplicate = m.BatchJobScheduleCreateOptions(id=schedule_id, schedule=far, job_specification=_spec(pool))
    assert error_code(lambda: client.create_job_schedule(duplicate)) == (409, "JobScheduleExists")
    assert error_code(lambda: add_job(client, pool, job_id=schedule_id)) == (409, "JobScheduleWithSameIdExists")
    job_id = add_job(client, pool)
    same = m.BatchJobScheduleCreateOptions(id=job_id, schedule=far, job_specification=_spec(pool))
    assert error_code(lambda: client.create_job_schedule(same)) == (409, "JobWithSameIdExists")
    short = m.BatchJobScheduleConfiguration(recurrence_interval=timedelta(milliseconds=500))
    assert error_code(lambda: _create(client, short, _spec(pool))) == (400, "InvalidPropertyValue")
    bad_spec = m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id=pool), priority=5000)
    assert error_code(lambda: _create(client, far, bad_spec)) == (400, "OutOfRangePriority")
    client.begin_delete_job_schedule(schedule_id, polling_interval=1).result()


def test_batch_minimum_interval_is_kept_unless_lowered() -> None:
    body = {"id": "s", "schedule": {"recurrenceInterval": "PT30S"}, "jobSpecification": {"poolInfo": {"poolId": "p"}}}
    with pytest.raises(BatchError) as raised:
        build_schedule(body, base_url="http://127.0.0.1:1")
    assert raised.value.code == "InvalidPropertyValue"
    assert raised.value.values["PropertyName"] == "schedule.recurrenceInterval"
    assert build_schedule(body, base_url="http://127.0.0.1:1", min_interval=timedelta(seconds=1))["schedule"] == {
        "recurrenceInterval": "PT30S"
    }
