"""Blob mounts end to end: a pool's ``azureBlobFileSystemConfiguration`` of the linked storage (the session's
Azurite) is a synced directory on each node; other file systems are refused; keys are never returned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from batchbox.backends.local.azurite import AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME, AzuriteProcess
from batchbox.emulator.storage_link import LOCAL_BLOB_API_VERSION
from tests.fixtures.emulator import EmulatorProcess
from tests.test_container_tasks import error_of
from tests.test_emulator_runtime import add_job, completed_task, idle_nodes, stdout_of, unique, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


@pytest.fixture(scope="module")
def client(linked_emulator: EmulatorProcess) -> BatchClient:
    return linked_emulator.batch_client()


@pytest.fixture(scope="module")
def blobs(azurite: AzuriteProcess) -> Iterator[BlobServiceClient]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string, api_version=LOCAL_BLOB_API_VERSION)
    yield service
    service.close()


@pytest.fixture
def container(blobs: BlobServiceClient) -> Iterator[str]:
    name = f"mount-{uuid.uuid4().hex[:12]}"
    blobs.create_container(name)
    yield name
    blobs.delete_container(name)


def blob_mount(container: str, path: str, **credential: str) -> m.MountConfiguration:
    return m.MountConfiguration(
        azure_blob_file_system_configuration=m.AzureBlobFileSystemConfiguration(
            account_name=AZURITE_ACCOUNT_NAME, container_name=container, relative_mount_path=path, **credential
        )
    )


def create_pool(client: BatchClient, pool_id: str, mounts: list[m.MountConfiguration], nodes: int = 1) -> None:
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=_VM,
            target_dedicated_nodes=nodes,
            mount_configuration=mounts,
        )
    )


def test_blob_container_is_mounted_both_ways(
    client: BatchClient, blobs: BlobServiceClient, container: str, linked_emulator: EmulatorProcess
) -> None:
    store = blobs.get_container_client(container)
    store.upload_blob("in/hello.txt", b"hello from the container\n")
    now = datetime.now(timezone.utc)
    sas = generate_container_sas(
        AZURITE_ACCOUNT_NAME,
        container,
        account_key=AZURITE_ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
        start=now - timedelta(minutes=5),
        expiry=now + timedelta(hours=1),
        protocol="https,http",
    )
    pool_id = unique("mounted")
    create_pool(
        client,
        pool_id,
        [blob_mount(container, "data", account_key=AZURITE_ACCOUNT_KEY), blob_mount(container, "by-sas", sas_key=sas)],
    )
    idle_nodes(client, pool_id, 1)
    pool = client.get_pool(pool_id)
    shown = [mount.azure_blob_file_system_configuration for mount in pool.mount_configuration]
    assert [(s.relative_mount_path, s.account_key, s.sas_key) for s in shown] == [
        ("data", None, None),
        ("by-sas", None, None),
    ]
    assert AZURITE_ACCOUNT_KEY.encode() not in (linked_emulator.state_dir / "state.db").read_bytes()

    job_id = add_job(client, pool_id)
    script = (
        "cat $AZ_BATCH_NODE_MOUNTS_DIR/data/in/hello.txt; cat $AZ_BATCH_NODE_MOUNTS_DIR/by-sas/in/hello.txt; "
        "mkdir -p $AZ_BATCH_NODE_MOUNTS_DIR/data/out && "
        "echo written by a task > $AZ_BATCH_NODE_MOUNTS_DIR/data/out/r.txt"
    )
    client.create_task(job_id, m.BatchTaskCreateOptions(id="reader", command_line=f"/bin/sh -c '{script}'"))
    task = completed_task(client, job_id, "reader")
    assert task.execution_info.exit_code == 0, stdout_of(client, job_id, "reader")
    assert stdout_of(client, job_id, "reader").splitlines() == ["hello from the container"] * 2

    def uploaded() -> bytes | None:
        try:
            return bytes(store.download_blob("out/r.txt").readall())
        except ResourceNotFoundError:
            return None

    assert wait_for("the task's file to reach the container", uploaded, timeout=30) == b"written by a task\n"
    # A blob added now appears on the node; a blob deleted disappears.
    store.upload_blob("in/late.txt", b"late\n")
    store.delete_blob("in/hello.txt")
    synced = linked_emulator.state_dir / "nodes" / task.node_info.node_id / "fsmounts" / "data" / "in"
    wait_for(
        "the node's directory to follow the container", lambda: sorted(p.name for p in synced.iterdir()) == ["late.txt"]
    )
    client.create_task(
        job_id, m.BatchTaskCreateOptions(id="later", command_line="/bin/sh -c 'ls $AZ_BATCH_NODE_MOUNTS_DIR/data/in'")
    )
    completed_task(client, job_id, "later")
    assert stdout_of(client, job_id, "later").split() == ["late.txt"]
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_a_mount_that_cannot_be_synced_makes_the_node_unusable(client: BatchClient, container: str) -> None:
    wrong_key = "d3Jvbmcta2V5LW9mLXRoZS10ZXN0cy13cm9uZy1rZXktb2YtdGhlLXRlc3RzLTAwMDAwMDAwMDAwMDA="
    pool_id = unique("badmount")
    create_pool(client, pool_id, [blob_mount(container, "data", account_key=wrong_key)])

    def unusable() -> m.BatchNode | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes[0] if nodes and nodes[0].state == m.BatchNodeState.UNUSABLE else None

    node = wait_for("the node to be unusable", unusable, timeout=90)
    assert node.errors[0].code == "MountFailed"
    assert {d.name: d.value for d in node.errors[0].error_details}["MountPath"] == "data"
    client.begin_delete_pool(pool_id, polling_interval=1)


@pytest.mark.parametrize(
    ("mount", "named"),
    [
        (
            m.MountConfiguration(
                nfs_mount_configuration=m.NfsMountConfiguration(source="10.0.0.4:/share", relative_mount_path="nfs")
            ),
            "mountConfiguration[0].nfsMountConfiguration",
        ),
        (
            m.MountConfiguration(
                cifs_mount_configuration=m.CifsMountConfiguration(
                    username="u", source="//server/share", relative_mount_path="cifs", password="p"
                )
            ),
            "mountConfiguration[0].cifsMountConfiguration",
        ),
        (
            m.MountConfiguration(
                azure_file_share_configuration=m.AzureFileShareConfiguration(
                    account_name="acct",
                    azure_file_url="https://acct.file.core.windows.net/share",
                    account_key="a2V5",
                    relative_mount_path="files",
                )
            ),
            "mountConfiguration[0].azureFileShareConfiguration",
        ),
        (
            m.MountConfiguration(
                azure_blob_file_system_configuration=m.AzureBlobFileSystemConfiguration(
                    account_name="someoneelse", container_name="c", relative_mount_path="x", account_key="a2V5"
                )
            ),
            "mountConfiguration[0].azureBlobFileSystemConfiguration.accountName",
        ),
    ],
)
def test_other_file_systems_are_refused_naming_the_property(
    client: BatchClient, mount: m.MountConfiguration, named: str
) -> None:
    pool_id = unique("refusedmount")
    with pytest.raises(HttpResponseError) as caught:
        create_pool(client, pool_id, [mount], nodes=0)
    code, values = error_of(caught.value)
    assert (caught.value.status_code, code) == (400, "UnsupportedProperty")
    assert values["PropertyName"] == named
    assert values["Reason"]
    with pytest.raises(ResourceNotFoundError):
        client.get_pool(pool_id)
