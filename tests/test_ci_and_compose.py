"""The files for other machines: GitHub workflows and docker-compose.yml. They cannot run here (no GitHub, no
container registry), so they are validated: workflows against GitHub's workflow schema, compose files against
the Compose specification (check-jsonschema's vendored schemas, offline) and with ``docker compose config`` where
the compose plugin exists; the emulator image's entrypoint runs on this machine as it would in the container.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential

from batchbox.backends.local.azurite import find_free_port, wait_until_answering
from batchbox.backends.local.azurite_npm import pinned_azurite_version
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.nodes.docker_driver import AGENT_MOUNT

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = [
    REPO / ".github" / "workflows" / "ci.yml",
    REPO / "examples/user-project/.github/workflows/integration.yml",
]
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.azurite.yml"]
ENTRYPOINT = REPO / "compose" / "emulator-entrypoint.sh"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _check_schema(schema: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    command = [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_workflows_match_githubs_workflow_schema() -> None:
    result = _check_schema("vendor.github-workflows", WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    step:\n      - run: make test\n")
    assert _check_schema("vendor.github-workflows", [broken]).returncode != 0


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def test_ci_workflow_runs_lint_and_test_and_azure_only_with_secrets() -> None:
    jobs = _load(WORKFLOWS[0])["jobs"]
    commands = [step.get("run", "") for step in jobs["test"]["steps"]]
    assert "make lint" in commands
    assert any(command.startswith("make test") for command in commands)
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in jobs["test"]["steps"])
    assert jobs["test"]["runs-on"] == "ubuntu-latest"
    azure_steps = jobs["azure"]["steps"]
    assert "secrets.BATCHBOX_BATCH_URL" in jobs["azure"]["env"]["BATCHBOX_BATCH_URL"]
    assert all(step["if"].endswith("env.BATCHBOX_BATCH_URL != ''") for step in azure_steps[1:])
    assert any("-m azure" in step.get("run", "") for step in azure_steps)


def test_user_template_runs_the_tests_locally_then_on_azure() -> None:
    jobs = _load(WORKFLOWS[1])["jobs"]
    local_runs = [step.get("run", "") for step in jobs["local"]["steps"]]
    assert "batchbox local up" in local_runs and any("pytest" in run for run in local_runs)
    azure_runs = [step.get("run", "") for step in jobs["azure"]["steps"]]
    assert any("--batchbox-backend=azure" in run for run in azure_runs)


def test_compose_files_match_the_compose_specification() -> None:
    result = _check_schema("vendor.compose-spec", COMPOSE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_command() -> list[str] | None:
    docker_cli = shutil.which("docker")
    if docker_cli is not None:
        probe = subprocess.run([docker_cli, "compose", "version"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return [docker_cli, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_whole_stack() -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip("neither the Docker compose plugin nor docker-compose is installed; the schema check above ran")
    result = subprocess.run(
        [*compose, "-f", str(COMPOSE_FILES[0]), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["services"]) == {"azurite", "node-image", "emulator"}


def test_compose_stack_shares_the_host_network_and_the_docker_socket() -> None:
    services = _load(COMPOSE_FILES[0])["services"]
    assert all(service["network_mode"] == "host" for service in services.values())
    assert services["azurite"]["image"] == f"mcr.microsoft.com/azure-storage/azurite:{pinned_azurite_version()}"
    emulator = services["emulator"]
    assert (REPO / emulator["build"]["dockerfile"]).is_file()
    assert "/var/run/docker.sock:/var/run/docker.sock" in emulator["volumes"]
    state = emulator["environment"]["BATCHBOX_STATE"]
    assert f"{state}:{state}" in emulator["volumes"]  # the same path inside and out
    assert (REPO / services["node-image"]["build"]["context"] / "Dockerfile").is_file()
    assert emulator["command"][emulator["command"].index("--node-image") + 1] == services["node-image"]["image"]


@pytest.mark.docker
def test_emulator_entrypoint_runs_the_agent_from_the_state_directory(tmp_path: Path, node_image: str) -> None:
    """What the emulator container does, run on this machine: nodes mount the agent copy in the state directory."""
    state = tmp_path / "state"
    port = find_free_port()
    label = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATCHBOX_", "PYTHONPATH"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BATCHBOX_STATE": str(state),
        "BATCHBOX_NODE_LABELS": "batchbox.test=1",
    }
    command = ["sh", str(ENTRYPOINT), "--port", str(port), "--node-image", node_image, "--instance-label", label]
    with open(tmp_path / "emulator.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    engine = docker.from_env()
    try:
        assert wait_until_answering("127.0.0.1", port, 60, path="/pools"), (tmp_path / "emulator.log").read_text()
        client = BatchClient(
            f"http://127.0.0.1:{port}", AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY)
        )
        client.create_pool(
            models.BatchPoolCreateOptions(
                id="p",
                vm_size="standard_d2s_v3",
                target_dedicated_nodes=1,
                virtual_machine_configuration=models.VirtualMachineConfiguration(
                    image_reference=models.BatchVmImageReference(
                        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
                    ),
                    node_agent_sku_id="batch.node.ubuntu 22.04",
                ),
            )
        )
        client.create_job(models.BatchJobCreateOptions(id="j", pool_info=models.BatchPoolInfo(pool_id="p")))
        client.create_task("j", models.BatchTaskCreateOptions(id="t", command_line="/bin/sh -c 'echo hi'"))
        deadline = time.monotonic() + 120
        while client.get_task("j", "t").state != models.BatchTaskState.COMPLETED:
            assert time.monotonic() < deadline, "the task did not complete"
            time.sleep(0.2)
        assert client.get_task("j", "t").execution_info.exit_code == 0
        client.close()
        (node,) = engine.containers.list(ignore_removed=True, filters={"label": f"batchbox.emulator={label}"})
        mounts = {mount["Destination"]: mount["Source"] for mount in node.attrs["Mounts"]}
        assert mounts[AGENT_MOUNT] == str(state / "agent" / "batchbox" / "node")
        assert Path(mounts["/mnt/batch/tasks"]).is_relative_to(state)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        for container in engine.containers.list(
            all=True, ignore_removed=True, filters={"label": f"batchbox.emulator={label}"}
        ):
            container.remove(force=True)
        engine.close()
