"""What a local stack reports and records: how to reach it, the status of each background service, and the record
(``process.json``) of the emulator process it started."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from batchbox.core.pidfiles import command_line_mentions, is_alive
from batchbox.core.pidfiles import read_pid_file as read_record

__all__ = [
    "EMULATOR_MARKER",
    "LOCAL_INSTANCE_LABEL",
    "SERVICES",
    "LocalEndpoints",
    "ServiceStatus",
    "blob_endpoint_of",
    "instance_label",
    "recorded_emulator_pid",
]

LOCAL_INSTANCE_LABEL = "local"
"""Prefix of the ``batchbox.emulator`` label of a local stack's node containers (``local-<hash of its home>``).

Each home gets its own label: an emulator removes the containers of its label it does not know at start, so
two stacks sharing one label would remove each other's nodes."""

SERVICES = ("azurite", "emulator")
"""The background services of a local stack, as named by :class:`ServiceStatus`."""

EMULATOR_MARKER = "batchbox.emulator"
"""A word of the emulator's command line: a recorded PID is the emulator's only while its command line has it."""


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


def instance_label(home: Path) -> str:
    """The ``batchbox.emulator`` label of the node containers of the stack under ``home``."""
    digest = hashlib.sha256(str(home.expanduser().resolve()).encode()).hexdigest()[:12]
    return f"{LOCAL_INSTANCE_LABEL}-{digest}"


def recorded_emulator_pid(record: Path) -> int | None:
    """The PID in the emulator's ``record``, while that process runs and is an emulator."""
    recorded = read_record(record)
    if recorded is None or not is_alive(recorded.pid) or not command_line_mentions(recorded.pid, [EMULATOR_MARKER]):
        return None
    return recorded.pid


def blob_endpoint_of(connection: str) -> str:
    """The ``BlobEndpoint`` of a connection string ("" when it names none)."""
    for part in connection.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "blobendpoint":
            return value.strip()
    return ""
