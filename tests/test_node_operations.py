"""Node operations on real node containers through the 15.x SDK: reboot, reimage, deallocate / start, scheduling,
node users, tasks as pool user accounts, remote login, extensions, service logs, remove nodes, resize timeout.

One emulator (with Batch's 5-minute floors lowered) and one single-node pool serve the module; operations run on
the node while a task is running on it, and each test leaves the node idle. The pool's start task appends a line to
``shared/starts``, so a test can count how often it ran (the node disk survives a reboot, not a reimage).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import ContainerPermission
from tests.fixtures.emulator import EmulatorProcess
from tests.pool_helpers import (
    create_pool,
    node_exec,
    node_file,
    node_state,
    nodes_in,
    start_emulator,
    task_output,
    task_state,
    unique,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_START = "/bin/sh -c 'echo started >> $AZ_BATCH_NODE_SHARED_DIR/starts'"
_ACCOUNT = "runner"


@pytest.fixture(scope="module")
def emulator(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorProcess]:
    yield from start_emulator(docker_client, node_image, tmp_path_factory.mktemp("nodeops"))


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def pool(client: BatchClient) -> str:
    pool_id = unique("ops")
    create_pool(
        client,
        pool_id,
        start_task=m.BatchStartTask(
            command_line=_START,
            wait_for_success=True,
            user_identity=m.UserIdentity(auto_user=m.AutoUserSpecification(elevation_level="admin")),
        ),
        user_accounts=[m.UserAccount(name=_ACCOUNT, password="not-kept-1A", elevation_level="admin")],
    )
    nodes_in(client, pool_id, "idle", 1)
    return pool_id


@pytest.fixture(scope="module")
def node_id(client: BatchClient, pool: str) -> str:
    return str(next(iter(client.list_nodes(pool))).id)


@pytest.fixture(scope="module")
def job(client: BatchClient, pool: str) -> str:
    job_id = unique("opsjob")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool)))
    return job_id


def _running(client: BatchClient, job: str, command: str) -> str:
    task_id = unique("t")
    client.create_task(job, m.BatchTaskCreateOptions(id=task_id, command_line=command))
    task_state(client, job, task_id, "running")
    return task_id


def _starts(client: BatchClient, pool: str, node_id: str) -> int:
    return node_file(client, pool, node_id, "shared/starts").count("started")


def test_reboot_mid_task_requeues_it_and_runs_the_start_task_again(
    client: BatchClient, pool: str, node_id: str, job: str
) -> None:
    before = _starts(client, pool, node_id)
    marker = unique("ran")
    command = f"/bin/sh -c 'if [ -f $AZ_BATCH_NODE_SHARED_DIR/{marker} ]; then echo second run; else touch "
    command += f"$AZ_BATCH_NODE_SHARED_DIR/{marker}; sleep 300; fi'"
    task_id = _running(client, job, command)
    client.begin_reboot_node(pool, node_id, {"nodeRebootOption": "requeue"}, polling_interval=1).result()
    task = task_state(client, job, task_id, "completed")
    assert task.execution_info.result == "success"
    assert (task.execution_info.requeue_count, task.execution_info.retry_count) == (1, 0)
    assert task_output(client, job, task_id).strip() == "second run"
    node = node_state(client, pool, node_id, "idle")
    assert node.start_task_info.state == "completed"
    assert _starts(client, pool, node_id) == before + 1


def test_reimage_mid_task_with_terminate_ends_the_task_and_wipes_the_disk(
    client: BatchClient, emulator: EmulatorProcess, pool: str, node_id: str, job: str
) -> None:
    task_id = _running(client, job, "/bin/sh -c 'touch $AZ_BATCH_NODE_SHARED_DIR/kept; sleep 300'")
    node_exec(emulator, node_id, "touch /etc/written-before-reimage")
    client.begin_reimage_node(pool, node_id, {"nodeReimageOption": "terminate"}, polling_interval=1).result()
    task = task_state(client, job, task_id, "completed")
    assert task.execution_info.result == "failure"
    assert task.execution_info.failure_info.code == "TaskEnded"
    assert task.execution_info.requeue_count == 0
    node_state(client, pool, node_id, "idle")
    assert _starts(client, pool, node_id) == 1  # the old starts file went with the disk; the start task ran again
    with pytest.raises(ResourceNotFoundError):
        node_file(client, pool, node_id, "shared/kept")
    assert node_exec(emulator, node_id, "ls /etc/written-before-reimage 2>/dev/null") == ""


def test_deallocate_stops_the_container_and_start_brings_the_node_back(
    client: BatchClient, emulator: EmulatorProcess, pool: str, node_id: str
) -> None:
    client.begin_deallocate_node(pool, node_id, {"nodeDeallocateOption": "requeue"}, polling_interval=1).result()
    assert client.get_node(pool, node_id).state == "deallocated"
    [container] = [c for c in emulator.containers() if c.labels.get("batchbox.node") == node_id]
    container.reload()
    assert container.status == "exited"
    assert client.get_pool(pool).current_dedicated_nodes == 1
    client.begin_start_node(pool, node_id, polling_interval=1).result()
    node = node_state(client, pool, node_id, "idle")
    assert node.start_task_info.state == "completed"


def test_disable_scheduling_with_taskcompletion_lets_the_running_task_finish(
    client: BatchClient, pool: str, node_id: str, job: str
) -> None:
    running = _running(client, job, "/bin/sh -c 'sleep 2; echo finished'")
    client.disable_node_scheduling(
        pool, node_id, m.BatchNodeDisableSchedulingOptions(node_disable_scheduling_option="taskcompletion")
    )
    waiting = unique("w")
    client.create_task(job, m.BatchTaskCreateOptions(id=waiting, command_line="/bin/true"))
    done = task_state(client, job, running, "completed")
    assert done.execution_info.result == "success"
    assert task_output(client, job, running).strip() == "finished"
    assert client.get_task(job, waiting).state == "active"
    assert client.get_node(pool, node_id).scheduling_state == "disabled"
    with pytest.raises(HttpResponseError) as again:
        client.disable_node_scheduling(pool, node_id, {"nodeDisableSchedulingOption": "requeue"})
    assert again.value.error.code == "NodeAlreadyInTargetSchedulingState"
    client.enable_node_scheduling(pool, node_id)
    assert task_state(client, job, waiting, "completed").execution_info.result == "success"


def test_node_user_is_a_real_linux_account_that_can_be_replaced_and_deleted(
    client: BatchClient, emulator: EmulatorProcess, pool: str, node_id: str
) -> None:
    expiry = datetime.now(timezone.utc) + timedelta(days=3)
    client.create_node_user(
        pool,
        node_id,
        m.BatchNodeUserCreateOptions(
            name="alice", is_admin=True, password="Pa55word!", ssh_public_key="ssh-ed25519 AAAAC3Nz alice@test",
            expiry_time=expiry,
        ),
    )  # fmt: skip
    assert "(sudo)" in node_exec(emulator, node_id, "id alice")
    assert node_exec(emulator, node_id, "cat /home/alice/.ssh/authorized_keys").strip() == (
        "ssh-ed25519 AAAAC3Nz alice@test"
    )
    assert node_exec(emulator, node_id, "getent shadow alice | cut -d: -f2").startswith("$")
    assert node_exec(emulator, node_id, "getent shadow alice | cut -d: -f8").strip() == str(
        (expiry.date() - datetime(1970, 1, 1).date()).days
    )
    with pytest.raises(ResourceExistsError) as taken:
        client.create_node_user(pool, node_id, m.BatchNodeUserCreateOptions(name="alice"))
    assert taken.value.error.code == "NodeUserExists"
    client.replace_node_user(pool, node_id, "alice", m.BatchNodeUserReplaceOptions(password="0ther-Pa55"))
    assert node_exec(emulator, node_id, "ls /home/alice/.ssh/authorized_keys 2>/dev/null") == ""
    client.delete_node_user(pool, node_id, "alice")
    assert node_exec(emulator, node_id, "getent passwd alice") == ""
    with pytest.raises(ResourceNotFoundError) as gone:
        client.delete_node_user(pool, node_id, "alice")
    assert gone.value.error.code == "NodeUserNotFound"


def test_a_task_naming_a_pool_user_account_runs_as_that_user(client: BatchClient, job: str) -> None:
    task_id = unique("as")
    client.create_task(
        job,
        m.BatchTaskCreateOptions(
            id=task_id, command_line="/bin/sh -c 'id -un; id -Gn'", user_identity=m.UserIdentity(username=_ACCOUNT)
        ),
    )
    task = task_state(client, job, task_id, "completed")
    assert task.execution_info.result == "success"
    user, groups = task_output(client, job, task_id).split("\n")[:2]
    assert user == _ACCOUNT
    assert "sudo" in groups.split()


def test_remote_login_is_refused_and_the_node_has_no_extensions(client: BatchClient, pool: str, node_id: str) -> None:
    with pytest.raises(HttpResponseError) as refused:
        client.get_node_remote_login_settings(pool, node_id)
    assert refused.value.status_code == 409
    assert refused.value.error.code == "OperationInvalidForCurrentState"
    assert list(client.list_node_extensions(pool, node_id)) == []
    with pytest.raises(ResourceNotFoundError):
        client.get_node_extension(pool, node_id, "CustomScript")


def test_service_logs_upload_to_the_given_container(
    client: BatchClient, pool: str, node_id: str, blob_storage: BlobStorage, blob_container: str
) -> None:
    url = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=1)
    )
    result = client.upload_node_logs(
        pool, node_id, m.UploadBatchServiceLogsOptions(container_url=url, start_time=datetime(2020, 1, 1))
    )
    assert result.virtual_directory_name.startswith(f"{pool}/{node_id}/")
    names = sorted(b.name for b in blob_storage.list_blobs(blob_container))
    directory = result.virtual_directory_name
    assert names == sorted(directory + n for n in ("agent.log", "startup/stdout.txt", "startup/stderr.txt"))
    assert result.number_of_files_uploaded == 3
    assert b"registered with the emulator" in blob_storage.read_blob(blob_container, directory + "agent.log")


def test_remove_nodes_with_taskcompletion_waits_for_the_task_and_lowers_the_target(
    client: BatchClient, tmp_path: Path
) -> None:
    pool_id = unique("rm")
    create_pool(client, pool_id, dedicated=2)
    first, _ = nodes_in(client, pool_id, "idle", 2)
    job_id = unique("rmjob")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    tasks = [unique("t") for _ in range(2)]
    for task_id in tasks:
        client.create_task(job_id, m.BatchTaskCreateOptions(id=task_id, command_line="/bin/sh -c 'sleep 3'"))
    running = wait_for(
        "a task on the first node",
        lambda: [t for t in client.list_tasks(job_id) if t.state == "running" and t.node_info.node_id == first.id],
    )
    client.begin_remove_nodes(
        pool_id, m.BatchNodeRemoveOptions(node_ids=[first.id], node_deallocation_option="taskcompletion"),
        polling_interval=1,
    ).result()  # fmt: skip
    pool = client.get_pool(pool_id)
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes, pool.allocation_state) == (1, 1, "steady")
    assert first.id not in [n.id for n in client.list_nodes(pool_id)]
    finished = client.get_task(job_id, running[0].id)
    assert (finished.state, finished.execution_info.result, finished.execution_info.requeue_count) == (
        "completed",
        "success",
        0,
    )
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_resize_timeout_stops_a_removal_still_waiting_for_its_task(client: BatchClient) -> None:
    pool_id = unique("rt")
    create_pool(client, pool_id, dedicated=1)
    [node] = nodes_in(client, pool_id, "idle", 1)
    job_id = unique("rtjob")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    task_id = _running(client, job_id, "/bin/sh -c 'sleep 300'")
    client.begin_resize_pool(
        pool_id,
        m.BatchPoolResizeOptions(
            target_dedicated_nodes=0, node_deallocation_option="taskcompletion", resize_timeout=timedelta(seconds=3)
        ),
    )
    pool = wait_for(
        "the resize to time out",
        lambda: (lambda p: p if p.allocation_state == "steady" and p.resize_errors else None)(client.get_pool(pool_id)),
    )
    assert [e.code for e in pool.resize_errors] == ["ResizeTimedOut"]
    assert [n.id for n in client.list_nodes(pool_id)] == [node.id]
    assert client.get_task(job_id, task_id).state == "running"
    client.terminate_task(job_id, task_id)
    client.begin_delete_pool(pool_id, polling_interval=1)
