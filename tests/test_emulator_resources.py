"""Contract tests of the emulator's pools, jobs, tasks, files and node counts, with the real azure-batch 15.x SDK.

Everything here runs without compute nodes: pools target 0 nodes, so jobs and tasks stay active. The emulator is a
real subprocess (``tests/fixtures/emulator.py``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest, HttpResponse

from batchbox.emulator.clock import duration_seconds, format_duration, parse_duration
from batchbox.emulator.errors import BatchError
from batchbox.emulator.resources.common import opt_duration
from tests.fixtures.emulator import EmulatorProcess

API_VERSION = "2025-06-01"
INFINITE = "P10675199DT2H48M5.4775807S"

pytestmark = pytest.mark.docker


# ------------------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


def raw(client: BatchClient, emulator: EmulatorProcess, method: str, path: str, **kwargs: Any) -> HttpResponse:
    """A signed REST call that returns the response whatever its status (the SDK policy raises on errors)."""
    separator = "&" if "?" in path else "?"
    request = HttpRequest(method, f"{emulator.url}{path}{separator}api-version={API_VERSION}", **kwargs)
    try:
        return client.send_request(request)
    except HttpResponseError as exc:
        assert exc.response is not None
        return exc.response  # type: ignore[return-value]


def error_code(exc: HttpResponseError) -> str | None:
    return exc.error.code if exc.error is not None else None


def vm_config() -> m.VirtualMachineConfiguration:
    return m.VirtualMachineConfiguration(
        image_reference=m.BatchVmImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server"),
        node_agent_sku_id="batch.node.ubuntu 24.04",
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def pool_options(pool_id: str, **kwargs: Any) -> m.BatchPoolCreateOptions:
    options: dict[str, Any] = {
        "id": pool_id,
        "vm_size": "STANDARD_D2S_V3",
        "virtual_machine_configuration": vm_config(),
        "target_dedicated_nodes": 0,
    }
    options.update(kwargs)
    return m.BatchPoolCreateOptions(**options)


@pytest.fixture
def pool_id(client: BatchClient) -> Iterator[str]:
    """An empty pool (0 nodes) for the test."""
    pool = unique("pool")
    client.create_pool(pool_options(pool))
    yield pool
    with contextlib.suppress(ResourceNotFoundError):
        client.begin_delete_pool(pool, polling_interval=1).result()


@pytest.fixture
def job_id(client: BatchClient, pool_id: str) -> str:
    """An active job on the empty pool."""
    job = unique("job")
    client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    return job


def add_tasks(client: BatchClient, job: str, ids: list[str]) -> None:
    result = client.create_tasks(job, [m.BatchTaskCreateOptions(id=i, command_line="/bin/true") for i in ids])
    assert sorted(r.task_id for r in result.result_values) == sorted(ids)


# ------------------------------------------------------------------------------------------------------------ pools


def test_pool_add_get_list_exists_and_defaults(client: BatchClient, emulator: EmulatorProcess, pool_id: str) -> None:
    pool = client.get_pool(pool_id)
    assert pool.id == pool_id
    assert pool.url == f"{emulator.url}/pools/{pool_id}"
    assert pool.state == "active"
    assert pool.allocation_state == "steady"
    assert pool.vm_size == "standard_d2s_v3"
    assert pool.current_dedicated_nodes == 0 and pool.target_dedicated_nodes == 0
    assert pool.task_slots_per_node == 1
    assert pool.task_scheduling_policy is not None and pool.task_scheduling_policy.node_fill_type == "spread"
    assert pool.resize_timeout == datetime.timedelta(minutes=15)
    assert pool.etag and pool.etag.startswith("0x")
    assert pool.creation_time is not None and pool.last_modified is not None
    assert client.pool_exists(pool_id) is True
    assert pool_id in {p.id for p in client.list_pools()}
    # ids are unique case-insensitively; the SDK raises for the 409.
    with pytest.raises(ResourceExistsError) as info:
        client.create_pool(pool_options(pool_id.upper()))
    assert error_code(info.value) == "PoolExists"


def test_pool_exists_head_is_404_for_a_missing_pool(client: BatchClient, emulator: EmulatorProcess) -> None:
    response = raw(client, emulator, "HEAD", "/pools/no-such-pool")
    assert response.status_code == 404
    # azure-batch 15.1's error policy raises on every 404, so pool_exists() cannot answer False (an SDK quirk).
    with pytest.raises(ResourceNotFoundError):
        client.pool_exists("no-such-pool")


def test_pool_patch_replace_properties_and_etag(client: BatchClient, pool_id: str) -> None:
    before = client.get_pool(pool_id)
    client.update_pool(
        pool_id,
        m.BatchPoolUpdateOptions(
            metadata=[m.BatchMetadataItem(name="team", value="blue")],
            start_task=m.BatchStartTask(command_line="/bin/sh -c 'echo hi'"),
        ),
    )
    patched = client.get_pool(pool_id)
    assert [(i.name, i.value) for i in patched.metadata or []] == [("team", "blue")]
    assert patched.start_task is not None and patched.start_task.command_line == "/bin/sh -c 'echo hi'"
    assert patched.start_task.wait_for_success is True and patched.start_task.max_task_retry_count == 0
    assert patched.etag != before.etag
    client.replace_pool_properties(pool_id, m.BatchPoolReplaceOptions(application_package_references=[], metadata=[]))
    replaced = client.get_pool(pool_id)
    assert replaced.start_task is None and not replaced.metadata


def test_pool_resize_to_zero_and_delete(client: BatchClient, emulator: EmulatorProcess) -> None:
    pool = unique("pool")
    client.create_pool(pool_options(pool))
    client.begin_resize_pool(pool, m.BatchPoolResizeOptions(target_dedicated_nodes=0), polling_interval=1).result()
    assert client.get_pool(pool).allocation_state == "steady"
    client.begin_stop_pool_resize(pool, polling_interval=1).result()  # a steady pool: nothing changes
    assert client.get_pool(pool).resize_errors is None
    client.begin_delete_pool(pool, polling_interval=1).result()
    assert raw(client, emulator, "HEAD", f"/pools/{pool}").status_code == 404
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_pool(pool)
    assert error_code(info.value) == "PoolNotFound"


@pytest.mark.parametrize(
    ("body", "status", "code", "property_name"),
    [
        ({"vmSize": "x", "targetDedicatedNodes": 0}, 400, "MissingRequiredProperty", "id"),
        ({"id": "a b", "vmSize": "x", "targetDedicatedNodes": 0}, 400, "InvalidPropertyValue", "id"),
        ({"id": "p", "targetDedicatedNodes": 0}, 400, "MissingRequiredProperty", "vmSize"),
        (
            {"id": "p", "vmSize": "x", "targetDedicatedNodes": 0},
            400,
            "MissingRequiredProperty",
            "virtualMachineConfiguration",
        ),
        ({"id": "p", "vmSize": "x", "targetDedicatedNodes": 33}, 400, "InvalidPropertyValue", "targetDedicatedNodes"),
        ({"id": "p", "vmSize": "x", "targetDedicatedNodes": -1}, 400, "InvalidPropertyValue", "targetDedicatedNodes"),
        ({"id": "p", "vmSize": "x", "targetDedicatedNodes": "two"}, 400, "InvalidRequestBody", "targetDedicatedNodes"),
        (
            {"id": "p", "vmSize": "x", "targetDedicatedNodes": 0, "taskSlotsPerNode": 257},
            400,
            "InvalidPropertyValue",
            "taskSlotsPerNode",
        ),
        (
            {"id": "p", "vmSize": "x", "targetDedicatedNodes": 0, "resizeTimeout": "PT1M"},
            400,
            "InvalidPropertyValue",
            "resizeTimeout",
        ),
        (
            {"id": "p", "vmSize": "x", "targetDedicatedNodes": 0, "resizeTimeout": "soon"},
            400,
            "InvalidPropertyValue",
            "resizeTimeout",
        ),
        (
            {"id": "p", "vmSize": "x", "targetDedicatedNodes": 0, "startTask": {}},
            400,
            "MissingRequiredProperty",
            "startTask.commandLine",
        ),
    ],
)
def test_pool_validation_errors(
    client: BatchClient, emulator: EmulatorProcess, body: dict[str, Any], status: int, code: str, property_name: str
) -> None:
    if "virtualMachineConfiguration" not in body and property_name != "virtualMachineConfiguration":
        body = {**body, "virtualMachineConfiguration": vm_config().as_dict()}
    response = raw(client, emulator, "POST", "/pools", json=body)
    assert response.status_code == status
    error = response.json()
    assert error["code"] == code
    values = {v["key"]: v["value"] for v in error.get("values", [])}
    assert values.get("PropertyName") == property_name


def test_node_counts_and_nodes_of_an_empty_pool(client: BatchClient, pool_id: str) -> None:
    counts = {c.pool_id: c for c in client.list_pool_node_counts()}
    assert pool_id in counts
    entry = counts[pool_id]
    for bucket in (entry.dedicated, entry.low_priority):
        assert bucket is not None
        assert bucket.total == 0 and bucket.idle == 0 and bucket.running == 0 and bucket.start_task_failed == 0
    assert list(client.list_nodes(pool_id)) == []
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_node(pool_id, "tvmps_000000000000000000000000_d")
    assert error_code(info.value) == "NodeNotFound"


# ------------------------------------------------------------------------------------------------------------- jobs


def test_job_add_get_defaults_update_and_replace(client: BatchClient, emulator: EmulatorProcess, pool_id: str) -> None:
    job = unique("job")
    client.create_job(
        m.BatchJobCreateOptions(
            id=job,
            pool_info=m.BatchPoolInfo(pool_id=pool_id),
            constraints=m.BatchJobConstraints(max_task_retry_count=2),
        )
    )
    got = client.get_job(job)
    assert got.url == f"{emulator.url}/jobs/{job}"
    assert got.state == "active" and got.priority == 0
    assert got.all_tasks_complete_mode == "noaction" and got.task_failure_mode == "noaction"
    assert got.uses_task_dependencies is False
    assert got.execution_info is not None and got.execution_info.pool_id == pool_id
    assert got.constraints is not None and got.constraints.max_task_retry_count == 2
    assert raw(client, emulator, "GET", f"/jobs/{job}").json()["constraints"]["maxWallClockTime"] == INFINITE
    with pytest.raises(ResourceExistsError) as info:
        client.create_job(m.BatchJobCreateOptions(id=job, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    assert error_code(info.value) == "JobExists"

    client.update_job(job, m.BatchJobUpdateOptions(priority=100, metadata=[m.BatchMetadataItem(name="k", value="v")]))
    patched = client.get_job(job)
    assert patched.priority == 100 and patched.constraints is not None
    assert patched.constraints.max_task_retry_count == 2  # PATCH keeps what it does not name
    patched.priority = 5
    patched.constraints = None
    client.replace_job(job, patched)
    replaced = client.get_job(job)
    assert replaced.priority == 5
    assert replaced.constraints is not None and replaced.constraints.max_task_retry_count == 0  # PUT resets

    response = raw(client, emulator, "PATCH", f"/jobs/{job}", json={"priority": 5000})
    assert response.status_code == 400 and response.json()["code"] == "OutOfRangePriority"


def test_job_terminate_then_adding_tasks_is_409_and_delete(client: BatchClient, job_id: str) -> None:
    # azure-batch 15.1 does not export BatchJobTerminateOptions from azure.batch.models.
    options = m._models.BatchJobTerminateOptions(termination_reason="done")
    client.begin_terminate_job(job_id, options, polling_interval=1).result()
    job = client.get_job(job_id)
    assert job.state == "completed"
    assert job.execution_info is not None and job.execution_info.termination_reason == "done"
    with pytest.raises(ResourceExistsError) as info:
        client.create_task(job_id, m.BatchTaskCreateOptions(id="late", command_line="/bin/true"))
    assert error_code(info.value) == "JobCompleted"
    with pytest.raises(ResourceExistsError) as info:
        client.update_job(job_id, m.BatchJobUpdateOptions(priority=1))
    assert error_code(info.value) == "JobCompleted"
    client.begin_delete_job(job_id, polling_interval=1).result()
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_job(job_id)
    assert error_code(info.value) == "JobNotFound"


def test_job_list_filter_and_select(client: BatchClient, pool_id: str) -> None:
    prefix = unique("jl")
    for index in range(3):
        client.create_job(m.BatchJobCreateOptions(id=f"{prefix}-{index}", pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    found = list(client.list_jobs(filter=f"startswith(id,'{prefix}') and state eq 'active'", select=["id", "state"]))
    assert sorted(j.id for j in found) == [f"{prefix}-{i}" for i in range(3)]
    assert all(j.priority is None and j.pool_info is None for j in found)


# ------------------------------------------------------------------------------------------------------------ tasks


def test_task_add_get_defaults_and_duplicates(client: BatchClient, emulator: EmulatorProcess, pool_id: str) -> None:
    job = unique("job")
    client.create_job(
        m.BatchJobCreateOptions(
            id=job,
            pool_info=m.BatchPoolInfo(pool_id=pool_id),
            constraints=m.BatchJobConstraints(max_task_retry_count=3),
        )
    )
    client.create_task(job, m.BatchTaskCreateOptions(id="t1", command_line="/bin/sh -c 'echo $AZ_BATCH_TASK_ID'"))
    task = client.get_task(job, "t1")
    assert task.url == f"{emulator.url}/jobs/{job}/tasks/t1"
    assert task.state == "active" and task.required_slots == 1
    assert task.constraints is not None
    assert task.constraints.max_task_retry_count == 3  # inherited from the job
    assert task.constraints.retention_time == datetime.timedelta(days=7)
    assert task.execution_info is not None
    assert task.execution_info.retry_count == 0 and task.execution_info.requeue_count == 0
    assert task.user_identity is not None and task.user_identity.auto_user is not None
    assert task.user_identity.auto_user.elevation_level == "nonadmin"
    document = raw(client, emulator, "GET", f"/jobs/{job}/tasks/t1").json()
    assert document["constraints"]["maxWallClockTime"] == INFINITE
    assert document["odata.metadata"].endswith("$metadata#tasks/@Element")

    with pytest.raises(ResourceExistsError) as info:
        client.create_task(job, m.BatchTaskCreateOptions(id="T1", command_line="/bin/true"))
    assert error_code(info.value) == "TaskExists"
    with pytest.raises(ResourceNotFoundError) as info:
        client.create_task("no-such-job", m.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    assert error_code(info.value) == "JobNotFound"


@pytest.mark.parametrize(
    ("task", "code", "property_name"),
    [
        ({"id": "t"}, "MissingRequiredProperty", "commandLine"),
        ({"id": "t", "commandLine": "x", "requiredSlots": 0}, "InvalidPropertyValue", "requiredSlots"),
        (
            {"id": "t", "commandLine": "x", "constraints": {"maxWallClockTime": "PT"}},
            "InvalidPropertyValue",
            "constraints.maxWallClockTime",
        ),
        (
            {"id": "t", "commandLine": "x", "resourceFiles": [{"filePath": "a"}]},
            "MissingRequiredProperty",
            "resourceFiles[0].httpUrl",
        ),
        (
            {
                "id": "t",
                "commandLine": "x",
                "resourceFiles": [{"httpUrl": "http://a/b", "storageContainerUrl": "http://a"}],
            },
            "InvalidPropertyValue",
            "resourceFiles[0].httpUrl",
        ),
        (
            {"id": "t", "commandLine": "x", "resourceFiles": [{"httpUrl": "http://a/b", "filePath": "../x"}]},
            "InvalidPropertyValue",
            "resourceFiles[0].filePath",
        ),
        (
            {
                "id": "t",
                "commandLine": "x",
                "outputFiles": [
                    {
                        "filePattern": "*.txt",
                        "destination": {"container": {}},
                        "uploadOptions": {"uploadCondition": "taskcompletion"},
                    }
                ],
            },
            "MissingRequiredProperty",
            "outputFiles[0].destination.container.containerUrl",
        ),
        (
            {
                "id": "t",
                "commandLine": "x",
                "outputFiles": [{"filePattern": "*.txt", "destination": {"container": {"containerUrl": "http://a"}}}],
            },
            "MissingRequiredProperty",
            "outputFiles[0].uploadOptions",
        ),
        ({"id": "t", "commandLine": "x", "dependsOn": {"taskIds": ["a"]}}, "TaskDependenciesNotSpecifiedOnJob", None),
    ],
)
def test_task_validation_errors(
    client: BatchClient,
    emulator: EmulatorProcess,
    job_id: str,
    task: dict[str, Any],
    code: str,
    property_name: str | None,
) -> None:
    response = raw(client, emulator, "POST", f"/jobs/{job_id}/tasks", json=task)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == code
    if property_name is not None:
        assert {v["key"]: v["value"] for v in error["values"]}["PropertyName"] == property_name


def test_task_collection_results_limits_and_duplicates(
    client: BatchClient, emulator: EmulatorProcess, job_id: str
) -> None:
    client.create_task(job_id, m.BatchTaskCreateOptions(id="old", command_line="/bin/true"))
    group = m.BatchTaskGroup(
        task_values=[
            m.BatchTaskCreateOptions(id="old", command_line="/bin/true"),
            m.BatchTaskCreateOptions(id="new", command_line="/bin/true"),
            m.BatchTaskCreateOptions(id="NEW", command_line="/bin/true"),
        ]
    )
    results = {(r.task_id, r.status): r for r in client.create_task_collection(job_id, group).result_values or []}
    assert set(results) == {("old", "clienterror"), ("new", "success"), ("NEW", "clienterror")}
    assert results[("old", "clienterror")].error is not None
    assert results[("old", "clienterror")].error.code == "TaskExists"
    success = results[("new", "success")]
    assert success.etag and success.location == f"{emulator.url}/jobs/{job_id}/tasks/new"

    body = {"value": [{"id": "bad id", "commandLine": "x"}, {"id": "nocmd"}, {"id": "fine", "commandLine": "x"}]}
    mixed = raw(client, emulator, "POST", f"/jobs/{job_id}/addtaskcollection", json=body).json()
    assert mixed["odata.metadata"].endswith("$metadata#taskaddresult")
    assert [(r["taskId"], r["status"], r.get("error", {}).get("code")) for r in mixed["value"]] == [
        ("bad id", "clienterror", "InvalidPropertyValue"),
        ("nocmd", "clienterror", "MissingRequiredProperty"),
        ("fine", "success", None),
    ]

    too_many = m.BatchTaskGroup(
        task_values=[m.BatchTaskCreateOptions(id=f"m{i}", command_line="/bin/true") for i in range(101)]
    )
    with pytest.raises(HttpResponseError) as info:
        client.create_task_collection(job_id, too_many)
    assert info.value.status_code == 400 and error_code(info.value) == "InvalidPropertyValue"

    big = m.BatchTaskGroup(
        task_values=[m.BatchTaskCreateOptions(id=f"b{i}", command_line="x" * 20_000) for i in range(60)]
    )
    with pytest.raises(HttpResponseError) as info:
        client.create_task_collection(job_id, big)
    assert info.value.status_code == 413 and error_code(info.value) == "RequestBodyTooLarge"
    # The SDK helper halves a chunk on RequestBodyTooLarge and treats TaskExists as success.
    result = client.create_tasks(
        job_id,
        [m.BatchTaskCreateOptions(id=f"b{i}", command_line="x" * 20_000) for i in range(60)]
        + [m.BatchTaskCreateOptions(id="old", command_line="/bin/true")],
    )
    assert len(result.result_values) == 61
    assert client.get_job_task_counts(job_id).task_counts.active == 63


def test_2500_tasks_are_listed_across_pages(client: BatchClient, emulator: EmulatorProcess, job_id: str) -> None:
    ids = [f"task{i:04d}" for i in range(2500)]
    client.create_tasks(
        job_id, [m.BatchTaskCreateOptions(id=i, command_line="/bin/true") for i in ids], max_concurrency=4
    )
    listed = [t.id for t in client.list_tasks(job_id)]
    assert len(listed) == 2500 and sorted(listed) == ids  # all of them, no duplicates
    pages = [list(page) for page in client.list_tasks(job_id, max_results=1000, select=["id"]).by_page()]
    assert [len(page) for page in pages] == [1000, 1000, 500]
    first = raw(client, emulator, "GET", f"/jobs/{job_id}/tasks?maxresults=1000").json()
    assert len(first["value"]) == 1000 and "odata.nextLink" in first
    counts = client.get_job_task_counts(job_id)
    assert counts.task_counts.active == 2500 and counts.task_slot_counts.active == 2500
    with pytest.raises(ResourceNotFoundError) as info:
        list(client.list_tasks("no-such-job"))
    assert error_code(info.value) == "JobNotFound"


def test_task_list_paging_survives_deleting_the_last_task_of_a_page(
    client: BatchClient, emulator: EmulatorProcess, job_id: str
) -> None:
    ids = [f"p{i}" for i in range(6)]
    for task_id in ids:  # one by one: the insertion order is the listing order
        client.create_task(job_id, m.BatchTaskCreateOptions(id=task_id, command_line="/bin/true"))
    first = raw(client, emulator, "GET", f"/jobs/{job_id}/tasks?maxresults=3&$select=id").json()
    assert [t["id"] for t in first["value"]] == ids[:3]
    client.delete_task(job_id, ids[2])
    next_path = first["odata.nextLink"].removeprefix(emulator.url)
    second = raw(client, emulator, "GET", next_path).json()
    assert [t["id"] for t in second["value"]] == ids[3:]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("state eq 'active'", [f"t{i}" for i in range(12)] + ["x1"]),
        ("state eq 'ACTIVE'", [f"t{i}" for i in range(12)] + ["x1"]),
        ("startswith(id,'t1')", ["t1", "t10", "t11"]),
        ("executionInfo/exitCode eq 0", []),
        ("state eq 'running' or startswith(id,'x')", ["x1"]),
        ("startswith(id,'t') and (id eq 't2' or id eq 't3')", ["t2", "t3"]),
        ("state ne 'active'", []),
    ],
)
def test_task_filters(client: BatchClient, job_id: str, expression: str, expected: list[str]) -> None:
    add_tasks(client, job_id, [f"t{i}" for i in range(12)] + ["x1"])
    found = sorted(t.id for t in client.list_tasks(job_id, filter=expression))
    assert found == sorted(expected)


def test_task_select_and_bad_filters(client: BatchClient, emulator: EmulatorProcess, job_id: str) -> None:
    add_tasks(client, job_id, ["s1", "s2"])
    tasks = list(client.list_tasks(job_id, select=["id", "state"]))
    assert {t.id for t in tasks} == {"s1", "s2"}
    assert all(t.state == "active" and t.command_line is None and t.url is None for t in tasks)
    for expression in ("nosuchproperty eq 1", "endswith(id,'1')", "state eq", "id eq 'a' and"):
        response = raw(client, emulator, "GET", f"/jobs/{job_id}/tasks?$filter={expression}")
        assert response.status_code == 400, expression
        assert response.json()["code"] == "InvalidQueryParameterValue"


def test_task_counts_terminate_reactivate_and_delete(client: BatchClient, job_id: str) -> None:
    add_tasks(client, job_id, ["a", "b", "c"])
    client.terminate_task(job_id, "b")
    ended = client.get_task(job_id, "b")
    assert ended.state == "completed"
    assert ended.execution_info is not None and ended.execution_info.result == "failure"
    counts = client.get_job_task_counts(job_id)
    assert (counts.task_counts.active, counts.task_counts.completed, counts.task_counts.failed) == (2, 1, 1)
    assert counts.task_counts.succeeded == 0 and counts.task_counts.running == 0
    with pytest.raises(ResourceExistsError) as info:
        client.terminate_task(job_id, "b")
    assert error_code(info.value) == "TaskCompleted"
    with pytest.raises(ResourceExistsError):
        client.reactivate_task(job_id, "a")  # active, not a failed completed task
    client.reactivate_task(job_id, "b")
    again = client.get_task(job_id, "b")
    assert again.state == "active"
    assert again.execution_info is not None and again.execution_info.result is None
    client.delete_task(job_id, "c")
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_task(job_id, "c")
    assert error_code(info.value) == "TaskNotFound"
    counts = client.get_job_task_counts(job_id)
    assert (counts.task_counts.active, counts.task_counts.completed) == (2, 0)


def test_task_update_constraints(client: BatchClient, job_id: str) -> None:
    add_tasks(client, job_id, ["u"])
    task = client.get_task(job_id, "u")
    task.constraints = m.BatchTaskConstraints(max_wall_clock_time=datetime.timedelta(minutes=5), max_task_retry_count=1)
    client.replace_task(job_id, "u", task)
    updated = client.get_task(job_id, "u")
    assert updated.constraints is not None
    assert updated.constraints.max_wall_clock_time == datetime.timedelta(minutes=5)
    assert updated.constraints.max_task_retry_count == 1


# ----------------------------------------------------------------------------------------------- files, headers, auth


def test_files_of_missing_and_unscheduled_tasks(client: BatchClient, emulator: EmulatorProcess, job_id: str) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        list(client.list_task_files(job_id, "no-such-task"))
    assert error_code(info.value) == "TaskNotFound"
    with pytest.raises(ResourceNotFoundError):  # a streamed download: the SDK does not read the error body
        b"".join(client.download_task_file(job_id, "no-such-task", "stdout.txt"))
    response = raw(client, emulator, "GET", f"/jobs/{job_id}/tasks/no-such-task/files/stdout.txt")
    assert response.status_code == 404 and response.json()["code"] == "TaskNotFound"
    add_tasks(client, job_id, ["waiting"])
    with pytest.raises(ResourceExistsError) as info:
        list(client.list_task_files(job_id, "waiting"))
    assert error_code(info.value) == "TaskFilesUnavailable"


def test_entity_headers_request_id_and_conditional_requests(
    client: BatchClient, emulator: EmulatorProcess, pool_id: str
) -> None:
    response = raw(
        client,
        emulator,
        "GET",
        f"/pools/{pool_id}",
        headers={"client-request-id": "6f1c0b4e-2b8a-4f7e-9d44-0a5a0d7f2c11", "return-client-request-id": "true"},
    )
    assert response.status_code == 200
    etag = response.headers["ETag"]
    assert etag == response.json()["eTag"]
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["request-id"]
    assert response.headers["client-request-id"] == "6f1c0b4e-2b8a-4f7e-9d44-0a5a0d7f2c11"
    assert response.json()["odata.metadata"] == f"{emulator.url}/$metadata#pools/@Element"
    created = raw(client, emulator, "POST", "/jobs", json={"id": unique("hj"), "poolInfo": {"poolId": pool_id}})
    assert created.status_code == 201
    assert created.headers["ETag"] and created.headers["Last-Modified"] and created.headers["DataServiceId"]
    stale = raw(client, emulator, "PATCH", f"/pools/{pool_id}", json={"metadata": []}, headers={"If-Match": "0x1"})
    assert stale.status_code == 412 and stale.json()["code"] == "ConditionNotMet"
    fresh = raw(client, emulator, "PATCH", f"/pools/{pool_id}", json={"metadata": []}, headers={"If-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    unchanged = raw(client, emulator, "GET", f"/pools/{pool_id}", headers={"If-None-Match": fresh.headers["ETag"]})
    assert unchanged.status_code == 304


def test_a_wrong_key_is_403(emulator: EmulatorProcess) -> None:
    wrong = BatchClient(endpoint=emulator.url, credential=AzureNamedKeyCredential(emulator.account_name, "d3Jvbmc="))
    try:
        with pytest.raises(HttpResponseError) as info:
            list(wrong.list_pools())
        assert info.value.status_code == 403
        assert error_code(info.value) == "AuthenticationFailed"
    finally:
        wrong.close()


def test_state_survives_a_restart(client: BatchClient, emulator: EmulatorProcess, job_id: str) -> None:
    add_tasks(client, job_id, ["r1", "r2"])
    etag = client.get_task(job_id, "r1").etag
    emulator.restart()
    restarted = emulator.batch_client()
    assert restarted.get_task(job_id, "r1").etag == etag
    assert sorted(t.id for t in restarted.list_tasks(job_id)) == ["r1", "r2"]
    restarted.create_task(job_id, m.BatchTaskCreateOptions(id="r3", command_line="/bin/true"))
    assert restarted.get_job_task_counts(job_id).task_counts.active == 3


# ------------------------------------------------------------------------------------------------ pure, no emulator


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("PT30S", "PT30S"),
        ("P1D", "P1D"),
        ("PT1H30M", "PT1H30M"),
        ("P1DT02H03M04.5S", "P1DT2H3M4.5S"),
        ("PT15M00S", "PT15M"),
        ("P2W", "P14D"),
        (INFINITE, INFINITE),
    ],
)
def test_duration_parser(text: str, normalised: str) -> None:
    assert format_duration(parse_duration(text)) == normalised


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "1D", "-PT1S", "PT1.S", "PT5X", "P1.5D", "PT1H1Y", ""])
def test_duration_parser_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
    with pytest.raises(BatchError) as info:
        opt_duration({"maxWallClockTime": text}, "maxWallClockTime", "constraints")
    assert info.value.code == "InvalidPropertyValue"
    assert info.value.values["PropertyName"] == "constraints.maxWallClockTime"


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        # The real service answered a PATCH of this maxWallClockTime with 200 and returned P1279DT12H30M5S:
        # a year is 365 days and a month 30 days.
        ("P3Y6M4DT12H30M5S", "P1279DT12H30M5S"),
        ("P1Y", "P365D"),
        ("P1M", "P30D"),
        ("PT1M", "PT1M"),
        ("P1M1W1DT1M", "P38DT1M"),
        ("p1y2m", "P425D"),
    ],
)
def test_duration_parser_counts_years_and_months_in_days(text: str, normalised: str) -> None:
    assert format_duration(parse_duration(text)) == normalised
    assert opt_duration({"maxWallClockTime": text}, "maxWallClockTime") == (parse_duration(text), normalised)


def test_duration_seconds_of_stored_limits() -> None:
    assert duration_seconds("PT05S") == 5.0
    assert duration_seconds("P1DT01H01M01.25S") == 90061.25
    assert duration_seconds("P1M") == 30 * 86400.0
    assert duration_seconds(INFINITE) is None  # Batch's "unlimited"
    assert duration_seconds("P20Y") is None  # past the emulator's "no limit" threshold
    assert duration_seconds("bogus") is None
    assert duration_seconds(None) is None


def test_task_collection_body_is_json_list_shaped(client: BatchClient, emulator: EmulatorProcess, job_id: str) -> None:
    response = raw(client, emulator, "POST", f"/jobs/{job_id}/addtaskcollection", json={"value": "nope"})
    assert response.status_code == 400 and response.json()["code"] == "InvalidRequestBody"
    response = raw(
        client,
        emulator,
        "POST",
        f"/jobs/{job_id}/addtaskcollection",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and json.loads(response.text())["code"] == "InvalidRequestBody"
