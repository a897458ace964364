"""Pools that scale and nodes that bind, on a real emulator with real node containers and the 15.x SDK: VM sizes as
container limits, Batch's refusals of sizes and images, the account lists, autoscale formulas end to end, and
spot preemption triggered with ``batchbox local preempt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import ContainerPermission
from tests.fixtures.emulator import EmulatorProcess
from tests.pool_helpers import (
    VM,
    create_pool,
    nodes_in,
    start_emulator,
    task_output,
    task_state,
    unique,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_LIMITS = (
    "/bin/sh -c 'nproc; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scaling")


@pytest.fixture(scope="module")
def emulator(docker_client: docker.DockerClient, node_image: str, home: Path) -> Iterator[EmulatorProcess]:
    yield from start_emulator(docker_client, node_image, home)


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


def _run_on_new_pool(client: BatchClient, vm_size: str, command: str) -> tuple[m.BatchNode, str]:
    pool_id, job_id, task_id = unique("size"), unique("sizejob"), unique("t")
    create_pool(client, pool_id, vm_size=vm_size)
    [node] = nodes_in(client, pool_id, "idle", 1)
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(id=task_id, command_line=command))
    task_state(client, job_id, task_id, "completed")
    output = task_output(client, job_id, task_id)
    client.begin_delete_pool(pool_id, polling_interval=1)
    return node, output


def test_vm_size_binds_cpus_and_memory_inside_the_node(client: BatchClient) -> None:
    node, output = _run_on_new_pool(client, "Standard_A2m_v2", _LIMITS)
    cpus, memory = output.split()
    assert int(cpus) == 2
    assert int(memory) == 16 * 1024**3
    assert node.errors is None


def test_a_size_larger_than_the_machine_is_capped_and_says_so(client: BatchClient) -> None:
    node, output = _run_on_new_pool(client, "Standard_E64s_v3", _LIMITS)
    cpus, memory = (int(v) for v in output.split())
    assert cpus == os.cpu_count()
    assert memory < 432 * 1024**3
    [error] = node.errors
    assert error.code == "VmSizeCappedToMachine"
    assert {d.name: d.value for d in error.error_details} == {"vCPUs": str(cpus), "MemoryBytes": str(memory)}


@pytest.mark.parametrize(
    ("change", "property_name"),
    [
        ({"vm_size": "Standard_Unknown_v9"}, "vmSize"),
        (
            {"image": m.BatchVmImageReference(publisher="a", offer="b", sku="c"), "sku": "batch.node.ubuntu 22.04"},
            "imageReference",
        ),
        (
            {
                "image": m.BatchVmImageReference(
                    publisher="canonical", offer="0001-com-ubuntu-server-focal", sku="20_04-lts"
                ),
                "sku": "batch.node.ubuntu 20.04",
            },
            "imageReference",
        ),
        (
            {
                "image": m.BatchVmImageReference(
                    virtual_machine_image_id="/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i"
                ),
                "sku": "batch.node.ubuntu 22.04",
            },
            "virtualMachineImageId",
        ),
        ({"sku": "batch.node.ubuntu 18.04"}, "nodeAgentSKUId"),
    ],
    ids=["unknown-size", "unsupported-image", "retired-image", "malformed-image-id", "retired-sku"],
)
def test_pool_creation_refuses_what_batch_refuses(client: BatchClient, change: dict, property_name: str) -> None:
    vm = m.VirtualMachineConfiguration(
        image_reference=change.get("image", VM.image_reference),
        node_agent_sku_id=change.get("sku", "batch.node.ubuntu 22.04"),
    )
    pool_id = unique("refused")
    with pytest.raises(HttpResponseError) as refused:
        client.create_pool(
            m.BatchPoolCreateOptions(
                id=pool_id, vm_size=change.get("vm_size", "Standard_D2s_v3"), virtual_machine_configuration=vm
            )
        )
    assert refused.value.status_code == 400
    assert refused.value.error.code == "InvalidPropertyValue"
    assert {d.code: d.message for d in refused.value.error.details}["PropertyName"] == property_name
    assert pool_id not in [p.id for p in client.list_pools()]


def test_supported_images_lists_current_linux_images(client: BatchClient) -> None:
    images = list(client.list_supported_images())
    jammy = [i for i in images if i.image_reference.offer == "0001-com-ubuntu-server-jammy"]
    assert {i.node_agent_sku_id for i in jammy} == {"batch.node.ubuntu 22.04"}
    assert all(i.os_type == "linux" and i.verification_type in ("verified", "unverified") for i in images)
    assert any(i.batch_support_end_of_life is not None for i in images)


def test_pool_usage_metrics_count_core_hours_of_node_lifetimes(client: BatchClient) -> None:
    pool_id = unique("usage")
    create_pool(client, pool_id, dedicated=2, vm_size="Standard_D2s_v3")
    nodes_in(client, pool_id, "idle", 2)
    metrics = [u for u in client.list_pool_usage_metrics() if u.pool_id == pool_id]
    assert metrics and all(u.vm_size == "standard_d2s_v3" for u in metrics)
    assert all(u.end_time - u.start_time == timedelta(hours=1) for u in metrics)
    total = sum(u.total_core_hours for u in metrics)
    assert 0 < total < 2 * 2 * 0.1  # two 2-vCPU nodes, alive for seconds
    client.begin_delete_pool(pool_id, polling_interval=1).result()
    later = sum(u.total_core_hours for u in client.list_pool_usage_metrics() if u.pool_id == pool_id)
    assert later >= total


def test_autoscale_enable_evaluate_disable_and_refusals(client: BatchClient) -> None:
    pool_id = unique("as")
    create_pool(client, pool_id, dedicated=0)
    wait_for("a steady pool", lambda: client.get_pool(pool_id).allocation_state == "steady")
    with pytest.raises(HttpResponseError) as bad:
        client.enable_pool_auto_scale(pool_id, m.BatchPoolEnableAutoScaleOptions(auto_scale_formula="$x = = 1;"))
    assert bad.value.error.code == "AutoScalingFormulaSyntaxError"
    client.enable_pool_auto_scale(
        pool_id,
        m.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 0;", auto_scale_evaluation_interval=timedelta(seconds=5)
        ),
    )
    pool = wait_for(
        "the first evaluation", lambda: (lambda p: p if p.auto_scale_run else None)(client.get_pool(pool_id))
    )
    assert pool.enable_auto_scale and pool.auto_scale_evaluation_interval == timedelta(seconds=5)
    assert pool.auto_scale_run.results.startswith("$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;")
    run = client.evaluate_pool_auto_scale(
        pool_id, m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = $PendingTasks + 3;")
    )
    assert run.results == "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    assert client.get_pool(pool_id).target_dedicated_nodes == 0  # evaluated, not applied
    with pytest.raises(HttpResponseError) as resize:
        client.begin_resize_pool(pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=1))
    assert resize.value.error.code == "OperationInvalidForCurrentState"
    client.disable_pool_auto_scale(pool_id)
    pool = client.get_pool(pool_id)
    assert (pool.enable_auto_scale, pool.auto_scale_formula) == (False, None)


def test_a_formula_scales_the_pool_up_for_queued_tasks_and_down_when_idle(client: BatchClient) -> None:
    pool_id, job_id = unique("auto"), unique("autojob")
    formula = (
        "$tasks = max($PendingTasks.GetSample(1));\n"
        "$TargetDedicatedNodes = min(2, $tasks);\n"
        "$NodeDeallocationOption = taskcompletion;"
    )
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id, vm_size="Standard_A1_v2", virtual_machine_configuration=VM, enable_auto_scale=True,
            auto_scale_formula=formula, auto_scale_evaluation_interval=timedelta(seconds=5),
        )
    )  # fmt: skip
    wait_for("an evaluation with no task", lambda: client.get_pool(pool_id).auto_scale_run)
    assert client.get_pool(pool_id).current_dedicated_nodes == 0
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    tasks = [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/sh -c 'sleep 3'") for i in range(3)]
    client.create_tasks(job_id, tasks)
    wait_for("two nodes", lambda: client.get_pool(pool_id).current_dedicated_nodes == 2)
    wait_for("every task done", lambda: all(t.state == "completed" for t in client.list_tasks(job_id)))
    assert {t.execution_info.result for t in client.list_tasks(job_id)} == {"success"}
    assert {t.execution_info.requeue_count for t in client.list_tasks(job_id)} == {0}  # taskcompletion: none cut
    pool = wait_for(
        "the pool back to no node",
        lambda: (lambda p: p if p.current_dedicated_nodes == 0 and p.allocation_state == "steady" else None)(
            client.get_pool(pool_id)
        ),
    )
    assert "$TargetDedicatedNodes=0;" in pool.auto_scale_run.results
    assert "$NodeDeallocationOption=taskcompletion" in pool.auto_scale_run.results
    assert list(client.list_nodes(pool_id)) == []


def _preempt(emulator: EmulatorProcess, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHBOX_EMULATOR_PORT": str(emulator.port)}
    command = [str(Path(sys.executable).with_name("batchbox")), "local", "preempt", "--home", str(home), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=60)


def test_preemption_mid_task_requeues_it_and_its_output_arrives_once(
    client: BatchClient, emulator: EmulatorProcess, home: Path, blob_storage: BlobStorage, blob_container: str
) -> None:
    pool_id, job_id, task_id = unique("spot"), unique("spotjob"), unique("t")
    create_pool(client, pool_id, dedicated=0, low_priority=1)
    [spot] = nodes_in(client, pool_id, "idle", 1)
    assert spot.is_dedicated is False
    url = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=1)
    )
    output = m.OutputFile(
        file_pattern="result.txt",
        destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(container_url=url)),
        upload_options=m.OutputFileUploadConfiguration(upload_condition="tasksuccess"),
    )
    command = "/bin/sh -c 'sleep 5; echo $AZ_BATCH_NODE_ID > result.txt'"
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(id=task_id, command_line=command, output_files=[output]))
    task_state(client, job_id, task_id, "running")
    result = _preempt(emulator, home, pool_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"preempted {spot.id}"
    assert client.get_node(pool_id, spot.id).state == "preempted"
    unknown = _preempt(emulator, home, pool_id, "tvmps_000000000000000000000000_p")
    assert unknown.returncode != 0 and "NodeNotFound" in unknown.stderr
    task = task_state(client, job_id, task_id, "completed")
    assert task.execution_info.result == "success"
    assert (task.execution_info.requeue_count, task.execution_info.retry_count) == (1, 0)
    assert task.node_info.node_id != spot.id
    [blob] = blob_storage.list_blobs(blob_container)
    assert blob.name == "result.txt"
    assert blob_storage.read_blob(blob_container, "result.txt").decode().strip() == task.node_info.node_id
    states = {n.id: n.state for n in client.list_nodes(pool_id)}
    assert states[spot.id] == "preempted" and states[task.node_info.node_id] in ("idle", "running")
    assert client.get_pool(pool_id).current_low_priority_nodes == 1
    client.enable_pool_auto_scale(  # $PreemptedNodeCount is sampled for autoscale pools
        pool_id,
        m.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetLowPriorityNodes = 1;", auto_scale_evaluation_interval=timedelta(seconds=5)
        ),
    )
    counted = client.evaluate_pool_auto_scale(
        pool_id, m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$p = $PreemptedNodeCount;")
    )
    assert "$p=1" in counted.results.split(";")
