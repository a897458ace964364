"""What the portal tests share: a signed-in HTTP session and a job with tasks of every kind on a real emulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.emulator.portal import read_token

__all__ = ["SCRIPT_OUTPUT", "all_done", "make_scenario", "portal_session", "unique", "wait_for"]

T = TypeVar("T")

SCRIPT_OUTPUT = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
"""What the ``html`` task prints: markup that would run if the page ever rendered output as HTML."""

_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def portal_session(emulator: Any) -> httpx.Client:
    """An HTTP client signed in to the emulator's portal (the token from its state dir, then the cookie)."""
    token = read_token(emulator.state_dir)
    assert token, "the emulator made no portal token"
    session = httpx.Client(base_url=emulator.url, timeout=30)
    answer = session.get("/portal/", params={"token": token})
    assert answer.status_code == 303, answer.text
    return session


def make_scenario(client: BatchClient, pool_id: str, *, nodes: int = 1, slots: int = 2) -> dict[str, str]:
    """A pool and a job with: tasks that succeed, one that fails (exit 3, ``boom`` on stderr), one that fails once
    and succeeds on its retry, one printing markup, one with SAS signatures in its command line and resource file.

    Returns:
        The ids: ``pool``, ``job``.
    """
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=_VM,
            target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
        )
    )
    job_id = unique("job")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    marker = f"$AZ_BATCH_NODE_SHARED_DIR/{job_id}.flaky"
    tasks = [m.BatchTaskCreateOptions(id=f"ok{i}", command_line=f"/bin/sh -c 'echo hello {i}'") for i in range(4)]
    tasks += [
        m.BatchTaskCreateOptions(id="fails", command_line="/bin/sh -c 'echo about to fail; echo boom >&2; exit 3'"),
        m.BatchTaskCreateOptions(
            id="flaky",
            command_line=f"/bin/sh -c 'if [ -e {marker} ]; then echo second try; else touch {marker}; exit 1; fi'",
            constraints=m.BatchTaskConstraints(max_task_retry_count=1),
        ),
        m.BatchTaskCreateOptions(id="html", command_line=f"/bin/sh -c 'echo \"{SCRIPT_OUTPUT}\"'"),
        m.BatchTaskCreateOptions(
            id="sas",
            command_line="/bin/sh -c 'echo https://acct.blob.example/c/f?sv=2025-01-01&sig=CMDSECRET'",
            resource_files=[
                m.ResourceFile(http_url="http://127.0.0.1:9/c/in.txt?sv=2025-01-01&sig=URLSECRET", file_path="in.txt")
            ],
        ),
    ]
    client.create_tasks(job_id, tasks)
    return {"pool": pool_id, "job": job_id}


def all_done(client: BatchClient, job_id: str, count: int) -> None:
    """Wait until ``count`` tasks of the job completed."""
    wait_for(
        f"{count} completed tasks in {job_id}",
        lambda: client.get_job_task_counts(job_id).task_counts.completed >= count,
        timeout=120,
    )
