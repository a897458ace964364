"""AzureBatchCompute without a Batch service: model mapping, and the real SDK against a scripted local HTTP server.

The mapping tests compare ``as_dict()`` of the SDK bodies with the REST JSON the Batch service documents. The
server tests run a real ``azure.batch.BatchClient`` (through AzureBatchCompute) against ``http.server`` on
127.0.0.1 answering Batch-shaped bodies, so errors are real ``HttpResponseError`` objects built from real responses.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from batchbox.backends.azure import _batch_models as mapping
from batchbox.backends.azure._batch_errors import translate_batch_error
from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceBusyError,
)
from batchbox.core.models import (
    ComputeNodeInfo,
    EnvironmentSetting,
    FailureInfo,
    ImageReference,
    JobConstraints,
    JobSpec,
    OutputFile,
    PoolInfo,
    PoolSpec,
    ResourceFile,
    StartTask,
    TaskConstraints,
    TaskCounts,
    TaskInfo,
    TaskSpec,
)
from batchbox.core.states import (
    ComputeNodeState,
    ElevationLevel,
    NodeFillType,
    OnAllTasksComplete,
    OutputFileUploadCondition,
    TaskExecutionResult,
    TaskState,
)
from tests.fixtures.fake_batch import Answer, FakeBatch, Recorded, batch_error

ACCOUNT = "devbatch"
KEY = base64.b64encode(b"not-a-real-key-0123456789abcdef").decode()
SAS = "sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=r&sig=SECRETSIGNATURE123%2Bxyz%3D"


# -- core -> REST JSON ---------------------------------------------------------------------------------------


def test_pool_spec_maps_to_rest_json() -> None:
    spec = PoolSpec(
        id="pool-1",
        vm_size="standard_d2s_v3",
        dedicated_nodes=2,
        low_priority_nodes=1,
        task_slots_per_node=4,
        node_fill_type=NodeFillType.PACK,
        start_task=StartTask(
            command_line="/bin/sh -c 'cp task.py $AZ_BATCH_NODE_SHARED_DIR'",
            resource_files=(ResourceFile(file_path="task.py", http_url=f"http://127.0.0.1:10000/a/task.py?{SAS}"),),
            environment=(EnvironmentSetting("MODE", "x"),),
            elevation=ElevationLevel.ADMIN,
            max_task_retry_count=2,
            wait_for_success=True,
        ),
        image=ImageReference("canonical", "ubuntu-24_04-lts", "server", "latest", "batch.node.ubuntu 24.04"),
        metadata=(("owner", "batchbox"),),
    )
    assert mapping.to_pool_create(spec).as_dict() == {
        "id": "pool-1",
        "vmSize": "standard_d2s_v3",
        "virtualMachineConfiguration": {
            "imageReference": {
                "publisher": "canonical",
                "offer": "ubuntu-24_04-lts",
                "sku": "server",
                "version": "latest",
            },
            "nodeAgentSKUId": "batch.node.ubuntu 24.04",
        },
        "targetDedicatedNodes": 2,
        "targetLowPriorityNodes": 1,
        "taskSlotsPerNode": 4,
        "taskSchedulingPolicy": {"nodeFillType": "pack"},
        "startTask": {
            "commandLine": "/bin/sh -c 'cp task.py $AZ_BATCH_NODE_SHARED_DIR'",
            "resourceFiles": [{"httpUrl": f"http://127.0.0.1:10000/a/task.py?{SAS}", "filePath": "task.py"}],
            "environmentSettings": [{"name": "MODE", "value": "x"}],
            "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
            "maxTaskRetryCount": 2,
            "waitForSuccess": True,
        },
        "metadata": [{"name": "owner", "value": "batchbox"}],
    }


def test_minimal_pool_spec_leaves_optional_parts_out() -> None:
    body = mapping.to_pool_create(PoolSpec(id="p")).as_dict()
    assert "startTask" not in body and "metadata" not in body
    assert body["taskSchedulingPolicy"] == {"nodeFillType": "spread"}
    assert body["virtualMachineConfiguration"]["nodeAgentSKUId"] == "batch.node.ubuntu 22.04"
    assert (body["targetDedicatedNodes"], body["targetLowPriorityNodes"], body["taskSlotsPerNode"]) == (1, 0, 1)


def test_task_spec_maps_to_rest_json() -> None:
    spec = TaskSpec(
        id="topNtask0",
        command_line="/bin/bash -c 'python3 task.py --filepath taskdata0.txt'",
        resource_files=(
            ResourceFile(
                file_path="taskdata0.txt", http_url="http://127.0.0.1:10000/input/taskdata0.txt", file_mode="0644"
            ),
            ResourceFile(file_path="lib", storage_container_url=f"http://127.0.0.1:10000/app?{SAS}", blob_prefix="py/"),
        ),
        output_files=(
            OutputFile(
                "*_OUTPUT.txt",
                f"http://127.0.0.1:10000/output?{SAS}",
                path="results",
                upload_condition=OutputFileUploadCondition.TASK_SUCCESS,
            ),
            OutputFile("../std*.txt", "http://127.0.0.1:10000/logs"),
        ),
        environment=(EnvironmentSetting("A", "1"), EnvironmentSetting("EMPTY")),
        constraints=TaskConstraints(
            max_wall_clock_time=timedelta(minutes=5), max_task_retry_count=3, retention_time=timedelta(days=1)
        ),
        elevation=ElevationLevel.NON_ADMIN,
        required_slots=2,
        display_name="top words of file 0",
    )
    assert mapping.to_task_create(spec).as_dict() == {
        "id": "topNtask0",
        "displayName": "top words of file 0",
        "commandLine": "/bin/bash -c 'python3 task.py --filepath taskdata0.txt'",
        "resourceFiles": [
            {"httpUrl": "http://127.0.0.1:10000/input/taskdata0.txt", "filePath": "taskdata0.txt", "fileMode": "0644"},
            {"storageContainerUrl": f"http://127.0.0.1:10000/app?{SAS}", "blobPrefix": "py/", "filePath": "lib"},
        ],
        "outputFiles": [
            {
                "filePattern": "*_OUTPUT.txt",
                "destination": {
                    "container": {"containerUrl": f"http://127.0.0.1:10000/output?{SAS}", "path": "results"}
                },
                "uploadOptions": {"uploadCondition": "tasksuccess"},
            },
            {
                "filePattern": "../std*.txt",
                "destination": {"container": {"containerUrl": "http://127.0.0.1:10000/logs"}},
                "uploadOptions": {"uploadCondition": "taskcompletion"},
            },
        ],
        "environmentSettings": [{"name": "A", "value": "1"}, {"name": "EMPTY", "value": ""}],
        "constraints": {"maxWallClockTime": "PT05M00S", "retentionTime": "P1D", "maxTaskRetryCount": 3},
        "requiredSlots": 2,
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}},
    }
    # what add_tasks sends: the same JSON, made only of types the standard json module writes
    assert json.loads(json.dumps(mapping.task_create_json(spec))) == mapping.to_task_create(spec).as_dict()


def test_minimal_task_spec_maps_to_rest_json() -> None:
    spec = TaskSpec(id="t", command_line="true")
    expected = {
        "id": "t",
        "commandLine": "true",
        "requiredSlots": 1,
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}},
    }
    assert mapping.to_task_create(spec).as_dict() == expected
    assert json.loads(json.dumps(mapping.task_create_json(spec))) == expected
    admin = mapping.task_create_json(TaskSpec(id="t", command_line="true", elevation=ElevationLevel.ADMIN))
    assert admin["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
    first, second = mapping.task_create_json(spec), mapping.task_create_json(spec)
    first["userIdentity"]["autoUser"]["elevationLevel"] = "admin"
    assert second["userIdentity"]["autoUser"]["elevationLevel"] == "nonadmin"  # bodies share no nested objects


def test_job_spec_maps_to_rest_json() -> None:
    spec = JobSpec(
        id="job-1",
        pool_id="pool-1",
        priority=100,
        constraints=JobConstraints(max_wall_clock_time=timedelta(hours=2), max_task_retry_count=-1),
        environment=(EnvironmentSetting("STAGE", "test"),),
        on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB,
        display_name="word counts",
    )
    assert mapping.to_job_create(spec).as_dict() == {
        "id": "job-1",
        "displayName": "word counts",
        "priority": 100,
        "constraints": {"maxWallClockTime": "PT02H00M00S", "maxTaskRetryCount": -1},
        "commonEnvironmentSettings": [{"name": "STAGE", "value": "test"}],
        "poolInfo": {"poolId": "pool-1"},
        "onAllTasksComplete": "terminatejob",
    }
    assert mapping.to_job_create(JobSpec(id="j", pool_id="p")).as_dict() == {
        "id": "j",
        "priority": 0,
        "poolInfo": {"poolId": "p"},
        "onAllTasksComplete": "noaction",
    }


def test_task_filter() -> None:
    assert mapping.task_filter(None, False) is None
    assert mapping.task_filter(TaskState.COMPLETED, False) == "state eq 'completed'"
    assert mapping.task_filter(None, True) == "state eq 'completed' and executionInfo/result eq 'failure'"
    assert mapping.task_filter(TaskState.RUNNING, True) == "state eq 'running' and executionInfo/result eq 'failure'"


# -- REST JSON -> core ---------------------------------------------------------------------------------------


def test_completed_failed_task_maps_to_task_info() -> None:
    task = batch_models.BatchTask(
        {
            "id": "t7",
            "state": "completed",
            "executionInfo": {
                "startTime": "2025-01-02T03:04:05.5Z",
                "endTime": "2025-01-02T03:04:09Z",
                "exitCode": 3,
                "result": "failure",
                "failureInfo": {"category": "UserError", "code": "FailureExitCode", "message": "exit code 3"},
                "retryCount": 2,
                "requeueCount": 1,
            },
            "nodeInfo": {"poolId": "p", "nodeId": "tvmps_0123_d"},
        }
    )
    assert mapping.from_task(task) == TaskInfo(
        id="t7",
        state=TaskState.COMPLETED,
        exit_code=3,
        result=TaskExecutionResult.FAILURE,
        failure=FailureInfo(category="usererror", code="FailureExitCode", message="exit code 3"),
        retry_count=2,
        requeue_count=1,
        node_id="tvmps_0123_d",
        start_time=datetime(2025, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc),
        end_time=datetime(2025, 1, 2, 3, 4, 9, tzinfo=timezone.utc),
    )
    assert mapping.from_task(task).failed


def test_active_task_and_odd_case_map_to_task_info() -> None:
    assert mapping.from_task(batch_models.BatchTask({"id": "a", "state": "active"})) == TaskInfo("a", TaskState.ACTIVE)
    odd = mapping.from_task(
        batch_models.BatchTask(
            {
                "id": "b",
                "state": "Completed",
                "executionInfo": {"exitCode": 0, "result": "Success", "retryCount": 0, "requeueCount": 0},
            }
        )
    )
    assert (odd.state, odd.result, odd.exit_code, odd.failed) == (
        TaskState.COMPLETED,
        TaskExecutionResult.SUCCESS,
        0,
        False,
    )


def test_pool_node_and_counts_map_to_core() -> None:
    pool = batch_models.BatchPool(
        {
            "id": "p",
            "vmSize": "STANDARD_D2S_V3",
            "state": "active",
            "allocationState": "resizing",
            "targetDedicatedNodes": 3,
            "currentDedicatedNodes": 1,
            "taskSlotsPerNode": 2,
        }
    )
    assert mapping.from_pool(pool) == PoolInfo("p", "STANDARD_D2S_V3", "active", "resizing", 3, 1, 2)

    failed = batch_models.BatchNode(
        {
            "id": "n1",
            "state": "starttaskfailed",
            "runningTasksCount": 0,
            "startTaskInfo": {
                "state": "completed",
                "startTime": "2025-01-01T00:00:00Z",
                "exitCode": 1,
                "retryCount": 0,
                "result": "failure",
                "failureInfo": {"category": "usererror", "code": "FailureExitCode", "message": "boom"},
            },
        }
    )
    assert mapping.from_node(failed) == ComputeNodeInfo(
        "n1", ComputeNodeState.START_TASK_FAILED, FailureInfo("usererror", "FailureExitCode", "boom"), 0
    )
    bare = batch_models.BatchNode(
        {
            "id": "n2",
            "state": "starttaskfailed",
            "startTaskInfo": {"state": "completed", "exitCode": 7, "retryCount": 0},
        }
    )
    assert mapping.from_node(bare).start_task_failure == FailureInfo(
        "usererror", "FailureExitCode", "the start task exited with code 7"
    )
    busy = batch_models.BatchNode({"id": "n3", "state": "running", "runningTasksCount": 2})
    assert mapping.from_node(busy) == ComputeNodeInfo("n3", ComputeNodeState.RUNNING, None, 2)
    future = batch_models.BatchNode({"id": "n4", "state": "hibernating"})
    assert mapping.from_node(future).state is ComputeNodeState.UNKNOWN

    counts = batch_models.BatchTaskCountsResult(
        {
            "taskCounts": {"active": 5, "running": 2, "completed": 9, "succeeded": 7, "failed": 2},
            "taskSlotCounts": {"active": 5, "running": 2, "completed": 9, "succeeded": 7, "failed": 2},
        }
    )
    assert mapping.from_task_counts(counts) == TaskCounts(active=5, running=2, completed=9, succeeded=7, failed=2)


# -- against a scripted Batch server (tests/fixtures/fake_batch.py) ---------------------------------------------


@pytest.fixture
def compute(fake: FakeBatch) -> Iterator[AzureBatchCompute]:
    backend = AzureBatchCompute.from_shared_key(
        fake.url,
        ACCOUNT,
        KEY,
        retry_budget=1.0,
        retry_backoff_factor=0.01,
        retry_backoff_max=0.05,
        connection_timeout=5,
        read_timeout=10,
        lro_polling_interval=1,
    )
    yield backend
    backend.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- errors: real HttpResponseError objects from real responses ----------------------------------------------


def test_pool_not_found(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on(
        "GET", "/pools/nopool", 404, batch_error("PoolNotFound", "The specified pool does not exist.", PoolId="nopool")
    )
    with pytest.raises(ResourceNotFoundError) as info:
        compute.get_pool("nopool")
    assert (info.value.kind, info.value.name) == ("pool", "nopool")
    assert str(info.value) == "pool 'nopool' does not exist"
    assert isinstance(info.value.__cause__, HttpResponseError)
    assert fake.seen("GET", "/pools/nopool")[0].headers["authorization"].startswith(f"SharedKey {ACCOUNT}:")


def test_not_found_names_the_missing_level(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on("GET", "/jobs/j1/tasks/t1", 404, batch_error("JobNotFound", "The specified job does not exist."))
    fake.on("GET", "/jobs/j2/tasks/t2", 404, batch_error("TaskNotFound", "The specified task does not exist."))
    with pytest.raises(ResourceNotFoundError) as job_missing:
        compute.get_task("j1", "t1")
    with pytest.raises(ResourceNotFoundError) as task_missing:
        compute.get_task("j2", "t2")
    assert (job_missing.value.kind, job_missing.value.name) == ("job", "j1")
    assert (task_missing.value.kind, task_missing.value.name) == ("task", "t2")


def test_read_task_file_errors_keep_their_code(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    # The SDK sends the file path as ONE url-encoded segment ("wd%2Fout.txt"), as the Batch REST API expects.
    fake.on(
        "GET",
        "/jobs/j/tasks/t/files/wd%2Fout.txt",
        404,
        batch_error("FileNotFound", "The specified file does not exist."),
    )
    fake.on(
        "GET",
        "/jobs/j/tasks/gone/files/stdout.txt",
        404,
        batch_error("TaskNotFound", "The specified task does not exist."),
    )
    with pytest.raises(ResourceNotFoundError) as no_file:
        compute.read_task_file("j", "t", "wd/out.txt")
    assert (no_file.value.kind, no_file.value.name) == ("file", "wd/out.txt")
    assert str(no_file.value) == "file 'wd/out.txt' of task 't' of job 'j' does not exist"
    assert len(fake.seen("GET", "/jobs/j/tasks/t/files/wd%2Fout.txt")) == 1
    with pytest.raises(ResourceNotFoundError) as no_task:
        compute.read_task_file("j", "gone", "stdout.txt")
    assert (no_task.value.kind, no_task.value.name) == ("task", "gone")


def test_exists_conflicts(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on("POST", "/pools", 409, batch_error("PoolExists", "The specified pool already exists."))
    with pytest.raises(ResourceExistsError) as pool_exists:
        compute.create_pool(PoolSpec(id="p1"))
    assert (pool_exists.value.kind, pool_exists.value.name) == ("pool", "p1")

    fake.on("POST", "/jobs/j/tasks", 409, batch_error("TaskExists", "The specified task already exists."))
    client = BatchClient(fake.url, AzureNamedKeyCredential(ACCOUNT, KEY), retry_total=0)
    try:
        client.create_task("j", batch_models.BatchTaskCreateOptions(id="t9", command_line="true"))
    except HttpResponseError as exc:
        error = translate_batch_error(exc, endpoint=fake.url, about=[("job", "j"), ("task", "t9")])
    finally:
        client.close()
    assert isinstance(error, ResourceExistsError)
    assert (error.kind, error.name, str(error)) == ("task", "t9", "task 't9' already exists")


def test_authentication_failures(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on(
        "GET",
        "/jobs/j",
        403,
        batch_error(
            "AuthenticationFailed",
            "Server failed to authenticate the request.",
            AuthenticationErrorDetail="The MAC signature found in the HTTP request 'c2lnbmF0dXJl' is not the same",
        ),
    )
    with pytest.raises(AuthenticationError) as forbidden:
        compute.job_state("j")
    assert (forbidden.value.kind, forbidden.value.name) == ("job", "j")
    assert "AuthenticationFailed" in str(forbidden.value) and fake.url in str(forbidden.value)
    assert "c2lnbmF0dXJl" not in str(forbidden.value)

    fake.on("GET", "/pools/p", 401, batch_error("InvalidAuthenticationInfo", "no credentials"))
    with pytest.raises(AuthenticationError) as unauthorized:
        compute.get_pool("p")
    assert unauthorized.value.kind == "pool"


def test_invalid_property_names_code_and_property(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on(
        "POST",
        "/pools",
        400,
        batch_error(
            "InvalidPropertyValue",
            "The value provided for one of the properties in the request body is invalid.",
            PropertyName="vmSize",
            PropertyValue="huge",
            Reason="unknown VM size",
        ),
    )
    with pytest.raises(InvalidRequestError) as info:
        compute.create_pool(PoolSpec(id="p2", vm_size="huge"))
    message = str(info.value)
    assert (info.value.kind, info.value.name) == ("pool", "p2")
    assert "InvalidPropertyValue" in message and "PropertyName=vmSize" in message and "unknown VM size" in message
    assert "RequestId" not in message


def test_sas_signature_is_redacted_and_cause_dropped(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    url = f"http://127.0.0.1:10000/input/x.txt?{SAS}"
    fake.on(
        "POST",
        "/jobs/j/tasks",
        400,
        batch_error(
            "InvalidPropertyValue",
            f"Bad resource file {url}",
            PropertyName="resourceFiles.httpUrl",
            PropertyValue=url,
        ),
    )
    client = BatchClient(fake.url, AzureNamedKeyCredential(ACCOUNT, KEY), retry_total=0)
    try:
        client.create_task("j", batch_models.BatchTaskCreateOptions(id="t", command_line="true"))
    except HttpResponseError as exc:
        assert "SECRETSIGNATURE" in str(exc)  # the SDK's own message quotes it
        error = translate_batch_error(exc, endpoint=fake.url, about=[("job", "j"), ("task", "t")])
    finally:
        client.close()
    assert isinstance(error, InvalidRequestError)
    assert "SECRETSIGNATURE" not in str(error) and "sig=REDACTED" in str(error)

    fake.on("POST", "/jobs/j/addtaskcollection", 400, batch_error("InvalidPropertyValue", f"bad {url}"))
    with pytest.raises(InvalidRequestError) as raised:
        compute.add_tasks("j", [TaskSpec(id="t", command_line="true")])
    assert "SECRETSIGNATURE" not in str(raised.value) and "SECRETSIGNATURE" not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_unreachable_endpoint_is_backend_unavailable() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    compute = AzureBatchCompute.from_shared_key(
        endpoint, ACCOUNT, KEY, retry_total=1, retry_backoff_factor=0.01, retry_backoff_max=0.02, connection_timeout=2
    )
    with compute, pytest.raises(BackendUnavailableError) as info:
        compute.get_pool("p")
    assert info.value.service == "Batch service"
    assert endpoint in str(info.value) and "connection refused" in str(info.value)


def test_server_errors_are_backend_unavailable(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on("GET", "/jobs/j/taskcounts", 503, batch_error("ServerBusy", "The server is busy."))
    with pytest.raises(ServiceBusyError) as info:
        compute.task_counts("j")
    assert "503" in str(info.value) and "ServerBusy" in str(info.value) and "job 'j'" in str(info.value)
    assert len(fake.seen("GET", "/jobs/j/taskcounts")) > 2  # sent again until the 1 s budget was spent
    fake.on("GET", "/jobs/j/taskcounts", 500, batch_error("InternalError", "The server failed."))
    with pytest.raises(BackendUnavailableError) as failed:
        compute.task_counts("j")
    assert not isinstance(failed.value, ServiceBusyError) and "answered 500" in str(failed.value)


def test_bad_configuration_is_refused_without_quoting_the_key() -> None:
    with pytest.raises(ConfigurationError) as bad_key:
        AzureBatchCompute.from_shared_key("http://127.0.0.1:1", ACCOUNT, "not base64 !!secret")
    assert bad_key.value.setting == "account_key" and "secret" not in str(bad_key.value)
    with pytest.raises(ConfigurationError) as bad_url:
        AzureBatchCompute.from_shared_key("127.0.0.1:8446", ACCOUNT, KEY)
    assert bad_url.value.setting == "endpoint"


# -- every method against the scripted server ----------------------------------------------------------------


def test_pool_lifecycle_calls(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on("POST", "/pools", 201)
    spec = PoolSpec(id="p1", dedicated_nodes=0)
    compute.create_pool(spec)
    assert fake.seen("POST", "/pools")[0].json() == mapping.to_pool_create(spec).as_dict()

    pool = {
        "id": "p1",
        "vmSize": "standard_d2s_v3",
        "state": "active",
        "allocationState": "steady",
        "targetDedicatedNodes": 0,
        "targetLowPriorityNodes": 2,
        "currentDedicatedNodes": 0,
        "taskSlotsPerNode": 1,
    }
    fake.on("GET", "/pools/p1", 200, pool)
    assert compute.get_pool("p1") == PoolInfo("p1", "standard_d2s_v3", "active", "steady", 0, 0, 1)
    assert fake.seen("GET", "/pools/p1")[0].query["$select"] == [",".join(mapping.POOL_SELECT)]
    assert compute.pool_exists("p1")

    fake.on("POST", "/pools/p1/resize", 202)
    compute.resize_pool("p1", 3)
    assert fake.seen("POST", "/pools/p1/resize")[0].json() == {"targetDedicatedNodes": 3, "targetLowPriorityNodes": 2}

    fake.on(
        "GET",
        "/pools/p1/nodes",
        200,
        {
            "value": [
                {"id": "n1", "state": "idle", "runningTasksCount": 0},
                {"id": "n2", "state": "waitingforstarttask"},
            ]
        },
    )
    assert compute.list_nodes("p1") == [
        ComputeNodeInfo("n1", ComputeNodeState.IDLE),
        ComputeNodeInfo("n2", ComputeNodeState.WAITING_FOR_START_TASK),
    ]

    fake.on("GET", "/pools", 200, {"value": [pool, {**pool, "id": "p0", "state": "deleting"}]})
    assert [p.id for p in compute.list_pools()] == ["p1"]

    fake.on("DELETE", "/pools/p1", 202)
    compute.delete_pool("p1")
    assert len(fake.seen("DELETE", "/pools/p1")) == 1
    fake.on("GET", "/pools/p1", 200, {**pool, "state": "deleting"})
    assert not compute.pool_exists("p1")


def test_idempotent_deletes_and_terminates(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on("DELETE", "/pools/gone", 404, batch_error("PoolNotFound", "The specified pool does not exist."))
    fake.on("DELETE", "/pools/going", 409, batch_error("PoolBeingDeleted", "The pool is being deleted."))
    fake.on("DELETE", "/jobs/gone", 404, batch_error("JobNotFound", "The specified job does not exist."))
    fake.on("POST", "/jobs/done/terminate", 409, batch_error("JobCompleted", "The job is already completed."))
    fake.on("POST", "/jobs/done/tasks/t/terminate", 409, batch_error("TaskCompleted", "The task is completed."))
    compute.delete_pool("gone")
    compute.delete_pool("going")
    compute.delete_job("gone")
    compute.terminate_job("done")
    compute.terminate_task("done", "t")
    assert not compute.pool_exists("gone")  # unknown route: 404

    fake.on("POST", "/jobs/missing/terminate", 404, batch_error("JobNotFound", "The specified job does not exist."))
    with pytest.raises(ResourceNotFoundError):
        compute.terminate_job("missing")
    fake.on("POST", "/jobs/j/tasks/t/terminate", 409, batch_error("JobBeingDeleted", "The job is being deleted."))
    with pytest.raises(InvalidRequestError) as info:
        compute.terminate_task("j", "t")
    assert "JobBeingDeleted" in str(info.value)


def test_wait_for_pool_deleted(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    deleting = {"id": "p", "state": "deleting", "allocationState": "resizing"}
    polls = iter([(200, deleting), (200, deleting)])
    fake.handle("GET", "/pools/p", lambda _r: next(polls, (404, batch_error("PoolNotFound", "gone"))))
    compute.wait_for_pool_deleted("p", timeout=60, poll_interval=0.01)
    assert len(fake.seen("GET", "/pools/p")) == 3

    fake.on("GET", "/pools/stuck", 200, {**deleting, "id": "stuck"})
    with pytest.raises(TimeoutError, match="pool 'stuck' still exists"):
        compute.wait_for_pool_deleted("stuck", timeout=0, poll_interval=0.01)


def test_job_calls(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on("POST", "/jobs", 201)
    spec = JobSpec(id="j1", pool_id="p1", on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB)
    compute.create_job(spec)
    assert fake.seen("POST", "/jobs")[0].json() == mapping.to_job_create(spec).as_dict()

    fake.on("GET", "/jobs/j1", 200, {"id": "j1", "state": "active"})
    assert compute.job_state("j1") == "active" and compute.job_exists("j1")
    assert fake.seen("GET", "/jobs/j1")[0].query["$select"] == ["id,state"]
    fake.on("GET", "/jobs/j1", 200, {"id": "j1", "state": "deleting"})
    assert not compute.job_exists("j1")
    assert not compute.job_exists("other")

    fake.on("GET", "/jobs", 200, {"value": [{"id": "j1", "state": "active"}, {"id": "j0", "state": "completed"}]})
    assert compute.list_jobs() == [("j1", "active"), ("j0", "completed")]
    assert fake.seen("GET", "/jobs")[0].query["$select"] == ["id,state"]

    fake.on("POST", "/jobs/j1/terminate", 202)
    compute.terminate_job("j1")
    assert fake.seen("POST", "/jobs/j1/terminate")[0].json() == {"terminateReason": "UserTerminate"}
    fake.on("DELETE", "/jobs/j1", 202)
    compute.delete_job("j1")
    assert len(fake.seen("POST", "/jobs/j1/terminate")) == 1 and len(fake.seen("DELETE", "/jobs/j1")) == 1

    fake.on(
        "GET",
        "/jobs/j1/taskcounts",
        200,
        {
            "taskCounts": {"active": 1, "running": 2, "completed": 3, "succeeded": 2, "failed": 1},
            "taskSlotCounts": {"active": 1, "running": 2, "completed": 3, "succeeded": 2, "failed": 1},
        },
    )
    assert compute.task_counts("j1") == TaskCounts(1, 2, 3, 2, 1)


def test_task_reads(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    page2 = f"{fake.url}/jobs/j/tasks?api-version=2025-06-01&page=2"
    fake.handle(
        "GET",
        "/jobs/j/tasks",
        lambda r: (
            (
                200,
                {
                    "value": [
                        {
                            "id": "t3",
                            "state": "completed",
                            "executionInfo": {"exitCode": 1, "result": "failure", "retryCount": 0, "requeueCount": 0},
                        }
                    ],
                },
            )
            if r.query.get("page")
            else (
                200,
                {
                    "value": [
                        {"id": "t1", "state": "active"},
                        {"id": "t2", "state": "running", "nodeInfo": {"nodeId": "n1"}},
                    ],
                    "odata.nextLink": page2,
                },
            )
        ),
    )
    tasks = compute.list_tasks("j", failed_only=True)
    assert [(t.id, t.state, t.node_id) for t in tasks] == [
        ("t1", TaskState.ACTIVE, None),
        ("t2", TaskState.RUNNING, "n1"),
        ("t3", TaskState.COMPLETED, None),
    ]
    first = fake.seen("GET", "/jobs/j/tasks")[0]
    assert first.query["$filter"] == ["state eq 'completed' and executionInfo/result eq 'failure'"]
    assert first.query["$select"] == ["id,state,executionInfo,nodeInfo"]
    compute.list_tasks("j", state=TaskState.RUNNING)
    filters = [r.query.get("$filter") for r in fake.seen("GET", "/jobs/j/tasks") if "page" not in r.query]
    assert filters[-1] == ["state eq 'running'"]

    fake.on("GET", "/jobs/j/tasks/t2", 200, {"id": "t2", "state": "running", "nodeInfo": {"nodeId": "n1"}})
    assert compute.get_task("j", "t2") == TaskInfo("t2", TaskState.RUNNING, node_id="n1")

    content = bytes(range(256)) * 1000
    fake.on("GET", "/jobs/j/tasks/t2/files/wd%2Fout.bin", 200, content)
    assert compute.read_task_file("j", "t2", "wd/out.bin") == content

    fake.on("POST", "/jobs/j/tasks/t2/terminate", 204)
    compute.terminate_task("j", "t2")
    assert len(fake.seen("POST", "/jobs/j/tasks/t2/terminate")) == 1


# -- add_tasks -----------------------------------------------------------------------------------------------


def collection_server(fake: FakeBatch, existing: set[str], refuse: dict[str, str] | None = None) -> None:
    """addtaskcollection that adds new ids, answers TaskExists for known ones and refuses ids in ``refuse``."""
    lock = threading.Lock()

    def route(request: Recorded) -> Answer:
        results = []
        for task in request.json()["value"]:
            with lock:
                if refuse and task["id"] in refuse:
                    error = batch_error("InvalidPropertyValue", "bad task", PropertyName=refuse[task["id"]])
                    results.append({"status": "clienterror", "taskId": task["id"], "error": error})
                elif task["id"] in existing:
                    error = batch_error("TaskExists", "The specified task already exists.")
                    results.append({"status": "clienterror", "taskId": task["id"], "error": error})
                else:
                    existing.add(task["id"])
                    results.append({"status": "success", "taskId": task["id"], "eTag": "0x1"})
        return 200, {"value": list(reversed(results))}

    fake.handle("POST", "/jobs/j/addtaskcollection", route)


def test_add_tasks_chunks_and_counts_existing_tasks(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    existing = {f"t{i:03d}" for i in range(0, 250, 7)}
    collection_server(fake, existing)
    tasks = [TaskSpec(id=f"t{i:03d}", command_line=f"echo {i}") for i in range(250)]

    result = compute.add_tasks("j", tasks, max_concurrency=3)

    assert result.already_existed == tuple(f"t{i:03d}" for i in range(0, 250, 7))
    assert result.added == tuple(f"t{i:03d}" for i in range(250) if i % 7)
    posts = fake.seen("POST", "/jobs/j/addtaskcollection")
    assert sorted(len(p.json()["value"]) for p in posts) == [50, 100, 100]
    sent = {task["id"]: task for post in posts for task in post.json()["value"]}
    assert sent["t001"] == mapping.to_task_create(tasks[1]).as_dict()

    again = compute.add_tasks("j", tasks, max_concurrency=3)
    assert again.added == () and again.already_existed == tuple(t.id for t in tasks)
    assert compute.add_tasks("j", []) == type(again)(added=(), already_existed=())


def test_add_tasks_names_a_refused_task(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    collection_server(fake, set(), refuse={"t5": "commandLine", "t9": "resourceFiles"})
    with pytest.raises(InvalidRequestError) as info:
        compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(12)], max_concurrency=1)
    assert (info.value.kind, info.value.name) == ("task", "t5")
    assert "InvalidPropertyValue" in str(info.value) and "PropertyName=commandLine" in str(info.value)
    assert "1 more refused: t9" in str(info.value)


def test_add_tasks_duplicate_ids_fail_before_any_request(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    with pytest.raises(InvalidRequestError) as info:
        compute.add_tasks("j", [TaskSpec(id="A", command_line="true"), TaskSpec(id="a", command_line="true")])
    assert info.value.name == "a"
    assert fake.requests == []


def test_add_tasks_to_missing_job(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.on(
        "POST", "/jobs/nojob/addtaskcollection", 404, batch_error("JobNotFound", "The specified job does not exist.")
    )
    tasks = [TaskSpec(id=f"t{i}", command_line="true") for i in range(150)]
    with pytest.raises(ResourceNotFoundError) as info:
        compute.add_tasks("nojob", tasks, max_concurrency=2)
    assert (info.value.kind, info.value.name) == ("job", "nojob")


def test_add_tasks_rides_out_transient_server_errors(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    existing: set[str] = set()
    collection_server(fake, existing)
    added_route = fake.routes[("POST", "/jobs/j/addtaskcollection")]
    failures = iter(range(3))

    def flaky(request: Recorded) -> Answer:
        if next(failures, None) is not None:
            return 503, batch_error("ServerBusy", "The server is busy.")
        return added_route(request)

    fake.handle("POST", "/jobs/j/addtaskcollection", flaky)
    result = compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(5)])
    assert result.added == tuple(f"t{i}" for i in range(5)) and existing == set(result.added)
    assert len(fake.seen("POST", "/jobs/j/addtaskcollection")) == 4


def test_add_tasks_sends_again_the_tasks_answered_server_error(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    existing: set[str] = set()
    collection_server(fake, existing)
    added_route = fake.routes[("POST", "/jobs/j/addtaskcollection")]
    busy = {"t1", "t3"}

    def partly_busy(request: Recorded) -> Answer:
        ids = [task["id"] for task in request.json()["value"]]
        if busy & set(ids):
            results = []
            for task_id in ids:
                if task_id in busy:
                    error = batch_error("ServerBusy", "try again")
                    results.append({"status": "servererror", "taskId": task_id, "error": error})
                else:
                    existing.add(task_id)
                    results.append({"status": "success", "taskId": task_id, "eTag": "0x1"})
            busy.clear()
            return 200, {"value": results}
        return added_route(request)

    fake.handle("POST", "/jobs/j/addtaskcollection", partly_busy)
    result = compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(5)])
    assert result.added == tuple(f"t{i}" for i in range(5)) and existing == set(result.added)
    posts = [[task["id"] for task in p.json()["value"]] for p in fake.seen("POST", "/jobs/j/addtaskcollection")]
    assert posts == [[f"t{i}" for i in range(5)], ["t1", "t3"]]


def test_add_tasks_sends_again_after_throttling_and_for_unanswered_tasks(
    compute: AzureBatchCompute, fake: FakeBatch
) -> None:
    existing: set[str] = set()
    collection_server(fake, existing)
    added_route = fake.routes[("POST", "/jobs/j/addtaskcollection")]
    answers = iter(["throttled", "drops t2"])

    def uneven(request: Recorded) -> Answer:
        mode = next(answers, None)
        if mode == "throttled":
            return 429, batch_error("TooManyRequests", "Slow down.")
        status, body = added_route(request)
        if mode == "drops t2":
            existing.discard("t2")
            body = {"value": [r for r in body["value"] if r["taskId"] != "t2"]}
        return status, body

    fake.handle("POST", "/jobs/j/addtaskcollection", uneven)
    result = compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(4)])
    assert result.added == ("t0", "t1", "t2", "t3") and result.already_existed == ()
    posts = [[task["id"] for task in p.json()["value"]] for p in fake.seen("POST", "/jobs/j/addtaskcollection")]
    assert posts[-1] == ["t2"] and all(ids == ["t0", "t1", "t2", "t3"] for ids in posts[:-1])


def test_add_tasks_halves_chunks_on_request_body_too_large(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    existing: set[str] = set()
    collection_server(fake, existing)
    added_route = fake.routes[("POST", "/jobs/j/addtaskcollection")]

    def limited(request: Recorded) -> Answer:
        if len(request.json()["value"]) > 30:
            return 413, batch_error("RequestBodyTooLarge", "The request body is too large.")
        return added_route(request)

    fake.handle("POST", "/jobs/j/addtaskcollection", limited)
    result = compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(120)], max_concurrency=2)
    assert len(result.added) == 120 and result.already_existed == ()
    accepted = [len(p.json()["value"]) for p in fake.seen("POST", "/jobs/j/addtaskcollection")]
    assert sum(n for n in accepted if n <= 30) == 120

    fake.handle(
        "POST",
        "/jobs/j/addtaskcollection",
        lambda _r: (413, batch_error("RequestBodyTooLarge", "The request body is too large.")),
    )
    with pytest.raises(InvalidRequestError, match="RequestBodyTooLarge") as info:
        compute.add_tasks("j", [TaskSpec(id="huge", command_line="x" * 1000)])
    assert (info.value.kind, info.value.name) == ("job", "j")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_add_tasks_gives_up_on_a_failing_service(compute: AzureBatchCompute, fake: FakeBatch, concurrency: int) -> None:
    fake.on("POST", "/jobs/j/addtaskcollection", 500, batch_error("InternalError", "The server failed."))
    tasks = [TaskSpec(id=f"t{i}", command_line="true") for i in range(300)]
    with pytest.raises(BackendUnavailableError) as info:
        compute.add_tasks("j", tasks, max_concurrency=concurrency)
    assert "kept answering 500 while adding tasks to job 'j' (retried for 1 s)" in str(info.value)


def test_add_tasks_gives_up_on_per_task_server_errors(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.handle(
        "POST",
        "/jobs/j/addtaskcollection",
        lambda r: (
            200,
            {
                "value": [
                    {"status": "servererror", "taskId": t["id"], "error": batch_error("InternalError", "try again")}
                    for t in r.json()["value"]
                ]
            },
        ),
    )
    with pytest.raises(BackendUnavailableError) as info:
        compute.add_tasks("j", [TaskSpec(id="t1", command_line="true")])
    assert "kept failing while adding tasks to job 'j'" in str(info.value)
    assert re.search(r"1 task\(s\) kept failing for \d+ s; last: 1 task\(s\) answered serverError", str(info.value))


# -- token credentials ---------------------------------------------------------------------------------------


class StaticToken:
    """A TokenCredential handing out one fixed token and recording the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("test-token", 4102444800)


def test_bearer_token_over_loopback_http(fake: FakeBatch) -> None:
    fake.on("GET", "/jobs/j", 200, {"id": "j", "state": "completed"})
    credential = StaticToken()
    with AzureBatchCompute(fake.url, credential, retry_total=0) as compute:
        assert compute.job_state("j") == "completed"
    assert fake.seen("GET", "/jobs/j")[0].headers["authorization"] == "Bearer test-token"
    assert credential.scopes == [("https://batch.core.windows.net//.default",)]


def test_default_azure_credential_is_owned_and_closed(fake: FakeBatch) -> None:
    # Construction only: asking DefaultAzureCredential for a token would probe non-loopback endpoints.
    compute = AzureBatchCompute.from_default_azure_credential(fake.url, retry_total=0)
    credential = compute._owned_credential
    assert type(credential).__name__ == "DefaultAzureCredential"
    compute.close()
    assert compute._owned_credential is None
    assert fake.requests == []
