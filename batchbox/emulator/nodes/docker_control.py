"""Node container operations beyond create / remove: restart, stop / start, commands inside, resource counters.

:class:`NodeControl` is mixed into ``NodeDriver`` (it uses the driver's client and container names). Every method
blocks on the Docker API; the runtime calls them through ``asyncio.to_thread``.

* ``restart_node`` (reboot) and ``stop_node`` (deallocate) first remove the agent's state file, so the start task
  runs again when the agent comes back, as Batch reruns it after a reboot or a start, and the node's task containers
  (they are processes of the node);
* ``exec_node`` runs a command as root inside the node (node users are made this way); secrets go in its
  environment, never on its command line;
* ``node_stats`` reads the engine's one-shot cgroup statistics (CPU time, memory, block I/O).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import docker
import docker.errors

from batchbox.core.errors import BatchboxError
from batchbox.emulator.runtime.ports import NodeStats

__all__ = ["AGENT_STATE_PATH", "NodeControl", "NodeControlError"]

AGENT_STATE_PATH = "/mnt/batch/tasks/agent-state.json"
"""The agent's record that the start task completed (``batchbox/node/_agent_state.py``)."""
_STOP_GRACE = 1


class NodeControlError(BatchboxError):
    """A Docker call on a running node failed; one line naming the node and the cause."""


def _one_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return " ".join(text.split()) or type(exc).__name__


def _blkio_total(stats: Mapping[str, Any], key: str, op: str) -> float | None:
    entries = (stats.get("blkio_stats") or {}).get(key)
    if not isinstance(entries, list):
        return None
    return float(sum(int(e.get("value") or 0) for e in entries if str(e.get("op", "")).lower() == op))


class NodeControl:
    """What the runtime does to a node's running container (mixed into ``NodeDriver``)."""

    _client: docker.DockerClient
    _host: tuple[int, int] | None = None

    def container_name(self, node_id: str) -> str:  # provided by NodeDriver
        raise NotImplementedError

    def remove_task_containers(self, node_id: str) -> None:  # provided by NodeDriver
        """Remove the task containers of a node (they end with the node's processes)."""
        raise NotImplementedError

    def _call(self, node_id: str, what: str, action: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return action(*args, **kwargs)
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeControlError(f"cannot {what} the container of node {node_id}: {_one_line(exc)}") from exc

    def host_capacity(self) -> tuple[int, int]:
        """The engine's CPUs and memory in bytes (asked once)."""
        if self._host is None:
            info = self._call("-", "inspect the engine of", self._client.info)
            self._host = (int(info.get("NCPU") or 1), int(info.get("MemTotal") or 0))
        return self._host

    def exec_node(
        self, node_id: str, argv: Sequence[str], environment: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        """Run ``argv`` as root inside the node; returns its exit code and its output (stdout and stderr).

        Raises:
            NodeControlError: the container is not running or the engine refused.
        """
        name = self.container_name(node_id)
        api = self._client.api
        created = self._call(node_id, "run a command in", api.exec_create, name, list(argv), environment=environment)
        output = self._call(node_id, "run a command in", api.exec_start, created["Id"])
        code = self._call(node_id, "run a command in", api.exec_inspect, created["Id"]).get("ExitCode")
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output or "")
        return (int(code) if code is not None else -1), text

    def _forget_start_task(self, node_id: str) -> None:
        self.exec_node(node_id, ["rm", "-f", AGENT_STATE_PATH])

    def restart_node(self, node_id: str) -> None:
        """Reboot: the container restarts (its processes end, its disk stays); the start task runs again.

        Raises:
            NodeControlError: the engine refused.
        """
        self._forget_start_task(node_id)
        self.remove_task_containers(node_id)
        self._call(node_id, "restart", self._client.api.restart, self.container_name(node_id), timeout=_STOP_GRACE)

    def stop_node(self, node_id: str) -> None:
        """Deallocate: the container stops and stays (its disk with it) until :meth:`start_node`.

        Raises:
            NodeControlError: the engine refused.
        """
        self._forget_start_task(node_id)
        self.remove_task_containers(node_id)
        self._call(node_id, "stop", self._client.api.stop, self.container_name(node_id), timeout=_STOP_GRACE)

    def start_node(self, node_id: str) -> None:
        """Start a stopped (deallocated) node container again.

        Raises:
            NodeControlError: the engine refused.
        """
        self._call(node_id, "start", self._client.api.start, self.container_name(node_id))

    def node_stats(self, node_id: str) -> NodeStats | None:
        """The container's cumulative counters now, or ``None`` when it is not running.

        Raises:
            NodeControlError: the engine could not be asked.
        """
        try:
            stats = self._client.api.stats(self.container_name(node_id), stream=False, one_shot=True)
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, OSError) as exc:
            raise NodeControlError(f"cannot read the statistics of node {node_id}: {_one_line(exc)}") from exc
        cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        memory = (stats.get("memory_stats") or {}).get("usage")
        if cpu is None or memory is None:
            return None
        return NodeStats(
            cpu_seconds=float(cpu) / 1e9,
            memory_bytes=float(memory),
            disk_read_bytes=_blkio_total(stats, "io_service_bytes_recursive", "read"),
            disk_write_bytes=_blkio_total(stats, "io_service_bytes_recursive", "write"),
            disk_read_ops=_blkio_total(stats, "io_serviced_recursive", "read"),
            disk_write_ops=_blkio_total(stats, "io_serviced_recursive", "write"),
        )
