"""Task containers: the Docker side of container tasks, run by the emulator on a node's behalf.

No node container holds the Docker socket: a node's agent asks the emulator (over its authenticated protocol) and
the emulator runs the task's container here, as a sibling of the node container, with:

* the node's directories bind-mounted at the same paths (the whole node root at ``/mnt/batch/tasks``, or the
  ``containerHostBatchBindMounts`` chosen), each checked to resolve inside the node's host directory;
* the host network (like the node), the node container's CPU and memory limits (a task asking for less gets less);
* its stdout and stderr streamed into ``stdout.txt`` and ``stderr.txt`` of the task directory as they come;
* the name ``batchbox-<instance>-<node>-<assignment>-<hash>`` and the labels ``batchbox.emulator=<instance>``,
  ``batchbox.role=task``, ``batchbox.task-node=<node id>``, ``batchbox.pool`` and ``batchbox.assignment``, by
  which restart recovery, node removal and ``batchbox local down --remove-nodes`` find them.

Missing images are pulled through the engine with the registry credentials given. Every method blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors
import docker.types
from docker.utils import parse_repository_tag

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.resources.containers import image_registry
from batchbox.emulator.runtime.ports import (
    ContainerExit,
    ContainerImageError,
    ContainerSettingsError,
    RegistryCredential,
    TaskContainerSpec,
)

__all__ = ["LABEL_ASSIGNMENT", "LABEL_ROLE", "LABEL_TASK_NODE", "TASK_ROLE", "TaskContainers"]

log = logging.getLogger(__name__)

LABEL_ROLE = "batchbox.role"
LABEL_TASK_NODE = "batchbox.task-node"
LABEL_ASSIGNMENT = "batchbox.assignment"
TASK_ROLE = "task"
_NODE_ROOT = "/mnt/batch/tasks"
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_LIMIT_KEYS = ("NanoCpus", "CpuQuota", "CpuPeriod", "CpusetCpus", "Memory", "MemorySwap", "PidsLimit")
_MISSING_PROGRAM = re.compile(r"executable file not found|no such file or directory", re.IGNORECASE)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return " ".join(text.split()) or type(exc).__name__


def _lower_of(wanted: int | None, limit: int | None) -> int | None:
    """The tighter of two limits (a missing, zero or negative one means no limit)."""
    values = [v for v in (wanted, limit) if v is not None and v > 0]
    return min(values) if values else None


def _node_nano_cpus(limits: dict[str, Any]) -> int | None:
    """The node container's CPU limit in billionths of a CPU, whether set as NanoCpus or as a CFS quota."""
    if limits.get("NanoCpus"):
        return int(limits["NanoCpus"])
    quota, period = limits.get("CpuQuota") or 0, limits.get("CpuPeriod") or 0
    return int(quota * 1_000_000_000 / period) if quota > 0 and period > 0 else None


class TaskContainers:
    """Runs, follows, kills and removes the task containers of one emulator instance.

    Args:
        api: a docker-py low-level client (its connection pool should allow one stream per running container).
        config: the emulator's settings (instance label, node directories).
        extra_labels: more labels for every container (tests add ``batchbox.test=1``).
        node_container: gives the node container's name for a node id (its limits are copied).
    """

    def __init__(
        self,
        api: docker.APIClient,
        config: EmulatorConfig,
        extra_labels: Mapping[str, str],
        node_container: Any,
    ) -> None:
        self._api = api
        self._config = config
        self._extra_labels = dict(extra_labels)
        self._node_container = node_container
        self._limits: dict[str, dict[str, Any]] = {}

    # ----------------------------------------------------------------- names and paths
    def container_name(self, node_id: str, assignment_id: str) -> str:
        """The task container's name: readable, and unique per node and assignment."""
        digest = hashlib.sha256(f"{node_id}\0{assignment_id}".encode()).hexdigest()[:10]
        readable = _NAME_UNSAFE.sub("_", f"batchbox-{self._config.instance_label}-{node_id}-{assignment_id}")
        return f"{readable[:200]}-{digest}"

    def _host_path(self, node_id: str, relative: str) -> Path:
        """The host path of a node-root-relative path, refused when it resolves outside the node's directory."""
        root = self._config.node_root(node_id).resolve()
        path = (root / relative).resolve() if relative else root
        if path != root and root not in path.parents:
            raise ContainerSettingsError(f"'{relative}' resolves outside the node's directory")
        return path

    # ----------------------------------------------------------------- images
    def ensure_images(self, images: Sequence[str], credentials: Sequence[RegistryCredential]) -> None:
        """Make each image present in the engine, pulling the missing ones.

        Raises:
            ContainerImageError: an image could not be pulled.
        """
        for image in images:
            self._ensure_image(image, credentials)

    def _present(self, image: str) -> bool:
        try:
            self._api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerImageError(image, f"cannot inspect the image: {_one_line(exc)}") from exc
        return True

    def _ensure_image(self, image: str, credentials: Sequence[RegistryCredential]) -> None:
        if self._present(image):
            return
        server = image_registry(image)
        auth = next(({"username": c.username, "password": c.password} for c in credentials if c.server == server), None)
        repository, tag = parse_repository_tag(image)
        log.info("pulling image %s for a task container", image)
        try:
            output = self._api.pull(repository, tag=tag or "latest", auth_config=auth, stream=True, decode=True)
            last_error = next((str(line["error"]) for line in output if isinstance(line, dict) and "error" in line), "")
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerImageError(image, _one_line(exc)) from exc
        if not self._present(image):
            raise ContainerImageError(image, last_error or "the image is not in the engine after the pull")

    # ----------------------------------------------------------------- running
    def _node_limits(self, node_id: str) -> dict[str, Any]:
        limits = self._limits.get(node_id)
        if limits is None:
            try:
                info = self._api.inspect_container(self._node_container(node_id))
            except (docker.errors.DockerException, OSError) as exc:
                raise ContainerSettingsError(f"cannot read the node's limits: {_one_line(exc)}") from exc
            host = info.get("HostConfig") or {}
            limits = self._limits[node_id] = {key: host.get(key) for key in _LIMIT_KEYS}
        return limits

    def _host_config(self, spec: TaskContainerSpec) -> dict[str, Any]:
        options, limits = spec.options, self._node_limits(spec.node_id)
        binds: dict[str, dict[str, str]] = {}
        for relative, target, read_only in spec.node_mounts:
            path = self._host_path(spec.node_id, relative)
            path.mkdir(parents=True, exist_ok=True)
            binds[str(path)] = {"bind": target, "mode": "ro" if read_only else "rw"}
        volumes: list[str] = []
        for mount in options.mounts:
            if mount.source is None:
                volumes.append(mount.target)
                continue
            path = self._host_path(spec.node_id, os.path.relpath(mount.source, _NODE_ROOT))
            binds[str(path)] = {"bind": mount.target, "mode": "ro" if mount.read_only else "rw"}
        config: dict[str, Any] = {
            "binds": binds,
            "network_mode": "host",
            "nano_cpus": _lower_of(options.nano_cpus, _node_nano_cpus(limits)),
            "cpuset_cpus": options.cpuset_cpus or limits.get("CpusetCpus") or None,
            "mem_limit": _lower_of(options.memory, limits.get("Memory")),
            "memswap_limit": options.memory_swap or _lower_of(None, limits.get("MemorySwap")),
            "mem_reservation": options.memory_reservation,
            "cpu_shares": options.cpu_shares,
            "shm_size": options.shm_size,
            "pids_limit": _lower_of(options.pids_limit, limits.get("PidsLimit")),
            "ulimits": [docker.types.Ulimit(name=n, soft=s, hard=h) for n, s, h in options.ulimits] or None,
            "tmpfs": options.tmpfs or None,
            "group_add": options.group_add or None,
            "cap_drop": options.cap_drop or None,
            "cap_add": options.cap_add or None,
            "security_opt": options.security_opt or None,
            "privileged": options.privileged,
            "read_only": options.read_only,
            "init": options.init or None,
        }
        return {"host_config": self._api.create_host_config(**config), "volumes": volumes or None}

    def _labels(self, spec: TaskContainerSpec) -> dict[str, str]:
        return {
            **spec.options.labels,
            **self._extra_labels,
            "batchbox.emulator": self._config.instance_label,
            "batchbox.pool": spec.pool_id,
            LABEL_ROLE: TASK_ROLE,
            LABEL_TASK_NODE: spec.node_id,
            LABEL_ASSIGNMENT: spec.assignment_id,
        }

    def _environment(self, spec: TaskContainerSpec) -> dict[str, str]:
        env = dict(spec.environment)
        for name, value in spec.options.environment:
            if value is not None:
                env[name] = value
            elif name in spec.environment:
                env[name] = spec.environment[name]
        return env

    def run(self, spec: TaskContainerSpec, started: Callable[[str], None] | None = None) -> ContainerExit:
        """Pull the image if missing, create and start the container, stream its output, return its exit;
        ``started`` is called with the container's id once it runs.

        The container is left for :meth:`remove` (call it once the exit is recorded).

        Raises:
            ContainerImageError: the image is missing and could not be pulled.
            ContainerSettingsError: the engine refused the container's settings, or its program is missing.
        """
        self._ensure_image(spec.image, spec.credentials)
        name = self.container_name(spec.node_id, spec.assignment_id)
        with self._outputs(spec.node_id, spec.stdout_path, spec.stderr_path) as outputs:
            container_id = self._create(spec, name)
            try:
                stream = self._attach(container_id)
                self._api.start(container_id)
            except (docker.errors.DockerException, OSError) as exc:
                self._remove_quietly(container_id)
                message = _one_line(exc)
                raise ContainerSettingsError(message, program_missing=bool(_MISSING_PROGRAM.search(message))) from exc
            if started is not None:
                started(container_id)
            return self._finish(container_id, stream, *outputs)

    def _create(self, spec: TaskContainerSpec, name: str) -> str:
        try:
            return self._create_once(spec, name)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # the name is taken: a leftover of an earlier attempt of the assignment
                raise ContainerSettingsError(_one_line(exc)) from exc
        self._remove_quietly(name)
        try:
            return self._create_once(spec, name)
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerSettingsError(_one_line(exc)) from exc

    def _create_once(self, spec: TaskContainerSpec, name: str) -> str:
        try:
            created = self._api.create_container(
                spec.image,
                command=spec.command or None,
                name=name,
                environment=self._environment(spec),
                working_dir=spec.working_dir,
                user=spec.options.user,
                entrypoint=spec.options.entrypoint,
                labels=self._labels(spec),
                tty=spec.options.tty,
                stdin_open=spec.options.stdin_open,
                stop_signal=spec.options.stop_signal,
                stop_timeout=spec.options.stop_timeout,
                **self._host_config(spec),
            )
        except docker.errors.APIError:
            raise
        except (docker.errors.DockerException, OSError) as exc:
            raise ContainerSettingsError(_one_line(exc)) from exc
        return str(created["Id"])

    @contextlib.contextmanager
    def _outputs(self, node_id: str, stdout_path: str, stderr_path: str) -> Iterator[tuple[BinaryIO, BinaryIO]]:
        """The task's stdout.txt and stderr.txt, opened (truncated) on the host."""
        with (
            open(self._host_path(node_id, stdout_path), "wb") as out,
            open(self._host_path(node_id, stderr_path), "wb") as err,
        ):
            yield out, err

    def _attach(self, container_id: str) -> Iterator[tuple[bytes | None, bytes | None]]:
        stream: Iterator[tuple[bytes | None, bytes | None]] = self._api.attach(
            container_id, stdout=True, stderr=True, stream=True, logs=False, demux=True
        )
        return stream

    def _finish(
        self, container_id: str, stream: Iterator[tuple[bytes | None, bytes | None]], out: BinaryIO, err: BinaryIO
    ) -> ContainerExit:
        try:
            for chunk_out, chunk_err in stream:
                if chunk_out:
                    out.write(chunk_out)
                    out.flush()
                if chunk_err:
                    err.write(chunk_err)
                    err.flush()
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("the output stream of task container %s broke: %s", container_id[:12], _one_line(exc))
        out.flush()
        err.flush()
        return self._exit(container_id)

    def _copy_logs(self, container_id: str, stderr: bool, target: BinaryIO) -> None:
        """Copy one of the container's log streams, from its first byte, into ``target`` until the container exits."""
        try:
            for chunk in self._api.logs(container_id, stdout=not stderr, stderr=stderr, stream=True, follow=True):
                target.write(chunk)
                target.flush()
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("the log stream of task container %s broke: %s", container_id[:12], _one_line(exc))

    def _exit(self, container_id: str) -> ContainerExit:
        try:
            status = self._api.wait(container_id, timeout=None)
        except docker.errors.NotFound:
            return ContainerExit(container_id, 137)  # removed under it: its node went away
        exit_code = int(status.get("StatusCode", 137))
        try:
            state = self._api.inspect_container(container_id).get("State") or {}
        except docker.errors.NotFound:  # removed on exit (--rm): it exited
            return ContainerExit(container_id, exit_code)
        error = str(state.get("Error") or (status.get("Error") or {}).get("Message") or "")
        return ContainerExit(container_id, exit_code, str(state.get("Status") or "exited"), error)

    def follow(self, node_id: str, assignment_id: str, stdout_path: str, stderr_path: str) -> ContainerExit | None:
        """Take up a task container started before an emulator restart: rewrite its output, wait for its exit.

        Returns:
            Its exit, or ``None`` when no such container exists. A container created but never started (the
            emulator went away between the two) is removed and counts as none: the caller starts the run afresh.
        """
        name = self.container_name(node_id, assignment_id)
        try:
            info = self._api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        container_id = str(info["Id"])
        if (info.get("State") or {}).get("Status") == "created":
            self._remove_quietly(container_id)
            return None
        # The engine's logs replay the whole output reliably (an attach asking for the logs may skip them).
        with self._outputs(node_id, stdout_path, stderr_path) as (out, err):
            errors = threading.Thread(target=self._copy_logs, args=(container_id, True, err), daemon=True)
            errors.start()
            self._copy_logs(container_id, False, out)
            errors.join()
            return self._exit(container_id)

    # ----------------------------------------------------------------- stopping and cleaning up
    def kill(self, node_id: str, assignment_id: str) -> bool:
        """Kill and remove a task container, whatever its state (its run ends with exit code 137); False when there
        is none."""
        try:
            self._api.remove_container(self.container_name(node_id, assignment_id), v=True, force=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: a removal already in progress
                raise
        return True

    def remove(self, container_id: str) -> None:
        """Remove a task container and its anonymous volumes (gone already is fine)."""
        self._remove_quietly(container_id)

    def _remove_quietly(self, name_or_id: str) -> None:
        try:
            self._api.remove_container(name_or_id, v=True, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # a removal already in progress
                log.warning("removing task container %s failed: %s", name_or_id[:40], _one_line(exc))

    def _listed(self, node_id: str | None = None) -> list[dict[str, Any]]:
        labels = [f"batchbox.emulator={self._config.instance_label}", f"{LABEL_ROLE}={TASK_ROLE}"]
        if node_id is not None:
            labels.append(f"{LABEL_TASK_NODE}={node_id}")
        found: list[dict[str, Any]] = self._api.containers(all=True, filters={"label": labels})
        return found

    def remove_for_node(self, node_id: str) -> int:
        """Remove every task container of a node (its node is going); return how many."""
        self._limits.pop(node_id, None)
        entries = self._listed(node_id)
        for entry in entries:
            self._remove_quietly(str(entry["Id"]))
        return len(entries)

    def remove_orphans(self, live_node_ids: Collection[str]) -> int:
        """Remove the task containers whose node is not among ``live_node_ids``; return how many."""
        removed = 0
        for entry in self._listed():
            if (entry.get("Labels") or {}).get(LABEL_TASK_NODE) not in live_node_ids:
                self._remove_quietly(str(entry["Id"]))
                removed += 1
        return removed
