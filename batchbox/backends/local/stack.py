"""The local stack: Azurite and the Batch emulator as background processes under one state directory.

``batchbox local up`` / ``status`` / ``down``, the local backend and the pytest plugin use it. Each service is
started only when it is not already running (pid file + an HTTP answer), and stopped by the PID or container id
recorded when it started (:mod:`batchbox.backends.local.stack_services`). What ``up`` provisions first (Docker
engine, Azurite, node image) and in which order is described in :mod:`batchbox.backends.local.provision`; what
the stack reports and records is in :mod:`batchbox.backends.local.stack_records`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors

from batchbox.backends.local.azurite import AzuriteProcess, connection_string, running_from_pid_file
from batchbox.backends.local.azurite_npm import Progress
from batchbox.backends.local.faults import STORAGE_PROXY_FIELD, active_faults, checked_faults
from batchbox.backends.local.provision import AzuriteSource, azurite_source, check_storage, ensure_docker
from batchbox.backends.local.secure_mode import (
    ENTRA_DIR_NAME,
    TLS_DIR_NAME,
    SecureMode,
    StackMode,
    choose_mode,
    recorded_mode,
)
from batchbox.backends.local.stack_records import (
    LOCAL_INSTANCE_LABEL,
    SERVICES,
    LocalEndpoints,
    ServiceStatus,
    blob_endpoint_of,
    instance_label,
    recorded_emulator_pid,
)
from batchbox.backends.local.stack_services import (
    EMULATOR_LOG_NAME,
    EMULATOR_RECORD_NAME,
    answers,
    remove_containers,
    start_azurite,
    start_emulator,
    stop_azurite,
    stop_emulator,
)
from batchbox.backends.local.tls import CA_FILE_NAME
from batchbox.core.errors import BackendUnavailableError, ConfigurationError
from batchbox.core.pidfiles import read_pid_file as read_record
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, DEFAULT_PORT, default_state_dir
from batchbox.emulator.faults import FaultConfig
from batchbox.emulator.portal.token import portal_url, read_token

if TYPE_CHECKING:
    from batchbox.backends.local.azurite_container import AzuriteContainer

__all__ = ["LOCAL_INSTANCE_LABEL", "SERVICES", "LocalEndpoints", "LocalStack", "ServiceStatus", "StackMode"]

DEFAULT_AZURITE_PORT = 10000


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
        return self.emulator_dir / EMULATOR_RECORD_NAME

    @property
    def emulator_log(self) -> Path:
        return self.emulator_dir / EMULATOR_LOG_NAME

    @property
    def instance_label(self) -> str:
        """The ``batchbox.emulator`` label of this stack's node containers (derived from its home)."""
        return instance_label(self.home)

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
            storage_account_url=blob_endpoint_of(storage),
            entra_issuer=str(self.entra_dir) if tls else "",
        )

    def azurite_status(self) -> ServiceStatus:
        info = running_from_pid_file(self.azurite_dir / AzuriteProcess.PID_FILE_NAME)
        scheme = info.scheme if info is not None else "http"
        cafile = self.ca_bundle if scheme == "https" else None
        running = (info is not None or self._azurite_container_runs()) and answers(self.azurite_port, cafile)
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
        running = pid is not None and answers(self.emulator_port, self.ca_bundle if self.mode.tls else None)
        return ServiceStatus("emulator", running, pid, self.batch_url, str(self.emulator_log))

    def _emulator_pid(self) -> int | None:
        """The PID of the emulator this stack started, while that process runs."""
        return recorded_emulator_pid(self.emulator_record)

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
                start_emulator(
                    self.emulator_dir,
                    port=self.emulator_port,
                    azurite_port=self.azurite_port,
                    image=image,
                    instance_label=self.instance_label,
                    mode=mode,
                    secure=secure,
                    fault_file=self.faults,
                    faults=faults,
                    timeout=timeout,
                )
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
        if self.storage_connection_string:
            check_storage(self.storage_connection_string)
            return
        if self.azurite_status().running:
            return
        start_azurite(
            client,
            self.azurite_dir,
            port=self.azurite_port,
            instance_label=self.instance_label,
            source=self.azurite_source,
            timeout=timeout,
            progress=progress,
            secure=secure,
        )

    def _azurite_container(self, client: docker.DockerClient) -> AzuriteContainer:
        from batchbox.backends.local.azurite_container import AzuriteContainer

        return AzuriteContainer(client, self.azurite_dir, port=self.azurite_port, instance_label=self.instance_label)

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
                done += stop_emulator(self.emulator_dir)
            if "azurite" in services:
                done += stop_azurite(self.azurite_dir)
            done += remove_containers(
                self.azurite_dir,
                azurite_port=self.azurite_port,
                instance_label=self.instance_label,
                azurite="azurite" in services,
                nodes=remove_nodes,
            )
        return done
