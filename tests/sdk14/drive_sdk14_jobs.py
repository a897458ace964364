"""Drives the job side of the batchbox emulator with the azure-batch 14.x SDK; run by tests/test_emulator_sdk14.py.

Job preparation and release tasks with their per-node status, subtasks, job disable / enable / terminate, and the
job schedule operations. Runs in .venv-sdk14 (imports nothing from batchbox). Usage:
    python drive_sdk14_jobs.py URL ACCOUNT KEY PREFIX
Prints one JSON object describing what it saw; exits non-zero on the first unexpected answer.
"""

import datetime
import json
import sys
import time

import azure.batch.models as bm
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials


def wait(what, probe, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def code_of(call):
    try:
        call()
    except bm.BatchErrorException as exc:
        return exc.error.code
    return "no error"


def jobs_part(client, pool_id, prefix, seen):
    job_id = f"{prefix}-job"
    client.job.add(
        bm.JobAddParameter(
            id=job_id,
            pool_info=bm.PoolInformation(pool_id=pool_id),
            job_preparation_task=bm.JobPreparationTask(command_line="/bin/sh -c 'echo prepared'"),
            job_release_task=bm.JobReleaseTask(command_line="/bin/sh -c 'echo released'"),
        )
    )
    client.task.add(job_id, bm.TaskAddParameter(id="t1", command_line="/bin/sh -c 'echo task'"))
    wait("t1", lambda: client.task.get(job_id, "t1").state == bm.TaskState.completed)
    seen["subtasks"] = [s.id for s in client.task.list_subtasks(job_id, "t1").value]
    client.job.disable(job_id, "requeue")
    seen["disabled"] = client.job.get(job_id).state.value
    client.job.enable(job_id)
    seen["enabled"] = client.job.get(job_id).state.value
    seen["enable_again"] = code_of(lambda: client.job.enable(job_id))
    client.job.terminate(job_id)
    wait("the job completed", lambda: client.job.get(job_id).state == bm.JobState.completed)
    statuses = list(client.job.list_preparation_and_release_task_status(job_id))
    seen["statuses"] = [
        (s.job_preparation_task_execution_info.state.value, s.job_release_task_execution_info.state.value)
        for s in statuses
    ]


def schedules_part(client, pool_id, prefix, seen):
    spec = bm.JobSpecification(
        pool_info=bm.PoolInformation(pool_id=pool_id),
        job_manager_task=bm.JobManagerTask(id="jm", command_line="/bin/sh -c 'echo from the schedule'"),
    )
    once = f"{prefix}-once"
    client.job_schedule.add(bm.JobScheduleAddParameter(id=once, schedule=bm.Schedule(), job_specification=spec))
    seen["exists"] = client.job_schedule.exists(once)
    wait("the schedule completed", lambda: client.job_schedule.get(once).state == bm.JobScheduleState.completed)
    seen["schedule_jobs"] = [j.id for j in client.job.list_from_job_schedule(once)]
    seen["patch_completed"] = code_of(
        lambda: client.job_schedule.patch(once, bm.JobSchedulePatchParameter(metadata=[]))
    )
    later = f"{prefix}-later"
    far = bm.Schedule(do_not_run_until=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    client.job_schedule.add(bm.JobScheduleAddParameter(id=later, schedule=far, job_specification=spec))
    client.job_schedule.disable(later)
    seen["schedule_disabled"] = client.job_schedule.get(later).state.value
    client.job_schedule.enable(later)
    client.job_schedule.update(
        later,
        bm.JobScheduleUpdateParameter(
            schedule=far, job_specification=spec, metadata=[bm.MetadataItem(name="k", value="v")]
        ),
    )
    seen["schedule_metadata"] = [(m.name, m.value) for m in client.job_schedule.get(later).metadata]
    seen["listed"] = sorted(s.id for s in client.job_schedule.list() if s.id in (once, later))
    client.job_schedule.terminate(later)
    seen["terminated"] = client.job_schedule.get(later).state.value
    for schedule_id in (once, later):
        client.job_schedule.delete(schedule_id)
    wait("the schedules gone", lambda: not any(client.job_schedule.exists(s) for s in (once, later)))
    seen["missing"] = code_of(lambda: client.job_schedule.get(once))


def main() -> int:
    url, account, key, prefix = sys.argv[1:5]
    client = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=url)
    pool_id = f"{prefix}-pool"
    client.pool.add(
        bm.PoolAddParameter(
            id=pool_id,
            vm_size="STANDARD_D2S_V3",
            virtual_machine_configuration=bm.VirtualMachineConfiguration(
                image_reference=bm.ImageReference(
                    publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts", version="latest"
                ),
                node_agent_sku_id="batch.node.ubuntu 22.04",
            ),
            target_dedicated_nodes=1,
        )
    )
    seen = {}
    jobs_part(client, pool_id, prefix, seen)
    schedules_part(client, pool_id, prefix, seen)
    client.pool.delete(pool_id)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
