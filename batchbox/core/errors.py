"""The batchbox error hierarchy.

Every error a backend raises is a :class:`BatchboxError`. Errors about one resource carry its kind and name
(like libcloud's errors), so a caller can say *which* pool, job, task, container or blob was missing. Backends
translate SDK errors with ``raise ... from exc``; messages never contain account keys or SAS signatures.

The tree::

    BatchboxError
    ├── ConfigurationError          a setting is missing or malformed (before any work starts)
    ├── BackendUnavailableError     a service does not answer
    │   └── ServiceBusyError        it answers, but only "busy" / "too many requests" (after retrying)
    ├── WaitTimeoutError            a wait gave up (also a builtin TimeoutError)
    └── ResourceError               about one named pool, job, task, node, file, container or blob
        ├── ResourceNotFoundError
        ├── ResourceExistsError
        ├── AuthenticationError     the credential or SAS was refused
        ├── InvalidRequestError     the service rejected the request
        ├── StartTaskFailedError    a pool's nodes failed their start task
        ├── PoolAllocationError     a pool got no usable node: its resize errors (quota, allocation)
        ├── NoNodeCanRunError       tasks wait, but no node of the pool can run them
        └── TaskFailedError         tasks of a job failed
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "BatchboxError",
    "ConfigurationError",
    "InvalidRequestError",
    "NoNodeCanRunError",
    "PoolAllocationError",
    "ResourceError",
    "ResourceExistsError",
    "ResourceNotFoundError",
    "ServiceBusyError",
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

    what = "is not reachable"

    def __init__(self, service: str, message: str) -> None:
        self.service = service
        super().__init__(f"{service} {self.what}: {message}")


class ServiceBusyError(BackendUnavailableError):
    """A service kept answering "too many requests" (429) or "busy" (503) until the retry budget ran out."""

    what = "is busy"


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


class PoolAllocationError(ResourceError):
    """A pool settled without a usable node, and Batch says why in its resize errors (quota, allocation).

    Attributes:
        resize_errors: ``(code, message)`` of each resize error, as Batch reports them.
    """

    def __init__(self, pool_id: str, resize_errors: list[tuple[str, str]]) -> None:
        self.resize_errors = list(resize_errors)
        details = "; ".join(f"{code}: {message}" for code, message in resize_errors)
        super().__init__("pool", pool_id, f"pool '{pool_id}' could not get any usable node: {details}")


class NoNodeCanRunError(ResourceError):
    """Tasks of a job wait, nothing runs, and no node of its pool can run them (or the pool is gone).

    Attributes:
        job_id: the job whose tasks wait.
        node_states: node id -> its state and errors, as reported.
    """

    def __init__(self, pool_id: str, job_id: str, why: str, node_states: dict[str, str] | None = None) -> None:
        self.job_id = job_id
        self.node_states = dict(node_states or {})
        super().__init__("pool", pool_id, f"no node of pool '{pool_id}' can run the tasks of job '{job_id}': {why}")


class TaskFailedError(ResourceError):
    """One or more tasks of a job finished with a failure."""

    def __init__(self, job_id: str, failed_task_ids: list[str]) -> None:
        self.failed_task_ids = list(failed_task_ids)
        shown = ", ".join(failed_task_ids[:10]) + (" ..." if len(failed_task_ids) > 10 else "")
        super().__init__("job", job_id, f"job '{job_id}': {len(failed_task_ids)} task(s) failed: {shown}")
