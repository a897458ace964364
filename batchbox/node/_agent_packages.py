"""Application packages on the node: install (once) the packages an assignment references, give their variables.

The agent asks the emulator (``POST packages`` with the assignment's references, the pool's then the task's) for
each package's download URL (a read SAS), its directory under ``<root>/applications`` and its variables. A package
is downloaded and extracted once per node: into a temporary directory renamed into place when complete, so a
present directory is a complete one; a new upload of a version gets a new directory. A package that cannot be
found or deployed fails the assignment with ``ApplicationPackageError`` before anything runs.

Extraction refuses entries that would land outside the package's directory, keeps the zip's Unix permission bits
(so executables stay executable) and makes everything readable by every task user. Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from batchbox.node._agent_blob import BlobError, LocalFileError, download_to_file
from batchbox.node._agent_common import (
    APPLICATION_PACKAGE_ERROR,
    SERVER_ERROR,
    USER_ERROR,
    TaskFailure,
    redact_url,
)
from batchbox.node._agent_http import Backoff, NodeApi, ServerUnreachable

__all__ = ["APPLICATIONS", "PackageInstaller", "extract_package"]

APPLICATIONS = "applications"
_ATTEMPTS = 5

log = logging.getLogger("batchbox.agent")


def _failure(message: str, category: str = USER_ERROR) -> TaskFailure:
    return TaskFailure(category, APPLICATION_PACKAGE_ERROR, message)


def extract_package(archive: str, target: str) -> None:
    """Extract a zip into ``target`` (which must not exist yet), refusing entries that escape it.

    Raises:
        TaskFailure: the file is no zip, or an entry would land outside ``target``.
    """
    root = os.path.realpath(target)
    try:
        with zipfile.ZipFile(archive) as package:
            os.makedirs(root, mode=0o755)
            for entry in package.infolist():
                path = os.path.realpath(os.path.join(root, entry.filename))
                if path != root and not path.startswith(root + os.sep):
                    raise _failure(f"The package entry '{entry.filename}' would land outside its directory")
                if entry.is_dir():
                    os.makedirs(path, mode=0o755, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                with package.open(entry) as source, open(path, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                mode = (entry.external_attr >> 16) & 0o777
                os.chmod(path, (mode or 0o644) | 0o444)
    except zipfile.BadZipFile as exc:
        raise _failure(f"The package is not a valid zip file: {exc}") from None


class PackageInstaller:
    """Installs the application packages of assignments on this node.

    Args:
        api: the node's agent API.
        node_root: the node root directory.
    """

    def __init__(self, api: NodeApi, node_root: str) -> None:
        self._api = api
        self._root = node_root
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _ask(self, references: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        backoff = Backoff(0.2, 2.0)
        for attempt in range(_ATTEMPTS):
            try:
                status, answer = self._api.post("packages", {"references": list(references)}, timeout=120.0)
            except ServerUnreachable as exc:
                if attempt == _ATTEMPTS - 1:
                    raise _failure(f"The emulator did not answer for the packages: {exc}", SERVER_ERROR) from None
                time.sleep(backoff.next_delay())
                continue
            if status == 200 and isinstance(answer, dict):
                return answer
            raise _failure(f"The emulator refused the package request (HTTP {status})", SERVER_ERROR)
        raise _failure("The emulator did not answer for the packages", SERVER_ERROR)

    def install(self, references: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Install the referenced packages (those present already are kept); return their variables.

        Raises:
            TaskFailure: ``ApplicationPackageError`` (a package is missing or cannot be deployed).
        """
        if not references:
            return {}
        answer = self._ask(references)
        if isinstance(answer.get("failureInfo"), dict):
            raise TaskFailure.from_info(answer["failureInfo"])
        variables: dict[str, str] = {}
        for package in answer.get("packages") or []:
            self._install_one(package)
            variables.update({str(k): str(v) for k, v in (package.get("variables") or {}).items()})
        return variables

    def _lock(self, directory: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(directory, threading.Lock())

    def _install_one(self, package: Mapping[str, Any]) -> None:
        directory = str(package.get("directory") or "")
        apps = os.path.realpath(os.path.join(self._root, APPLICATIONS))
        target = os.path.realpath(os.path.join(self._root, directory))
        if os.path.dirname(target) != apps:
            raise _failure(f"The package directory '{directory}' is not under {APPLICATIONS}", SERVER_ERROR)
        with self._lock(directory):
            if os.path.isdir(target):
                return
            partial = f"{target}.partial-{uuid.uuid4().hex[:8]}"
            url = str(package.get("url") or "")
            try:
                download_to_file(url, partial + ".zip")
                extract_package(partial + ".zip", partial)
                os.rename(partial, target)
            except (BlobError, LocalFileError) as exc:
                raise _failure(
                    f"The package {package.get('applicationId')} {package.get('version')} could not be downloaded "
                    f"from {redact_url(url)}: {exc}"
                ) from None
            finally:
                for leftover in (partial + ".zip", partial):
                    if os.path.isdir(leftover):
                        shutil.rmtree(leftover, ignore_errors=True)
                    elif os.path.exists(leftover):
                        os.remove(leftover)
            log.info("installed application package %s %s", package.get("applicationId"), package.get("version"))
