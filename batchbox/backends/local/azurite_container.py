"""Azurite from its container image, for machines that reach a container registry and have no npm.

The container uses host networking (like the nodes), listens on ``127.0.0.1:<port>`` only, keeps its blobs in
``<state_dir>/data`` and carries the label ``batchbox.azurite=<instance label>``. Its id is recorded in
``<state_dir>/container.json``; ``stop`` removes exactly that container. The image is only pulled when asked for
(``--azurite image``): the automatic choice uses it only when it is already in the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import docker.errors

from batchbox.backends.local.azurite import wait_until_answering
from batchbox.backends.local.azurite_npm import Progress, pinned_azurite_version
from batchbox.core.errors import BackendUnavailableError

__all__ = ["AZURITE_IMAGE_REPOSITORY", "AZURITE_LABEL", "AzuriteContainer", "azurite_image", "azurite_image_present"]

AZURITE_IMAGE_REPOSITORY = "mcr.microsoft.com/azure-storage/azurite"
AZURITE_LABEL = "batchbox.azurite"
_DATA_MOUNT = "/data"


def azurite_image() -> str:
    """The image of the pinned Azurite version (the same version npm installs)."""
    return f"{AZURITE_IMAGE_REPOSITORY}:{pinned_azurite_version()}"


def azurite_image_present(client: docker.DockerClient) -> bool:
    """True when the pinned Azurite image is already in the engine (nothing is pulled to find out)."""
    try:
        client.images.get(azurite_image())
    except docker.errors.ImageNotFound:
        return False
    return True


class AzuriteContainer:
    """The Azurite container of one local stack (its state directory and instance label)."""

    RECORD_NAME = "container.json"

    def __init__(self, client: docker.DockerClient, state_dir: Path, *, port: int, instance_label: str) -> None:
        self.client = client
        self.state_dir = state_dir
        self.port = port
        self.instance_label = instance_label

    @property
    def record(self) -> Path:
        return self.state_dir / self.RECORD_NAME

    def _recorded(self) -> Any:
        """The recorded container when it still exists and carries this stack's label; else None."""
        try:
            container_id = json.loads(self.record.read_text())["id"]
            container = self.client.containers.get(container_id)
        except (OSError, ValueError, KeyError, TypeError, docker.errors.NotFound):
            return None
        return container if container.labels.get(AZURITE_LABEL) == self.instance_label else None

    def running(self) -> bool:
        """True when this stack's Azurite container runs."""
        container = self._recorded()
        return container is not None and container.status == "running"

    def start(self, *, pull: bool, timeout: float, progress: Progress) -> None:
        """Run the container (pulling the image first when ``pull`` and it is missing) and wait for an answer.

        Raises:
            BackendUnavailableError: the image is missing (and not to be pulled), the pull failed, or Azurite did
                not answer in time.
        """
        image = azurite_image()
        if not azurite_image_present(self.client):
            if not pull:
                raise BackendUnavailableError("Azurite", f"the image {image} is not in the Docker engine")
            progress(f"pulling {image} (once)")
            try:
                self.client.images.pull(image)
            except docker.errors.APIError as exc:
                raise BackendUnavailableError("Azurite", f"cannot pull {image}: {exc.explanation or exc}") from exc
        self.stop()
        data = self.state_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = ["azurite-blob", "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", _DATA_MOUNT]
        command += ["--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        progress(f"starting Azurite from {image} on 127.0.0.1:{self.port}")
        container = self.client.containers.run(
            image,
            command,
            detach=True,
            network_mode="host",
            labels={AZURITE_LABEL: self.instance_label},
            volumes={str(data): {"bind": _DATA_MOUNT, "mode": "rw"}},
        )
        self.record.write_text(json.dumps({"id": container.id}) + "\n")
        if not wait_until_answering("127.0.0.1", self.port, timeout):
            raise BackendUnavailableError(
                "Azurite", f"the container {container.short_id} did not answer in {timeout:g}s"
            )

    def stop(self) -> bool:
        """Remove this stack's Azurite container; True when there was one."""
        container = self._recorded()
        self.record.unlink(missing_ok=True)
        if container is None:
            return False
        container.remove(force=True)
        return True
