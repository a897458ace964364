"""The batchbox error hierarchy.

Every error a backend raises is a :class:`BatchboxError`. Errors about one resource carry its kind and name
(like libcloud's errors), so a caller can say *which* pool, job, task, container or blob was missing. Backends
translate SDK errors with ``raise ... from exc``; messages never contain account keys or SAS signatures.

The tree::

    BatchboxError
    ├── ConfigurationError          a setting is missing or malformed (before any work starts)
    ├── BackendUnavailableError     a service does not answer
    ├── WaitTimeoutError            a wait gave up (also a builtin TimeoutError)
    └── ResourceError               about one named pool, job, task, node, file, container or blob
        ├── ResourceNotFoundError
        ├── ResourceExistsError
        ├── AuthenticationError     the credential or SAS was refused
        ├── InvalidRequestError     the service rejected the request
        ├── StartTaskFailedError    a pool's nodes failed their start task
        └── TaskFailedError         tasks of a job failed
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "BatchboxError",
    "ConfigurationError",
    "InvalidRequestError",
    "ResourceError",
    "ResourceExistsError",
    "ResourceNotFoundError",
    "StartTaskFailedError",
    "TaskFailedError",
    "WaitTimeoutError",
]


class BatchboxError(Exception):
    """Base class of every error batchbox raises on purpose."""


class ConfigurationError(BatchboxError):
    """A required setting is missing or malformed (raised before any work starts)."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class BackendUnavailableError(BatchboxError):
    """A service the backend needs (Docker engine, Azurite, emulator, Azure endpoint) does not answer."""

    def __init__(self, service: str, message: str) -> None:
        self.service = service
        super().__init__(f"{service} is not reachable: {message}")


class WaitTimeoutError(BatchboxError, TimeoutError):
    """A wait for a state (usable nodes, a finished job, a deleted pool) gave up after its timeout.

    It is also a :class:`TimeoutError`, so ``except TimeoutError`` keeps catching it.
    """


class ResourceError(BatchboxError):
    """An error about one named resource (pool, job, task, node, container, blob)."""

    def __init__(self, kind: str, name: str, message: str | None = None) -> None:
        self.kind = kind
        self.name = name
        super().__init__(message or self.default_message())

    def default_message(self) -> str:
        return f"{self.kind} '{self.name}' failed"


class ResourceNotFoundError(ResourceError):
    """The named resource does not exist."""

    def default_message(self) -> str:
        return f"{self.kind} '{self.name}' does not exist"


class ResourceExistsError(ResourceError):
    """A resource with that name already exists."""

    def default_message(self) -> str:
        return f"{self.kind} '{self.name}' already exists"


class AuthenticationError(ResourceError):
    """The credential or SAS was refused (wrong key, expired or tampered SAS, missing permission)."""

    def default_message(self) -> str:
        return f"access to {self.kind} '{self.name}' was refused"


class InvalidRequestError(ResourceError):
    """The service rejected a request about the resource as malformed or not allowed in its state."""

    def default_message(self) -> str:
        return f"the request about {self.kind} '{self.name}' was rejected"


class StartTaskFailedError(ResourceError):
    """Nodes of a pool failed their start task, so the pool cannot run tasks."""

    def __init__(self, pool_id: str, node_failures: dict[str, str]) -> None:
        self.node_failures = dict(node_failures)
        details = "; ".join(f"{node}: {why}" for node, why in sorted(node_failures.items()))
        super().__init__("pool", pool_id, f"pool '{pool_id}': start task failed on {details}")


class TaskFailedError(ResourceError):
    """One or more tasks of a job finished with a failure."""

    def __init__(self, job_id: str, failed_task_ids: list[str]) -> None:
        self.failed_task_ids = list(failed_task_ids)
        shown = ", ".join(failed_task_ids[:10]) + (" ..." if len(failed_task_ids) > 10 else "")
        super().__init__("job", job_id, f"job '{job_id}': {len(failed_task_ids)} task(s) failed: {shown}")
