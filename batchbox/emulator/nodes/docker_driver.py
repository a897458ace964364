"""The Docker side of the emulator's compute nodes: create, list, inspect and remove labelled node containers.

One long-lived container per node (see docs/emulator-design.md, "Node containers"): image ``config.node_image``,
host networking, ``init=True``, named ``batchbox-<instance>-<node id>``, labelled ``batchbox.emulator=<instance>``,
``batchbox.pool=<pool id>`` and ``batchbox.node=<node id>``. The node root ``<state_dir>/nodes/<node id>`` is
bind-mounted read-write at ``/mnt/batch/tasks``; the ``batchbox.node`` package directory read-only at
``/opt/batchbox/node``; the container runs ``python3 -u /opt/batchbox/node/agent.py``. An emulator serving TLS
also mounts its CA certificate read-only at ``/opt/batchbox/tls/ca.pem`` (``BATCHBOX_CA_FILE``).

Every method blocks on the Docker API; the runtime calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

import batchbox.node
from batchbox.core.errors import BatchboxError
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.crash_points import crash_point
from batchbox.emulator.nodes.docker_control import NodeControl
from batchbox.emulator.nodes.docker_engine import DEFAULT_DOCKER_TIMEOUT, docker_host
from batchbox.emulator.nodes.task_containers import TaskContainers
from batchbox.emulator.runtime.ports import NodeContainer, NodeResources

__all__ = [
    "AGENT_COMMAND",
    "AGENT_MOUNT",
    "CA_MOUNT",
    "LABEL_EMULATOR",
    "LABEL_NODE",
    "LABEL_POOL",
    "NODE_ROOT_MOUNT",
    "NodeContainer",
    "NodeDriver",
    "NodeDriverError",
    "NodeImageMissingError",
    "agent_dir",
]

LABEL_EMULATOR = "batchbox.emulator"
LABEL_POOL = "batchbox.pool"
LABEL_NODE = "batchbox.node"
NODE_ROOT_MOUNT = "/mnt/batch/tasks"
AGENT_MOUNT = "/opt/batchbox/node"
AGENT_COMMAND = ["python3", "-u", f"{AGENT_MOUNT}/agent.py"]
CA_MOUNT = "/opt/batchbox/tls/ca.pem"
"""Where a TLS emulator's CA certificate is mounted (read-only) in every node; ``BATCHBOX_CA_FILE`` names it."""

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_TASK_STREAMS = 256


class NodeDriverError(BatchboxError):
    """A Docker call about a node container failed; the message is one line naming the node and the cause."""


class NodeImageMissingError(NodeDriverError):
    """The node image does not exist in the engine (the driver never pulls it)."""


def agent_dir() -> Path:
    """The directory of the installed ``batchbox.node`` package (mounted read-only into every node)."""
    return Path(batchbox.node.__file__).resolve().parent


def _image_missing(image: str) -> NodeImageMissingError:
    return NodeImageMissingError(f"node image {image} not found in the Docker engine: build it with `make node-image`")


def _one_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return " ".join(text.split()) or type(exc).__name__


class NodeDriver(NodeControl):
    """Creates and removes the node containers of one emulator instance (and, through :class:`NodeControl`,
    restarts, stops, starts and measures them).

    Args:
        client: a connected docker-py client (see ``batchbox.emulator.nodes.docker_engine.connect_docker``).
        config: the emulator's settings (image, state dir, agent URL, instance label).
        extra_labels: more labels for every container (tests add ``batchbox.test=1``).
    """

    def __init__(
        self, client: docker.DockerClient, config: EmulatorConfig, extra_labels: Mapping[str, str] | None = None
    ) -> None:
        self._client = client
        self._config = config
        self._extra_labels = dict(extra_labels or {})
        self._task_containers: TaskContainers | None = None
        self._next_cpu = 0

    @property
    def instance_label(self) -> str:
        return self._config.instance_label

    @property
    def task_containers(self) -> TaskContainers:
        """The task containers this instance runs for its nodes' container tasks (see ``task_containers.py``).

        They get a client of their own, whose connection pool holds one output stream per running container.
        """
        if self._task_containers is None:
            api = docker.APIClient(
                base_url=docker_host(),
                version=self._client.api.api_version,
                timeout=DEFAULT_DOCKER_TIMEOUT,
                max_pool_size=_TASK_STREAMS,
            )
            self._task_containers = TaskContainers(api, self._config, self._extra_labels, self.container_name)
        return self._task_containers

    def container_name(self, node_id: str) -> str:
        """``batchbox-<instance>-<node id>`` (characters Docker refuses in names become ``_``)."""
        return _NAME_UNSAFE.sub("_", f"batchbox-{self._config.instance_label}-{node_id}")

    def node_root(self, node_id: str) -> Path:
        """The host directory mounted as the node's root (``<state_dir>/nodes/<node id>``)."""
        return self._config.node_root(node_id)

    def check_image(self) -> None:
        """Raise :class:`NodeImageMissingError` unless the node image exists locally.

        Raises:
            NodeImageMissingError: the image is missing.
            NodeDriverError: the engine could not be asked.
        """
        image = self._config.node_image
        try:
            self._client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            raise _image_missing(image) from None
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot inspect node image {image}: {_one_line(exc)}") from exc

    def _labels(self, pool_id: str, node_id: str) -> dict[str, str]:
        return {
            **self._extra_labels,
            LABEL_EMULATOR: self._config.instance_label,
            LABEL_POOL: pool_id,
            LABEL_NODE: node_id,
        }

    def _make_root(self, node_id: str) -> Path:
        root = self.node_root(node_id)
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        return root

    def _limits(self, resources: NodeResources) -> dict[str, Any]:
        """CPU set (so ``nproc`` inside matches), CPU quota and memory limit (swap included) of a node."""
        host_cpus = max(1, self.host_capacity()[0])
        cpus = max(1, min(resources.cpus, host_cpus))
        first = self._next_cpu % host_cpus
        self._next_cpu += cpus
        return {
            "cpuset_cpus": ",".join(str((first + i) % host_cpus) for i in range(cpus)),
            "nano_cpus": cpus * 1_000_000_000,
            "mem_limit": resources.memory_bytes,
            "memswap_limit": resources.memory_bytes,
        }

    def create_node(
        self,
        pool_id: str,
        node_id: str,
        secret: str,
        *,
        resources: NodeResources | None = None,
        wipe_root: bool = False,
    ) -> str:
        """Create and start the container of a node; return its id. Never pulls an image.

        A leftover container with the same name (e.g. from a crash) is replaced.

        Args:
            pool_id / node_id / secret: the node's identity (labels, name, agent environment).
            resources: CPUs and memory the container may use (``None``: no limits).
            wipe_root: empty the node root directory before the agent starts (a reimage).

        Raises:
            NodeImageMissingError: the node image is missing.
            NodeDriverError: Docker refused to create or start the container.
        """
        self.check_image()
        root = self._make_root(node_id)
        name = self.container_name(node_id)
        if wipe_root:
            self._wipe_root(pool_id, node_id, root)
        options: dict[str, Any] = {
            "image": self._config.node_image,
            "command": list(AGENT_COMMAND),
            "name": name,
            "detach": True,
            "init": True,
            "network_mode": "host",
            "labels": self._labels(pool_id, node_id),
            "environment": {
                "BATCHBOX_AGENT_URL": self._config.agent_url,
                "BATCHBOX_NODE_ID": node_id,
                "BATCHBOX_NODE_SECRET": secret,
                "BATCHBOX_NODE_ROOT": NODE_ROOT_MOUNT,
            },
            "volumes": {
                str(root): {"bind": NODE_ROOT_MOUNT, "mode": "rw"},
                str(agent_dir()): {"bind": AGENT_MOUNT, "mode": "ro"},
            },
        }
        if self._config.ca_file is not None:
            options["volumes"][str(self._config.ca_file)] = {"bind": CA_MOUNT, "mode": "ro"}
            options["environment"]["BATCHBOX_CA_FILE"] = CA_MOUNT
        if resources is not None:
            options.update(self._limits(resources))
        try:
            container = self._create(options, name)
        except docker.errors.ImageNotFound:
            raise _image_missing(self._config.node_image) from None
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot create the container of node {node_id}: {_one_line(exc)}") from exc
        try:
            container.start()
        except (docker.errors.DockerException, OSError) as exc:
            self._remove_quietly(container.id)
            raise NodeDriverError(f"cannot start the container of node {node_id}: {_one_line(exc)}") from exc
        crash_point("driver.created")
        return str(container.id)

    def _wipe_root(self, pool_id: str, node_id: str, root: Path) -> None:
        """Empty a node's root directory with a short-lived container (its files belong to the node's users)."""
        try:
            self._client.containers.run(
                self._config.node_image,
                ["find", NODE_ROOT_MOUNT, "-mindepth", "1", "-delete"],
                remove=True,
                network_mode="none",
                labels={**self._extra_labels, LABEL_POOL: pool_id},
                volumes={str(root): {"bind": NODE_ROOT_MOUNT, "mode": "rw"}},
            )
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot wipe the disk of node {node_id}: {_one_line(exc)}") from exc

    def _create(self, options: Mapping[str, Any], name: str) -> Any:
        try:
            return self._client.containers.create(**options)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        self._remove_quietly(name)
        return self._client.containers.create(**options)

    def _remove_quietly(self, name_or_id: str) -> None:
        try:
            self._client.api.remove_container(name_or_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # 409: a removal is already in progress.
            if exc.status_code != 409:
                raise

    def remove_task_containers(self, node_id: str) -> None:
        """Remove the task containers of a node (a reboot or a deallocation ends them).

        Raises:
            NodeDriverError: Docker refused the removal.
        """
        try:
            self.task_containers.remove_for_node(node_id)
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot remove the task containers of node {node_id}: {_one_line(exc)}") from exc

    def remove_node(self, node_id: str) -> None:
        """Force-remove the container of a node (kills its tasks); a missing container is fine.

        The node's task containers go with it. The node's host directory stays (task files remain readable); the
        runtime decides about it.

        Raises:
            NodeDriverError: Docker refused the removal.
        """
        try:
            self._remove_quietly(self.container_name(node_id))
            self.task_containers.remove_for_node(node_id)
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot remove the container of node {node_id}: {_one_line(exc)}") from exc
        crash_point("driver.removed")

    def _list_raw(self) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = self._client.api.containers(
                all=True, filters={"label": f"{LABEL_EMULATOR}={self._config.instance_label}"}
            )
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot list node containers: {_one_line(exc)}") from exc
        return found

    def list_nodes(self) -> dict[str, NodeContainer]:
        """All containers of this emulator instance (running or not), by node id.

        Raises:
            NodeDriverError: the engine could not be asked.
        """
        nodes: dict[str, NodeContainer] = {}
        for entry in self._list_raw():
            labels = entry.get("Labels") or {}
            node_id = labels.get(LABEL_NODE)
            if not node_id:
                continue
            names = entry.get("Names") or [""]
            nodes[node_id] = NodeContainer(
                container_id=str(entry.get("Id")),
                pool_id=str(labels.get(LABEL_POOL, "")),
                status=str(entry.get("State", "unknown")),
                name=str(names[0]).lstrip("/"),
            )
        return nodes

    def node_status(self, node_id: str) -> str | None:
        """Docker's state of the node's container (``running``, ``exited`` ...), or None when it does not exist.

        Raises:
            NodeDriverError: the engine could not be asked.
        """
        try:
            info = self._client.api.inspect_container(self.container_name(node_id))
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeDriverError(f"cannot inspect the container of node {node_id}: {_one_line(exc)}") from exc
        return str((info.get("State") or {}).get("Status", "unknown"))

    def remove_all(self) -> int:
        """Force-remove every container of this emulator instance; return how many were removed.

        Raises:
            NodeDriverError: the engine could not be asked or refused a removal.
        """
        removed = 0
        for entry in self._list_raw():
            try:
                self._remove_quietly(str(entry.get("Id")))
            except (docker.errors.DockerException, OSError) as exc:
                raise NodeDriverError(f"cannot remove node container {entry.get('Id')}: {_one_line(exc)}") from exc
            removed += 1
        return removed
