"""Node users (real Linux accounts inside the node container) and the upload of a node's service logs.

Users are made by ``batchbox/node/_node_users.py`` run as root in the container (``docker exec``); the request,
password and SSH key included, travels in that command's environment, never on its command line or in a log.

``uploadbatchservicelogs`` copies the node's agent log (``agent.log``) and its start task's output
(``startup/stdout.txt``, ``startup/stderr.txt``) that were written in the request's time window to
``<poolId>/<nodeId>/<uuid>/`` in the given container (a SAS URL), as Batch does with its own agent's logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from azure.storage.blob import ContainerClient

from batchbox.core.redact import redact
from batchbox.emulator.clock import parse_time
from batchbox.emulator.errors import BatchError, conflict
from batchbox.emulator.resources.nodes import LogUpload, NodeUser
from batchbox.emulator.runtime.model import NodeRuntime
from batchbox.emulator.runtime.ports import NodeDriverLike

__all__ = ["LOG_FILES", "NodeUsers", "upload_service_logs"]

log = logging.getLogger(__name__)

_SCRIPT = "/opt/batchbox/node/_node_users.py"
_REQUEST_ENV = "BATCHBOX_NODE_USER"
_EXIT_EXISTS = 3
_EXIT_NOT_FOUND = 4
LOG_FILES = ("agent.log", "startup/stdout.txt", "startup/stderr.txt")
"""The node files ``uploadbatchservicelogs`` sends, relative to the node root."""


class NodeUsers:
    """Adds, replaces and deletes users inside node containers."""

    def __init__(self, driver: NodeDriverLike) -> None:
        self._driver = driver

    async def _run(self, node: NodeRuntime, request: dict[str, Any]) -> int:
        environment = {_REQUEST_ENV: json.dumps(request)}
        code, output = await asyncio.to_thread(self._driver.exec_node, node.node_id, ["python3", _SCRIPT], environment)
        if code not in (0, _EXIT_EXISTS, _EXIT_NOT_FOUND):
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "The value provided for one of the properties in the request body is invalid.",
                {"PropertyName": "name", "Reason": redact(output.strip())[:300] or f"exit code {code}"},
            )
        return code

    async def add(self, node: NodeRuntime, user: NodeUser) -> None:
        """Create the user.

        Raises:
            BatchError: NodeUserExists (409), InvalidPropertyValue (400) for a name Linux refuses.
        """
        code = await self._run(
            node,
            {
                "action": "add",
                "name": user.name,
                "isAdmin": user.is_admin,
                "password": user.password,
                "sshPublicKey": user.ssh_public_key,
                "expiryDate": user.expiry_date,
            },
        )
        if code == _EXIT_EXISTS:
            raise conflict("NodeUserExists", "The specified node user already exists.", {"UserName": user.name})

    async def update(self, node: NodeRuntime, user: NodeUser) -> None:
        """Replace the user's password, SSH key and expiry.

        Raises:
            BatchError: NodeUserNotFound (404).
        """
        code = await self._run(
            node,
            {
                "action": "update",
                "name": user.name,
                "password": user.password,
                "sshPublicKey": user.ssh_public_key,
                "expiryDate": user.expiry_date,
            },
        )
        if code == _EXIT_NOT_FOUND:
            raise _user_not_found(user.name)

    async def delete(self, node: NodeRuntime, name: str) -> None:
        """Delete the user and its home directory.

        Raises:
            BatchError: NodeUserNotFound (404).
        """
        if await self._run(node, {"action": "delete", "name": name}) == _EXIT_NOT_FOUND:
            raise _user_not_found(name)


def _user_not_found(name: str) -> BatchError:
    return BatchError(404, "NodeUserNotFound", "The specified node user does not exist.", {"UserName": name})


def _files_in_window(root: Path, booted: datetime | None, start: datetime, end: datetime | None) -> list[Path]:
    """The log files written to at or after ``start`` by a node that was already up at ``end``."""
    if end is not None and booted is not None and booted > end:
        return []
    found: list[Path] = []
    for relative in LOG_FILES:
        path = root / relative
        try:
            modified = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
        except OSError:
            continue
        if modified >= start:
            found.append(path)
    return found


def _upload(url: str, root: Path, files: list[Path], directory: str) -> int:
    container = ContainerClient.from_container_url(url)
    uploaded = 0
    with container:
        for path in files:
            name = directory + path.relative_to(root).as_posix()
            with path.open("rb") as data:
                container.upload_blob(name, data, overwrite=True)
            uploaded += 1
    return uploaded


async def upload_service_logs(root: Path, node: NodeRuntime, request: LogUpload) -> dict[str, Any]:
    """Upload the node's service logs of the request's window; the ``UploadBatchServiceLogsResult`` body.

    A failing upload (a wrong or expired SAS) is logged, not answered: Batch uploads in the background too.
    """
    directory = f"{node.pool_id}/{node.node_id}/{uuid.uuid4()}/"
    booted = parse_time(node.doc.get("allocationTime") or node.doc.get("lastBootTime"))
    files = _files_in_window(root, booted, request.start, request.end)
    try:
        count = await asyncio.to_thread(_upload, request.container_url, root, files, directory)
    except Exception as exc:
        log.warning("uploading the service logs of node %s failed: %s", node.node_id, redact(str(exc))[:300])
        count = len(files)
    return {"virtualDirectoryName": directory, "numberOfFilesUploaded": count}
