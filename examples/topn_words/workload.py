"""The Azure Batch Python tutorial as a batchbox workload: the top N words of each input file.

Run it with ``batchbox run examples/topn_words/workload.py`` (local backend by default) or
``batchbox run examples/topn_words/workload.py --backend azure``. The same code runs on both.

What it does, like the 2016 tutorial: the pool's start task copies ``topn.py`` into the node's shared directory;
one task per input file runs it there and uploads ``<name>_OUTPUT.txt`` to the output container with a
create+write SAS; the workflow downloads the outputs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from batchbox.core import ElevationLevel, ResourceFile, StartTask, TaskSpec
from batchbox.core.workload import StagedFiles, Workload

HERE = Path(__file__).resolve().parent
TASK_SCRIPT = HERE.parents[1] / "batchbox" / "node" / "tasks" / "topn.py"


class TopNWords(Workload):
    """Counts the top words of every file in ``data/`` (or of the files in ``$BATCHBOX_TOPN_INPUTS``)."""

    job_id = "topn-words-job"
    pool_id = "topn-words-pool"
    node_count = 1
    number_of_words = 3

    def application_files(self) -> Sequence[Path]:
        return [TASK_SCRIPT]

    def input_files(self) -> Sequence[Path]:
        chosen = os.environ.get("BATCHBOX_TOPN_INPUTS")
        if chosen:
            return [Path(p) for p in chosen.split(os.pathsep) if p]
        return sorted((HERE / "data").glob("*.txt"))

    def start_task(self, staged: StagedFiles) -> StartTask:
        return StartTask(
            command_line="/bin/sh -c 'cp -f topn.py \"$AZ_BATCH_NODE_SHARED_DIR/\"'",
            resource_files=(staged.application_file("topn.py"),),
            elevation=ElevationLevel.ADMIN,
            wait_for_success=True,
        )

    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        specs = []
        for index, blob in enumerate(sorted(staged.inputs)):
            inner = (
                f'python3 "$AZ_BATCH_NODE_SHARED_DIR/topn.py" --filepath {shlex.quote(blob)} '
                f'--numwords {self.number_of_words} --container-url "{staged.output_container_url}"'
            )
            specs.append(
                TaskSpec(
                    id=f"topNtask{index}",
                    command_line=f"/bin/sh -c {shlex.quote(inner)}",
                    resource_files=(ResourceFile(http_url=staged.inputs[blob], file_path=blob),),
                )
            )
        return specs


WORKLOAD = TopNWords()
