"""A job's own tasks in containers on a real emulator with real node containers, driven by the 15.x SDK: a job
preparation task and a release task run in their image (the test image's marker file proves it) and the job's tasks
see what the preparation wrote; preparation and release tasks refuse application packages, which Batch does not
define for them."""

from __future__ import annotations

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.task_images import MARKER_PATH
from tests.job_helpers import terminate, wait_for, wait_state
from tests.signing import SignedClient
from tests.test_container_tasks import add_container_task, create_container_pool, settings
from tests.test_emulator_runtime import add_job, completed_task, idle_nodes, stdout_of, unique

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_PREP = f"/bin/sh -c 'test -f {MARKER_PATH} && echo prepared-in-image > $AZ_BATCH_JOB_PREP_WORKING_DIR/marker'"
_RELEASE = f"/bin/sh -c 'test -f {MARKER_PATH} && cat $AZ_BATCH_JOB_PREP_WORKING_DIR/marker'"


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def container_pool(client: BatchClient, task_image: str) -> str:
    pool_id = create_container_pool(client, "owntasks", [task_image])
    idle_nodes(client, pool_id, 1)
    return pool_id


def test_preparation_and_release_run_in_their_containers(
    client: BatchClient, container_pool: str, task_image: str
) -> None:
    job_id = add_job(
        client,
        container_pool,
        job_preparation_task=m.BatchJobPreparationTask(command_line=_PREP, container_settings=settings(task_image)),
        job_release_task=m.BatchJobReleaseTask(command_line=_RELEASE, container_settings=settings(task_image)),
    )
    job = client.get_job(job_id)
    assert job.job_preparation_task.container_settings.image_name == task_image
    assert job.job_release_task.container_settings.image_name == task_image
    add_container_task(client, job_id, "reads", "/bin/sh -c 'cat $AZ_BATCH_JOB_PREP_WORKING_DIR/marker'", task_image)
    task = completed_task(client, job_id, "reads")
    assert task.execution_info.exit_code == 0, task.execution_info.failure_info
    assert stdout_of(client, job_id, "reads").strip() == "prepared-in-image"
    statuses = list(client.list_job_preparation_and_release_task_status(job_id))
    assert len(statuses) == 1
    prep = statuses[0].job_preparation_task_execution_info
    assert prep.exit_code == 0 and prep.result == m.BatchTaskExecutionResult.SUCCESS, prep.failure_info

    terminate(client, job_id)
    wait_state(client, job_id, m.BatchJobState.COMPLETED)
    status = next(iter(client.list_job_preparation_and_release_task_status(job_id)))
    release = status.job_release_task_execution_info
    assert release is not None and release.exit_code == 0, release and release.failure_info
    text = b"".join(
        client.download_node_file(container_pool, status.node_id, f"workitems/{job_id}/job-1/jobrelease/stdout.txt")
    ).decode()
    assert text == "prepared-in-image\n"


def test_preparation_without_container_settings_runs_on_a_container_pools_node(
    client: BatchClient, container_pool: str, task_image: str
) -> None:
    prep = m.BatchJobPreparationTask(command_line="/bin/sh -c 'echo on-node > $AZ_BATCH_JOB_PREP_WORKING_DIR/marker'")
    job_id = add_job(client, container_pool, job_preparation_task=prep)
    add_container_task(client, job_id, "reads", "/bin/sh -c 'cat $AZ_BATCH_JOB_PREP_WORKING_DIR/marker'", task_image)
    task = completed_task(client, job_id, "reads")
    assert task.execution_info.exit_code == 0, task.execution_info.failure_info
    assert stdout_of(client, job_id, "reads").strip() == "on-node"
    terminate(client, job_id)


@pytest.mark.parametrize("own_task", ["jobPreparationTask", "jobReleaseTask"])
def test_preparation_and_release_refuse_application_packages(
    emulator: EmulatorProcess, container_pool: str, own_task: str
) -> None:
    packages = [{"applicationId": "tools"}]
    body = {
        "id": unique("pkgs"),
        "poolInfo": {"poolId": container_pool},
        "jobPreparationTask": {"commandLine": "/bin/true"},
        own_task: {"commandLine": "/bin/true", "applicationPackageReferences": packages},
    }
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        answer = http.send("POST", "/jobs", body=body)
        assert answer.status_code == 400
        error = answer.json()
        assert error["code"] == "InvalidRequestBody"
        values = {item["key"]: item["value"] for item in error["values"]}
        assert values["PropertyName"] == f"{own_task}.applicationPackageReferences"
        assert "does not exist on type" in values["Reason"]
        assert http.send("GET", f"/jobs/{body['id']}").status_code == 404


_PASSWORD = "own-task-registry-password-must-not-leak-51c9"


def test_registry_passwords_of_own_tasks_are_kept_sealed_also_through_a_schedule(
    client: BatchClient, emulator: EmulatorProcess, task_image: str
) -> None:
    pool_id = create_container_pool(client, "ownregistry", [task_image], nodes=0)
    registry = m.ContainerRegistryReference(registry_server="127.0.0.1:9", username="tester", password=_PASSWORD)
    container = settings(task_image, registry=registry)
    spec = m.BatchJobSpecification(
        pool_info=m.BatchPoolInfo(pool_id=pool_id),
        job_manager_task=m.BatchJobManagerTask(id="manager", command_line="/bin/true", container_settings=container),
        job_preparation_task=m.BatchJobPreparationTask(command_line="/bin/true", container_settings=container),
    )
    schedule_id = unique("ownsched")
    client.create_job_schedule(
        m.BatchJobScheduleCreateOptions(
            id=schedule_id, schedule=m.BatchJobScheduleConfiguration(), job_specification=spec
        )
    )
    shown = client.get_job_schedule(schedule_id).job_specification.job_preparation_task.container_settings.registry
    assert (shown.registry_server, shown.username, shown.password) == ("127.0.0.1:9", "tester", None)
    job = wait_for(
        "the schedule's job",
        lambda: next(iter(client.list_jobs_from_schedule(schedule_id)), None),
    )
    manager = client.get_task(job.id, "manager")
    assert manager.container_settings.registry.username == "tester"
    assert manager.container_settings.registry.password is None
    assert client.get_job(job.id).job_manager_task.container_settings.registry.password is None
    assert _PASSWORD not in emulator.log_text()
    assert _PASSWORD.encode() not in (emulator.state_dir / "state.db").read_bytes()
    client.begin_terminate_job_schedule(schedule_id, polling_interval=1).result()
    client.begin_delete_pool(pool_id, polling_interval=1)
