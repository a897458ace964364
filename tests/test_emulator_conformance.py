"""What the real Batch service answers and the emulator now answers too (found by replaying recorded exchanges).

One focused test per behaviour: a pool without targets, retired cloud service pools and certificates, the pool,
node and task properties Batch returns, ``DataServiceVersion`` / ``Last-Modified`` headers, and the
``odata.metadata`` of task counts. A real emulator process, real node containers, the 15.x SDK and raw signed HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.emulator.clock import parse_time
from tests.fixtures.emulator import EmulatorProcess
from tests.signing import SignedClient

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

T = TypeVar("T")

_IMAGE = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server"}
_VM = {"imageReference": _IMAGE, "nodeAgentSKUId": "batch.node.ubuntu 24.04"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def http(emulator: EmulatorProcess) -> Iterator[SignedClient]:
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as signed:
        yield signed


def error_values(response: httpx.Response) -> dict[str, str]:
    return {item["key"]: item["value"] for item in response.json().get("values", [])}


def add_pool(http: SignedClient, **body: Any) -> str:
    pool_id = str(body.pop("id", None) or unique("pool"))
    response = http.send("POST", "/pools", body={"id": pool_id, "vmSize": "standard_d2s_v3", **body})
    assert response.status_code == 201, response.text
    return pool_id


# ---------------------------------------------------------------------------------------------------- pools


def test_a_pool_without_targets_has_zero_nodes(client: BatchClient) -> None:
    pool_id = unique("zero")
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=m.VirtualMachineConfiguration(
                image_reference=m.BatchVmImageReference(**_IMAGE), node_agent_sku_id="batch.node.ubuntu 24.04"
            ),
        )
    )
    pool = client.get_pool(pool_id)
    assert (pool.target_dedicated_nodes, pool.target_low_priority_nodes) == (0, 0)
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (0, 0)
    assert pool.allocation_state == "steady"
    assert list(client.list_nodes(pool_id)) == []


def test_a_cloud_service_pool_is_refused_as_retired(http: SignedClient) -> None:
    response = http.send(
        "POST", "/pools", body={"id": unique("paas"), "vmSize": "small", "cloudServiceConfiguration": {"osFamily": "4"}}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidPropertyValue"
    values = error_values(response)
    assert values["PropertyName"] == "cloudServiceConfiguration"
    assert "retired" in values["Reason"]


def test_certificates_are_refused_as_retired_and_an_empty_list_is_kept(http: SignedClient) -> None:
    certificate = {"thumbprint": "0123456789abcdef", "thumbprintAlgorithm": "sha1"}
    refused = http.send(
        "POST",
        "/pools",
        body={
            "id": unique("cert"),
            "vmSize": "x",
            "virtualMachineConfiguration": _VM,
            "certificateReferences": [certificate],
        },
    )
    # The service's current answer (api-version 2024-07-01.20.0): 400 CertificateRetired, with a Reason.
    assert refused.status_code == 400
    assert refused.json()["code"] == "CertificateRetired"
    assert refused.json()["message"]["value"].startswith("The 'Azure Batch Certificates' feature was retired")
    assert "certificateReferences" in error_values(refused)["Reason"]

    pool_id = add_pool(http, virtualMachineConfiguration=_VM, certificateReferences=[])
    assert http.get(f"/pools/{pool_id}")["certificateReferences"] == []
    for method, path, body in (
        ("PATCH", f"/pools/{pool_id}", {"certificateReferences": [certificate]}),
        (
            "POST",
            f"/pools/{pool_id}/updateproperties",
            {"certificateReferences": [certificate], "applicationPackageReferences": [], "metadata": []},
        ),
    ):
        response = http.send(method, path, body=body)
        assert response.status_code == 400, (method, response.text)
        assert response.json()["code"] == "CertificateRetired"


def test_pool_properties_batch_returns(http: SignedClient) -> None:
    pool_id = add_pool(
        http,
        virtualMachineConfiguration={**_VM, "osDisk": {"caching": "readwrite"}},
        networkConfiguration={"enableAcceleratedNetworking": True},
        resourceTags={"dept": "finance", "env": "prod"},
        targetNodeCommunicationMode="classic",
        userAccounts=[{"name": "alice", "password": "S3cret-pa55", "elevationLevel": "admin"}],
    )
    pool = http.get(f"/pools/{pool_id}")
    assert pool["resourceTags"] == {"dept": "finance", "env": "prod"}
    assert pool["targetNodeCommunicationMode"] == "classic"
    assert pool["virtualMachineConfiguration"]["imageReference"]["version"] == "latest"
    assert pool["virtualMachineConfiguration"]["osDisk"]["ephemeralOSDiskSettings"] == {}
    assert pool["networkConfiguration"]["dynamicVNetAssignmentScope"] == "none"
    assert pool["userAccounts"] == [{"name": "alice", "elevationLevel": "admin"}], "a password is never returned"
    assert "certificateReferences" not in pool

    patched = http.send("PATCH", f"/pools/{pool_id}", body={"targetNodeCommunicationMode": "simplified"})
    assert patched.status_code == 200, patched.text
    assert http.get(f"/pools/{pool_id}")["targetNodeCommunicationMode"] == "simplified"

    # update-properties replaces: no mode given means "default"; an empty certificate list is kept.
    replaced = http.send(
        "POST",
        f"/pools/{pool_id}/updateproperties",
        body={"certificateReferences": [], "applicationPackageReferences": [], "metadata": []},
    )
    assert replaced.status_code == 204, replaced.text
    pool = http.get(f"/pools/{pool_id}")
    assert pool["targetNodeCommunicationMode"] == "default"
    assert pool["certificateReferences"] == []
    assert pool["resourceTags"] == {"dept": "finance", "env": "prod"}


@pytest.mark.parametrize(
    ("extra", "code", "name"),
    [
        ({"targetNodeCommunicationMode": "sometimes"}, "InvalidPropertyValue", "targetNodeCommunicationMode"),
        ({"resourceTags": {"dept": 7}}, "InvalidRequestBody", "resourceTags.dept"),
        ({"resourceTags": ["dept"]}, "InvalidRequestBody", "resourceTags"),
    ],
)
def test_pool_property_values_are_checked(http: SignedClient, extra: dict[str, Any], code: str, name: str) -> None:
    body = {"id": unique("bad"), "vmSize": "x", "virtualMachineConfiguration": _VM, **extra}
    response = http.send("POST", "/pools", body=body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert error_values(response)["PropertyName"] == name


# ---------------------------------------------------------------------------------------------------- nodes


def test_a_node_reports_its_image_endpoints_certificates_and_recent_tasks(
    client: BatchClient, http: SignedClient
) -> None:
    pool_id = add_pool(http, virtualMachineConfiguration=_VM, targetDedicatedNodes=1)
    job_id = unique("job")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(id="t1", command_line="/bin/sh -c 'echo one'"))
    wait_for("t1 to complete", lambda: client.get_task(job_id, "t1").state == "completed")

    nodes = list(client.list_nodes(pool_id))  # the 15.x model requires virtualMachineInfo
    assert len(nodes) == 1
    node = wait_for("the node to list t1 as completed", lambda: _node_with_recent(client, pool_id, nodes[0].id))
    assert node.virtual_machine_info.image_reference.publisher == "canonical"
    assert node.virtual_machine_info.image_reference.exact_version == "latest"
    assert node.endpoint_configuration is not None and node.endpoint_configuration.inbound_endpoints == []
    assert http.get(f"/pools/{pool_id}/nodes/{node.id}")["certificateReferences"] == []  # not in the 15.x model
    recent = node.recent_tasks
    assert [(t.job_id, t.task_id, t.task_state) for t in recent] == [(job_id, "t1", "completed")]
    assert recent[0].task_url.endswith(f"/jobs/{job_id}/tasks/t1")
    assert recent[0].execution_info.exit_code == 0

    client.create_task(job_id, m.BatchTaskCreateOptions(id="t2", command_line="/bin/sh -c 'exit 3'"))
    wait_for("t2 to complete", lambda: client.get_task(job_id, "t2").state == "completed")
    node = wait_for("t2 first in recentTasks", lambda: _first_recent(client, pool_id, nodes[0].id, "t2"))
    assert [t.task_id for t in node.recent_tasks] == ["t2", "t1"]
    assert node.recent_tasks[0].execution_info.exit_code == 3
    client.begin_delete_job(job_id, polling_interval=1).result()
    client.begin_delete_pool(pool_id, polling_interval=1).result()


def _node_with_recent(client: BatchClient, pool_id: str, node_id: str) -> m.BatchNode | None:
    node = client.get_node(pool_id, node_id)
    return node if node.recent_tasks and node.recent_tasks[0].task_state == "completed" else None


def _first_recent(client: BatchClient, pool_id: str, node_id: str, task_id: str) -> m.BatchNode | None:
    node = client.get_node(pool_id, node_id)
    first = node.recent_tasks[0] if node.recent_tasks else None
    return node if first is not None and first.task_id == task_id and first.task_state == "completed" else None


# ---------------------------------------------------------------------------------------------------- tasks


def test_task_authentication_token_settings_are_returned(http: SignedClient) -> None:
    pool_id = add_pool(http, virtualMachineConfiguration=_VM)
    job_id = unique("job")
    assert http.send("POST", "/jobs", body={"id": job_id, "poolInfo": {"poolId": pool_id}}).status_code == 201
    task = {"id": "tok", "commandLine": "true", "authenticationTokenSettings": {"access": ["job"]}}
    assert http.send("POST", f"/jobs/{job_id}/tasks", body=task).status_code == 201
    assert http.get(f"/jobs/{job_id}/tasks/tok")["authenticationTokenSettings"] == {"access": ["job"]}

    bad = {"id": "bad", "commandLine": "true", "authenticationTokenSettings": {"access": ["pool"]}}
    response = http.send("POST", f"/jobs/{job_id}/tasks", body=bad)
    assert response.status_code == 400
    assert error_values(response)["PropertyName"] == "authenticationTokenSettings.access[0]"


def test_task_counts_metadata_names_the_result_type(http: SignedClient) -> None:
    pool_id = add_pool(http, virtualMachineConfiguration=_VM)
    job_id = unique("job")
    assert http.send("POST", "/jobs", body={"id": job_id, "poolInfo": {"poolId": pool_id}}).status_code == 201
    counts = http.get(f"/jobs/{job_id}/taskcounts")
    assert counts["odata.metadata"].endswith("/$metadata#taskcountsresult/@Element")
    assert set(counts) == {"odata.metadata", "taskCounts", "taskSlotCounts"}


# ---------------------------------------------------------------------------------------------------- headers


def test_every_batch_response_carries_data_service_version(http: SignedClient) -> None:
    pool_id = unique("hdr")
    job_id = unique("job")
    answers = {
        "create pool (201)": http.send(
            "POST", "/pools", body={"id": pool_id, "vmSize": "standard_d2s_v3", "virtualMachineConfiguration": _VM}
        ),
        "get pool (200)": http.send("GET", f"/pools/{pool_id}"),
        "pool exists (HEAD)": http.send("HEAD", f"/pools/{pool_id}"),
        "patch pool (200, empty)": http.send("PATCH", f"/pools/{pool_id}", body={"metadata": []}),
        "create job (201)": http.send("POST", "/jobs", body={"id": job_id, "poolInfo": {"poolId": pool_id}}),
        "delete job (202)": http.send("DELETE", f"/jobs/{job_id}"),
        "missing pool (404)": http.send("GET", "/pools/no-such-pool"),
        "bad body (400)": http.send("POST", "/pools", raw=b"{not json"),
        "unknown path (400)": http.send("GET", "/nothing-here"),
        "delete pool (202)": http.send("DELETE", f"/pools/{pool_id}"),
    }
    for what, response in answers.items():
        assert response.headers.get("DataServiceVersion") == "3.0", what
    # Batch names the resource in DataServiceId on changes, not on deletes.
    assert "DataServiceId" in answers["patch pool (200, empty)"].headers
    assert "DataServiceId" not in answers["delete job (202)"].headers
    assert "DataServiceId" not in answers["delete pool (202)"].headers


def test_update_properties_answers_last_modified(http: SignedClient) -> None:
    pool_id = add_pool(http, virtualMachineConfiguration=_VM)
    response = http.send(
        "POST",
        f"/pools/{pool_id}/updateproperties",
        body={"startTask": {"commandLine": "hostname"}, "applicationPackageReferences": [], "metadata": []},
    )
    assert response.status_code == 204, response.text
    pool = http.get(f"/pools/{pool_id}")
    assert response.headers["ETag"] == pool["eTag"]
    modified = parse_time(pool["lastModified"])
    assert modified is not None
    assert parsedate_to_datetime(response.headers["Last-Modified"]) == modified.replace(microsecond=0)
    assert response.headers["DataServiceVersion"] == "3.0"
