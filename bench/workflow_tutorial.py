"""Benchmark 12's baseline: the Azure Batch Python tutorial's way, scaled to a parameter sweep.

Every step as the tutorial writes it, one request at a time: ``upload_blob`` of the script, the pool (with the
sweep's start task) and the job, the tasks added 100 per ``create_task_collection`` request one after another,
every task listed each second until all completed (``wait_for_tasks_to_complete``), then ``list_blobs`` and one
``download_blob().readall()`` and file write per output. The task bodies are the sweep workload's own, built by
batchbox's model mapping, so both sides ask the emulator for the same work.
"""

from __future__ import annotations

import math
import shutil
import time
from datetime import timedelta
from pathlib import Path

from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from batchbox.backends.azure import BlobStorage
from batchbox.backends.azure._batch_models import to_pool_create, to_task_create
from batchbox.backends.local.stack import LocalEndpoints
from batchbox.core.storage import ContainerPermission
from batchbox.core.workload import ContainerNames, StagedFiles
from bench.harness import wait_nodes_idle
from bench.workflow_report import TutorialRun
from bench.workloads.sweep import SCRIPT, Sweep

__all__ = ["run_tutorial"]

_CHUNK = 100
_POLL = 1.0


def run_tutorial(endpoints: LocalEndpoints, home: Path, count: int, seconds: float, tag: str) -> TutorialRun:
    """One run of the tutorial's way; its outputs are checked, then everything it made is deleted."""
    service = BlobServiceClient.from_connection_string(endpoints.storage_connection_string)
    signer = BlobStorage.from_connection_string(endpoints.storage_connection_string)
    client = BatchClient(endpoints.batch_url, AzureNamedKeyCredential(endpoints.batch_account, endpoints.batch_key))
    names = ContainerNames(application=f"tut-{tag}-app", input=f"tut-{tag}-input", output=f"tut-{tag}-output")
    pool_id, job_id = f"tut-pool-{tag}", f"tut-job-{tag}"
    destination = home / f"tut-out-{tag}"
    run = TutorialRun(tasks=count, ideal=count * seconds / 8)
    workload = Sweep(count, seconds)
    try:
        started = last = time.monotonic()

        def mark(phase: str) -> None:
            nonlocal last
            now = time.monotonic()
            run.phases[phase] = now - last
            last = now

        for container in (names.application, names.output):
            service.create_container(container)
        with open(SCRIPT, "rb") as data:
            service.get_blob_client(names.application, SCRIPT.name).upload_blob(data, overwrite=True)
        mark("upload")
        staged = StagedFiles(
            application={SCRIPT.name: signer.blob_sas_url(names.application, SCRIPT.name, expiry=timedelta(hours=2))},
            inputs={},
            output_container_url=signer.container_sas_url(
                names.output, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=2)
            ),
            containers=names,
        )
        pool = workload.pool(staged)
        client.create_pool(to_pool_create(type(pool)(**{**pool.__dict__, "id": pool_id})))
        wait_nodes_idle(client, pool_id, workload.node_count, timeout=300)
        mark("pool")
        client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
        bodies = [to_task_create(spec) for spec in workload.tasks(staged)]
        for start in range(0, len(bodies), _CHUNK):
            client.create_task_collection(job_id, bm.BatchTaskGroup(task_values=bodies[start : start + _CHUNK]))
        mark("add")
        while True:
            tasks = list(client.list_tasks(job_id))
            run.polls += 1
            run.list_requests += max(1, math.ceil(len(tasks) / 1000))
            if len(tasks) == count and all(t.state == bm.BatchTaskState.COMPLETED for t in tasks):
                break
            time.sleep(_POLL)
        mark("monitor")
        destination.mkdir(parents=True)
        for blob in service.get_container_client(names.output).list_blobs():
            data = service.get_blob_client(names.output, blob.name).download_blob().readall()
            (destination / blob.name).write_bytes(data)
        mark("download")
        run.to_outputs = time.monotonic() - started
        found = sorted(destination.glob("result-*.txt"))
        if len(found) != count or not found[0].read_text().startswith("point "):
            raise RuntimeError(f"the tutorial's run left {len(found)} outputs of {count}")
        return run
    finally:
        for cleanup in (
            lambda: client.begin_delete_job(job_id).result(),
            lambda: client.begin_delete_pool(pool_id).result(),
            lambda: service.delete_container(names.application),
            lambda: service.delete_container(names.output),
        ):
            try:
                cleanup()
            except Exception as exc:  # clean-up is best effort; the measurement is what matters
                print(f"tutorial clean-up: {type(exc).__name__}", flush=True)
        shutil.rmtree(destination, ignore_errors=True)
        client.close()
        service.close()
        signer.close()
