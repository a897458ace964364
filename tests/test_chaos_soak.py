"""The chaos soak of ``make soak`` (marked ``soak``: never in ``make test``), about 10 minutes on this machine.

One mixed workload on a real emulator, Azurite and node containers:

* 20,000 tasks across 10 jobs (``maxTaskRetryCount`` 2); every tenth task fails its first attempt (a marker blob
  created with ``If-None-Match: *`` tells a first attempt from a later one, whatever node runs it); every task that
  succeeds uploads one output blob whose name is unique to its run, so a run that uploaded twice shows;
* chaos every 3-6 s: a low-priority node preempted (``/_admin/v1/pools/{id}/preempt``) or a dedicated node rebooted
  (``.../nodes/{id}/reboot``) when the emulator serves them, otherwise a node container killed (``docker kill``,
  which Batch sees as a lost node: its tasks are requeued);
* a job schedule firing every 30 s and an autoscale pool, when the emulator serves them (the soak says which parts
  ran);
* two emulator restarts, one clean (SIGTERM) and one SIGKILL, at a third and two thirds of the tasks.

It checks and prints: tasks and runs, lost tasks (0: every task completed), duplicated outputs (0: one blob per
task, except tasks whose node died after the run had uploaded and before the emulator heard the run end: Batch runs
those again, at-least-once, and the soak counts them apart), exact counts, emulator RSS at start, middle and end, and
the p99 latency of API calls made during the chaos.

RSS (VmRSS) is sampled before the workload (pools ready, nothing submitted: printed, not compared), at the start of
the workload once it has warmed up (all tasks submitted and the first 5% completed, in the first emulator process), in
the middle (half completed, in the second process: after the clean restart) and at the end (all completed, in the
third process: after the SIGKILL). The soak asserts middle and end are within 20% of the start.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.rest import HttpRequest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import find_free_port
from batchbox.core.storage import ContainerPermission
from tests.fixtures.emulator import EmulatorProcess
from tests.test_soak import memory_kib

pytestmark = [pytest.mark.docker, pytest.mark.soak, pytest.mark.timeout(2400)]
RSS_GROWTH_ALLOWED = 0.20
"""Middle and end RSS at most this much above the start (after the warm-up): flat, as the issue asks."""
WARMED_UP = 0.05
"""The share of tasks completed at which the start is sampled: caches and per-node state have filled by then."""

JOBS = 10
TASKS_PER_JOB = int(os.environ.get("BATCHBOX_CHAOS_TASKS_PER_JOB", "2000"))
"""2,000; a smaller number (e.g. 100) makes a quick rehearsal of the soak."""
TOTAL = JOBS * TASKS_PER_JOB
POOL = "chaos-pool"
AUTO_POOL = "chaos-auto"
API = "api-version=2025-06-01"
_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
FIRST_ATTEMPT = b"""\
import sys, urllib.error, urllib.request
url, name = sys.argv[1], sys.argv[2]
base, _, sas = url.partition("?")
req = urllib.request.Request(f"{base}/markers/{name}?{sas}", data=b"1", method="PUT",
    headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06", "If-None-Match": "*"})
try:
    urllib.request.urlopen(req, timeout=60).close()
except urllib.error.HTTPError as exc:
    sys.exit(0 if exc.code == 409 else 2)
sys.exit(1)
"""
_WRITE_OUTPUT = 'echo "$AZ_BATCH_JOB_ID $AZ_BATCH_TASK_ID" > out-$(cat /proc/sys/kernel/random/uuid).txt'


def _task(job_id: str, index: int, sas: str) -> m.BatchTaskCreateOptions:
    if index % 10 == 0:
        first = f'python3 "$AZ_BATCH_NODE_SHARED_DIR/first.py" "{sas}" "{job_id}-t{index:05d}"'
        command = f"/bin/sh -c '{first} && {_WRITE_OUTPUT}'"
    else:
        command = f"/bin/sh -c '{_WRITE_OUTPUT}'"
    output = m.OutputFile(
        file_pattern="out-*.txt",
        destination=m.OutputFileDestination(
            container=m.OutputFileBlobContainerDestination(container_url=sas, path=f"{job_id}/t{index:05d}")
        ),
        upload_options=m.OutputFileUploadConfiguration(upload_condition=m.OutputFileUploadCondition.TASK_SUCCESS),
    )
    return m.BatchTaskCreateOptions(id=f"t{index:05d}", command_line=command, output_files=[output])


class Soak:
    """The running soak: clients, what is switched on, and what was measured."""

    def __init__(self, emulator: EmulatorProcess, storage: BlobStorage, container: str) -> None:
        self.emulator = emulator
        self.storage = storage
        self.container = container
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.unanswered = 0
        self.chaos: Counter[str] = Counter()
        self.parts: dict[str, bool] = {}
        self.rss: dict[str, dict[str, int]] = {}
        self.restarts: list[str] = []
        self.lock = threading.Lock()
        self.client = self._client()

    def _client(self) -> BatchClient:
        credential = AzureNamedKeyCredential(self.emulator.account_name, self.emulator.account_key)
        return BatchClient(endpoint=self.emulator.url, credential=credential)

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.emulator.url}{path}{'&' if '?' in path else '?'}{API}"
        headers = {"content-type": "application/json; odata=minimalmetadata"} if body is not None else {}
        try:
            response = self.client.send_request(HttpRequest(method, url, json=body, headers=headers))
        except HttpResponseError as exc:
            if exc.response is None:
                raise
            response = exc.response
        try:
            return response.status_code, response.json() if response.content else None
        except ValueError:
            return response.status_code, None

    def served(self, method: str, path: str, body: Any) -> bool:
        """Whether the emulator serves an operation: anything but UnsupportedOperation / InvalidUri counts."""
        status, data = self.raw(method, path, body)
        code = (data or {}).get("code") if isinstance(data, dict) else None
        return not (status in (400, 404) and code in ("UnsupportedOperation", "InvalidUri"))

    # ------------------------------------------------------------------------------------------------ set-up
    def create_pools(self, sas_script: str) -> None:
        script = base64.b64encode(FIRST_ATTEMPT).decode()
        start = m.BatchStartTask(
            command_line=f"/bin/sh -c 'echo {script} | base64 -d > $AZ_BATCH_NODE_SHARED_DIR/first.py'",
            wait_for_success=True,
        )
        self.client.create_pool(
            m.BatchPoolCreateOptions(
                id=POOL,
                vm_size="standard_d2_v3",
                virtual_machine_configuration=_VM,
                target_dedicated_nodes=2,
                target_low_priority_nodes=2,
                task_slots_per_node=4,
                start_task=start,
            )
        )
        auto = {
            "id": AUTO_POOL,
            "vmSize": "standard_d2_v3",
            "virtualMachineConfiguration": _VM.as_dict(),
            "taskSlotsPerNode": 4,
            "startTask": start.as_dict(),
            "enableAutoScale": True,
            "autoScaleFormula": (
                "$tasks = max($PendingTasks.GetSample(1));\n"
                "$TargetDedicatedNodes = max(1, min(2, $tasks));\n"
                "$NodeDeallocationOption = taskcompletion;"
            ),
            "autoScaleEvaluationInterval": "PT30S",
        }
        status, data = self.raw("POST", "/pools", auto)
        self.parts["autoscale pool"] = status == 201
        if status != 201:  # no autoscale here: the same pool with a fixed size
            auto = {k: v for k, v in auto.items() if not k.startswith("autoScale") and k != "enableAutoScale"}
            status, data = self.raw("POST", "/pools", {**auto, "targetDedicatedNodes": 2})
            assert status == 201, data

    def create_schedule(self) -> None:
        body = {
            "id": "chaos-schedule",
            "schedule": {"recurrenceInterval": "PT30S"},
            "jobSpecification": {
                "poolInfo": {"poolId": POOL},
                "jobManagerTask": {"id": "manager", "commandLine": "/bin/true", "killJobOnCompletion": True},
                "onAllTasksComplete": "terminatejob",
            },
        }
        self.parts["job schedule"] = self.served("POST", "/jobschedules", body)

    def submit(self, sas: str) -> None:
        def add(job_index: int) -> None:
            job_id = f"chaos-j{job_index}"
            pool = AUTO_POOL if job_index >= JOBS - 2 else POOL
            self.client.create_job(
                m.BatchJobCreateOptions(
                    id=job_id,
                    pool_info=m.BatchPoolInfo(pool_id=pool),
                    constraints=m.BatchJobConstraints(max_task_retry_count=2),
                )
            )
            tasks = [_task(job_id, i, sas) for i in range(TASKS_PER_JOB)]
            for start in range(0, TASKS_PER_JOB, 100):
                result = self.client.create_task_collection(
                    job_id, m.BatchTaskGroup(task_values=tasks[start : start + 100])
                )
                assert all(v.status == m.BatchTaskAddStatus.SUCCESS for v in result.result_values)

        threads = [threading.Thread(target=add, args=(i,)) for i in range(JOBS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # ------------------------------------------------------------------------------------------------ chaos
    def completed(self) -> int:
        total = 0
        for j in range(JOBS):
            with contextlib.suppress(AzureError):
                total += self.client.get_job_task_counts(f"chaos-j{j}").task_counts.completed
        return total

    def probe_latency(self) -> None:
        rng = random.Random(7)
        client = self._client()
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                client.get_job_task_counts(f"chaos-j{rng.randrange(JOBS)}")
                with self.lock:
                    self.latencies.append(time.perf_counter() - began)
            except AzureError:
                with self.lock:
                    self.unanswered += 1
                client.close()
                client = self._client()
            time.sleep(0.1)
        client.close()

    def disturb(self, rng: random.Random) -> None:
        try:
            nodes = [
                n for n in self.client.list_nodes(POOL) if n.state in (m.BatchNodeState.IDLE, m.BatchNodeState.RUNNING)
            ]
        except AzureError:
            return
        if not nodes:
            return
        spot = [n for n in nodes if n.is_dedicated is False]
        dedicated = [n for n in nodes if n.is_dedicated is not False]
        if spot and self.parts.get("preemption") and rng.random() < 0.5:
            victim = rng.choice(spot)
            status, _ = self.raw("POST", f"/_admin/v1/pools/{POOL}/preempt", {"nodeIds": [victim.id]})
            self.chaos["preempted" if status == 200 else f"preempt answered {status}"] += 1
        elif dedicated and self.parts.get("reboot"):
            victim = rng.choice(dedicated)
            status, _ = self.raw("POST", f"/pools/{POOL}/nodes/{victim.id}/reboot", {"nodeRebootOption": "requeue"})
            self.chaos["rebooted" if status == 202 else f"reboot answered {status}"] += 1
        else:
            victim = rng.choice(nodes)
            for container in self.emulator.containers():
                if container.labels.get("batchbox.node") == victim.id and container.status == "running":
                    container.kill()
                    self.chaos["node container killed"] += 1

    def restart(self, crash: bool) -> None:
        self.emulator.restart(crash=crash)
        self.client.close()
        self.client = self._client()
        self.restarts.append("SIGKILL" if crash else "SIGTERM")

    def sample_rss(self, name: str) -> None:
        self.rss[name] = memory_kib(self.emulator.pid)


@pytest.fixture
def soak_emulator(tmp_path: Path, docker_client: docker.DockerClient, node_image: str) -> Iterator[EmulatorProcess]:
    emulator = EmulatorProcess(
        port=find_free_port(),
        state_dir=tmp_path / "state",
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
        node_image=node_image,
        docker_client=docker_client,
        # Batch's minimums (5 minutes between autoscale evaluations, 1 minute between schedule occurrences) are
        # longer than the soak wants.
        extra_args=("--autoscale-min-interval", "5", "--min-schedule-interval", "30"),
    )
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.cleanup()


def test_chaos_soak_20000_tasks(soak_emulator: EmulatorProcess, blob_storage: BlobStorage, blob_container: str) -> None:
    sas = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=3)
    )
    soak = Soak(soak_emulator, blob_storage, blob_container)
    began = time.monotonic()
    soak.create_pools(sas)
    soak.parts["preemption"] = soak.served("POST", f"/_admin/v1/pools/{POOL}/preempt", {"nodeIds": []})
    nodes = [n.id for n in soak.client.list_nodes(POOL)]
    soak.parts["reboot"] = bool(nodes) and soak.served("POST", f"/pools/{POOL}/nodes/x-{uuid.uuid4().hex}/reboot", {})
    soak.create_schedule()
    soak.sample_rss("before the workload")
    soak.submit(sas)
    submitted = time.monotonic()

    prober = threading.Thread(target=soak.probe_latency, daemon=True)
    prober.start()
    rng = random.Random(2026)
    restarts = {TOTAL // 3: False, 2 * TOTAL // 3: True}
    deadline = time.monotonic() + 1500
    try:
        while time.monotonic() < deadline:
            done = soak.completed()
            for mark, crash in list(restarts.items()):
                if done >= mark:
                    soak.restart(crash)
                    del restarts[mark]
            if "start" not in soak.rss and done >= TOTAL * WARMED_UP:
                soak.sample_rss("start")
            if "middle" not in soak.rss and done >= TOTAL // 2:
                soak.sample_rss("middle")
            if done >= TOTAL:
                break
            soak.disturb(rng)
            time.sleep(rng.uniform(3, 6))
    finally:
        soak.stop.set()
        prober.join(timeout=30)
    finished = time.monotonic()
    soak.sample_rss("end")

    # Lost 0, counts exact, retries as predicted.
    tasks: dict[str, list[m.BatchTask]] = {}
    for j in range(JOBS):
        job_id = f"chaos-j{j}"
        tasks[job_id] = list(soak.client.list_tasks(job_id))
        counts = soak.client.get_job_task_counts(job_id).task_counts
        listed = Counter(t.state for t in tasks[job_id])
        assert (counts.active, counts.running, counts.completed) == (0, 0, TASKS_PER_JOB), (job_id, counts.as_dict())
        assert listed == {m.BatchTaskState.COMPLETED: TASKS_PER_JOB}, (job_id, listed)
        assert counts.succeeded == TASKS_PER_JOB, (job_id, counts.as_dict())
    scheduled = [j for j in soak.client.list_jobs() if j.id.startswith("chaos-schedule:job-")]
    if soak.parts["job schedule"]:
        assert scheduled, "the schedule made no job"
    every = [t for job in tasks.values() for t in job]
    retries = Counter(t.execution_info.retry_count for t in every)
    requeues = sum(t.execution_info.requeue_count for t in every)
    runs = sum(1 + t.execution_info.retry_count + t.execution_info.requeue_count for t in every)
    assert all(t.execution_info.retry_count == 0 for t in every if int(t.id[1:]) % 10), (
        "a task that never fails retried"
    )

    # Outputs: one blob per task.
    per_task = Counter(
        "/".join(b.name.split("/")[:2]) for b in soak.storage.list_blobs(blob_container) if b.name.startswith("chaos-j")
    )
    duplicated = {k: v for k, v in per_task.items() if v > 1}
    missing = TOTAL - len(per_task)
    requeued = {f"{job_id}/{t.id}" for job_id, job in tasks.items() for t in job if t.execution_info.requeue_count}
    # A node that dies after a run uploaded its output but before the emulator heard of the run's end makes Batch
    # (and the emulator) run the task again: at-least-once. Any other duplicate is a run the emulator repeated.
    repeated_by_the_emulator = sorted(set(duplicated) - requeued)

    latencies = sorted(soak.latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    figures = {
        "tasks": TOTAL,
        "runs (1 + retries + requeues)": runs,
        "retryCount histogram": dict(sorted(retries.items())),
        "requeues": requeues,
        "lost": 0,
        "missing outputs": missing,
        "duplicated outputs": len(repeated_by_the_emulator),
        "outputs written again after their node died": len(duplicated) - len(repeated_by_the_emulator),
        "chaos": dict(soak.chaos),
        "jobs the schedule made": len(scheduled),
        "their states": dict(Counter(str(j.state) for j in scheduled)),
        "parts on": {k: v for k, v in soak.parts.items()},
        "emulator restarts": soak.restarts,
        "rss KiB": soak.rss,
        "api calls during chaos": len(latencies),
        "p50 ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99 ms": round(p99 * 1000, 1),
        "calls unanswered (restarts)": soak.unanswered,
        "submit s": round(submitted - began, 1),
        "total s": round(finished - began, 1),
    }
    start_rss = soak.rss["start"]["VmRSS"]
    growth = {k: round(100 * (soak.rss[k]["VmRSS"] / start_rss - 1), 1) for k in ("middle", "end")}
    figures["rss growth from start %"] = growth
    print("\nchaos soak: " + json.dumps(figures, indent=1))
    assert missing == 0 and repeated_by_the_emulator == [], (missing, repeated_by_the_emulator[:10])
    assert sum(duplicated.values()) - len(duplicated) <= requeues
    assert max(growth.values()) <= 100 * RSS_GROWTH_ALLOWED, f"emulator RSS grew {growth}% from the start"
