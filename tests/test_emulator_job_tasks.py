"""A job's own tasks on a real emulator with real node containers, driven by the 15.x SDK: the job manager task,
job preparation and release tasks (order from their timestamps and output, states along the way, per-node status
with $filter / $select / paging), and the errors of each operation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from tests.fixtures.emulator import EmulatorProcess
from tests.job_helpers import (
    add_job,
    create_pool,
    error_code,
    gone,
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

_PREP_CMD = "/bin/sh -c 'sleep 3; echo prepared-on-$AZ_BATCH_NODE_ID > $AZ_BATCH_JOB_PREP_WORKING_DIR/marker'"
_TASK_CMD = "/bin/sh -c 'cat $AZ_BATCH_JOB_PREP_WORKING_DIR/marker; echo $AZ_BATCH_JOB_PREP_DIR'"
_RELEASE_CMD = "/bin/sh -c 'echo released $AZ_BATCH_TASK_ID on $AZ_BATCH_NODE_ID; ls $AZ_BATCH_JOB_PREP_WORKING_DIR'"


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def two_nodes(client: BatchClient) -> str:
    """Two nodes with two slots each."""
    pool_id = create_pool(client, unique("prep"), 2, slots=2)
    idle_nodes(client, pool_id, 2)
    return pool_id


@pytest.fixture(scope="module")
def one_node(client: BatchClient) -> str:
    """One node with two slots."""
    pool_id = create_pool(client, unique("manager"), 1, slots=2)
    idle_nodes(client, pool_id, 1)
    return pool_id


def _statuses(client: BatchClient, job_id: str, **query: Any) -> list[m.BatchJobPreparationAndReleaseTaskStatus]:
    return list(client.list_job_preparation_and_release_task_status(job_id, **query))


# --------------------------------------------------------------------------------------------- preparation, release
def test_preparation_runs_once_per_node_before_the_tasks_and_release_runs_at_the_end(
    client: BatchClient, two_nodes: str
) -> None:
    job_id = add_job(
        client,
        two_nodes,
        job_preparation_task=m.BatchJobPreparationTask(command_line=_PREP_CMD),
        job_release_task=m.BatchJobReleaseTask(command_line=_RELEASE_CMD),
    )
    job = client.get_job(job_id)
    assert job.job_preparation_task.id == "jobpreparation"
    assert job.job_preparation_task.wait_for_success is True
    assert job.job_preparation_task.rerun_on_node_reboot_after_success is True
    assert job.job_release_task.id == "jobrelease"
    assert job.job_release_task.max_wall_clock_time == timedelta(minutes=15)
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line=_TASK_CMD) for i in range(6)])
    wait_for("a task preparing", lambda: any(t.state == m.BatchTaskState.PREPARING for t in client.list_tasks(job_id)))
    assert client.get_job_task_counts(job_id).task_counts.running >= 1  # preparing counts as running
    wait_for("6 completed tasks", lambda: client.get_job_task_counts(job_id).task_counts.succeeded == 6)

    statuses = {s.node_id: s for s in _statuses(client, job_id)}
    assert len(statuses) == 2, "the preparation ran once on each node that ran a task"
    for status in statuses.values():
        prep = status.job_preparation_task_execution_info
        assert prep.state == m.BatchJobPreparationTaskState.COMPLETED
        assert prep.exit_code == 0 and prep.result == m.BatchTaskExecutionResult.SUCCESS and prep.retry_count == 0
        assert prep.task_root_directory == f"workitems/{job_id}/job-1/jobpreparation"
        assert status.job_release_task_execution_info is None
        assert status.pool_id == two_nodes
    for i in range(6):
        task = client.get_task(job_id, f"t{i}")
        node_id = task.node_info.node_id
        prep = statuses[node_id].job_preparation_task_execution_info
        assert moment(task.execution_info.start_time) >= moment(prep.end_time), "a task started before its node's prep"
        assert task.previous_state == m.BatchTaskState.PREPARING or task.execution_info.start_time > prep.end_time
        out = stdout_of(client, job_id, f"t{i}").splitlines()
        assert out == [f"prepared-on-{node_id}", f"/mnt/batch/tasks/workitems/{job_id}/job-1/jobpreparation"]

    terminate(client, job_id)
    job = wait_state(client, job_id, m.BatchJobState.COMPLETED)
    assert job.execution_info.termination_reason == "ByTest"
    statuses = {s.node_id: s for s in _statuses(client, job_id)}
    for node_id, status in statuses.items():
        release = status.job_release_task_execution_info
        assert release is not None and release.state == m.BatchJobReleaseTaskState.COMPLETED
        assert release.exit_code == 0
        assert moment(release.start_time) >= moment(status.job_preparation_task_execution_info.end_time)
        assert moment(job.execution_info.end_time) >= moment(release.end_time), "the job completed before a release"
        text = b"".join(
            client.download_node_file(two_nodes, node_id, f"workitems/{job_id}/job-1/jobrelease/stdout.txt")
        ).decode()
        assert text == f"released jobrelease on {node_id}\nmarker\n"


def test_preparation_status_filter_select_and_paging(client: BatchClient, two_nodes: str) -> None:
    job_id = add_job(client, two_nodes, job_preparation_task=m.BatchJobPreparationTask(command_line="/bin/true"))
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/sleep 1") for i in range(4)])
    wait_for("4 completed tasks", lambda: client.get_job_task_counts(job_id).task_counts.completed == 4)
    every = _statuses(client, job_id)
    assert len(every) == 2
    one = every[1].node_id
    filtered = _statuses(client, job_id, filter=f"nodeId eq '{one}'")
    assert [s.node_id for s in filtered] == [one]
    states = _statuses(client, job_id, filter="jobPreparationTaskExecutionInfo/state eq 'completed'")
    assert len(states) == 2
    selected = _statuses(client, job_id, select=["nodeId"])
    assert {s.node_id for s in selected} == {s.node_id for s in every}
    assert all(s.pool_id is None and s.job_preparation_task_execution_info is None for s in selected)
    pages = client.list_job_preparation_and_release_task_status(job_id, max_results=1).by_page()
    first = next(pages)
    assert len(list(first)) == 1 and pages.continuation_token is not None
    assert len(list(next(pages))) == 1


def test_failed_preparation_is_retried_and_then_keeps_the_job_off_the_node(client: BatchClient) -> None:
    pool_id = create_pool(client, unique("prepfail"), 1)
    idle_nodes(client, pool_id, 1)
    job_id = add_job(
        client,
        pool_id,
        job_preparation_task=m.BatchJobPreparationTask(
            command_line="/bin/sh -c 'echo try; exit 3'", constraints=m.BatchTaskConstraints(max_task_retry_count=1)
        ),
    )
    client.create_task(job_id, m.BatchTaskCreateOptions(id="blocked", command_line="/bin/true"))
    status = wait_for(
        "the preparation's final failure",
        lambda: [
            s
            for s in _statuses(client, job_id)
            if s.job_preparation_task_execution_info.state == m.BatchJobPreparationTaskState.COMPLETED
            and s.job_preparation_task_execution_info.retry_count == 1
        ],
    )[0]
    prep = status.job_preparation_task_execution_info
    assert prep.exit_code == 3 and prep.result == m.BatchTaskExecutionResult.FAILURE
    assert prep.failure_info.code == "FailureExitCode" and prep.last_retry_time is not None
    task = wait_for("the task back in the queue", lambda: (t := client.get_task(job_id, "blocked")).state
                    == m.BatchTaskState.ACTIVE and t.node_info is None and t)  # fmt: skip
    assert task.execution_info.requeue_count == 0 and task.execution_info.retry_count == 0
    other = add_job(client, pool_id)  # the node still runs other jobs' tasks
    client.create_task(other, m.BatchTaskCreateOptions(id="free", command_line="/bin/true"))
    task_of(client, other, "free", m.BatchTaskState.COMPLETED)
    assert client.get_task(job_id, "blocked").state == m.BatchTaskState.ACTIVE
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_preparation_without_wait_for_success_lets_tasks_start_beside_it(client: BatchClient, one_node: str) -> None:
    job_id = add_job(
        client,
        one_node,
        job_preparation_task=m.BatchJobPreparationTask(
            command_line="/bin/sh -c 'sleep 3; exit 1'", wait_for_success=False
        ),
    )
    client.create_task(job_id, m.BatchTaskCreateOptions(id="early", command_line="/bin/true"))
    task = task_of(client, job_id, "early", m.BatchTaskState.COMPLETED)
    assert task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    assert task.previous_state == m.BatchTaskState.RUNNING
    prep = wait_for(
        "the preparation's failure",
        lambda: [s for s in _statuses(client, job_id) if s.job_preparation_task_execution_info.exit_code == 1],
    )[0].job_preparation_task_execution_info
    assert moment(task.execution_info.end_time) <= moment(prep.end_time)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="after", command_line="/bin/true"))
    task_of(client, job_id, "after", m.BatchTaskState.COMPLETED)  # a failed prep without wait keeps the node usable
    terminate(client, job_id)


def test_release_is_killed_after_its_max_wall_clock_time_and_delete_waits_for_it(
    client: BatchClient, one_node: str
) -> None:
    prep = m.BatchJobPreparationTask(command_line="/bin/true")
    slow = m.BatchJobReleaseTask(command_line="/bin/sleep 60", max_wall_clock_time=timedelta(seconds=2))
    ended, deleted = (add_job(client, one_node, job_preparation_task=prep, job_release_task=slow) for _ in range(2))
    for job_id in (ended, deleted):
        client.create_task(job_id, m.BatchTaskCreateOptions(id="one", command_line="/bin/true"))
        task_of(client, job_id, "one", m.BatchTaskState.COMPLETED)
    terminate(client, ended)
    assert client.get_job(ended).state == m.BatchJobState.TERMINATING  # while its release runs
    job = wait_state(client, ended, m.BatchJobState.COMPLETED, timeout=30)  # long before the release's 60 s sleep
    release = _statuses(client, ended)[0].job_release_task_execution_info
    assert release.state == m.BatchJobReleaseTaskState.COMPLETED
    assert release.result == m.BatchTaskExecutionResult.FAILURE and release.failure_info.code == "TaskEnded"
    assert moment(job.execution_info.end_time) >= moment(release.end_time)

    client.begin_delete_job(deleted, polling_interval=1)
    assert client.get_job(deleted).state == m.BatchJobState.DELETING
    running = _statuses(client, deleted)[0].job_release_task_execution_info
    assert running is not None and running.state == m.BatchJobReleaseTaskState.RUNNING
    wait_for("the job gone", lambda: gone(lambda: client.get_job(deleted)), timeout=30)
    assert error_code(lambda: client.get_job(deleted)) == (404, "JobNotFound")


def test_preparation_and_release_errors(client: BatchClient, emulator: EmulatorProcess, one_node: str) -> None:
    plain = add_job(client, one_node)
    assert error_code(lambda: _statuses(client, plain)) == (409, "JobPreparationTaskNotSpecified")
    assert error_code(lambda: _statuses(client, unique("missing"))) == (404, "JobNotFound")
    assert error_code(
        lambda: add_job(client, one_node, job_release_task=m.BatchJobReleaseTask(command_line="/bin/true"))
    ) == (400, "MissingRequiredProperty")
    too_long = m.BatchJobReleaseTask(command_line="/bin/true", max_wall_clock_time=timedelta(minutes=20))
    prep = m.BatchJobPreparationTask(command_line="/bin/true")
    assert error_code(lambda: add_job(client, one_node, job_preparation_task=prep, job_release_task=too_long)) == (
        400,
        "InvalidPropertyValue",
    )
    job_id = add_job(client, one_node, job_preparation_task=prep, job_release_task=m.BatchJobReleaseTask(
        command_line="/bin/true", id="cleanup"))  # fmt: skip
    for own, code in (("jobpreparation", "TaskIdSameAsJobPreparationTask"), ("CLEANUP", "TaskIdSameAsJobReleaseTask")):
        add = m.BatchTaskCreateOptions(id=own, command_line="/bin/true")
        assert error_code(lambda add=add: client.create_task(job_id, add)) == (409, code)
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        body = {"id": unique("c"), "poolInfo": {"poolId": one_node}, "jobPreparationTask": {
            "commandLine": "/bin/true", "containerSettings": {"workingDirectory": "taskWorkingDirectory"}}}  # fmt: skip
        answer = http.send("POST", "/jobs", body=body).json()
        assert answer["code"] == "MissingRequiredProperty"
        assert {"key": "PropertyName", "value": "jobPreparationTask.containerSettings.imageName"} in answer["values"]
    for job in (plain, job_id):
        terminate(client, job)


# --------------------------------------------------------------------------------------------- job manager
def test_job_manager_runs_first_and_alone_and_its_completion_ends_the_job(client: BatchClient, one_node: str) -> None:
    manager = m.BatchJobManagerTask(id="manager", command_line="/bin/sh -c 'sleep 2; echo managed $AZ_BATCH_TASK_ID'")
    job_id = add_job(client, one_node, job_manager_task=manager)
    client.create_tasks(job_id, [m.BatchTaskCreateOptions(id=f"w{i}", command_line="/bin/sleep 30") for i in range(2)])
    stored = client.get_job(job_id).job_manager_task
    assert stored.kill_job_on_completion is True and stored.run_exclusive is True
    assert stored.allow_low_priority_node is True and stored.required_slots == 1
    first = client.get_task(job_id, "manager")
    assert first.command_line == manager.command_line
    job = wait_state(client, job_id, m.BatchJobState.COMPLETED, timeout=60)
    assert job.execution_info.termination_reason == "JMComplete"
    done = client.get_task(job_id, "manager")
    assert done.execution_info.exit_code == 0 and stdout_of(client, job_id, "manager") == "managed manager\n"
    for i in range(2):
        worker = client.get_task(job_id, f"w{i}")
        assert worker.state == m.BatchTaskState.COMPLETED
        assert worker.execution_info.failure_info.code == "TaskEnded"
        assert worker.execution_info.start_time is None, "a task ran beside an exclusive job manager"


def test_job_manager_without_kill_lets_the_job_go_on_and_shares_the_node_when_not_exclusive(
    client: BatchClient, one_node: str
) -> None:
    manager = m.BatchJobManagerTask(
        id="jm", command_line="/bin/sleep 3", kill_job_on_completion=False, run_exclusive=False
    )
    job_id = add_job(client, one_node, job_manager_task=manager, all_tasks_complete_mode="terminatejob")
    client.create_task(job_id, m.BatchTaskCreateOptions(id="beside", command_line="/bin/true"))
    beside = task_of(client, job_id, "beside", m.BatchTaskState.COMPLETED)
    jm = task_of(client, job_id, "jm", m.BatchTaskState.COMPLETED)
    assert moment(beside.execution_info.end_time) <= moment(jm.execution_info.end_time)
    job = wait_state(client, job_id, m.BatchJobState.COMPLETED)
    assert job.execution_info.termination_reason == "AllTasksComplete"
    assert error_code(
        lambda: client.create_task(job_id, m.BatchTaskCreateOptions(id="late", command_line="/bin/true"))
    ) == (409, "JobCompleted")


def test_job_manager_that_refuses_spot_nodes_waits_for_a_dedicated_one(client: BatchClient) -> None:
    pool_id = create_pool(client, unique("spot"), 0, target_low_priority_nodes=1)
    idle_nodes(client, pool_id, 1)
    manager = m.BatchJobManagerTask(id="jm", command_line="/bin/true", allow_low_priority_node=False)
    job_id = add_job(client, pool_id, job_manager_task=manager)
    other = add_job(client, pool_id)
    client.create_task(other, m.BatchTaskCreateOptions(id="spot-ok", command_line="/bin/true"))
    task_of(client, other, "spot-ok", m.BatchTaskState.COMPLETED)  # the spot node works ...
    assert client.get_task(job_id, "jm").state == m.BatchTaskState.ACTIVE  # ... but not for this job manager
    client.begin_resize_pool(
        pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=1, target_low_priority_nodes=1), polling_interval=1
    )
    jm = task_of(client, job_id, "jm", m.BatchTaskState.COMPLETED)
    node = client.get_node(pool_id, jm.node_info.node_id)
    assert node.is_dedicated is True
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_job_manager_errors(client: BatchClient, emulator: EmulatorProcess, one_node: str) -> None:
    no_id = {"id": unique("j"), "poolInfo": {"poolId": one_node}, "jobManagerTask": {"commandLine": "/bin/true"}}
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        answer = http.send("POST", "/jobs", body=no_id).json()
        assert answer["code"] == "MissingRequiredProperty"
        bad = {**no_id, "jobManagerTask": {"id": "m", "commandLine": "x", "authenticationTokenSettings": {
            "access": ["pool"]}}}  # fmt: skip
        answer = http.send("POST", "/jobs", body=bad, query="api-version=2024-02-01.19.0").json()
        assert answer["code"] == "InvalidPropertyValue"
    manager = m.BatchJobManagerTask(id="boss", command_line="/bin/sleep 20", kill_job_on_completion=False)
    job_id = add_job(client, one_node, job_manager_task=manager)
    twin = m.BatchTaskCreateOptions(id="BOSS", command_line="/bin/true")
    assert error_code(lambda: client.create_task(job_id, twin)) == (409, "TaskExists")
    terminate(client, job_id)


_MANAGER_SCRIPT = """
import json, os, urllib.error, urllib.request
base, job = os.environ["AZ_BATCH_ACCOUNT_URL"], os.environ["AZ_BATCH_JOB_ID"]
token = os.environ["AZ_BATCH_AUTHENTICATION_TOKEN"]
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json; odata=minimalmetadata"}
    request = urllib.request.Request(base + path + "?api-version=2025-06-01", data, headers, method=method)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
print(call("POST", "/jobs/" + job + "/tasks", {"id": "added", "commandLine": "/bin/echo added by the manager"}))
print(call("GET", "/jobs/" + job))
print(call("GET", "/pools"))
print(call("GET", "/jobs/" + job + "x"))
"""


def test_job_manager_adds_tasks_to_its_job_with_its_authentication_token(
    client: BatchClient, emulator: EmulatorProcess, one_node: str
) -> None:
    job_id = unique("tokens")
    manager = {
        "id": "manager",
        "commandLine": f"python3 -c '{_MANAGER_SCRIPT}'",
        "killJobOnCompletion": False,
        "authenticationTokenSettings": {"access": ["job"]},
    }
    body = {"id": job_id, "poolInfo": {"poolId": one_node}, "jobManagerTask": manager}
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        created = http.send("POST", "/jobs", body=body, query="api-version=2024-02-01.19.0")
        assert created.status_code == 201, created.text
        stored = http.send("GET", f"/jobs/{job_id}", query="api-version=2024-02-01.19.0").json()
        assert stored["jobManagerTask"]["authenticationTokenSettings"] == {"access": ["job"]}
        forged = http.send("GET", f"/jobs/{job_id}", auth="none", headers={"Authorization": "Bearer bbjt1.e30.AAAA"})
        assert forged.status_code == 403 and forged.json()["code"] == "AuthenticationFailed"
    task_of(client, job_id, "manager", m.BatchTaskState.COMPLETED)
    assert stdout_of(client, job_id, "manager").split() == ["201", "200", "403", "403"]
    added = task_of(client, job_id, "added", m.BatchTaskState.COMPLETED)
    assert added.execution_info.exit_code == 0 and stdout_of(client, job_id, "added") == "added by the manager\n"
    terminate(client, job_id)


def test_preparation_runs_again_after_a_reboot_only_when_it_asks_for_it(client: BatchClient) -> None:
    pool_id = create_pool(client, unique("reboot"), 1)
    node = idle_nodes(client, pool_id, 1)[0]
    again, once = (
        add_job(
            client,
            pool_id,
            job_preparation_task=m.BatchJobPreparationTask(
                command_line="/bin/true", rerun_on_node_reboot_after_success=rerun
            ),
        )
        for rerun in (True, False)
    )
    for job_id in (again, once):
        client.create_task(job_id, m.BatchTaskCreateOptions(id="before", command_line="/bin/true"))
        task_of(client, job_id, "before", m.BatchTaskState.COMPLETED)
    first = {job_id: _statuses(client, job_id)[0].job_preparation_task_execution_info for job_id in (again, once)}
    client.begin_reboot_node(pool_id, node.id, {"nodeRebootOption": "requeue"}, polling_interval=1).result()
    idle_nodes(client, pool_id, 1)
    for job_id in (again, once):
        client.create_task(job_id, m.BatchTaskCreateOptions(id="after", command_line="/bin/true"))
        task_of(client, job_id, "after", m.BatchTaskState.COMPLETED)
    rerun = _statuses(client, again)[0].job_preparation_task_execution_info
    kept = _statuses(client, once)[0].job_preparation_task_execution_info
    assert moment(rerun.start_time) > moment(first[again].end_time), "the preparation did not run again"
    assert kept.start_time == first[once].start_time, "a preparation that does not ask to rerun ran again"
    for job_id in (again, once):
        terminate(client, job_id)
    client.begin_delete_pool(pool_id, polling_interval=1)
