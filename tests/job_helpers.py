"""Helpers of the job, job task and job schedule tests: waits, pools, jobs and reading what ran (15.x SDK)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.batch.models._models import BatchJobTerminateOptions  # 15.1 exports no public name for it
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batchbox.core.errors import WaitTimeoutError
from batchbox.core.polling import poll_until

__all__ = [
    "VM",
    "add_job",
    "create_pool",
    "error_code",
    "gone",
    "idle_nodes",
    "moment",
    "stdout_of",
    "task_of",
    "terminate",
    "unique",
    "wait_for",
    "wait_state",
]

T = TypeVar("T")

VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    """Call ``probe`` until it returns something truthy (``batchbox.core.polling``); fail naming ``what``."""
    try:
        value = poll_until(
            probe, bool, timeout=timeout, poll_interval=0.5, timeout_message=lambda last: f"{what} (last: {last!r})"
        )
    except WaitTimeoutError as exc:
        pytest.fail(f"timed out waiting for {exc}")
    assert value is not None
    return value


def error_code(call: Callable[[], object]) -> tuple[int, str]:
    """``(HTTP status, Batch error code)`` of a call that must fail."""
    with pytest.raises(HttpResponseError) as raised:
        call()
    response = raised.value.response
    code = raised.value.error.code if raised.value.error is not None else ""
    return response.status_code if response is not None else 0, str(code)


def gone(call: Callable[[], object]) -> bool:
    """Whether ``call`` answers 404 now."""
    try:
        call()
    except ResourceNotFoundError:
        return True
    return False


def create_pool(client: BatchClient, pool_id: str, dedicated: int, slots: int = 1, **extra: Any) -> str:
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=VM,
            target_dedicated_nodes=dedicated,
            task_slots_per_node=slots,
            **extra,
        )
    )
    return pool_id


def idle_nodes(client: BatchClient, pool_id: str, count: int) -> list[m.BatchNode]:
    def probe() -> list[m.BatchNode] | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes if len(nodes) == count and all(n.state == m.BatchNodeState.IDLE for n in nodes) else None

    return wait_for(f"{count} idle node(s) in pool {pool_id}", probe)


def add_job(client: BatchClient, pool_id: str, job_id: str | None = None, **extra: Any) -> str:
    job_id = job_id or unique("job")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), **extra))
    return job_id


def terminate(client: BatchClient, job_id: str, reason: str = "ByTest") -> None:
    """Terminate a job (15.1 fails client-side without a reason: it sends no content-type)."""
    client.begin_terminate_job(job_id, BatchJobTerminateOptions(termination_reason=reason), polling_interval=1)


def wait_state(client: BatchClient, job_id: str, state: m.BatchJobState, timeout: float = 90.0) -> m.BatchJob:
    return wait_for(
        f"job {job_id} {state.value}", lambda: (j := client.get_job(job_id)).state == state and j, timeout=timeout
    )


def task_of(client: BatchClient, job_id: str, task_id: str, state: m.BatchTaskState, timeout: float = 90.0) -> Any:
    return wait_for(
        f"task {job_id}/{task_id} {state.value}",
        lambda: (t := client.get_task(job_id, task_id)).state == state and t,
        timeout=timeout,
    )


def stdout_of(client: BatchClient, job_id: str, task_id: str) -> str:
    return b"".join(client.download_task_file(job_id, task_id, "stdout.txt")).decode()


def moment(value: datetime | None) -> datetime:
    """A time the service returned (it must be there)."""
    assert value is not None
    return value
