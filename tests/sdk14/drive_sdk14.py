"""Drives the batchbox emulator with the azure-batch 14.x (msrest) SDK; run by tests/test_emulator_sdk14.py.

Runs in the second venv (.venv-sdk14), so it imports nothing from batchbox. Usage:
    python drive_sdk14.py URL ACCOUNT KEY PREFIX
Prints one JSON object describing what it saw; exits non-zero on the first unexpected answer.
"""

import json
import sys
import time

import azure.batch.models as batchmodels
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials


def main() -> int:
    url, account, key, prefix = sys.argv[1:5]
    client = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=url)
    pool_id, job_id = f"{prefix}-pool", f"{prefix}-job"
    seen = {}
    client.pool.add(
        batchmodels.PoolAddParameter(
            id=pool_id,
            vm_size="STANDARD_D2S_V3",
            virtual_machine_configuration=batchmodels.VirtualMachineConfiguration(
                image_reference=batchmodels.ImageReference(
                    publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts", version="latest"
                ),
                node_agent_sku_id="batch.node.ubuntu 22.04",
            ),
            target_dedicated_nodes=1,
        )
    )
    seen["pool_exists"] = client.pool.exists(pool_id)
    client.job.add(batchmodels.JobAddParameter(id=job_id, pool_info=batchmodels.PoolInformation(pool_id=pool_id)))
    tasks = [
        batchmodels.TaskAddParameter(id=f"task{i}", command_line=f"/bin/sh -c 'echo sdk14 says {i}'") for i in range(3)
    ]
    result = client.task.add_collection(job_id, tasks)
    seen["added"] = sorted(r.task_id for r in result.value if r.status == batchmodels.TaskAddStatus.success)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = list(client.task.list(job_id))
        if listed and all(t.state == batchmodels.TaskState.completed for t in listed):
            break
        time.sleep(0.5)
    seen["states"] = sorted(f"{t.id}:{t.state.value}:{t.execution_info.exit_code}" for t in listed)
    counts = client.job.get_task_counts(job_id)
    seen["counts"] = {
        "completed": counts.task_counts.completed,
        "succeeded": counts.task_counts.succeeded,
        "failed": counts.task_counts.failed,
        "active": counts.task_counts.active,
    }
    seen["stdout"] = b"".join(client.file.get_from_task(job_id, "task1", "stdout.txt")).decode()
    client.job.delete(job_id)
    client.pool.delete(pool_id)
    seen["job_after_delete"] = "still there"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.job.get(job_id)
        except batchmodels.BatchErrorException as exc:
            seen["job_after_delete"] = exc.error.code
            break
        time.sleep(0.2)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
