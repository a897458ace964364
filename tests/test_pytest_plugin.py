"""The pytest plugin (batchbox.testing.plugin), exercised the way a user's suite uses it, through pytester.

Every inner run is a real pytest subprocess that loads the plugin from its ``pytest11`` entry point and talks to a
real local stack under a temporary ``BATCHBOX_HOME`` on free ports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from batchbox.backends.local.azurite import find_free_port
from batchbox.backends.local.stack import LocalStack

pytestmark = pytest.mark.docker

_TARGET_TEST = """
import os, time
from azure.batch import models

def test_target_reaches_the_stack(batchbox_local, batchbox_names):
    target = batchbox_local
    assert target.backend_name == "local"
    assert target.batch_url == "http://127.0.0.1:" + os.environ["BATCHBOX_EMULATOR_PORT"]
    assert target.batch_account and target.batch_key
    assert ":" + os.environ["BATCHBOX_AZURITE_PORT"] + "/" in target.storage_connection_string

    client = target.batch_client()
    pool_id, job_id = batchbox_names.pool_id(), batchbox_names.job_id()
    client.create_pool(models.BatchPoolCreateOptions(
        id=pool_id, vm_size="standard_d2s_v3", target_dedicated_nodes=1,
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=models.BatchVmImageReference(
                publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"),
            node_agent_sku_id="batch.node.ubuntu 22.04")))
    client.create_job(models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, models.BatchTaskCreateOptions(id="hello", command_line="/bin/sh -c 'echo hi'"))
    deadline = time.monotonic() + 120
    while client.get_task(job_id, "hello").state != models.BatchTaskState.COMPLETED:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.get_task(job_id, "hello").execution_info.exit_code == 0

    blobs = target.blob_service_client()
    container = batchbox_names.container()
    blobs.create_container(container)
    blobs.get_blob_client(container, "a.txt").upload_blob(b"a")
    assert [b.name for b in blobs.get_container_client(container).list_blobs()] == ["a.txt"]

    backend = target.backend()
    assert backend.describe().startswith("local")
    assert pool_id in {pool.id for pool in backend.compute.list_pools()}
"""

_FAILING_TEST = """
import json, os
from azure.batch import models

def test_fails_after_creating_things(batchbox_local, batchbox_names):
    client = batchbox_local.batch_client()
    pool_id, job_id, container = batchbox_names.pool_id(), batchbox_names.job_id(), batchbox_names.container()
    never_created = batchbox_names.pool_id("unused")
    client.create_pool(models.BatchPoolCreateOptions(
        id=pool_id, vm_size="standard_d2s_v3", target_dedicated_nodes=0,
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=models.BatchVmImageReference(
                publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"),
            node_agent_sku_id="batch.node.ubuntu 22.04")))
    client.create_job(models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id=pool_id)))
    batchbox_local.blob_service_client().create_container(container)
    with open(os.environ["PLUGIN_RECORD"], "w") as record:
        json.dump({"pool": pool_id, "job": job_id, "container": container, "unused": never_created}, record)
    assert False, "this test fails on purpose"
"""

_XDIST_TESTS = """
import json, os, time
import pytest
from batchbox.backends.local.stack import LocalStack

@pytest.mark.parametrize("n", range(4))
def test_shares_the_stack(batchbox_local, worker_id, n):
    stack = LocalStack()
    with open(os.path.join(os.environ["PLUGIN_RECORD"], f"{worker_id}-{n}.json"), "w") as record:
        json.dump({"worker": worker_id, "url": batchbox_local.batch_url,
                   "pids": [s.pid for s in stack.status()]}, record)
    time.sleep(0.5)
"""

_AZURE_TEST = """
import os
from pathlib import Path

def test_points_at_azure(batchbox_local):
    assert batchbox_local.backend_name == "azure"
    assert batchbox_local.batch_url == os.environ["BATCHBOX_BATCH_URL"]
    assert batchbox_local.batch_account == "myacct"
    assert type(batchbox_local.batch_client()).__name__ == "BatchClient"
    assert batchbox_local.blob_service_client().account_name == "mystore"
    assert not (Path(os.environ["BATCHBOX_HOME"]) / "emulator").exists()
"""


_ENTRA_TEST = """
import os
from datetime import timedelta

def test_entra_target_uses_tokens_and_the_local_ca(batchbox_local, batchbox_names):
    from batchbox.testing import LocalTokenCredential

    target = batchbox_local
    assert target.entra and target.batch_url == "https://127.0.0.1:" + os.environ["BATCHBOX_EMULATOR_PORT"]
    client = target.batch_client()
    assert isinstance(client._config.credential, LocalTokenCredential)
    assert list(client.list_pools()) == []
    blobs = target.blob_service_client()
    assert isinstance(blobs.credential, LocalTokenCredential)
    name = batchbox_names.container("entra")
    blobs.create_container(name)
    assert blobs.get_container_client(name).exists()
    backend = target.backend()
    assert "Entra ID tokens" in backend.describe()
    backend.storage.upload_bytes(name, "a.txt", b"a")
    assert "skoid=" in backend.storage.blob_sas_url(name, "a.txt", expiry=timedelta(hours=1))
"""


@pytest.fixture
def plugin_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node_image: str) -> Iterator[LocalStack]:
    """The environment of an inner run: its own BATCHBOX_HOME and ports; the stack is stopped afterwards anyway."""
    for name in list(os.environ):
        if name.startswith("BATCHBOX_"):
            monkeypatch.delenv(name)
    ports = (find_free_port(), find_free_port())
    monkeypatch.setenv("BATCHBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BATCHBOX_AZURITE_PORT", str(ports[0]))
    monkeypatch.setenv("BATCHBOX_EMULATOR_PORT", str(ports[1]))
    stack = LocalStack(tmp_path / "home", azurite_port=ports[0], emulator_port=ports[1])
    try:
        yield stack
    finally:
        stack.down(remove_nodes=True)


def _running(stack: LocalStack) -> dict[str, int | None]:
    return {status.name: status.pid for status in stack.status() if status.running}


def test_fixture_starts_the_stack_and_stops_what_it_started(
    pytester: pytest.Pytester, plugin_stack: LocalStack
) -> None:
    assert _running(plugin_stack) == {}
    pytester.makepyfile(test_target=_TARGET_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert _running(plugin_stack) == {}
    assert not list((plugin_stack.home / "leases").glob("*.pid"))


def test_entra_auth_gives_a_tls_stack_and_token_clients(
    pytester: pytest.Pytester, plugin_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHBOX_AUTH", "entra")
    pytester.makepyfile(test_entra=_ENTRA_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert _running(plugin_stack) == {}
    assert (plugin_stack.home / "tls" / "ca.pem").is_file()


def test_running_stack_is_reused_and_a_failed_test_is_cleaned_up(
    pytester: pytest.Pytester,
    plugin_stack: LocalStack,
    node_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoints = plugin_stack.up(node_image=node_image)
    before = _running(plugin_stack)
    record = tmp_path / "names.json"
    monkeypatch.setenv("PLUGIN_RECORD", str(record))
    pytester.makepyfile(test_failing=_FAILING_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert _running(plugin_stack) == before  # the user's stack: reused, left running

    names = json.loads(record.read_text())
    client = BatchClient(endpoints.batch_url, AzureNamedKeyCredential(endpoints.batch_account, endpoints.batch_key))
    blobs = BlobServiceClient.from_connection_string(endpoints.storage_connection_string)
    with client, blobs:
        for get in (lambda: client.get_job(names["job"]), lambda: client.get_pool(names["pool"])):
            with pytest.raises(ResourceNotFoundError):
                get()
        assert not blobs.get_container_client(names["container"]).exists()
    assert "batchbox cleanup" not in result.stdout.str()  # the name never used was skipped quietly


def test_xdist_workers_share_one_stack(
    pytester: pytest.Pytester, plugin_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("PLUGIN_RECORD", str(records))
    pytester.makepyfile(test_xdist=_XDIST_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    seen = [json.loads(path.read_text()) for path in records.glob("*.json")]
    assert {entry["worker"] for entry in seen} == {"gw0", "gw1"}
    assert len({tuple(entry["pids"]) for entry in seen}) == 1  # one Azurite and one emulator for both workers
    assert None not in seen[0]["pids"]
    assert _running(plugin_stack) == {}  # the run started it, its last worker stopped it
    assert not (plugin_stack.home / "leases" / "started.json").exists()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_flag_points_the_same_fixture_at_azure(
    pytester: pytest.Pytester, plugin_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv("BATCHBOX_BATCH_URL", "https://myacct.westeurope.batch.azure.com")
    monkeypatch.setenv("BATCHBOX_BATCH_ACCOUNT", "myacct")
    monkeypatch.setenv("BATCHBOX_BATCH_KEY", "bm90LWEtcmVhbC1rZXk=")
    monkeypatch.setenv(
        "BATCHBOX_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=mystore;AccountKey=bm90LWEtcmVhbC1rZXk=;EndpointSuffix=core.windows.net",
    )
    pytester.makepyfile(test_azure=_AZURE_TEST)
    if how == "option":
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--batchbox-backend=azure")
    else:
        monkeypatch.setenv("BATCHBOX_BACKEND", "azure")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_azure_without_settings_names_the_missing_variable(pytester: pytest.Pytester, plugin_stack: LocalStack) -> None:
    pytester.makepyfile(test_azure=_AZURE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--batchbox-backend=azure")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*batchbox: BATCHBOX_BATCH_URL*not set*"])
