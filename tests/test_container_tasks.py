"""Container pools and tasks end to end: real emulator, real Docker engine, the 15.x SDK, a locally built image.

A container task proves it ran in its image (the marker file of ``task_image``), in its working directory, with the
node's task directory mounted at the same path and its ``AZ_BATCH_*`` variables; run options are honoured or refused
before anything starts; a wall clock kill, a terminate and a killed node each leave no task container behind; pool
images are made present before nodes take tasks, and a missing one makes the node ``unusable``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.task_images import MARKER_PATH, MARKER_TEXT
from tests.test_emulator_runtime import add_job, completed_task, idle_nodes, stdout_of, unique, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_IMAGE_REFERENCE = m.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204")
_MISSING_IMAGE = "127.0.0.1:9/batchbox-missing:1"  # a loopback registry nobody serves: the pull fails at once
_REGISTRY_PASSWORD = "registry-password-that-must-not-leak-7f3a"


def container_vm(images: list[str], **extra: Any) -> m.VirtualMachineConfiguration:
    return m.VirtualMachineConfiguration(
        image_reference=_IMAGE_REFERENCE,
        node_agent_sku_id="batch.node.ubuntu 22.04",
        container_configuration=m.BatchContainerConfiguration(
            type=m.ContainerType.DOCKER_COMPATIBLE, container_image_names=images, **extra
        ),
    )


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def container_pool(client: BatchClient, task_image: str) -> str:
    """One node, two slots, the test image prefetched."""
    pool_id = create_container_pool(client, "containers", [task_image], task_slots_per_node=2)
    idle_nodes(client, pool_id, 1)
    return pool_id


def create_container_pool(client: BatchClient, prefix: str, images: list[str], nodes: int = 1, **extra: Any) -> str:
    """A pool with containerConfiguration (the images prefetched); its id."""
    pool_id = unique(prefix)
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=container_vm(images, **extra.pop("container", {})),
            target_dedicated_nodes=nodes,
            **extra,
        )
    )
    return pool_id


def add_container_task(client: BatchClient, job_id: str, task_id: str, command: str, image: str, **extra: Any) -> None:
    """A task running ``command`` in ``image``; ``extra`` holds more task or container settings (``settings=``)."""
    container = settings(image, **extra.pop("settings", {}))
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(id=task_id, command_line=command, container_settings=container, **extra),
    )


def error_of(exc: HttpResponseError) -> tuple[str, dict[str, str]]:
    """The Batch error code and values of a refused request, read from the body the emulator sent."""
    assert exc.response is not None
    body = exc.response.json()
    return str(body["code"]), {str(v["key"]): str(v["value"]) for v in body.get("values") or []}


def settings(image: str, **extra: Any) -> m.BatchTaskContainerSettings:
    return m.BatchTaskContainerSettings(image_name=image, **extra)


def task_containers(docker_client: docker.DockerClient, emulator: EmulatorProcess) -> list[Any]:
    labels = [f"batchbox.emulator={emulator.instance_label}", "batchbox.role=task"]
    return list(docker_client.containers.list(all=True, ignore_removed=True, filters={"label": labels}))


def running_task(client: BatchClient, job_id: str, task_id: str) -> m.BatchTask:
    def probe() -> m.BatchTask | None:
        task = client.get_task(job_id, task_id)
        return task if task.state == m.BatchTaskState.RUNNING else None

    return wait_for(f"task {task_id} to run", probe)


def wait_container(docker_client: docker.DockerClient, emulator: EmulatorProcess, present: bool) -> None:
    wait_for(
        "a task container" if present else "no task container",
        lambda: bool(task_containers(docker_client, emulator)) == present,
        timeout=60,
    )


def host_task_dir(emulator: EmulatorProcess, task: m.BatchTask) -> Path:
    return emulator.state_dir / "nodes" / task.node_info.node_id / task.node_info.task_root_directory


# ------------------------------------------------------------------------------------------------ running in an image
def test_container_task_runs_in_its_image_with_the_task_directory_mounted(
    client: BatchClient, emulator: EmulatorProcess, container_pool: str, task_image: str
) -> None:
    job_id = add_job(client, container_pool)
    script = (
        f"cat {MARKER_PATH}; pwd; echo task=$AZ_BATCH_TASK_ID; echo greeting=$GREETING; "
        "echo made-in-the-container > $AZ_BATCH_TASK_WORKING_DIR/made.txt; ls $AZ_BATCH_NODE_ROOT_DIR; "
        "echo to-stderr >&2"
    )
    run_options = {"container_run_options": "--env GREETING=hello --rm"}
    add_container_task(client, job_id, "in-image", f"/bin/sh -c '{script}'", task_image, settings=run_options)
    task = completed_task(client, job_id, "in-image")
    assert task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS, task.execution_info.failure_info
    assert task.execution_info.exit_code == 0
    lines = stdout_of(client, job_id, "in-image").splitlines()
    working_dir = f"/mnt/batch/tasks/{task.node_info.task_root_directory}/wd"
    assert lines[:4] == [MARKER_TEXT, working_dir, "task=in-image", "greeting=hello"]
    assert {"shared", "startup", "workitems"} <= set(lines[4:])
    stderr = b"".join(client.download_task_file(job_id, "in-image", "stderr.txt")).decode()
    assert stderr.strip() == "to-stderr"
    # The file the container wrote is in the node's task directory (the same path inside and outside).
    assert (host_task_dir(emulator, task) / "wd" / "made.txt").read_text().strip() == "made-in-the-container"


def test_container_image_default_working_directory_and_exit_code(
    client: BatchClient, container_pool: str, task_image: str
) -> None:
    job_id = add_job(client, container_pool)
    image_default = {"working_directory": m.ContainerWorkingDirectory.CONTAINER_IMAGE_DEFAULT}
    add_container_task(client, job_id, "image-wd", "/bin/sh -c 'pwd; exit 3'", task_image, settings=image_default)
    task = completed_task(client, job_id, "image-wd")
    assert task.execution_info.exit_code == 3
    assert task.execution_info.failure_info.code == "FailureExitCode"
    assert stdout_of(client, job_id, "image-wd").strip() == "/app"


def test_bind_mounts_only_the_sources_asked_for(client: BatchClient, container_pool: str, task_image: str) -> None:
    job_id = add_job(client, container_pool)
    mounts = [m.ContainerHostBatchBindMountEntry(source=m.ContainerHostDataPath.TASK, is_read_only=False)]
    command = "/bin/sh -c 'ls $AZ_BATCH_NODE_ROOT_DIR; ls $AZ_BATCH_NODE_SHARED_DIR || echo no-shared'"
    add_container_task(
        client, job_id, "mounts", command, task_image, settings={"container_host_batch_bind_mounts": mounts}
    )
    task = completed_task(client, job_id, "mounts")
    assert task.execution_info.exit_code == 0
    output = stdout_of(client, job_id, "mounts").split()
    assert output[0] == "workitems"
    assert "no-shared" in output


def test_missing_program_in_the_image_fails_with_127(client: BatchClient, container_pool: str, task_image: str) -> None:
    job_id = add_job(client, container_pool)
    add_container_task(client, job_id, "no-program", "/no/such/program", task_image)
    task = completed_task(client, job_id, "no-program")
    assert task.execution_info.exit_code == 127
    assert task.execution_info.failure_info.code == "CommandProgramNotFound"


# ------------------------------------------------------------------------------------------------ refused settings
@pytest.mark.parametrize(
    ("run_options", "named"),
    [
        ("--privileged", "--privileged"),
        ("--network bridge", "--network"),
        ("-v /etc:/host-etc", "--volume"),
        ("--pid=host", "--pid"),
        ("--device /dev/sda", "--device"),
        ("--no-such-option", "--no-such-option"),
    ],
)
def test_refused_run_option_is_an_error_and_no_task_exists(
    client: BatchClient, container_pool: str, task_image: str, run_options: str, named: str
) -> None:
    job_id = add_job(client, container_pool)
    with pytest.raises(HttpResponseError) as caught:
        client.create_task(
            job_id,
            m.BatchTaskCreateOptions(
                id="refused",
                command_line="/bin/true",
                container_settings=settings(task_image, container_run_options=run_options),
            ),
        )
    code, values = error_of(caught.value)
    assert (caught.value.status_code, code) == (400, "InvalidPropertyValue")
    assert values["PropertyName"] == "containerSettings.containerRunOptions"
    assert named in values["Reason"]
    with pytest.raises(ResourceNotFoundError):
        client.get_task(job_id, "refused")


def test_task_without_container_settings_on_a_container_pool_fails_as_batch_does(
    client: BatchClient, container_pool: str
) -> None:
    job_id = add_job(client, container_pool)
    client.create_task(job_id, m.BatchTaskCreateOptions(id="plain", command_line="/bin/true"))
    task = completed_task(client, job_id, "plain")
    assert task.execution_info.failure_info.code == "ContainerTaskSettingsNotFound"
    assert task.execution_info.exit_code is None


# ------------------------------------------------------------------------------------------------ no container left
def test_wall_clock_kills_the_container(
    client: BatchClient,
    emulator: EmulatorProcess,
    docker_client: docker.DockerClient,
    container_pool: str,
    task_image: str,
) -> None:
    job_id = add_job(client, container_pool)
    limit = m.BatchTaskConstraints(max_wall_clock_time="PT3S", max_task_retry_count=0)
    add_container_task(
        client, job_id, "slow", "/bin/sh -c 'echo started; sleep 120; echo finished'", task_image, constraints=limit
    )
    task = completed_task(client, job_id, "slow", timeout=60)
    assert task.execution_info.failure_info.code == "TaskEnded"
    assert task.execution_info.exit_code == 137
    assert stdout_of(client, job_id, "slow").strip() == "started"
    wait_container(docker_client, emulator, present=False)


def test_terminate_kills_the_container(
    client: BatchClient,
    emulator: EmulatorProcess,
    docker_client: docker.DockerClient,
    container_pool: str,
    task_image: str,
) -> None:
    job_id = add_job(client, container_pool)
    add_container_task(client, job_id, "long", "/bin/sh -c 'sleep 120'", task_image)
    running_task(client, job_id, "long")
    wait_container(docker_client, emulator, present=True)
    client.terminate_task(job_id, "long")
    task = completed_task(client, job_id, "long", timeout=60)
    assert task.execution_info.failure_info.code == "TaskEnded"
    wait_container(docker_client, emulator, present=False)


def test_killed_node_leaves_no_task_container(
    client: BatchClient, emulator: EmulatorProcess, docker_client: docker.DockerClient, task_image: str
) -> None:
    pool_id = create_container_pool(client, "lost", [task_image])
    node = idle_nodes(client, pool_id, 1)[0]
    job_id = add_job(client, pool_id)
    add_container_task(client, job_id, "orphan", "/bin/sh -c 'sleep 120'", task_image)
    running_task(client, job_id, "orphan")
    mine = lambda: [c for c in task_containers(docker_client, emulator) if c.labels["batchbox.task-node"] == node.id]  # noqa: E731
    wait_for("the task container", mine)
    [node_container] = [c for c in emulator.containers() if c.labels.get("batchbox.node") == node.id]
    node_container.kill()
    wait_for("the lost node's task container to go", lambda: not mine(), timeout=60)
    client.begin_delete_pool(pool_id, polling_interval=1)


# ------------------------------------------------------------------------------------------------ pool images
def test_missing_pool_image_makes_the_node_unusable_with_batchs_error(client: BatchClient) -> None:
    pool_id = create_container_pool(client, "noimage", [_MISSING_IMAGE])

    def unusable() -> m.BatchNode | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes[0] if nodes and nodes[0].state == m.BatchNodeState.UNUSABLE else None

    node = wait_for("the node to be unusable", unusable, timeout=120)
    [error] = node.errors
    assert error.code == "ContainerInvalidImage"
    assert error.message == "One or more container images specified are invalid"
    assert {d.name: d.value for d in error.error_details}["ContainerImage"] == _MISSING_IMAGE
    # It stays in the pool (Batch does not replace it).
    assert client.get_pool(pool_id).current_dedicated_nodes == 1
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_registry_password_is_never_returned_nor_logged(
    client: BatchClient, emulator: EmulatorProcess, task_image: str
) -> None:
    registry = m.ContainerRegistryReference(
        registry_server="127.0.0.1:9", username="tester", password=_REGISTRY_PASSWORD
    )
    pool_id = create_container_pool(
        client, "registry", [task_image], nodes=0, container={"container_registries": [registry]}
    )
    pool = client.get_pool(pool_id)
    [shown] = pool.virtual_machine_configuration.container_configuration.container_registries
    assert (shown.registry_server, shown.username, shown.password) == ("127.0.0.1:9", "tester", None)
    listed = [p for p in client.list_pools() if p.id == pool_id]
    assert listed[0].virtual_machine_configuration.container_configuration.container_registries[0].password is None
    assert _REGISTRY_PASSWORD not in emulator.log_text()
    assert _REGISTRY_PASSWORD.encode() not in (emulator.state_dir / "state.db").read_bytes()
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_start_task_runs_in_a_container(client: BatchClient, task_image: str) -> None:
    start = m.BatchStartTask(
        command_line=f"/bin/sh -c 'cp {MARKER_PATH} $AZ_BATCH_NODE_SHARED_DIR/from-start-task.txt'",
        container_settings=settings(task_image),
        wait_for_success=True,
    )
    pool_id = create_container_pool(client, "start", [task_image], start_task=start)
    node = idle_nodes(client, pool_id, 1)[0]
    assert node.start_task_info.exit_code == 0
    job_id = add_job(client, pool_id)
    add_container_task(
        client, job_id, "reader", "/bin/sh -c 'cat $AZ_BATCH_NODE_SHARED_DIR/from-start-task.txt'", task_image
    )
    completed_task(client, job_id, "reader")
    assert stdout_of(client, job_id, "reader").strip() == MARKER_TEXT
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_start_task_container_needs_a_container_pool(client: BatchClient, task_image: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client.create_pool(
            m.BatchPoolCreateOptions(
                id=unique("nostart"),
                vm_size="standard_d2_v3",
                virtual_machine_configuration=m.VirtualMachineConfiguration(
                    image_reference=_IMAGE_REFERENCE, node_agent_sku_id="batch.node.ubuntu 22.04"
                ),
                target_dedicated_nodes=0,
                start_task=m.BatchStartTask(command_line="/bin/true", container_settings=settings(task_image)),
            )
        )
    code, values = error_of(caught.value)
    assert (caught.value.status_code, code) == (400, "InvalidPropertyValue")
    assert values["PropertyName"] == "startTask.containerSettings"


def test_a_container_task_survives_an_emulator_crash(
    client: BatchClient, emulator: EmulatorProcess, container_pool: str, task_image: str
) -> None:
    job_id = add_job(client, container_pool)
    add_container_task(client, job_id, "survivor", "/bin/sh -c 'echo before; sleep 6; echo after'", task_image)
    running_task(client, job_id, "survivor")
    # "running" is set when the emulator hands the task to the node; crash only once its container has started
    # (a crash before the agent got the task would rightly requeue it).
    wait_for(
        "the survivor's container to start",
        lambda: (info := client.get_task(job_id, "survivor").execution_info) and info.container_info is not None,
    )
    emulator.restart(crash=True)  # the task's container runs on; the new emulator takes it up when the agent asks
    restarted = emulator.batch_client()
    task = completed_task(restarted, job_id, "survivor", timeout=120)
    assert task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS, task.execution_info.failure_info
    assert (task.execution_info.exit_code, task.execution_info.requeue_count) == (0, 0)
    assert stdout_of(restarted, job_id, "survivor").splitlines() == ["before", "after"]


def test_container_info_names_the_container_and_its_state_as_the_engine_saw_it(
    client: BatchClient, emulator: EmulatorProcess, container_pool: str, task_image: str
) -> None:
    job_id = add_job(client, container_pool)
    # Docker mounts each container's hosts, hostname and resolv.conf from a directory named by the container's id.
    own_id = "grep -o 'containers/[0-9a-f]*' /proc/self/mountinfo | head -n 1 | cut -d/ -f2"
    add_container_task(client, job_id, "info", f"/bin/sh -c '{own_id} > $AZ_BATCH_TASK_WORKING_DIR/id; exit 3'",
        task_image)  # fmt: skip
    client.create_task(job_id, m.BatchTaskCreateOptions(id="plain", command_line="/bin/true"))
    add_container_task(client, job_id, "long", "/bin/sleep 60", task_image)
    running = wait_for(
        "the running task's containerInfo",
        lambda: (
            (t := client.get_task(job_id, "long")).execution_info and t.execution_info.container_info is not None and t
        ),
    )
    assert running.state == m.BatchTaskState.RUNNING
    assert running.execution_info.container_info.state == "running"
    assert len(running.execution_info.container_info.container_id) == 64
    client.terminate_task(job_id, "long")
    task = completed_task(client, job_id, "info")
    info = task.execution_info.container_info
    assert info is not None and info.state == "exited" and info.error is None
    assert len(info.container_id) == 64 and int(info.container_id, 16) >= 0
    assert (host_task_dir(emulator, task) / "wd" / "id").read_text().strip() == info.container_id
    assert task.execution_info.exit_code == 3
    plain = completed_task(client, job_id, "plain")
    assert plain.execution_info.failure_info.code == "ContainerTaskSettingsNotFound"
    assert plain.execution_info.container_info is None
