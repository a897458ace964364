"""ComputeBackend on the Azure Batch service through azure-batch 15.x (``azure.batch.BatchClient``).

The same class drives Azure Batch and batchbox's local emulator (which speaks the Batch REST API): only the
endpoint and the credential change. Pool deletion, pool resizing and job termination/deletion are asynchronous
in Batch: the methods here ask for them and return; the contract's ``wait_for_pool_deleted`` and
``wait_for_job_deleted`` wait when a caller needs the resource gone.

Every request goes through :class:`~batchbox.backends.azure._retry.BatchRetryPolicy` (429, 5xx and lost
connections are retried within a time budget, ``Retry-After`` honoured, POST included); the calls that create
something tell their own first attempt from a resource that was there before (see ``_retry``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.batch.models._models import BatchJobTerminateOptions  # not exported by azure.batch.models in 15.1
from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import BearerTokenCredentialPolicy

from batchbox import __version__
from batchbox.backends.azure import _batch_models as mapping
from batchbox.backends.azure._batch_errors import (
    batch_error_info,
    read_error_body,
    refused_tasks_error,
    safe_endpoint,
    translate_add_tasks_error,
    translated_batch_errors,
)
from batchbox.backends.azure._error_chains import raise_translated
from batchbox.backends.azure._retry import AttemptLog, BatchRetryPolicy, RetryStats
from batchbox.backends.azure._task_collections import MAX_TASKS_PER_REQUEST, add_task_collections
from batchbox.core.compute import AddTasksResult, ComputeBackend
from batchbox.core.errors import (
    ConfigurationError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from batchbox.core.models import (
    ComputeNodeInfo,
    JobSpec,
    PoolInfo,
    PoolSpec,
    StartTask,
    TaskCounts,
    TaskInfo,
    TaskSpec,
)
from batchbox.core.states import JobState, PoolState, TaskState

__all__ = ["BATCH_TOKEN_SCOPE", "AzureBatchCompute"]

#: The Azure AD scope azure-batch 15.x asks a TokenCredential for (the double slash is the SDK's own spelling;
#: Entra ID maps it to the Batch resource ``https://batch.core.windows.net/``).
BATCH_TOKEN_SCOPE = "https://batch.core.windows.net//.default"

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

log = logging.getLogger(__name__)


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS


class _LoopbackBearerPolicy(BearerTokenCredentialPolicy[Any, Any]):
    """Bearer tokens over plain HTTP, allowed only towards a loopback emulator (azure-core refuses http)."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if _is_loopback_http(request.http_request.url):
            request.context["enforce_https"] = False
        super().on_request(request)


class AzureBatchCompute(ComputeBackend):
    """Pools, jobs and tasks on an Azure Batch account or on the batchbox emulator.

    Args:
        endpoint: the account URL, e.g. ``https://myaccount.westeurope.batch.azure.com`` or
            ``http://127.0.0.1:8446`` for the emulator.
        credential: ``AzureNamedKeyCredential(account_name, account_key)`` (SharedKey) or any azure-core
            ``TokenCredential`` (asked for :data:`BATCH_TOKEN_SCOPE`).
        retry_budget: seconds after a request's first attempt past which it is not sent again (408, 429, 5xx,
            lost connections; a ``Retry-After`` header sets the wait). Adding tasks gives each task this long.
        retry_total: also an upper bound on the retries of one request (None: the budget alone; 0: none).
        retry_backoff_factor: seconds; the n-th retry waits about ``factor * 2**(n-1)`` (the first is immediate).
        retry_backoff_max: upper bound of one backoff, in seconds.
        connection_timeout: seconds to wait for a TCP connection.
        read_timeout: seconds to wait for an answer on an open connection.
        lro_polling_interval: seconds between the status polls the SDK makes in the background after a pool
            delete/resize or job terminate/delete (the SDK always starts such a poller thread).
        api_version: override of the SDK's api-version (2025-06-01 for 15.x); leave None.
        ca_bundle: a CA certificate (PEM file) to verify the endpoint's TLS certificate with, instead of the
            system's (the local stack's CA with ``batchbox local up --tls``).

    Raises:
        ConfigurationError: the endpoint is not an http(s) URL.
    """

    def __init__(
        self,
        endpoint: str,
        credential: AzureNamedKeyCredential | TokenCredential,
        *,
        retry_budget: float = 60.0,
        retry_total: int | None = None,
        retry_backoff_factor: float = 0.5,
        retry_backoff_max: float = 30.0,
        connection_timeout: float = 10.0,
        read_timeout: float = 120.0,
        lro_polling_interval: int = 5,
        api_version: str | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = safe_endpoint(endpoint)
            raise ConfigurationError("endpoint", f"{shown!r} is not an http(s) URL of a Batch account")
        self._endpoint = endpoint.rstrip("/")
        self._retry_budget = retry_budget
        self._retry_backoff_factor = retry_backoff_factor
        self._retry_backoff_max = retry_backoff_max
        self._lro_polling_interval = lro_polling_interval
        self._secrets: tuple[str, ...] = ()
        self._owned_credential: Any = None
        self._retry_policy = BatchRetryPolicy(
            budget=retry_budget,
            retry_total=retry_total,
            backoff_factor=retry_backoff_factor,
            backoff_max=retry_backoff_max,
        )
        options: dict[str, Any] = {
            "retry_policy": self._retry_policy,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
            "user_agent": f"batchbox/{__version__}",
        }
        if api_version is not None:
            options["api_version"] = api_version
        if ca_bundle is not None:
            options["connection_verify"] = ca_bundle
        if isinstance(credential, AzureNamedKeyCredential):
            self._secrets = (credential.named_key.key,)
        elif _is_loopback_http(self._endpoint):
            options["authentication_policy"] = _LoopbackBearerPolicy(credential, BATCH_TOKEN_SCOPE)
        self._client = BatchClient(self._endpoint, credential, **options)

    @classmethod
    def from_shared_key(cls, endpoint: str, account_name: str, account_key: str, **options: Any) -> AzureBatchCompute:
        """SharedKey authentication with the account name and (base64) key; ``options`` as for the constructor.

        Raises:
            ConfigurationError: the name is empty or the key is not base64 (the key is never quoted).
        """
        import base64
        import binascii

        if not account_name:
            raise ConfigurationError("account_name", "the Batch account name is empty")
        try:
            base64.b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError("account_key", "the Batch account key is not valid base64") from None
        return cls(endpoint, AzureNamedKeyCredential(account_name, account_key), **options)

    @classmethod
    def from_default_azure_credential(cls, endpoint: str, **options: Any) -> AzureBatchCompute:
        """Azure AD authentication through azure-identity's ``DefaultAzureCredential``.

        The credential tries the environment, workload/managed identity, the Azure CLI and others in turn; the SDK
        asks it for :data:`BATCH_TOKEN_SCOPE`. It is closed with this object.
        """
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        compute = cls(endpoint, credential, **options)
        compute._owned_credential = credential
        return compute

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def retry_stats(self) -> RetryStats:
        """How many requests this object sent again so far, and how long it waited before doing so."""
        return self._retry_policy.stats

    def _errors(
        self, *about: tuple[str, str], ignore_status: Collection[int] = (), ignore_codes: Collection[str] = ()
    ) -> AbstractContextManager[None]:
        return translated_batch_errors(
            endpoint=self._endpoint,
            about=about,
            ignore_status=ignore_status,
            ignore_codes=ignore_codes,
            secrets=self._secrets,
        )

    # -- pools ---------------------------------------------------------------------------------------------

    def _create(self, kind: str, name: str, send: Callable[[AttemptLog], object]) -> None:
        """Send a create request; ``*Exists`` in answer to a request the retry policy sent again is the lost
        first attempt's doing, not an error."""
        attempts = AttemptLog()
        try:
            with self._errors((kind, name)):
                send(attempts)
        except ResourceExistsError:
            if not attempts.retried:
                raise
            log.info("%s %s: created by an attempt whose answer was lost", kind, name)

    def create_pool(self, spec: PoolSpec) -> None:
        body = mapping.to_pool_create(spec)
        self._create("pool", spec.id, lambda hook: self._client.create_pool(body, raw_response_hook=hook))

    def get_pool(self, pool_id: str) -> PoolInfo:
        with self._errors(("pool", pool_id)):
            return mapping.from_pool(self._client.get_pool(pool_id, select=mapping.POOL_SELECT))

    def pool_exists(self, pool_id: str) -> bool:
        # Not the SDK's pool_exists: its HEAD answer has no body, and a 404 raises instead of returning False.
        try:
            with self._errors(("pool", pool_id)):
                pool = self._client.get_pool(pool_id, select=["id", "state"])
        except ResourceNotFoundError:
            return False
        return mapping.pool_state(pool) is not PoolState.DELETING

    def list_pools(self) -> list[PoolInfo]:
        with self._errors(("account", safe_endpoint(self._endpoint))):
            pools = [mapping.from_pool(pool) for pool in self._client.list_pools(select=mapping.POOL_SELECT)]
        return [pool for pool in pools if pool.state is not PoolState.DELETING]

    def resize_pool(self, pool_id: str, dedicated_nodes: int) -> None:
        if dedicated_nodes < 0:
            raise ValueError(f"pool '{pool_id}': dedicated_nodes cannot be negative")
        with self._errors(("pool", pool_id)):
            current = self._client.get_pool(pool_id, select=["id", "targetLowPriorityNodes"])
            options = batch_models.BatchPoolResizeOptions(
                target_dedicated_nodes=dedicated_nodes,
                target_low_priority_nodes=current.target_low_priority_nodes or 0,
            )
            try:
                self._client.begin_resize_pool(pool_id, options, polling_interval=self._lro_polling_interval)
            except HttpResponseError as exc:
                # Sent again after a lost answer, a resize finds the pool resizing to the target it asked for.
                if batch_error_info(exc).code != "PoolBeingResized":
                    raise
                now = self._client.get_pool(pool_id, select=["id", "targetDedicatedNodes"])
                if now.target_dedicated_nodes != dedicated_nodes:
                    raise

    def update_start_task(self, pool_id: str, start_task: StartTask) -> None:
        body = batch_models.BatchPoolUpdateOptions(start_task=mapping.to_start_task(start_task))
        with self._errors(("pool", pool_id)):
            self._client.update_pool(pool_id, body)

    def delete_pool(self, pool_id: str) -> None:
        with self._errors(("pool", pool_id), ignore_status=(404,), ignore_codes=("PoolBeingDeleted",)):
            self._client.begin_delete_pool(pool_id, polling_interval=self._lro_polling_interval)

    def list_nodes(self, pool_id: str) -> list[ComputeNodeInfo]:
        with self._errors(("pool", pool_id)):
            return [mapping.from_node(node) for node in self._client.list_nodes(pool_id, select=mapping.NODE_SELECT)]

    # -- jobs ----------------------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec) -> None:
        body = mapping.to_job_create(spec)
        self._create("job", spec.id, lambda hook: self._client.create_job(body, raw_response_hook=hook))

    def list_jobs(self) -> list[tuple[str, JobState]]:
        with self._errors(("account", safe_endpoint(self._endpoint))):
            return [(job.id, mapping.job_state(job)) for job in self._client.list_jobs(select=["id", "state"])]

    def job_exists(self, job_id: str) -> bool:
        try:
            state = self.job_state(job_id)
        except ResourceNotFoundError:
            return False
        return state is not JobState.DELETING

    def job_state(self, job_id: str) -> JobState:
        with self._errors(("job", job_id)):
            return mapping.job_state(self._client.get_job(job_id, select=["id", "state"]))

    def terminate_job(self, job_id: str) -> None:
        # 15.1 builds no request without a body (its content-type is then None): always send the default reason.
        options = BatchJobTerminateOptions(termination_reason="UserTerminate")
        with self._errors(("job", job_id), ignore_codes=("JobCompleted", "JobBeingTerminated")):
            self._client.begin_terminate_job(job_id, options, polling_interval=self._lro_polling_interval)

    def delete_job(self, job_id: str) -> None:
        with self._errors(("job", job_id), ignore_status=(404,), ignore_codes=("JobBeingDeleted",)):
            self._client.begin_delete_job(job_id, polling_interval=self._lro_polling_interval)

    # -- tasks ---------------------------------------------------------------------------------------------

    def add_tasks(self, job_id: str, tasks: Sequence[TaskSpec], *, max_concurrency: int = 4) -> AddTasksResult:
        """Add tasks in ``addtaskcollection`` requests of up to 100 (halved on 413), at most ``max_concurrency``
        in flight (see ``_task_collections``).

        A task the service reports as ``TaskExists`` counts in ``already_existed``, so a rerun after a crash
        goes on where it stopped (unless the answer came to a request sent again: then the lost first attempt
        added it, and it counts as added). Both tuples keep the order of ``tasks``.

        Raises:
            ResourceNotFoundError: no such job.
            InvalidRequestError: a task id is given twice, or the service refused a task (named, with the Batch
                code); tasks not named may have been added: adding the same list again is safe.
            ServiceBusyError: the service kept answering 429 or 503 for longer than the retry budget.
            BackendUnavailableError: the service does not answer, or keeps answering server errors.
        """
        if not tasks:
            return AddTasksResult(added=(), already_existed=())
        seen: set[str] = set()
        for task in tasks:
            if task.id.lower() in seen:
                raise InvalidRequestError("task", task.id, f"task '{task.id}' is given twice for job '{job_id}'")
            seen.add(task.id.lower())
        bodies = [mapping.task_create_json(task) for task in tasks]
        threads = max(1, min(max_concurrency, -(-len(bodies) // MAX_TASKS_PER_REQUEST)))
        try:
            outcome = add_task_collections(
                self._client,
                job_id,
                bodies,
                threads=threads,
                budget=self._retry_budget,
                backoff=self._retry_backoff_factor,
                backoff_max=self._retry_backoff_max,
            )
        except Exception as exc:
            error = translate_add_tasks_error(exc, endpoint=self._endpoint, job_id=job_id, budget=self._retry_budget)
            raise_translated(error, exc, self._secrets)
        if outcome.refused:
            raise refused_tasks_error(outcome.refused, job_id=job_id, order=[task.id for task in tasks])
        added = tuple(task.id for task in tasks if task.id.lower() in outcome.added)
        existed = tuple(task.id for task in tasks if task.id.lower() in outcome.existed)
        return AddTasksResult(added=added, already_existed=existed)

    def task_counts(self, job_id: str) -> TaskCounts:
        with self._errors(("job", job_id)):
            return mapping.from_task_counts(self._client.get_job_task_counts(job_id))

    def list_tasks(self, job_id: str, *, state: TaskState | None = None, failed_only: bool = False) -> list[TaskInfo]:
        query = mapping.task_filter(state, failed_only)
        with self._errors(("job", job_id)):
            listed = self._client.list_tasks(job_id, filter=query, select=mapping.TASK_SELECT)
            return [mapping.from_task(task) for task in listed]

    def get_task(self, job_id: str, task_id: str) -> TaskInfo:
        with self._errors(("job", job_id), ("task", task_id)):
            return mapping.from_task(self._client.get_task(job_id, task_id, select=mapping.TASK_SELECT))

    def read_task_file(self, job_id: str, task_id: str, path: str) -> bytes:
        with self._errors(("job", job_id), ("task", task_id), ("file", path)):
            chunks: Iterator[bytes] = self._client.download_task_file(
                job_id, task_id, path, raw_response_hook=read_error_body
            )
            return b"".join(chunks)

    def terminate_task(self, job_id: str, task_id: str) -> None:
        with self._errors(("job", job_id), ("task", task_id), ignore_codes=("TaskCompleted",)):
            self._client.terminate_task(job_id, task_id)

    # -- lifetime ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session (and the credential this object created)."""
        self._client.close()
        if self._owned_credential is not None:
            self._owned_credential.close()
            self._owned_credential = None

    def __enter__(self) -> AzureBatchCompute:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
