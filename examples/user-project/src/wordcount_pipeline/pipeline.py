"""A three-step Azure Batch pipeline written with the plain azure-batch (15.x) and azure-storage-blob SDKs.

1. Stage: upload the texts and the two task scripts to an input container.
2. Count: a pool, a job, and one task per text counting its words (``tasks/count.py``); each task uploads its
   counts to the output container.
3. Merge: one task that depends on every count task downloads all counts and adds them up
   (``tasks/merge.py``); the pipeline downloads the total.

Nothing here knows about batchbox: the same code runs against Azure Batch or the batchbox emulator.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from azure.batch import BatchClient, models
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

__all__ = ["PipelineError", "PipelineNames", "count_words_locally", "run_pipeline"]

TASK_SCRIPTS = Path(__file__).resolve().parent / "tasks"


class PipelineError(RuntimeError):
    """A pipeline task failed or the pipeline did not finish in time."""


@dataclass(frozen=True)
class PipelineNames:
    """Where the pipeline puts things: one pool, one job, an input and an output blob container."""

    pool_id: str
    job_id: str
    input_container: str
    output_container: str


def count_words_locally(texts: dict[str, str]) -> dict[str, int]:
    """The result the pipeline computes on Batch, computed here (for comparison and small inputs)."""
    total: Counter[str] = Counter()
    for text in texts.values():
        total.update(re.findall(r"[a-z']+", text.lower()))
    return dict(total)


def _container_sas_url(blobs: BlobServiceClient, container: str, permission: ContainerSasPermissions) -> str:
    """A SAS URL for a container: signed with the account key, else with a user delegation key (Azure AD)."""
    expiry = datetime.now(timezone.utc) + timedelta(hours=2)
    credential: Any = blobs.credential
    signing: dict[str, Any]
    if getattr(credential, "account_key", None):
        signing = {"account_key": credential.account_key}
    else:
        start = datetime.now(timezone.utc) - timedelta(minutes=5)
        signing = {"user_delegation_key": blobs.get_user_delegation_key(start, expiry)}
    sas = generate_container_sas(blobs.account_name or "", container, permission=permission, expiry=expiry, **signing)
    return f"{blobs.get_container_client(container).url}?{sas}"


def _stage(blobs: BlobServiceClient, names: PipelineNames, texts: dict[str, str]) -> dict[str, str]:
    """Step 1: upload texts and scripts; return blob name -> read SAS URL."""
    inputs = blobs.get_container_client(names.input_container)
    inputs.create_container()
    blobs.get_container_client(names.output_container).create_container()
    files = {f"texts/{name}": text.encode() for name, text in texts.items()}
    files |= {f"scripts/{name}": (TASK_SCRIPTS / name).read_bytes() for name in ("count.py", "merge.py")}
    for blob, data in files.items():
        inputs.upload_blob(blob, data, overwrite=True)
    read_url = _container_sas_url(blobs, names.input_container, ContainerSasPermissions(read=True))
    base, _, sas = read_url.partition("?")
    return {blob: f"{base}/{blob}?{sas}" for blob in files}


def _upload_on_success(output_url: str, pattern: str, blob: str) -> models.OutputFile:
    return models.OutputFile(
        file_pattern=pattern,
        destination=models.OutputFileDestination(
            container=models.OutputFileBlobContainerDestination(container_url=output_url, path=blob)
        ),
        upload_options=models.OutputFileUploadConfiguration(
            upload_condition=models.OutputFileUploadCondition.TASK_SUCCESS
        ),
    )


def _submit(batch: BatchClient, blobs: BlobServiceClient, names: PipelineNames, urls: dict[str, str]) -> None:
    """Steps 2 and 3: the pool, the job, the count tasks and the merge task that depends on them."""
    batch.create_pool(
        models.BatchPoolCreateOptions(
            id=names.pool_id,
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=1,
            virtual_machine_configuration=models.VirtualMachineConfiguration(
                image_reference=models.BatchVmImageReference(
                    publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
                ),
                node_agent_sku_id="batch.node.ubuntu 22.04",
            ),
        )
    )
    batch.create_job(
        models.BatchJobCreateOptions(
            id=names.job_id, pool_info=models.BatchPoolInfo(pool_id=names.pool_id), uses_task_dependencies=True
        )
    )
    write_url = _container_sas_url(blobs, names.output_container, ContainerSasPermissions(create=True, write=True))
    count_ids = []
    for index, blob in enumerate(sorted(b for b in urls if b.startswith("texts/"))):
        task_id = f"count-{index}"
        count_ids.append(task_id)
        batch.create_task(
            names.job_id,
            models.BatchTaskCreateOptions(
                id=task_id,
                command_line="python3 count.py text.txt counts.json",
                resource_files=[
                    models.ResourceFile(http_url=urls["scripts/count.py"], file_path="count.py"),
                    models.ResourceFile(http_url=urls[blob], file_path="text.txt"),
                ],
                output_files=[_upload_on_success(write_url, "counts.json", f"counts/{task_id}.json")],
            ),
        )
    read_list_url = _container_sas_url(blobs, names.output_container, ContainerSasPermissions(read=True, list=True))
    batch.create_task(
        names.job_id,
        models.BatchTaskCreateOptions(
            id="merge",
            command_line="python3 merge.py counts total.json",
            depends_on=models.BatchTaskDependencies(task_ids=count_ids),
            resource_files=[
                models.ResourceFile(http_url=urls["scripts/merge.py"], file_path="merge.py"),
                models.ResourceFile(storage_container_url=read_list_url, blob_prefix="counts/", file_path="counts"),
            ],
            output_files=[_upload_on_success(write_url, "total.json", "total.json")],
        ),
    )


def _wait(batch: BatchClient, job_id: str, timeout: float) -> None:
    """Wait until every task completed; raise PipelineError as soon as one failed (the merge would never run)."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = list(batch.list_tasks(job_id))
        failed = [
            f"{task.id} (exit code {task.execution_info.exit_code})"
            for task in tasks
            if task.execution_info is not None and task.execution_info.result == models.BatchTaskExecutionResult.FAILURE
        ]
        if failed:
            raise PipelineError(f"job {job_id}: task(s) failed: {', '.join(sorted(failed))}")
        if tasks and all(task.state == models.BatchTaskState.COMPLETED for task in tasks):
            return
        if time.monotonic() > deadline:
            raise PipelineError(f"job {job_id} did not finish within {timeout:g} s")
        time.sleep(1)


def run_pipeline(
    batch: BatchClient,
    blobs: BlobServiceClient,
    names: PipelineNames,
    texts: dict[str, str],
    *,
    timeout: float = 600.0,
) -> dict[str, int]:
    """Count the words of ``texts`` (name -> text) on Batch and return the merged counts.

    The caller owns the pool, job and containers named by ``names`` and deletes them when done.

    Raises:
        PipelineError: a task failed, or the job did not finish within ``timeout`` seconds.
    """
    urls = _stage(blobs, names, texts)
    _submit(batch, blobs, names, urls)
    _wait(batch, names.job_id, timeout)
    total = blobs.get_blob_client(names.output_container, "total.json").download_blob().readall()
    counts: dict[str, int] = json.loads(total)
    return counts
