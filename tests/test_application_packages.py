"""Application packages end to end: kept in the linked storage (the session's Azurite), listed by GET /applications,
checked on pool create and patch as the real service does, installed on nodes with Batch's variables, and managed
with ``batchbox app``. Real emulator, real node containers, the 15.x SDK."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batchbox.backends.local.azurite import AzuriteProcess, find_free_port
from batchbox.emulator.applications import PackageCatalog
from batchbox.emulator.storage_link import LinkedStorage
from tests.fixtures.batch_recordings import recorded_response
from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.task_images import MARKER_PATH
from tests.test_container_tasks import create_container_pool, error_of, settings
from tests.test_emulator_runtime import add_job, completed_task, idle_nodes, stdout_of, unique

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
_SCRIPT = "#!/bin/sh\necho hello from version $1\n"


def make_package(path: Path, version: str) -> Path:
    """A zip with an executable ``bin/hello.sh`` and ``data.txt`` naming the version."""
    with zipfile.ZipFile(path, "w") as package:
        script = zipfile.ZipInfo("bin/hello.sh")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        package.writestr(script, _SCRIPT)
        package.writestr("data.txt", f"data of {version}\n")
    return path


@pytest.fixture(scope="module")
def client(linked_emulator: EmulatorProcess) -> BatchClient:
    return linked_emulator.batch_client()


@pytest.fixture(scope="module")
def app_id(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An application with versions 1.0 (its default, added first) and 2.0; removed afterwards."""
    folder = tmp_path_factory.mktemp("packages")
    name = f"tool-kit-{uuid.uuid4().hex[:6]}"
    catalog = PackageCatalog(LinkedStorage(azurite.connection_string))
    catalog.add(name, "1.0", make_package(folder / "one.zip", "1.0"), display_name="The tool kit")
    catalog.add(name, "2.0", make_package(folder / "two.zip", "2.0"))
    try:
        yield name
    finally:
        catalog.remove(name)
        catalog.storage.close()


def flat(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


# ------------------------------------------------------------------------------------------------ the REST view
def test_applications_are_listed_with_versions_and_display_name(client: BatchClient, app_id: str) -> None:
    listed = {app.id: app for app in client.list_applications()}
    assert listed[app_id].display_name == "The tool kit"
    assert sorted(listed[app_id].versions) == ["1.0", "2.0"]
    one = client.get_application(app_id.upper())
    assert (one.id, sorted(one.versions)) == (app_id, ["1.0", "2.0"])
    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_application("no-such-application")
    assert error_of(caught.value)[0] == "ApplicationNotFound"


def test_pool_naming_a_missing_package_is_refused_as_the_service_does(client: BatchClient, app_id: str) -> None:
    status, body = recorded_response(
        "test_batch_pools_and_nodes.yaml", "POST", "/pools?", body_part='"applicationId": "does-not-exist"'
    )
    pool_id = unique("nopkg")
    with pytest.raises(HttpResponseError) as caught:
        client.create_pool(
            m.BatchPoolCreateOptions(
                id=pool_id,
                vm_size="standard_d2_v3",
                virtual_machine_configuration=_VM,
                target_dedicated_nodes=0,
                application_package_references=[m.BatchApplicationPackageReference(application_id="does-not-exist")],
            )
        )
    code, values = error_of(caught.value)
    assert (caught.value.status_code, code) == (status, body["code"])
    answer = caught.value.response.json()
    assert answer["message"]["value"].split("\n")[0] == body["message"]["value"].split("\n")[0]
    assert values == {v["key"]: v["value"] for v in body["values"]}
    with pytest.raises(ResourceNotFoundError):
        client.get_pool(pool_id)
    # A version that does not exist is refused the same way, and so is a patch naming one.
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id, vm_size="standard_d2_v3", virtual_machine_configuration=_VM, target_dedicated_nodes=0
        )
    )
    with pytest.raises(HttpResponseError) as patched:
        client.update_pool(
            pool_id,
            m.BatchPoolUpdateOptions(
                application_package_references=[
                    m.BatchApplicationPackageReference(application_id=app_id, version="9.9")
                ]
            ),
        )
    assert (patched.value.status_code, error_of(patched.value)[0]) == (409, "InvalidApplicationPackageReferences")
    assert client.get_pool(pool_id).application_package_references is None
    client.begin_delete_pool(pool_id, polling_interval=1)


# ------------------------------------------------------------------------------------------------ on the nodes
def test_packages_are_installed_with_batchs_variables(
    client: BatchClient, linked_emulator: EmulatorProcess, app_id: str
) -> None:
    pool_id = unique("pkgpool")
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=_VM,
            target_dedicated_nodes=1,
            application_package_references=[m.BatchApplicationPackageReference(application_id=app_id)],
        )
    )
    idle_nodes(client, pool_id, 1)
    job_id = add_job(client, pool_id)
    key = flat(app_id)
    script = (
        f"env | grep ^AZ_BATCH_APP_PACKAGE_ | cut -d= -f1 | sort; "
        f"$AZ_BATCH_APP_PACKAGE_{key}/bin/hello.sh default; "
        f"cat $AZ_BATCH_APP_PACKAGE_{key}_2_0/data.txt; "
        f"test $AZ_BATCH_APP_PACKAGE_{key} = $AZ_BATCH_APP_PACKAGE_{key}_1_0 && echo default-is-1.0"
    )
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="uses-packages",
            command_line=f"/bin/sh -c '{script}'",
            application_package_references=[m.BatchApplicationPackageReference(application_id=app_id, version="2.0")],
        ),
    )
    task = completed_task(client, job_id, "uses-packages")
    assert task.execution_info.exit_code == 0, stdout_of(client, job_id, "uses-packages")
    lines = stdout_of(client, job_id, "uses-packages").splitlines()
    names = sorted(
        [f"AZ_BATCH_APP_PACKAGE_{key}", f"AZ_BATCH_APP_PACKAGE_{key}_1_0", f"AZ_BATCH_APP_PACKAGE_{key}_2_0"]
    )
    assert lines[:3] == names
    assert lines[3:] == ["hello from version default", "data of 2.0", "default-is-1.0"]
    # Extracted under the node root's applications directory, the executable kept executable.
    applications = linked_emulator.state_dir / "nodes" / task.node_info.node_id / "applications"
    installed = sorted(path.name for path in applications.iterdir())
    assert len(installed) == 2 and all(name.startswith(f"{app_id}_") for name in installed)
    assert all(os.access(applications / name / "bin" / "hello.sh", os.X_OK) for name in installed)
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_a_task_naming_a_missing_package_fails_before_it_runs(client: BatchClient, app_id: str) -> None:
    pool_id = unique("pkgfail")
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id, vm_size="standard_d2_v3", virtual_machine_configuration=_VM, target_dedicated_nodes=1
        )
    )
    idle_nodes(client, pool_id, 1)
    job_id = add_job(client, pool_id)
    for task_id, reference in (
        ("no-app", m.BatchApplicationPackageReference(application_id="no-such-app")),
        ("no-version", m.BatchApplicationPackageReference(application_id=app_id, version="7.0")),
    ):
        client.create_task(
            job_id,
            m.BatchTaskCreateOptions(
                id=task_id, command_line="/bin/sh -c 'echo ran'", application_package_references=[reference]
            ),
        )
    for task_id in ("no-app", "no-version"):
        task = completed_task(client, job_id, task_id)
        info = task.execution_info
        assert (info.result, info.exit_code) == (m.BatchTaskExecutionResult.FAILURE, None)
        assert info.failure_info.code == "ApplicationPackageError"
        assert info.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
        assert stdout_of_or_none(client, job_id, task_id) is None
    client.begin_delete_pool(pool_id, polling_interval=1)


def stdout_of_or_none(client: BatchClient, job_id: str, task_id: str) -> str | None:
    try:
        return stdout_of(client, job_id, task_id)
    except HttpResponseError:
        return None


def test_container_task_sees_its_packages(client: BatchClient, app_id: str, task_image: str) -> None:
    pool_id = create_container_pool(client, "pkgcontainer", [task_image])
    idle_nodes(client, pool_id, 1)
    job_id = add_job(client, pool_id)
    variable = f"$AZ_BATCH_APP_PACKAGE_{flat(app_id)}_2_0"
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="in-container",
            command_line=f"/bin/sh -c 'test -f {MARKER_PATH} && {variable}/bin/hello.sh c'",
            container_settings=settings(task_image),
            application_package_references=[m.BatchApplicationPackageReference(application_id=app_id, version="2.0")],
        ),
    )
    task = completed_task(client, job_id, "in-container")
    assert task.execution_info.exit_code == 0, task.execution_info.failure_info
    assert stdout_of(client, job_id, "in-container").strip() == "hello from version c"
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_job_manager_in_a_container_sees_its_packages(client: BatchClient, app_id: str, task_image: str) -> None:
    pool_id = create_container_pool(client, "pkgmanager", [task_image])
    idle_nodes(client, pool_id, 1)
    variable = f"$AZ_BATCH_APP_PACKAGE_{flat(app_id)}_2_0"
    manager = m.BatchJobManagerTask(
        id="manager",
        command_line=f"/bin/sh -c 'test -f {MARKER_PATH} && {variable}/bin/hello.sh manager'",
        container_settings=settings(task_image),
        application_package_references=[m.BatchApplicationPackageReference(application_id=app_id, version="2.0")],
    )
    job_id = add_job(client, pool_id, job_manager_task=manager)
    stored = client.get_job(job_id).job_manager_task
    assert stored.application_package_references[0].application_id == app_id
    assert stored.container_settings.image_name == task_image
    task = completed_task(client, job_id, "manager")
    assert task.execution_info.exit_code == 0, task.execution_info.failure_info
    assert stdout_of(client, job_id, "manager").strip() == "hello from version manager"
    client.begin_delete_pool(pool_id, polling_interval=1)


# ------------------------------------------------------------------------------------------------ batchbox app
def test_batchbox_app_commands(tmp_path: Path, node_image: str) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    env.update(
        {
            "BATCHBOX_HOME": str(home),
            "BATCHBOX_AZURITE_PORT": str(find_free_port()),
            "BATCHBOX_EMULATOR_PORT": str(find_free_port()),
        }
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "batchbox.cli.main", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)

    package = make_package(tmp_path / "p.zip", "3.1")
    try:
        added = cli("app", "add", "renderer", "3.1", str(package), "--display-name", "Renderer")
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == "added renderer 3.1 (default)"
        assert cli("app", "add", "renderer", "3.2", str(package)).returncode == 0
        again = cli("app", "add", "renderer", "3.1", str(package))
        assert again.returncode == 1
        assert again.stderr.strip() == "batchbox: error: renderer 3.1 exists already; remove it first"
        not_zip = cli("app", "add", "renderer", "4.0", str(tmp_path / "home" / "emulator" / "emulator.log"))
        assert not_zip.returncode == 1 and "is not a .zip file" in not_zip.stderr
        assert len(not_zip.stderr.strip().splitlines()) == 1
        listed = json.loads(cli("app", "list", "--json").stdout)
        assert listed == [
            {"id": "renderer", "displayName": "Renderer", "versions": ["3.1", "3.2"], "defaultVersion": "3.1"}
        ]
        info = json.loads(cli("local", "up", "--json").stdout)
        batch = BatchClient(info["batch_url"], AzureNamedKeyCredential(info["batch_account"], info["batch_key"]))
        assert sorted(batch.get_application("renderer").versions) == ["3.1", "3.2"]
        assert cli("app", "remove", "renderer", "3.1").stdout.strip() == "removed renderer 3.1"
        assert sorted(batch.get_application("renderer").versions) == ["3.2"]
        missing = cli("app", "remove", "renderer", "9.9")
        assert missing.returncode == 1
        assert missing.stderr.strip() == "batchbox: error: the application renderer has no version 9.9"
        batch.close()
    finally:
        cli("local", "down", "--remove-nodes")
