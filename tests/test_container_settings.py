"""The pure side of container pools and tasks and of the other node properties: ``containerRunOptions`` parsed and
refused with a reason, container and registry settings validated with their passwords taken out, the description-only
VM settings kept, extensions and other file systems refused, package references checked, Batch's variable names."""

from __future__ import annotations

from typing import Any

import pytest

from batchbox.emulator.applications.catalog import ResolvedPackage
from batchbox.emulator.applications.references import package_directory, package_variables
from batchbox.emulator.errors import BatchError
from batchbox.emulator.resources import build_pool, build_task
from batchbox.emulator.resources.containers import ValidationContext, image_registry, registry_secret_name
from batchbox.emulator.resources.run_options import BindMount, RunOptionError, check_bind_sources, parse_run_options
from batchbox.emulator.runtime.container_payload import container_fields

_VM: dict[str, Any] = {
    "imageReference": {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}
_BASE = "http://127.0.0.1:1"


def pool(**extra: Any) -> dict[str, Any]:
    return {"id": "p", "vmSize": "standard_d2_v3", "virtualMachineConfiguration": dict(_VM), **extra}


def container_pool(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return pool(virtualMachineConfiguration={**_VM, "containerConfiguration": config}, **extra)


# ------------------------------------------------------------------------------------------------ run options
def test_run_options_map_to_container_settings() -> None:
    options = parse_run_options(
        "-e A=1 --env=B -it --workdir /app -u 1000:1000 --entrypoint /bin/sh -m 512m --cpus 1.5 --shm-size 64m "
        "--ulimit nofile=1024:2048 --tmpfs /scratch:size=1m --read-only --init --rm --network host "
        "-v /mnt/batch/tasks/shared:/data:ro --mount type=volume,target=/cache -l team=x --cap-drop NET_RAW"
    )
    assert options.environment == [("A", "1"), ("B", None)]
    assert (options.tty, options.stdin_open, options.workdir, options.user) == (True, True, "/app", "1000:1000")
    assert (options.entrypoint, options.memory, options.nano_cpus) == ("/bin/sh", 512 * 1024**2, 1_500_000_000)
    assert (options.shm_size, options.ulimits, options.tmpfs) == (
        64 * 1024**2,
        [("nofile", 1024, 2048)],
        {"/scratch": "size=1m"},
    )
    assert (options.read_only, options.init, options.labels, options.cap_drop) == (
        True,
        True,
        {"team": "x"},
        ["NET_RAW"],
    )
    assert options.mounts == [BindMount("/data", "/mnt/batch/tasks/shared", True), BindMount("/cache")]


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("--privileged", "--privileged"),
        ("--cap-add SYS_ADMIN", "--cap-add"),
        ("--security-opt seccomp=unconfined", "--security-opt"),
        ("--network bridge", "--network"),
        ("--net=none", "--network"),
        ("--pid host", "--pid"),
        ("--ipc=host", "--ipc"),
        ("--device /dev/kvm", "--device"),
        ("--gpus all", "--gpus"),
        ("-d", "--detach"),
        ("--name x", "--name"),
        ("-p 80:80", "--publish"),
        ("-v data:/data", "--volume"),
        ("--volume /a:/b:shared", "--volume"),
        ("--mount type=bind,source=relative,target=/x", "--mount"),
        ("--log-driver none", "--log-driver"),
        ("--sysctl net.ipv4.ip_forward=1", "--sysctl"),
        ("--label batchbox.node=x", "--label"),
        ("-m lots", "--memory"),
        ("--env", "--env"),
        ("--frobnicate", "--frobnicate"),
        ("python app.py", "python"),
        ("--env 'unterminated", "containerRunOptions"),
    ],
)
def test_refused_run_options_name_the_option(text: str, option: str) -> None:
    with pytest.raises(RunOptionError) as caught:
        parse_run_options(text)
    assert caught.value.option == option
    assert caught.value.reason


def test_privileges_only_when_the_emulator_allows_them() -> None:
    options = parse_run_options("--privileged --cap-add SYS_PTRACE", allow_privileged=True)
    assert options.privileged and options.cap_add == ["SYS_PTRACE"]


def test_bind_sources_must_be_task_directories() -> None:
    roots = ["/mnt/batch/tasks/shared", "/mnt/batch/tasks/workitems/j/job-1/t"]
    check_bind_sources(parse_run_options("-v /mnt/batch/tasks/workitems/j/job-1/t/wd:/w"), roots)
    for source in (
        "/etc",
        "/mnt/batch/tasks",
        "/mnt/batch/tasks/workitems/j/job-1/other",
        "/mnt/batch/tasks/shared/../x",
    ):
        with pytest.raises(RunOptionError, match="outside the task's directories"):
            check_bind_sources(parse_run_options(f"-v {source}:/x"), roots)


# ------------------------------------------------------------------------------------------------ container settings
def test_container_configuration_keeps_no_password() -> None:
    context = ValidationContext()
    registries = [{"registryServer": "Example.azurecr.io", "username": "u", "password": "secret-value"}]
    doc = build_pool(
        container_pool({"type": "DockerCompatible", "containerImageNames": ["a:1"], "containerRegistries": registries}),
        base_url=_BASE,
        context=context,
    )
    config = doc["virtualMachineConfiguration"]["containerConfiguration"]
    assert config == {
        "type": "dockerCompatible",
        "containerImageNames": ["a:1"],
        "containerRegistries": [{"registryServer": "Example.azurecr.io", "username": "u"}],
    }
    assert "secret-value" not in str(doc)
    [secret] = context.secrets
    assert (secret.name, secret.value) == (registry_secret_name("https://example.azurecr.io/", "u"), "secret-value")


@pytest.mark.parametrize(
    ("image", "registry"),
    [("ubuntu", "docker.io"), ("library/ubuntu:22.04", "docker.io"), ("myreg.azurecr.io/tools:1", "myreg.azurecr.io"),
     ("localhost:5000/x", "localhost:5000"), ("127.0.0.1:9/x:1", "127.0.0.1:9")],
)  # fmt: skip
def test_image_registry(image: str, registry: str) -> None:
    assert image_registry(image) == registry


@pytest.mark.parametrize(
    ("config", "code", "named"),
    [
        ({}, "MissingRequiredProperty", "virtualMachineConfiguration.containerConfiguration.type"),
        ({"type": "lxc"}, "InvalidPropertyValue", "virtualMachineConfiguration.containerConfiguration.type"),
        (
            {"type": "dockerCompatible", "containerRegistries": [{"identityReference": {"resourceId": "x"}}]},
            "UnsupportedProperty",
            "virtualMachineConfiguration.containerConfiguration.containerRegistries[0].identityReference",
        ),
        (
            {"type": "dockerCompatible", "containerRegistries": [{"username": "u"}]},
            "MissingRequiredProperty",
            "virtualMachineConfiguration.containerConfiguration.containerRegistries[0].password",
        ),
    ],
)
def test_bad_container_configuration(config: dict[str, Any], code: str, named: str) -> None:
    with pytest.raises(BatchError) as caught:
        build_pool(container_pool(config), base_url=_BASE)
    assert (caught.value.code, caught.value.values["PropertyName"]) == (code, named)


def test_task_container_settings_are_validated_and_may_have_an_empty_command_line() -> None:
    context = ValidationContext()
    job = {"id": "j", "url": f"{_BASE}/jobs/j"}
    body = {
        "id": "t",
        "commandLine": "",
        "containerSettings": {
            "imageName": "a:1",
            "containerRunOptions": "--env X=1",
            "workingDirectory": "CONTAINERIMAGEDEFAULT",
            "registry": {"registryServer": "r.io", "username": "u", "password": "pw"},
            "containerHostBatchBindMounts": [{"source": "task", "isReadOnly": True}],
        },
    }
    doc = build_task(body, job=job, base_url=_BASE, context=context)
    assert doc["commandLine"] == ""
    assert doc["containerSettings"] == {
        "imageName": "a:1",
        "containerRunOptions": "--env X=1",
        "registry": {"registryServer": "r.io", "username": "u"},
        "workingDirectory": "containerImageDefault",
        "containerHostBatchBindMounts": [{"source": "Task", "isReadOnly": True}],
    }
    assert [s.value for s in context.secrets] == ["pw"]
    with pytest.raises(BatchError) as caught:
        build_task({"id": "u", "commandLine": ""}, job=job, base_url=_BASE)
    assert caught.value.code == "MissingRequiredProperty"


def test_container_fields_follow_batchs_rules() -> None:
    plain_pool = {"id": "p", "virtualMachineConfiguration": dict(_VM)}
    containers = {"id": "p", "virtualMachineConfiguration": {**_VM, "containerConfiguration": {"type": "x"}}}
    in_image = {"containerSettings": {"imageName": "a:1"}}
    assert container_fields(in_image, containers, required=True) == {"container": {"imageName": "a:1"}}
    assert container_fields({}, plain_pool, required=True) == {}
    assert container_fields({}, containers, required=False) == {}
    assert container_fields({}, containers, required=True)["failureInfo"]["code"] == "ContainerTaskSettingsNotFound"
    assert container_fields(in_image, plain_pool, required=True)["failureInfo"]["code"] == "ContainerInvalidSettings"


# ------------------------------------------------------------------------------------- the other node properties
def test_description_only_vm_settings_are_kept_and_extensions_refused() -> None:
    described = {
        "diskEncryptionConfiguration": {"targets": ["osdisk"]},
        "nodePlacementConfiguration": {"policy": "zonal"},
        "osDisk": {"caching": "readonly"},
        "securityProfile": {"securityType": "trustedLaunch", "encryptionAtHost": True},
        "serviceArtifactReference": {"id": "/subscriptions/x/artifact"},
    }
    body = pool(virtualMachineConfiguration={**_VM, **described}, applicationLicenses=["maya"])
    body["upgradePolicy"] = {"mode": "manual"}
    doc = build_pool(body, base_url=_BASE)
    vm = doc["virtualMachineConfiguration"]
    assert {name: vm[name] for name in described if name != "osDisk"} == {
        k: v for k, v in described.items() if k != "osDisk"
    }
    assert vm["osDisk"]["caching"] == "readonly"
    assert (doc["applicationLicenses"], doc["upgradePolicy"]) == (["maya"], {"mode": "manual"})
    with pytest.raises(BatchError) as caught:
        build_pool(
            pool(virtualMachineConfiguration={**_VM, "extensions": [{"name": "e", "publisher": "p"}]}), base_url=_BASE
        )
    assert (caught.value.code, caught.value.values["PropertyName"]) == (
        "UnsupportedProperty",
        "virtualMachineConfiguration.extensions",
    )


def test_package_references_are_checked_in_shape_and_number() -> None:
    refs = [{"applicationId": f"a{i}"} for i in range(11)]
    with pytest.raises(BatchError) as caught:
        build_pool(pool(applicationPackageReferences=refs), base_url=_BASE)
    assert caught.value.values["PropertyName"] == "applicationPackageReferences"
    with pytest.raises(BatchError) as missing:
        build_pool(pool(applicationPackageReferences=[{"version": "1"}]), base_url=_BASE)
    assert missing.value.values["PropertyName"] == "applicationPackageReferences[0].applicationId"
    doc = build_pool(pool(applicationPackageReferences=[{"applicationId": "a", "version": "1.0"}]), base_url=_BASE)
    assert doc["applicationPackageReferences"] == [{"applicationId": "a", "version": "1.0"}]


def test_package_variables_use_batchs_linux_names() -> None:
    package = ResolvedPackage("My-App", "2.7.1", "my-app/versions/2.7.1.zip", "0x8DC")
    directory = package_directory(package)
    assert directory.startswith("applications/My-App_2.7.1_")
    assert package_variables("My-App", "2.7.1", True, directory) == {
        "AZ_BATCH_APP_PACKAGE_My_App_2_7_1": f"/mnt/batch/tasks/{directory}",
        "AZ_BATCH_APP_PACKAGE_My_App": f"/mnt/batch/tasks/{directory}",
    }
    assert list(package_variables("tool#x", "1", False, directory)) == ["AZ_BATCH_APP_PACKAGE_tool_x_1"]
