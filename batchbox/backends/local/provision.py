"""What ``batchbox local up`` needs on this machine, found or provisioned in a documented order.

Docker engine
    The engine named by ``DOCKER_HOST`` (default socket). When none answers and batchbox runs as root on
    Debian/Ubuntu with the default socket, the ``ensure-docker.sh`` shipped in this package installs ``docker.io``
    and starts ``dockerd`` (what ``make setup`` does); anywhere else the error says what to install or start.

Blob storage, first match wins (``--azurite auto``, the default)
    1. ``--storage-connection-string`` / ``BATCHBOX_STORAGE_CONNECTION_STRING``: an Azurite (or storage account)
       the user runs; batchbox starts and stops nothing for storage.
    2. The Azurite this stack started earlier, when it still runs.
    3. An Azurite on disk: ``BATCHBOX_AZURITE_JS``, the source checkout's ``node_modules``, or the pinned one in
       ``$BATCHBOX_HOME/azurite``.
    4. With npm: the pinned Azurite, installed into ``$BATCHBOX_HOME/azurite`` once (``npm ci``).
    5. ``azurite-blob`` on ``PATH`` (a global npm install).
    6. The Azurite image, when it is already in the Docker engine.

    ``--azurite npm`` stops after step 5; ``--azurite image`` goes straight to the image and pulls it when missing
    (a container registry must be reachable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import docker

from batchbox.backends.local.azurite import AZURITE_JS_ENV, checkout_main_js, find_azurite_command
from batchbox.backends.local.azurite_npm import Progress, install_azurite, installed_main_js
from batchbox.core.errors import BackendUnavailableError, ConfigurationError
from batchbox.core.settings import env_name
from batchbox.emulator.nodes.docker_engine import connect_docker, docker_host

__all__ = [
    "AZURITE_SOURCES",
    "AZURITE_SOURCE_ENV",
    "ENSURE_DOCKER_SCRIPT",
    "AzuriteSource",
    "azurite_command",
    "azurite_source",
    "check_storage",
    "ensure_docker",
]

AzuriteSource = Literal["auto", "npm", "image"]
AZURITE_SOURCES: tuple[AzuriteSource, ...] = ("auto", "npm", "image")
AZURITE_SOURCE_ENV = "BATCHBOX_AZURITE"

ENSURE_DOCKER_SCRIPT = Path(__file__).resolve().parent / "ensure-docker.sh"
"""The script ``make setup`` runs too: installs and starts a Docker engine as root on Debian/Ubuntu."""

_ENSURE_DOCKER_TIMEOUT = 600
_DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
"""The socket ``ensure-docker.sh`` starts an engine on (it leaves any other ``DOCKER_HOST`` alone)."""


def azurite_source(value: str | None = None) -> AzuriteSource:
    """The chosen storage source: ``value``, else ``BATCHBOX_AZURITE``, else ``auto``.

    Raises:
        ConfigurationError: an unknown source.
    """
    chosen = (value or os.environ.get(AZURITE_SOURCE_ENV) or "auto").strip().lower()
    for source in AZURITE_SOURCES:
        if chosen == source:
            return source
    raise ConfigurationError(AZURITE_SOURCE_ENV, f"must be one of {', '.join(AZURITE_SOURCES)}, not {chosen!r}")


def azurite_command(install_dir: Path, progress: Progress) -> list[str] | None:
    """The command that runs Azurite's blob service (steps 3 to 5 of the module's order); None when there is none.

    Raises:
        BackendUnavailableError: ``BATCHBOX_AZURITE_JS`` names a missing file, or ``npm ci`` failed.
    """
    if os.environ.get(AZURITE_JS_ENV):
        return find_azurite_command()
    node = shutil.which("node")
    if node is not None:
        for main_js in (checkout_main_js(), installed_main_js(install_dir)):
            if main_js is not None:
                return [node, str(main_js)]
        if shutil.which("npm") is not None:
            return [node, str(install_azurite(install_dir, progress))]
    global_install = shutil.which("azurite-blob")
    return [global_install] if global_install else None


def ensure_docker(progress: Progress) -> docker.DockerClient:
    """A client of an answering Docker engine, starting one with ``ensure-docker.sh`` where batchbox may.

    Raises:
        BackendUnavailableError: no engine answers (one line saying what to install or start).
    """
    try:
        return connect_docker()
    except BackendUnavailableError:
        if not _may_start_docker():
            raise
    progress(f"no Docker engine answers; starting one with {ENSURE_DOCKER_SCRIPT.name} (root on Debian/Ubuntu)")
    env = {**os.environ, "BATCHBOX_PYTHON": sys.executable}
    try:
        result = subprocess.run(
            ["bash", str(ENSURE_DOCKER_SCRIPT)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_ENSURE_DOCKER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailableError("docker", f"{ENSURE_DOCKER_SCRIPT.name} did not finish in time") from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit code {result.returncode}"
        raise BackendUnavailableError("docker", f"{ENSURE_DOCKER_SCRIPT.name} could not start an engine: {why}")
    return connect_docker()


def _may_start_docker() -> bool:
    """Root on Debian/Ubuntu, aiming at the default socket: the case ``ensure-docker.sh`` handles."""
    return (
        os.geteuid() == 0
        and os.environ.get("BATCHBOX_ASSUME_NONROOT") != "1"
        and Path("/etc/debian_version").is_file()
        and shutil.which("apt-get") is not None
        and docker_host() == _DEFAULT_DOCKER_HOST
    )


def check_storage(connection: str) -> None:
    """Fail in one line unless the blob service of ``connection`` answers and accepts its credentials.

    Raises:
        ConfigurationError: the connection string cannot be parsed.
        BackendUnavailableError: the service does not answer, or refuses the credentials.
    """
    from azure.core.exceptions import HttpResponseError, ServiceRequestError
    from azure.storage.blob import BlobServiceClient

    try:
        client = BlobServiceClient.from_connection_string(
            connection, retry_total=0, connection_timeout=5, read_timeout=15
        )
    except ValueError as exc:
        setting = env_name("storage_connection_string")
        raise ConfigurationError(setting, f"is not a storage connection string ({exc})") from None
    where = client.primary_hostname
    try:
        with client:
            next(iter(client.list_containers(results_per_page=1).by_page()), None)
    except ServiceRequestError as exc:
        raise BackendUnavailableError("storage", f"the blob service at {where} does not answer") from exc
    except HttpResponseError as exc:
        error_code = getattr(exc, "error_code", None)
        code = getattr(error_code, "value", error_code) or exc.status_code
        raise BackendUnavailableError("storage", f"the blob service at {where} refused the request ({code})") from exc
