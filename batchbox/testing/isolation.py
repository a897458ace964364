"""Isolation between tests that share one Batch account and one storage account.

:class:`UniqueNames` hands out pool ids, job ids and blob container names that no other test (or worker, or
earlier run) uses, remembers them, and :meth:`UniqueNames.cleanup` deletes whatever exists under them: jobs first,
then pools, then containers. The ``batchbox_names`` fixture calls it after every test, passed or failed.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

__all__ = ["UniqueNames"]

_MAX_ID = 64
_MAX_CONTAINER = 63


def _slug(text: str, limit: int) -> str:
    """Lower-case letters, digits and single hyphens, at most ``limit`` characters, no hyphen at either end."""
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")
    return slug[:limit].strip("-") or "t"


class UniqueNames:
    """Unique names for one test and the cleanup of what was created under them.

    Args:
        batch_client: an azure-batch 15.x ``BatchClient`` (used by :meth:`cleanup`).
        blob_service_client: a ``BlobServiceClient`` (used by :meth:`cleanup`).
        prefix: a readable part of every name, e.g. the test's name (shortened to fit).
    """

    def __init__(self, batch_client: Any, blob_service_client: Any, prefix: str = "test") -> None:
        self._batch = batch_client
        self._blobs = blob_service_client
        self._prefix = _slug(prefix, 24)
        self.pools: list[str] = []
        self.jobs: list[str] = []
        self.containers: list[str] = []

    def _name(self, label: str, limit: int) -> str:
        suffix = uuid.uuid4().hex[:10]
        head = _slug(f"{self._prefix}-{label}", limit - len(suffix) - 1)
        return f"{head}-{suffix}"

    def pool_id(self, label: str = "pool") -> str:
        """A new pool id (remembered for cleanup)."""
        name = self._name(label, _MAX_ID)
        self.pools.append(name)
        return name

    def job_id(self, label: str = "job") -> str:
        """A new job id (remembered for cleanup)."""
        name = self._name(label, _MAX_ID)
        self.jobs.append(name)
        return name

    def container(self, label: str = "data") -> str:
        """A new blob container name (remembered for cleanup)."""
        name = self._name(label, _MAX_CONTAINER)
        self.containers.append(name)
        return name

    def cleanup(self, wait_seconds: float = 0.0) -> list[str]:
        """Delete every job, pool and container handed out that exists; names never created are skipped.

        Args:
            wait_seconds: how long to wait, in all, for Batch to finish deleting the jobs and pools (0: start the
                deletions and return; Batch finishes them in the background).

        Returns:
            One line per deletion that failed for another reason than "not found" (empty when all went well).
        """
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        problems: list[str] = []
        pollers: list[tuple[str, Any]] = []
        interval = {"polling_interval": 1} if wait_seconds else {}
        deletions = [
            *((f"job {name}", self._batch.begin_delete_job, name, interval) for name in self.jobs),
            *((f"pool {name}", self._batch.begin_delete_pool, name, interval) for name in self.pools),
            *((f"container {name}", self._blobs.delete_container, name, {}) for name in self.containers),
        ]
        for what, delete, name, options in deletions:
            try:
                poller = delete(name, **options)
            except ResourceNotFoundError:
                continue
            except HttpResponseError as exc:
                being_deleted = exc.status_code == 409 and "BeingDeleted" in str(getattr(exc, "error_code", ""))
                if exc.status_code != 404 and not being_deleted:
                    problems.append(f"cannot delete {what}: {exc.reason or exc.status_code}")
                continue
            if poller is not None and wait_seconds:
                pollers.append((what, poller))
        deadline = time.monotonic() + wait_seconds
        for what, poller in pollers:
            poller.wait(max(0.0, deadline - time.monotonic()))
            if not poller.done():
                problems.append(f"{what} was still being deleted after {wait_seconds:g} s")
        self.pools.clear()
        self.jobs.clear()
        self.containers.clear()
        return problems
