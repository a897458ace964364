"""Connect to the Docker engine that runs the emulator's node containers (the local stack uses it too).

One entry point, :func:`connect_docker`, which returns a docker-py client only after the engine answered a
ping; anything else becomes a one-line :class:`~batchbox.core.errors.BackendUnavailableError` that says what
to start.
"""

from __future__ import annotations

import os

import docker
import docker.errors

from batchbox.core.errors import BackendUnavailableError

__all__ = ["DEFAULT_DOCKER_TIMEOUT", "DOCKERD_COMMAND", "connect_docker", "docker_host"]

DEFAULT_DOCKER_TIMEOUT = 10.0
"""Seconds a Docker API call may take before it counts as unanswered."""

DOCKERD_COMMAND = "dockerd --bridge=none --iptables=false --ip-masq=false"
"""How batchbox starts an engine itself: no bridge network, no firewall edits (every node uses the host network)."""

_DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_host() -> str:
    """Return the engine address docker-py will use (``DOCKER_HOST`` or the default socket)."""
    return os.environ.get("DOCKER_HOST") or _DEFAULT_HOST


def _how_to_start() -> str:
    return (
        f"run `make setup` (as root on Debian/Ubuntu it installs and starts one) "
        f"or start it yourself: `sudo {DOCKERD_COMMAND} &`"
    )


def connect_docker(timeout: float = DEFAULT_DOCKER_TIMEOUT) -> docker.DockerClient:
    """Return a client for the Docker engine named by the environment, after checking it answers.

    Args:
        timeout: Seconds each API call (including this ping) may take.

    Returns:
        A connected :class:`docker.DockerClient`; the caller closes it.

    Raises:
        BackendUnavailableError: The engine is not reachable (``service`` is ``"docker"``); the message is
            one line naming the address and how to start an engine.
    """
    host = docker_host()
    client: docker.DockerClient | None = None
    try:
        client = docker.DockerClient.from_env(timeout=timeout)
        client.ping()
    # requests' errors (refused, timed out) are OSErrors.
    except (docker.errors.DockerException, OSError) as exc:
        if client is not None:
            client.close()
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        raise BackendUnavailableError(
            "docker", f"the engine at {host} does not answer ({reason}); {_how_to_start()}"
        ) from exc
    return client
