"""The local stack: Azurite and the Batch emulator as background processes under one state directory.

``batchbox local up`` / ``status`` / ``down``, the local backend and the pytest plugin use it. Each service is
started only when it is not already running (pid file + an HTTP answer), and stopped by the PID this module
recorded. What ``up`` provisions first (Docker engine, Azurite, node image) and in which order is described in
:mod:`batchbox.backends.local.provision`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors

from batchbox.backends.local.azurite import (
    AzuriteProcess,
    connection_string,
    read_pid_file,
    running_from_pid_file,
    stop_from_pid_file,
    wait_until_answering,
)
from batchbox.backends.local.azurite_npm import Progress
from batchbox.backends.local.faults import STORAGE_PROXY_FIELD, active_faults, checked_faults, fault_options
from batchbox.backends.local.provision import (
    AzuriteSource,
    azurite_command,
    azurite_source,
    check_storage,
    ensure_docker,
)
from batchbox.backends.local.secure_mode import (
    ENTRA_DIR_NAME,
    TLS_DIR_NAME,
    SecureMode,
    StackMode,
    choose_mode,
    recorded_mode,
)
from batchbox.backends.local.tls import CA_FILE_NAME
from batchbox.core.errors import BackendUnavailableError, ConfigurationError
from batchbox.core.pidfiles import command_line_mentions, is_alive, stop_process, write_pid_file
from batchbox.core.pidfiles import read_pid_file as read_record
from batchbox.emulator.command import STORAGE_ENV
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, DEFAULT_PORT, default_state_dir
from batchbox.emulator.faults import FaultConfig
from batchbox.emulator.portal.token import new_token, portal_url, read_token

if TYPE_CHECKING:
    from batchbox.backends.local.azurite_container import AzuriteContainer

__all__ = ["LOCAL_INSTANCE_LABEL", "SERVICES", "LocalEndpoints", "LocalStack", "ServiceStatus", "StackMode"]

LOCAL_INSTANCE_LABEL = "local"
"""Prefix of the ``batchbox.emulator`` label of a local stack's node containers (``local-<hash of its home>``).

Each home gets its own label: an emulator removes the containers of its label it does not know at start, so
two stacks sharing one label would remove each other's nodes."""

DEFAULT_AZURITE_PORT = 10000
SERVICES = ("azurite", "emulator")
"""The background services of a local stack, as named by :class:`ServiceStatus`."""
_EMULATOR_MARKER = "batchbox.emulator"


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
    ca_bundle: str = ""
    """With TLS: the local CA certificate clients must trust (``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``)."""
    storage_account_url: str = ""
    """The blob endpoint (what a ``BlobServiceClient`` with a token credential is given)."""
    entra_issuer: str = ""
    """With TLS: the directory of the local Entra ID token issuer (``LocalTokenCredential(entra_issuer)``)."""

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


def _quiet(line: str) -> None:
    """The default progress receiver: says nothing."""


class LocalStack:
    """Azurite + the emulator under ``home`` (default ``$BATCHBOX_HOME`` or ``~/.local/share/batchbox``).

    Ports come from ``BATCHBOX_AZURITE_PORT`` / ``BATCHBOX_EMULATOR_PORT`` (defaults 10000 and 8446); the log
    level of an emulator this stack starts from ``BATCHBOX_EMULATOR_LOG_LEVEL`` (default ``info``).

    Args:
        home: the state directory.
        azurite_port / emulator_port: override the ports.
        storage_connection_string: blob storage the user runs (e.g. their own Azurite); no Azurite is started.
        azurite: where Azurite comes from: ``auto``, ``npm`` or ``image`` (default ``BATCHBOX_AZURITE`` or
            ``auto``; see :mod:`batchbox.backends.local.provision`).
        faults: a TOML file whose ``[faults]`` table the emulator injects (``batchbox local up --faults``); with
            ``[faults.storage]`` clients reach Azurite through the emulator's storage fault proxy.
        mode: TLS and SharedKey (see :mod:`batchbox.backends.local.secure_mode`); None takes the running stack's
            mode, or plain HTTP when nothing runs. A running stack in another mode makes ``up`` fail.
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        azurite_port: int | None = None,
        emulator_port: int | None = None,
        storage_connection_string: str | None = None,
        azurite: str | None = None,
        faults: Path | None = None,
        mode: StackMode | None = None,
    ) -> None:
        self.home = Path(home) if home is not None else default_state_dir()
        self.azurite_port = azurite_port or int(os.environ.get("BATCHBOX_AZURITE_PORT", DEFAULT_AZURITE_PORT))
        self.emulator_port = emulator_port or int(os.environ.get("BATCHBOX_EMULATOR_PORT", DEFAULT_PORT))
        self.azurite_dir = self.home / "azurite"
        self.emulator_dir = self.home / "emulator"
        self.storage_connection_string = storage_connection_string or None
        self.azurite_source: AzuriteSource = azurite_source(azurite)
        self.faults = Path(faults).resolve() if faults is not None else None
        self.requested_mode = mode

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
    def ca_bundle(self) -> Path:
        """The local CA certificate of a TLS stack (made by ``up``)."""
        return self.home / TLS_DIR_NAME / CA_FILE_NAME

    @property
    def entra_dir(self) -> Path:
        """The local Entra ID token issuer of a TLS stack (made by ``up``)."""
        return self.home / ENTRA_DIR_NAME

    def running_mode(self) -> StackMode | None:
        """The mode of the emulator this stack runs, or None when it does not run."""
        record = read_record(self.emulator_record)
        return recorded_mode(record.fields) if record is not None and self._emulator_pid() is not None else None

    @property
    def mode(self) -> StackMode:
        """The running emulator's mode, else the one asked for, else plain HTTP."""
        return self.running_mode() or self.requested_mode or StackMode()

    @property
    def batch_url(self) -> str:
        return f"{'https' if self.mode.tls else 'http'}://127.0.0.1:{self.emulator_port}"

    def endpoints(self) -> LocalEndpoints:
        tls = self.mode.tls
        storage = self.storage_connection_string or connection_string(
            "127.0.0.1", self._storage_port(), "https" if tls else "http"
        )
        return LocalEndpoints(
            batch_url=self.batch_url,
            batch_account=DEFAULT_ACCOUNT_NAME,
            batch_key=DEFAULT_ACCOUNT_KEY,
            storage_connection_string=storage,
            state_dir=str(self.home),
            portal_url=portal_url(self.batch_url, token) if (token := read_token(self.emulator_dir)) else "",
            ca_bundle=str(self.ca_bundle) if tls else "",
            storage_account_url=_blob_endpoint_of(storage),
            entra_issuer=str(self.entra_dir) if tls else "",
        )

    def azurite_status(self) -> ServiceStatus:
        info = running_from_pid_file(self.azurite_dir / AzuriteProcess.PID_FILE_NAME)
        scheme = info.scheme if info is not None else "http"
        cafile = self.ca_bundle if scheme == "https" else None
        running = (info is not None or self._azurite_container_runs()) and _answers(self.azurite_port, cafile)
        return ServiceStatus(
            "azurite",
            running,
            info.pid if info else None,
            f"{scheme}://127.0.0.1:{self.azurite_port}",
            str(self.azurite_dir / AzuriteProcess.LOG_NAME),
        )

    def _azurite_container_runs(self) -> bool:
        """True when this stack runs Azurite from its image (only asks Docker when a container was recorded)."""
        from batchbox.backends.local.azurite_container import AzuriteContainer
        from batchbox.emulator.nodes.docker_engine import connect_docker

        if not (self.azurite_dir / AzuriteContainer.RECORD_NAME).exists():
            return False
        try:
            client = connect_docker()
        except BackendUnavailableError:
            return False
        try:
            return self._azurite_container(client).running()
        finally:
            client.close()

    def emulator_status(self) -> ServiceStatus:
        pid = self._emulator_pid()
        running = pid is not None and _answers(self.emulator_port, self.ca_bundle if self.mode.tls else None)
        return ServiceStatus("emulator", running, pid, self.batch_url, str(self.emulator_log))

    def _emulator_pid(self) -> int | None:
        """The PID of the emulator this stack started, while that process runs."""
        record = read_record(self.emulator_record)
        if record is None or not is_alive(record.pid) or not command_line_mentions(record.pid, [_EMULATOR_MARKER]):
            return None
        return record.pid

    def status(self) -> list[ServiceStatus]:
        return [self.azurite_status(), self.emulator_status()]

    def active_faults(self) -> str | None:
        """What the running emulator injects (one line), or None when it runs without faults (or not at all)."""
        return active_faults(self.emulator_dir) if self._emulator_pid() is not None else None

    def _storage_port(self) -> int:
        """The port clients reach blob storage on: the storage fault proxy's while it runs, else Azurite's."""
        record = read_record(self.emulator_record)
        proxy = record.fields.get(STORAGE_PROXY_FIELD) if record is not None else None
        if isinstance(proxy, int) and self._emulator_pid() is not None:
            return proxy
        return self.azurite_port

    # -- up / down ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One ``up``/``down`` at a time per home (parallel test workers, two shells).

        The lock is taken on the home directory itself, so a failed ``up`` leaves no file behind.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.home, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def up(
        self, *, node_image: str | None = None, timeout: float = 60.0, progress: Progress = _quiet
    ) -> LocalEndpoints:
        """Provision what is missing, start whatever is not running yet and wait until both services answer.

        Args:
            node_image: the nodes' image (default: the batchbox node image, built when missing).
            timeout: seconds each service may take to answer.
            progress: receives one line per step that does work (installing, building, starting).

        Raises:
            BackendUnavailableError: Docker, Azurite or the emulator cannot be reached or started, or they run in
                another mode than the one asked for.
            ConfigurationError: TLS asked for together with the user's own storage.
        """
        with self._lock():
            faults = self._fault_config()
            mode = self._mode_to_start()
            if mode.tls and faults is not None and faults.storage.enabled:
                raise ConfigurationError(
                    "--faults", "[faults.storage] proxies plain HTTP only: it cannot be combined with --tls"
                )
            secure = SecureMode.ensure(self.home) if mode.tls else None
            client = ensure_docker(progress)
            try:
                image = node_image or self._node_image(client, progress)
                self._ensure_storage(client, timeout, progress, secure)
            finally:
                client.close()
            if not self.emulator_status().running:
                progress(f"starting the Batch emulator on {self.batch_url}")
                self._start_emulator(image, timeout, mode, secure, faults)
        return self.endpoints()

    def _fault_config(self) -> FaultConfig | None:
        """The faults to start the emulator with, checked before anything starts (see ``checked_faults``)."""
        if self.faults is None:
            return None
        running = self.emulator_status().running
        return checked_faults(self.faults, emulator_running=running, own_storage=not self.storage_connection_string)

    def _mode_to_start(self) -> StackMode:
        """The mode asked for (or the running one), checked against what runs (see ``choose_mode``)."""
        azurite = running_from_pid_file(self.azurite_dir / AzuriteProcess.PID_FILE_NAME)
        return choose_mode(
            self.running_mode(),
            self.requested_mode,
            azurite_tls=None if azurite is None else azurite.scheme == "https",
            own_storage=self.storage_connection_string is None,
        )

    def _node_image(self, client: docker.DockerClient, progress: Progress) -> str:
        from batchbox.backends.local.node_image import ensure_node_image, node_image_tag

        tag = node_image_tag()
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            progress(f"building the node image {tag} (once; about a minute)")
        return ensure_node_image(client)

    def _ensure_storage(
        self, client: docker.DockerClient, timeout: float, progress: Progress, secure: SecureMode | None
    ) -> None:
        """Steps 1 to 6 of :mod:`batchbox.backends.local.provision`'s storage order (with TLS: 3 to 5)."""
        from batchbox.backends.local.azurite_container import azurite_image_present

        if self.storage_connection_string:
            check_storage(self.storage_connection_string)
            return
        container = self._azurite_container(client)
        if self.azurite_status().running:
            return
        if _answers(self.azurite_port):
            raise BackendUnavailableError(
                "Azurite", f"port {self.azurite_port} is taken by another program; set BATCHBOX_AZURITE_PORT"
            )
        if self.azurite_source != "image":
            command = azurite_command(self.azurite_dir, progress)
            if command is not None:
                progress(f"starting Azurite on 127.0.0.1:{self.azurite_port}" + (" (TLS)" if secure else ""))
                AzuriteProcess(
                    self.azurite_dir,
                    port=self.azurite_port,
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
            if self.azurite_source == "npm" or not azurite_image_present(client):
                raise BackendUnavailableError(
                    "Azurite",
                    "npm is not installed: install Node.js (>= 18) with npm, or run an Azurite yourself and pass "
                    "--storage-connection-string (BATCHBOX_STORAGE_CONNECTION_STRING), or use the Azurite image "
                    "where a container registry is reachable (--azurite image)",
                )
        container.start(pull=self.azurite_source == "image", timeout=timeout, progress=progress)

    def _azurite_container(self, client: docker.DockerClient) -> AzuriteContainer:
        from batchbox.backends.local.azurite_container import AzuriteContainer

        return AzuriteContainer(client, self.azurite_dir, port=self.azurite_port, instance_label=self.instance_label)

    def _start_emulator(
        self,
        image: str,
        timeout: float,
        mode: StackMode,
        secure: SecureMode | None,
        faults: FaultConfig | None = None,
    ) -> None:
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
        if secure is not None:
            command += secure.emulator_options(mode)
        recorded: dict[str, int | bool] = {"port": self.emulator_port, **mode.record()}
        if faults is not None and self.faults is not None:
            options, fields = fault_options(self.faults, faults, self.azurite_port)
            command += options
            recorded.update(fields)
        # The linked storage (application packages, blob mounts) goes through the environment: it holds a key.
        linked = connection_string("127.0.0.1", self.azurite_port, "https" if mode.tls else "http")
        env = {**os.environ, STORAGE_ENV: linked}
        with open(self.emulator_log, "ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        write_pid_file(self.emulator_record, process.pid, **recorded)
        cafile = secure.tls.ca_bundle if secure is not None else None
        if not wait_until_answering("127.0.0.1", self.emulator_port, timeout, process, cafile=cafile):
            code = process.poll()
            why = f"exited with code {code}" if code is not None else f"did not answer within {timeout:g} s"
            raise BackendUnavailableError("batchbox emulator", f"{why}; see {self.emulator_log}")

    def down(self, *, remove_nodes: bool = False, services: Collection[str] = SERVICES) -> list[str]:
        """Stop the services this stack started (by PID or container id); optionally remove the node containers.

        Args:
            remove_nodes: also remove the node containers of this stack's emulator.
            services: which of ``emulator`` and ``azurite`` to stop (default both).

        Returns:
            What was stopped or removed, one line each.
        """
        done: list[str] = []
        with self._lock():
            if "emulator" in services:
                record = read_record(self.emulator_record)
                if record is not None and stop_process(record.pid, markers=[_EMULATOR_MARKER]):
                    done.append(f"stopped the emulator (pid {record.pid})")
                self.emulator_record.unlink(missing_ok=True)
            if "azurite" in services:
                pid_file = self.azurite_dir / AzuriteProcess.PID_FILE_NAME
                info = read_pid_file(pid_file)
                if info is not None and stop_from_pid_file(pid_file):
                    done.append(f"stopped Azurite (pid {info.pid})")
                pid_file.unlink(missing_ok=True)
            done += self._remove_containers(remove_nodes, azurite="azurite" in services)
        return done

    def _remove_containers(self, remove_nodes: bool, *, azurite: bool) -> list[str]:
        """Remove this stack's Azurite container (if it ran one) and, when asked, its node containers."""
        from batchbox.backends.local.azurite_container import AzuriteContainer
        from batchbox.emulator.nodes.docker_engine import connect_docker

        azurite = azurite and (self.azurite_dir / AzuriteContainer.RECORD_NAME).exists()
        if not remove_nodes and not azurite:
            return []
        done: list[str] = []
        client = connect_docker()
        try:
            if azurite and self._azurite_container(client).stop():
                done.append("removed the Azurite container")
            if remove_nodes:
                label = f"batchbox.emulator={self.instance_label}"
                for container in client.containers.list(all=True, filters={"label": label}):
                    container.remove(force=True)
                    done.append(f"removed node container {container.name}")
        finally:
            client.close()
        return done


def _answers(port: int, cafile: Path | None = None) -> bool:
    return wait_until_answering("127.0.0.1", port, 0.5, cafile=cafile)


def _blob_endpoint_of(connection: str) -> str:
    """The ``BlobEndpoint`` of a connection string ("" when it names none)."""
    for part in connection.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "blobendpoint":
            return value.strip()
    return ""
