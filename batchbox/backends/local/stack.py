"""The local stack: Azurite and the Batch emulator as background processes under one state directory.

``batchbox local up`` / ``status`` / ``down`` and the local backend use it. Each service is started only when
it is not already running (pid file + an HTTP answer), and stopped by the PID this module recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from batchbox.backends.local.azurite import (
    AzuriteProcess,
    connection_string,
    read_pid_file,
    running_from_pid_file,
    stop_from_pid_file,
    stop_pid,
    wait_until_answering,
)
from batchbox.core.errors import BackendUnavailableError
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, DEFAULT_PORT, default_state_dir
from batchbox.emulator.portal.token import new_token, portal_url, read_token

__all__ = ["LOCAL_INSTANCE_LABEL", "LocalEndpoints", "LocalStack", "ServiceStatus"]

LOCAL_INSTANCE_LABEL = "local"
"""Prefix of the ``batchbox.emulator`` label of a local stack's node containers (``local-<hash of its home>``).

Each home gets its own label: an emulator removes the containers of its label it does not know at start, so
two stacks sharing one label would remove each other's nodes."""

DEFAULT_AZURITE_PORT = 10000


@dataclass(frozen=True)
class LocalEndpoints:
    """How to reach the local stack. Contains the (public, local-only) development keys."""

    batch_url: str
    batch_account: str
    batch_key: str
    storage_connection_string: str
    state_dir: str
    portal_url: str = ""
    """The local portal, with its token (``/portal/?token=...``); empty when the emulator never made one."""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ServiceStatus:
    """One background service."""

    name: str
    running: bool
    pid: int | None
    url: str
    log: str


class LocalStack:
    """Azurite + the emulator under ``home`` (default ``$BATCHBOX_HOME`` or ``~/.local/share/batchbox``).

    Ports come from ``BATCHBOX_AZURITE_PORT`` / ``BATCHBOX_EMULATOR_PORT`` (defaults 10000 and 8446); the log
    level of an emulator this stack starts from ``BATCHBOX_EMULATOR_LOG_LEVEL`` (default ``info``).
    """

    def __init__(
        self, home: Path | None = None, *, azurite_port: int | None = None, emulator_port: int | None = None
    ) -> None:
        self.home = Path(home) if home is not None else default_state_dir()
        self.azurite_port = azurite_port or int(os.environ.get("BATCHBOX_AZURITE_PORT", DEFAULT_AZURITE_PORT))
        self.emulator_port = emulator_port or int(os.environ.get("BATCHBOX_EMULATOR_PORT", DEFAULT_PORT))
        self.azurite_dir = self.home / "azurite"
        self.emulator_dir = self.home / "emulator"

    # -- what is running ----------------------------------------------------------------------------------------
    @property
    def emulator_record(self) -> Path:
        return self.emulator_dir / "process.json"

    @property
    def emulator_log(self) -> Path:
        return self.emulator_dir / "emulator.log"

    @property
    def instance_label(self) -> str:
        """The ``batchbox.emulator`` label of this stack's node containers (derived from its home)."""
        digest = hashlib.sha256(str(self.home.expanduser().resolve()).encode()).hexdigest()[:12]
        return f"{LOCAL_INSTANCE_LABEL}-{digest}"

    @property
    def batch_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def endpoints(self) -> LocalEndpoints:
        return LocalEndpoints(
            batch_url=self.batch_url,
            batch_account=DEFAULT_ACCOUNT_NAME,
            batch_key=DEFAULT_ACCOUNT_KEY,
            storage_connection_string=connection_string("127.0.0.1", self.azurite_port),
            state_dir=str(self.home),
            portal_url=portal_url(self.batch_url, token) if (token := read_token(self.emulator_dir)) else "",
        )

    def azurite_status(self) -> ServiceStatus:
        info = running_from_pid_file(self.azurite_dir / AzuriteProcess.PID_FILE_NAME)
        running = info is not None and _answers(self.azurite_port)
        return ServiceStatus(
            "azurite",
            running,
            info.pid if info else None,
            f"http://127.0.0.1:{self.azurite_port}",
            str(self.azurite_dir / AzuriteProcess.LOG_NAME),
        )

    def emulator_status(self) -> ServiceStatus:
        pid = _read_pid(self.emulator_record)
        running = pid is not None and _alive(pid) and _answers(self.emulator_port)
        return ServiceStatus("emulator", running, pid, self.batch_url, str(self.emulator_log))

    def status(self) -> list[ServiceStatus]:
        return [self.azurite_status(), self.emulator_status()]

    # -- up / down ----------------------------------------------------------------------------------------------
    def up(self, *, node_image: str | None = None, timeout: float = 60.0) -> LocalEndpoints:
        """Start whatever is not running yet and wait until both services answer.

        Checks the Docker engine (and builds the node image when missing) before starting anything.

        Raises:
            BackendUnavailableError: Docker, Azurite or the emulator cannot be reached or started.
        """
        from batchbox.backends.local.node_image import ensure_node_image
        from batchbox.emulator.nodes.docker_engine import connect_docker

        client = connect_docker()
        image = node_image or ensure_node_image(client)
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.azurite_status().running:
            if _answers(self.azurite_port):
                raise BackendUnavailableError(
                    "Azurite", f"port {self.azurite_port} is taken by another program; set BATCHBOX_AZURITE_PORT"
                )
            AzuriteProcess(self.azurite_dir, port=self.azurite_port, detached=True, startup_timeout=timeout).start()
        if not self.emulator_status().running:
            self._start_emulator(image, timeout)
        return self.endpoints()

    def _start_emulator(self, image: str, timeout: float) -> None:
        if _answers(self.emulator_port):
            raise BackendUnavailableError(
                "batchbox emulator",
                f"port {self.emulator_port} is taken by another program; set BATCHBOX_EMULATOR_PORT",
            )
        self.emulator_dir.mkdir(parents=True, exist_ok=True)
        new_token(self.emulator_dir)  # each emulator this stack starts gets a fresh portal token
        command = [
            sys.executable,
            "-m",
            "batchbox.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.emulator_port),
            "--state-dir",
            str(self.emulator_dir),
            "--node-image",
            image,
            "--instance-label",
            self.instance_label,
            "--log-level",
            os.environ.get("BATCHBOX_EMULATOR_LOG_LEVEL") or "info",
        ]
        with open(self.emulator_log, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.emulator_record.write_text(json.dumps({"pid": process.pid, "port": self.emulator_port}) + "\n")
        if not wait_until_answering("127.0.0.1", self.emulator_port, timeout, process):
            code = process.poll()
            why = f"exited with code {code}" if code is not None else f"did not answer within {timeout:g} s"
            raise BackendUnavailableError("batchbox emulator", f"{why}; see {self.emulator_log}")

    def down(self, *, remove_nodes: bool = False) -> list[str]:
        """Stop the services this stack started (by PID); optionally remove the node containers.

        Returns:
            What was stopped or removed, one line each.
        """
        done: list[str] = []
        pid = _read_pid(self.emulator_record)
        if pid is not None and _is_emulator(pid) and stop_pid(pid, check_azurite=False):
            done.append(f"stopped the emulator (pid {pid})")
        self.emulator_record.unlink(missing_ok=True)
        pid_file = self.azurite_dir / AzuriteProcess.PID_FILE_NAME
        info = read_pid_file(pid_file)
        if info is not None and stop_from_pid_file(pid_file):
            done.append(f"stopped Azurite (pid {info.pid})")
        pid_file.unlink(missing_ok=True)
        if remove_nodes:
            from batchbox.emulator.nodes.docker_engine import connect_docker

            client = connect_docker()
            for container in client.containers.list(
                all=True, filters={"label": f"batchbox.emulator={self.instance_label}"}
            ):
                container.remove(force=True)
                done.append(f"removed node container {container.name}")
        return done


def _read_pid(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_emulator(pid: int) -> bool:
    try:
        return b"batchbox.emulator" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _answers(port: int) -> bool:
    return wait_until_answering("127.0.0.1", port, 0.5)
