"""Starting and stopping the background services of a local stack: Azurite (an npm process or a container) and the
Batch emulator process, each stopped only by the PID or container id that was recorded when it started.

:class:`~batchbox.backends.local.stack.LocalStack` decides what to start and when; these functions do it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchbox.backends.local.azurite import (
    AzuriteProcess,
    connection_string,
    read_pid_file,
    stop_from_pid_file,
    wait_until_answering,
)
from batchbox.backends.local.azurite_npm import Progress
from batchbox.backends.local.faults import fault_options
from batchbox.backends.local.provision import AzuriteSource, azurite_command
from batchbox.backends.local.secure_mode import SecureMode, StackMode
from batchbox.backends.local.stack_records import EMULATOR_MARKER
from batchbox.core.errors import BackendUnavailableError
from batchbox.core.pidfiles import read_pid_file as read_record
from batchbox.core.pidfiles import stop_process, write_pid_file
from batchbox.emulator.command import STORAGE_ENV
from batchbox.emulator.faults import FaultConfig
from batchbox.emulator.portal.token import new_token

if TYPE_CHECKING:
    import docker

__all__ = [
    "EMULATOR_LOG_NAME",
    "EMULATOR_RECORD_NAME",
    "answers",
    "remove_containers",
    "start_azurite",
    "start_emulator",
    "stop_azurite",
    "stop_emulator",
]

EMULATOR_RECORD_NAME = "process.json"
"""The emulator's process record (its PID and how it was started), in the emulator's state directory."""
EMULATOR_LOG_NAME = "emulator.log"
"""The emulator's log, in its state directory."""


def answers(port: int, cafile: Path | None = None) -> bool:
    """True when something answers HTTP(S) on ``127.0.0.1:port`` within half a second."""
    return wait_until_answering("127.0.0.1", port, 0.5, cafile=cafile)


def start_azurite(
    client: docker.DockerClient,
    azurite_dir: Path,
    *,
    port: int,
    instance_label: str,
    source: AzuriteSource,
    timeout: float,
    progress: Progress,
    secure: SecureMode | None,
) -> None:
    """Start Azurite from npm, or else from its image: steps 3 to 6 of :mod:`batchbox.backends.local.provision`'s
    storage order (with TLS: 3 to 5).

    Raises:
        BackendUnavailableError: the port is taken, or no Azurite ``source`` allows is at hand.
    """
    from batchbox.backends.local.azurite_container import AzuriteContainer, azurite_image_present

    if answers(port):
        raise BackendUnavailableError("Azurite", f"port {port} is taken by another program; set BATCHBOX_AZURITE_PORT")
    if source != "image":
        command = azurite_command(azurite_dir, progress)
        if command is not None:
            progress(f"starting Azurite on 127.0.0.1:{port}" + (" (TLS)" if secure else ""))
            AzuriteProcess(
                azurite_dir,
                port=port,
                detached=True,
                command=command,
                startup_timeout=timeout,
                tls=secure.azurite_tls() if secure is not None else None,
                oauth=secure is not None,
            ).start()
            return
        if secure is not None:
            raise BackendUnavailableError(
                "Azurite", "TLS needs Azurite from npm (Node.js >= 18 with npm); the Azurite image is not used"
            )
        if source == "npm" or not azurite_image_present(client):
            raise BackendUnavailableError(
                "Azurite",
                "npm is not installed: install Node.js (>= 18) with npm, or run an Azurite yourself and pass "
                "--storage-connection-string (BATCHBOX_STORAGE_CONNECTION_STRING), or use the Azurite image "
                "where a container registry is reachable (--azurite image)",
            )
    container = AzuriteContainer(client, azurite_dir, port=port, instance_label=instance_label)
    container.start(pull=source == "image", timeout=timeout, progress=progress)


def start_emulator(
    emulator_dir: Path,
    *,
    port: int,
    azurite_port: int,
    image: str,
    instance_label: str,
    mode: StackMode,
    secure: SecureMode | None,
    fault_file: Path | None,
    faults: FaultConfig | None,
    timeout: float,
) -> None:
    """Start the emulator in the background with a fresh portal token, record its PID and wait until it answers.

    Raises:
        BackendUnavailableError: the port is taken, or the emulator exited or did not answer within ``timeout``.
    """
    if answers(port):
        raise BackendUnavailableError(
            "batchbox emulator", f"port {port} is taken by another program; set BATCHBOX_EMULATOR_PORT"
        )
    emulator_dir.mkdir(parents=True, exist_ok=True)
    new_token(emulator_dir)  # each emulator this stack starts gets a fresh portal token
    command = _emulator_command(emulator_dir, port, image, instance_label)
    if secure is not None:
        command += secure.emulator_options(mode)
    recorded: dict[str, int | bool] = {"port": port, **mode.record()}
    if faults is not None and fault_file is not None:
        options, fields = fault_options(fault_file, faults, azurite_port)
        command += options
        recorded.update(fields)
    # The linked storage (application packages, blob mounts) goes through the environment: it holds a key.
    linked = connection_string("127.0.0.1", azurite_port, "https" if mode.tls else "http")
    env = {**os.environ, STORAGE_ENV: linked}
    log_path = emulator_dir / EMULATOR_LOG_NAME
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    write_pid_file(emulator_dir / EMULATOR_RECORD_NAME, process.pid, **recorded)
    cafile = secure.tls.ca_bundle if secure is not None else None
    if not wait_until_answering("127.0.0.1", port, timeout, process, cafile=cafile):
        code = process.poll()
        why = f"exited with code {code}" if code is not None else f"did not answer within {timeout:g} s"
        raise BackendUnavailableError("batchbox emulator", f"{why}; see {log_path}")


def _emulator_command(emulator_dir: Path, port: int, image: str, instance_label: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batchbox.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state-dir",
        str(emulator_dir),
        "--node-image",
        image,
        "--instance-label",
        instance_label,
        "--log-level",
        os.environ.get("BATCHBOX_EMULATOR_LOG_LEVEL") or "info",
    ]


def stop_emulator(emulator_dir: Path) -> list[str]:
    """Stop the emulator recorded in ``emulator_dir`` (only when its PID is still an emulator) and drop its record.

    Returns:
        What was stopped: one line, or none.
    """
    record_path = emulator_dir / EMULATOR_RECORD_NAME
    record = read_record(record_path)
    done: list[str] = []
    if record is not None and stop_process(record.pid, markers=[EMULATOR_MARKER]):
        done.append(f"stopped the emulator (pid {record.pid})")
    record_path.unlink(missing_ok=True)
    return done


def stop_azurite(azurite_dir: Path) -> list[str]:
    """Stop the Azurite process recorded in ``azurite_dir`` and drop its pid file.

    Returns:
        What was stopped: one line, or none.
    """
    pid_file = azurite_dir / AzuriteProcess.PID_FILE_NAME
    info = read_pid_file(pid_file)
    done: list[str] = []
    if info is not None and stop_from_pid_file(pid_file):
        done.append(f"stopped Azurite (pid {info.pid})")
    pid_file.unlink(missing_ok=True)
    return done


def remove_containers(
    azurite_dir: Path, *, azurite_port: int, instance_label: str, azurite: bool, nodes: bool
) -> list[str]:
    """Remove the Azurite container recorded in ``azurite_dir`` (when ``azurite``) and the node containers labelled
    ``instance_label`` (when ``nodes``); Docker is not asked when there is nothing to remove.

    Returns:
        What was removed, one line each.
    """
    from batchbox.backends.local.azurite_container import AzuriteContainer
    from batchbox.emulator.nodes.docker_engine import connect_docker

    azurite = azurite and (azurite_dir / AzuriteContainer.RECORD_NAME).exists()
    if not nodes and not azurite:
        return []
    done: list[str] = []
    client = connect_docker()
    try:
        container = AzuriteContainer(client, azurite_dir, port=azurite_port, instance_label=instance_label)
        if azurite and container.stop():
            done.append("removed the Azurite container")
        if nodes:
            label = f"batchbox.emulator={instance_label}"
            for node in client.containers.list(all=True, ignore_removed=True, filters={"label": label}):
                node.remove(force=True)
                done.append(f"removed node container {node.name}")
    finally:
        client.close()
    return done
