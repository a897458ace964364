"""A parameter sweep: N short tasks on 4 nodes x 2 slots, each writing one small output file.

Each task waits ``BATCHBOX_SWEEP_SECONDS`` (default 0.1 s: work that needs no CPU of the node, so the 8 slots,
not this machine's cores, are what bounds the run) and writes ``result.txt``, which Batch uploads to the output
container as ``result-<index>.txt``; the workflow downloads them all at the end. The pool's start task copies
``sweep_task.sh`` into the node's shared directory, as the tutorial's start task copies its script.

Run: ``BATCHBOX_SWEEP_TASKS=20000 batchbox run bench/workloads/sweep.py --yes``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from batchbox.core import ElevationLevel, StartTask, TaskSpec
from batchbox.core.models import OutputFile, OutputFileUploadCondition
from batchbox.core.workload import StagedFiles, Workload

SCRIPT = Path(__file__).resolve().parent / "sweep_task.sh"


class Sweep(Workload):
    """``BATCHBOX_SWEEP_TASKS`` tasks (default 20,000) of ``BATCHBOX_SWEEP_SECONDS`` each."""

    job_id = os.environ.get("BATCHBOX_SWEEP_JOB", "sweep-job")
    pool_id = os.environ.get("BATCHBOX_SWEEP_POOL", "sweep-pool")
    node_count = 4
    task_slots_per_node = 2

    def __init__(self, count: int | None = None, seconds: float | None = None) -> None:
        self.count = count if count is not None else int(os.environ.get("BATCHBOX_SWEEP_TASKS", "20000"))
        self.seconds = seconds if seconds is not None else float(os.environ.get("BATCHBOX_SWEEP_SECONDS", "0.1"))

    def application_files(self) -> Sequence[Path]:
        return [SCRIPT]

    def start_task(self, staged: StagedFiles) -> StartTask:
        return StartTask(
            command_line="/bin/sh -c 'cp -f sweep_task.sh \"$AZ_BATCH_NODE_SHARED_DIR/\"'",
            resource_files=(staged.application_file(SCRIPT.name),),
            elevation=ElevationLevel.ADMIN,
            wait_for_success=True,
        )

    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        return [
            TaskSpec(
                id=f"point{i:06d}",
                command_line=f"/bin/sh -c 'sh \"$AZ_BATCH_NODE_SHARED_DIR/sweep_task.sh\" {i} {self.seconds}'",
                output_files=(
                    OutputFile(
                        file_pattern="result.txt",
                        container_url=staged.output_container_url,
                        path=f"result-{i:06d}.txt",
                        upload_condition=OutputFileUploadCondition.TASK_SUCCESS,
                    ),
                ),
            )
            for i in range(self.count)
        ]


WORKLOAD = Sweep()
