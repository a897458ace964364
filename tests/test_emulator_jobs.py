"""Job operations and task semantics on a real emulator with real node containers, driven by the 15.x SDK (raw
HTTP where the SDK cannot say it): disable / enable with each disableTasks, a job's pool changed while disabled,
exitConditions with onTaskFailure, retentionTime, affinityInfo, allowTaskPreemption, jobDefaultOrder, subtasks and
integer properties sent as strings."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from tests.fixtures.emulator import EmulatorProcess
from tests.job_helpers import (
    add_job,
    create_pool,
    error_code,
    idle_nodes,
    moment,
    stdout_of,
    task_of,
    terminate,
    unique,
    wait_for,
    wait_state,
)
from tests.signing import SignedClient

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def pool(client: BatchClient) -> str:
    """One node with one slot (tests that need it busy use their own pool)."""
    pool_id = create_pool(client, unique("jobs"), 1, slots=2)
    idle_nodes(client, pool_id, 1)
    return pool_id


def _disable(client: BatchClient, job_id: str, how: str) -> None:
    client.begin_disable_job(job_id, m.BatchJobDisableOptions(disable_tasks=how), polling_interval=1)


def _enable(client: BatchClient, job_id: str) -> None:
    client.begin_enable_job(job_id, polling_interval=1)


def _running(client: BatchClient, job_id: str, task_id: str) -> m.BatchTask:
    return task_of(client, job_id, task_id, m.BatchTaskState.RUNNING)


# --------------------------------------------------------------------------------------------- disable / enable
def test_disable_requeue_holds_every_task_until_enabled_and_the_pool_can_change_meanwhile(
    client: BatchClient, pool: str
) -> None:
    job_id = add_job(client, pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="long", command_line="/bin/sleep 30"))
    _running(client, job_id, "long")
    _disable(client, job_id, "requeue")
    job = wait_state(client, job_id, m.BatchJobState.DISABLED)
    assert job.previous_state == m.BatchJobState.DISABLING
    long = client.get_task(job_id, "long")
    assert long.state == m.BatchTaskState.ACTIVE and long.execution_info.requeue_count == 1
    assert long.execution_info.retry_count == 0
    client.create_task(job_id, m.BatchTaskCreateOptions(id="new", command_line="/bin/true"))
    moved = create_pool(client, unique("moved"), 1)
    client.update_job(job_id, m.BatchJobUpdateOptions(pool_info=m.BatchPoolInfo(pool_id=moved)))
    assert client.get_job(job_id).pool_info.pool_id == moved
    idle_nodes(client, moved, 1)
    time.sleep(2)  # a node is free, the job is disabled: nothing may start
    assert {t.state for t in client.list_tasks(job_id)} == {m.BatchTaskState.ACTIVE}
    assert client.get_job(job_id).state == m.BatchJobState.DISABLED
    _enable(client, job_id)
    job = client.get_job(job_id)
    assert job.state == m.BatchJobState.ACTIVE and job.previous_state == m.BatchJobState.ENABLING
    new = task_of(client, job_id, "new", m.BatchTaskState.COMPLETED)
    assert new.node_info.pool_id == moved
    assert moment(new.execution_info.start_time) > moment(job.previous_state_transition_time)
    terminate(client, job_id)
    client.begin_delete_pool(moved, polling_interval=1)


def test_disable_terminate_ends_running_tasks_and_wait_lets_them_finish(client: BatchClient, pool: str) -> None:
    ended = add_job(client, pool)
    client.create_task(ended, m.BatchTaskCreateOptions(id="cut", command_line="/bin/sleep 30"))
    _running(client, ended, "cut")
    _disable(client, ended, "terminate")
    wait_state(client, ended, m.BatchJobState.DISABLED)
    cut = client.get_task(ended, "cut")
    assert cut.state == m.BatchTaskState.COMPLETED and cut.execution_info.failure_info.code == "TaskEnded"

    waited = add_job(client, pool)
    client.create_task(waited, m.BatchTaskCreateOptions(id="finish", command_line="/bin/sleep 5"))
    _running(client, waited, "finish")
    client.begin_disable_job(waited, m.BatchJobDisableOptions(disable_tasks="wait"))
    assert client.get_job(waited).state == m.BatchJobState.DISABLING  # its task still runs
    job = wait_state(client, waited, m.BatchJobState.DISABLED)
    finish = client.get_task(waited, "finish")
    assert finish.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    assert moment(job.state_transition_time) >= moment(finish.execution_info.end_time)
    for job_id in (ended, waited):
        terminate(client, job_id)


def test_disable_and_enable_errors(client: BatchClient, pool: str) -> None:
    job_id = add_job(client, pool)
    assert error_code(lambda: _enable(client, job_id)) == (409, "OperationInvalidForCurrentState")
    _disable(client, job_id, "requeue")
    _disable(client, job_id, "wait")  # a disabled job stays disabled
    assert client.get_job(job_id).state == m.BatchJobState.DISABLED
    client.update_job(job_id, m.BatchJobUpdateOptions(priority=5))  # a disabled job can be changed
    assert client.get_job(job_id).priority == 5
    terminate(client, job_id)
    wait_state(client, job_id, m.BatchJobState.COMPLETED)
    assert error_code(lambda: _disable(client, job_id, "requeue")) == (409, "JobCompleted")
    assert error_code(lambda: _enable(client, job_id)) == (409, "JobCompleted")
    missing = unique("missing")
    assert error_code(lambda: _disable(client, missing, "requeue")) == (404, "JobNotFound")
    assert error_code(lambda: _enable(client, missing)) == (404, "JobNotFound")
    active = add_job(client, pool)
    assert error_code(
        lambda: client.update_job(active, m.BatchJobUpdateOptions(pool_info=m.BatchPoolInfo(pool_id="elsewhere")))
    ) == (409, "OperationInvalidForCurrentState")
    terminate(client, active)


def test_disable_body_is_checked(emulator: EmulatorProcess, client: BatchClient, pool: str) -> None:
    job_id = add_job(client, pool)
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        for body, code in (({}, "MissingRequiredProperty"), ({"disableTasks": "pause"}, "InvalidPropertyValue")):
            assert http.send("POST", f"/jobs/{job_id}/disable", body=body).json()["code"] == code
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE
    terminate(client, job_id)


# --------------------------------------------------------------------------------------------- exit conditions
def _exiting(task_id: str, code: int, conditions: m.ExitConditions | None = None, **extra: object) -> object:
    return m.BatchTaskCreateOptions(
        id=task_id, command_line=f"/bin/sh -c 'exit {code}'", exit_conditions=conditions, **extra
    )


def test_exit_codes_terminate_or_disable_the_job_when_it_performs_exit_options(client: BatchClient, pool: str) -> None:
    options = "performexitoptionsjobaction"
    terminating = add_job(client, pool, task_failure_mode=options)
    conditions = m.ExitConditions(
        exit_codes=[m.ExitCodeMapping(code=3, exit_options=m.ExitOptions(job_action="terminate"))],
        exit_code_ranges=[m.ExitCodeRangeMapping(start=10, end=20, exit_options=m.ExitOptions(job_action="disable"))],
        default=m.ExitOptions(job_action="none"),
    )
    client.create_task(terminating, _exiting("three", 3, conditions))
    job = wait_state(client, terminating, m.BatchJobState.COMPLETED)
    assert job.execution_info.termination_reason == "TaskFailed"

    disabling = add_job(client, pool, task_failure_mode=options)
    client.create_task(disabling, _exiting("fifteen", 15, conditions))
    wait_state(client, disabling, m.BatchJobState.DISABLED)
    assert client.get_task(disabling, "fifteen").execution_info.exit_code == 15

    quiet = add_job(client, pool, task_failure_mode=options)
    client.create_task(quiet, _exiting("four", 4, conditions))
    task_of(client, quiet, "four", m.BatchTaskState.COMPLETED)
    assert client.get_job(quiet).state == m.BatchJobState.ACTIVE  # default: none

    by_default = add_job(client, pool, task_failure_mode=options)
    client.create_task(by_default, _exiting("plain", 1))
    assert wait_state(client, by_default, m.BatchJobState.COMPLETED).execution_info.termination_reason == "TaskFailed"
    for job_id in (disabling, quiet):
        terminate(client, job_id)


def test_job_without_exit_options_ignores_failures_and_refuses_job_actions(client: BatchClient, pool: str) -> None:
    job_id = add_job(client, pool)
    client.create_task(job_id, _exiting("fails", 1))
    task_of(client, job_id, "fails", m.BatchTaskState.COMPLETED)
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE
    action = m.ExitConditions(default=m.ExitOptions(job_action="terminate"))
    assert error_code(lambda: client.create_task(job_id, _exiting("refused", 1, action))) == (
        400,
        "InvalidPropertyValue",
    )
    terminate(client, job_id)


def test_pre_processing_and_file_upload_errors_and_dependency_actions(client: BatchClient, pool: str) -> None:
    job_id = add_job(client, pool, task_failure_mode="performexitoptionsjobaction", uses_task_dependencies=True)
    conditions = m.ExitConditions(
        pre_processing_error=m.ExitOptions(job_action="none", dependency_action="satisfy"),
        file_upload_error=m.ExitOptions(job_action="none", dependency_action="satisfy"),
    )
    # An exit code listed takes precedence over a file upload error: so not in the conditions of "noupload".
    zero_blocks = m.ExitConditions(exit_codes=[m.ExitCodeMapping(code=0, exit_options=m.ExitOptions(
        dependency_action="block"))])  # fmt: skip
    missing = m.ResourceFile(http_url="http://127.0.0.1:9/absent.txt", file_path="absent.txt")
    upload = m.OutputFile(
        file_pattern="*.txt",
        destination=m.OutputFileDestination(
            container=m.OutputFileBlobContainerDestination(container_url="http://127.0.0.1:9/nowhere?sig=x")
        ),
        upload_options=m.OutputFileUploadConfiguration(upload_condition="taskcompletion"),
    )
    client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(id="nofile", command_line="/bin/true", resource_files=[missing],
                                     exit_conditions=conditions),
            m.BatchTaskCreateOptions(id="noupload", command_line="/bin/sh -c 'echo x > out.txt'",
                                     output_files=[upload], exit_conditions=conditions),
            m.BatchTaskCreateOptions(id="blocking", command_line="/bin/true", exit_conditions=zero_blocks),
            m.BatchTaskCreateOptions(id="after-pre", command_line="/bin/true",
                                     depends_on=m.BatchTaskDependencies(task_ids=["nofile", "noupload"])),
            m.BatchTaskCreateOptions(id="after-ok", command_line="/bin/true",
                                     depends_on=m.BatchTaskDependencies(task_ids=["blocking"])),
        ],
    )  # fmt: skip
    nofile = task_of(client, job_id, "nofile", m.BatchTaskState.COMPLETED)
    assert (
        nofile.execution_info.exit_code is None and nofile.execution_info.result == m.BatchTaskExecutionResult.FAILURE
    )
    noupload = task_of(client, job_id, "noupload", m.BatchTaskState.COMPLETED)
    assert noupload.execution_info.failure_info.code.startswith("FileUpload")
    task_of(client, job_id, "after-pre", m.BatchTaskState.COMPLETED)  # both failures satisfy it
    task_of(client, job_id, "blocking", m.BatchTaskState.COMPLETED)
    time.sleep(1)
    assert client.get_task(job_id, "after-ok").state == m.BatchTaskState.ACTIVE  # exit code 0 blocks it
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE  # jobAction none for both failures
    terminate(client, job_id)


# --------------------------------------------------------------------------------------------- retention
def test_retention_time_removes_the_task_directory(client: BatchClient, emulator: EmulatorProcess, pool: str) -> None:
    job_id = add_job(client, pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="brief",
            command_line="/bin/sh -c 'echo kept for a while'",
            constraints=m.BatchTaskConstraints(retention_time=timedelta(seconds=8)),
        ),
    )
    client.create_task(job_id, m.BatchTaskCreateOptions(id="kept", command_line="/bin/sh -c 'echo kept'"))
    brief = task_of(client, job_id, "brief", m.BatchTaskState.COMPLETED)
    kept = task_of(client, job_id, "kept", m.BatchTaskState.COMPLETED)
    assert kept.constraints.retention_time == timedelta(days=7)
    assert stdout_of(client, job_id, "brief") == "kept for a while\n"
    host_dir = Path(emulator.state_dir) / "nodes" / brief.node_info.node_id / brief.node_info.task_root_directory
    assert host_dir.is_dir()
    wait_for("the task directory removed", lambda: not host_dir.exists(), timeout=30)
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        answer = http.send("GET", f"/jobs/{job_id}/tasks/brief/files/stdout.txt")
        assert answer.status_code == 404 and answer.json()["code"] == "FileNotFound"
    assert error_code(lambda: list(client.list_task_files(job_id, "brief"))) == (409, "TaskFilesCleanedup")
    assert stdout_of(client, job_id, "kept") == "kept\n"
    client.begin_delete_job(job_id, polling_interval=1)
    job_dir = host_dir.parents[1]
    wait_for("the job's directory removed with the job", lambda: not job_dir.exists(), timeout=30)


# --------------------------------------------------------------------------------------------- placement
def test_affinity_sends_a_task_to_the_node_it_names(client: BatchClient) -> None:
    pool_id = create_pool(client, unique("affinity"), 2, slots=4)
    nodes = idle_nodes(client, pool_id, 2)
    job_id = add_job(client, pool_id)
    wanted = {f"to{i}-{n}": node for n, node in enumerate(nodes) for i in range(3)}
    client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(
                id=task_id, command_line="/bin/true", affinity_info=m.BatchAffinityInfo(affinity_id=node.affinity_id)
            )
            for task_id, node in wanted.items()
        ],
    )
    wait_for("6 completed tasks", lambda: client.get_job_task_counts(job_id).task_counts.completed == 6)
    for task_id, node in wanted.items():
        task = client.get_task(job_id, task_id)
        assert task.node_info.node_id == node.id and task.affinity_info.affinity_id == node.affinity_id
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_higher_priority_task_preempts_a_preemptible_one(client: BatchClient) -> None:
    pool_id = create_pool(client, unique("preempt"), 1)
    idle_nodes(client, pool_id, 1)
    low = add_job(client, pool_id, priority=0, allow_task_preemption=True)
    client.create_task(low, m.BatchTaskCreateOptions(id="low", command_line="/bin/sh -c 'sleep 6; echo low'"))
    _running(client, low, "low")
    kept = add_job(client, pool_id, priority=50)  # not preemptible: it must wait like before
    client.create_task(kept, m.BatchTaskCreateOptions(id="waits", command_line="/bin/true"))
    high = add_job(client, pool_id, priority=100)
    client.create_task(high, m.BatchTaskCreateOptions(id="high", command_line="/bin/sh -c 'echo high'"))
    first = task_of(client, high, "high", m.BatchTaskState.COMPLETED)
    low_task = task_of(client, low, "low", m.BatchTaskState.COMPLETED)
    assert low_task.execution_info.requeue_count == 1 and stdout_of(client, low, "low") == "low\n"
    assert moment(low_task.execution_info.start_time) >= moment(first.execution_info.end_time)
    for job_id in (low, kept, high):
        terminate(client, job_id)
    client.begin_delete_pool(pool_id, polling_interval=1)


@pytest.mark.parametrize(("order", "expected"), [("none", "ABABAB"), ("creationtime", "AAABBB")])
def test_job_default_order_of_equal_priority_jobs(client: BatchClient, order: str, expected: str) -> None:
    policy = m.BatchTaskSchedulingPolicy(node_fill_type="spread", job_default_order=order)
    pool_id = create_pool(client, unique("order"), 0, task_scheduling_policy=policy)
    jobs = {"A": add_job(client, pool_id), "B": add_job(client, pool_id)}
    for job_id in jobs.values():
        client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true") for i in range(3)])
    client.begin_resize_pool(pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=1)
    for job_id in jobs.values():
        wait_for(
            "3 completed tasks", lambda job_id=job_id: client.get_job_task_counts(job_id).task_counts.completed == 3
        )
    starts = sorted(
        (moment(t.execution_info.start_time), name) for name, job_id in jobs.items() for t in client.list_tasks(job_id)
    )
    assert "".join(name for _, name in starts) == expected
    assert client.get_pool(pool_id).task_scheduling_policy.job_default_order == order
    client.begin_delete_pool(pool_id, polling_interval=1)


# --------------------------------------------------------------------------------------------- small operations
def test_subtasks_of_an_ordinary_task_are_none(client: BatchClient, pool: str) -> None:
    job_id = add_job(client, pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="single", command_line="/bin/true"))
    assert list(client.list_subtasks(job_id, "single")) == []
    assert error_code(lambda: list(client.list_subtasks(job_id, "absent"))) == (404, "TaskNotFound")
    assert error_code(lambda: list(client.list_subtasks(unique("nojob"), "single"))) == (404, "JobNotFound")
    terminate(client, job_id)


def test_integer_properties_sent_as_strings_of_digits(emulator: EmulatorProcess, client: BatchClient) -> None:
    pool_id = unique("digits")
    body = {
        "id": pool_id,
        "vmSize": "standard_d2_v3",
        "targetDedicatedNodes": "0",
        "taskSlotsPerNode": "2",
        "virtualMachineConfiguration": VM_BODY,
    }
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        assert http.send("POST", "/pools", body=body).status_code == 201
        words = http.send("POST", f"/pools/{pool_id}/resize", body={"targetDedicatedNodes": "one"})
        assert words.status_code == 400 and words.json()["code"] == "InvalidRequestBody"
        resize = http.send("POST", f"/pools/{pool_id}/resize", body={"targetDedicatedNodes": "1"})
        assert resize.status_code == 202, resize.text
    pool = client.get_pool(pool_id)
    assert pool.task_slots_per_node == 2 and pool.target_dedicated_nodes == 1
    client.begin_delete_pool(pool_id, polling_interval=1)


VM_BODY = {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}
