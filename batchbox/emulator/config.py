"""Settings of one emulator instance, with the documented local defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from batchbox.emulator.faults.config import FaultConfig

__all__ = [
    "DEFAULT_ACCOUNT_KEY",
    "DEFAULT_ACCOUNT_NAME",
    "DEFAULT_PORT",
    "LOG_LEVELS",
    "EmulatorConfig",
    "connection_string_field",
    "default_state_dir",
    "is_loopback",
]

DEFAULT_ACCOUNT_NAME = "devbatchaccount1"
"""The local Batch account name, like Azurite's ``devstoreaccount1``. Public: for local use only."""

DEFAULT_ACCOUNT_KEY = "YmF0Y2hib3gtbG9jYWwtZGV2ZWxvcG1lbnQta2V5LW5vdC1hLXNlY3JldC0wMDAwMDAwMDAwMDA="
"""The local Batch account key (base64). Public like Azurite's dev key: never use it for anything but local runs."""

DEFAULT_PORT = 8446

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""Log levels the emulator's server accepts (uvicorn's names)."""


def default_state_dir() -> Path:
    """``$BATCHBOX_HOME`` or ``~/.local/share/batchbox``: where the local stack keeps its state."""
    env = os.environ.get("BATCHBOX_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "batchbox"


@dataclass(frozen=True)
class EmulatorConfig:
    """One emulator's settings.

    Attributes:
        host: address to listen on (loopback unless told otherwise).
        port: TCP port of the Batch REST API and of the node-agent API.
        state_dir: the SQLite database, node directories and logs live here.
        account_name / account_key: the SharedKey credential clients must sign with.
        node_image: the Docker image of the node containers.
        entra_issuer: the OpenID-style metadata document of the Microsoft Entra ID issuer whose bearer tokens are
            accepted (verified; see ``protocol/tokens.py``); None refuses bearer tokens.
        shared_key_enabled: False refuses SharedKey, as a Batch account that allows only Entra ID does.
        tls_certfile / tls_keyfile: serve HTTPS with this certificate and key (both or neither).
        ca_file: the CA certificate node agents verify the emulator's certificate (and blob storage's) with; it is
            mounted read-only into every node. Set together with the TLS files.
        instance_label: the value of the ``batchbox.emulator`` label on this instance's containers.
        heartbeat_timeout: seconds without contact after which a node whose container is gone is lost.
        node_poll_wait: seconds an agent's long poll is held open when there is no work.
        faults: the faults to inject (``batchbox emulator --faults FILE``); none by default.
        storage_upstream / storage_proxy_port: where the storage fault proxy forwards to (Azurite's blob endpoint)
            and listens; it runs only when both are set.
        allow_privileged_containers: let container tasks ask for ``--privileged``, ``--cap-add`` and
            ``--security-opt`` (refused by default: such a container could take over this machine).
        storage_connection_string: the account's linked storage (Azurite locally): application packages and blob
            mounts live there. ``None``: the emulator has none, and both are refused.
        vm_size_limits: give each node container the CPUs and memory of its pool's ``vmSize`` (capped to the
            machine); off: unknown sizes are accepted and containers get no limits.
        image_checks: refuse unsupported images and retired node agent SKUs at pool creation, as Batch does.
        autoscale_min_interval: the shortest ``autoScaleEvaluationInterval`` accepted, in seconds (Batch: 5 min).
        resize_timeout_min: the shortest ``resizeTimeout`` accepted, in seconds (Batch: 5 min).
        autoscale_sample_seconds: how often the system variables of autoscale pools are sampled.
        preempt_rate: chance per low-priority node per minute of being preempted (0: only on request).
        min_schedule_interval: the shortest ``recurrenceInterval`` / ``startWindow`` a job schedule may have, in
            seconds: Batch's minimum (60) unless lowered, which only tests do (``--min-schedule-interval``).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    state_dir: Path = field(default_factory=lambda: default_state_dir() / "emulator")
    account_name: str = DEFAULT_ACCOUNT_NAME
    account_key: str = DEFAULT_ACCOUNT_KEY
    node_image: str = "batchbox-node:latest"
    entra_issuer: Path | None = None
    shared_key_enabled: bool = True
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    ca_file: Path | None = None
    instance_label: str = "default"
    heartbeat_timeout: float = 30.0
    node_poll_wait: float = 20.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    storage_upstream: str | None = None
    storage_proxy_port: int | None = None
    allow_privileged_containers: bool = False
    storage_connection_string: str | None = field(default=None, repr=False)
    vm_size_limits: bool = True
    image_checks: bool = True
    autoscale_min_interval: float = 300.0
    autoscale_sample_seconds: float = 5.0
    resize_timeout_min: float = 300.0
    preempt_rate: float = 0.0
    min_schedule_interval: float = 60.0

    @property
    def database_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def nodes_dir(self) -> Path:
        """Host directory holding one directory per node, bind-mounted as the node's root dir."""
        return self.state_dir / "nodes"

    def node_root(self, node_id: str) -> Path:
        return self.nodes_dir / node_id

    @property
    def tls(self) -> bool:
        """True when the emulator serves HTTPS."""
        return self.tls_certfile is not None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def storage_account_name(self) -> str | None:
        """The linked storage account's name (``AccountName`` of the connection string), or None."""
        return connection_string_field(self.storage_connection_string or "", "AccountName")

    @property
    def agent_url(self) -> str:
        """The URL node agents use (containers run with host networking, so loopback reaches us)."""
        return f"{self.base_url}/_agent/v1"


def connection_string_field(connection_string: str, name: str) -> str | None:
    """One ``Name=value`` field of a storage connection string (names compared ignoring case), or None."""
    for part in connection_string.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.lower() == name.lower():
            return value
    return None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
