"""Soak: 5,000 tasks on a 4-node pool through the workflow, 10% of them failing their first attempt.

Task ``i`` (``s0000`` .. ``s4999``):

* ``i % 100 == 0`` (50 tasks) always exit 1: three attempts, ``retryCount`` 2, failed;
* other ``i % 10 == 0`` (450 tasks) exit 1 on their first attempt only: ``retryCount`` 1, succeeded;
* the rest (4,500) succeed at once: ``retryCount`` 0.

"First attempt" must not depend on which node runs a retry (node roots are separate, and a task sees no retry
count), so the flaky tasks ask blob storage: ``first_attempt.py`` creates the blob ``markers/<task id>`` with
``If-None-Match: *`` through the job's output SAS (create+write). Creating it means this is the first attempt
(exit 1); HTTP 409 means an earlier attempt made it (exit 0). The markers come back with the outputs, one per
flaky task. The script reaches the nodes like the tutorial's: an application file the start task copies into the
shared directory.

The emulator's resident memory is read from ``/proc/<pid>/status`` (VmRSS, VmHWM) when the pool is ready, when
half of the tasks have completed and at the end, and printed (``pytest -s``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from batchbox.backends.local.backend import LocalBackend
from batchbox.backends.local.stack import LocalEndpoints
from batchbox.core import ElevationLevel, StartTask, TaskSpec, TaskState
from batchbox.core.models import JobConstraints, JobSpec, TaskCounts
from batchbox.core.reporting import Reporter
from batchbox.core.workflow import RunOptions, Workflow
from batchbox.core.workload import StagedFiles, Workload

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

TASKS = 5000
NODES = 4
SLOTS_PER_NODE = 4
MAX_RETRIES = 2
RSS_LIMIT_KIB = 512 * 1024
"""A generous ceiling for the emulator's peak RSS (measured: see docs/reliability.md)."""

FIRST_ATTEMPT_SCRIPT = '''\
"""Exit 1 when this is the task's first attempt (the marker blob did not exist yet), else 0."""
import sys
import urllib.error
import urllib.request

container_url, task_id = sys.argv[1], sys.argv[2]
base, _, sas = container_url.partition("?")
request = urllib.request.Request(
    f"{base}/markers/{task_id}?{sas}",
    data=task_id.encode(),
    method="PUT",
    headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06", "If-None-Match": "*"},
)
try:
    urllib.request.urlopen(request, timeout=60).close()
except urllib.error.HTTPError as exc:
    if exc.code == 409:
        sys.exit(0)
    raise
sys.exit(1)
'''


def expected_retries(index: int) -> int:
    if index % 100 == 0:
        return MAX_RETRIES
    return 1 if index % 10 == 0 else 0


class Soak(Workload):
    node_count = NODES
    task_slots_per_node = SLOTS_PER_NODE

    def __init__(self, script: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.job_id = f"soak-{suffix}"
        self.pool_id = f"soak-pool-{suffix}"
        self.script = script

    def application_files(self) -> Sequence[Path]:
        return [self.script]

    def start_task(self, staged: StagedFiles) -> StartTask:
        return StartTask(
            command_line="/bin/sh -c 'cp -f first_attempt.py \"$AZ_BATCH_NODE_SHARED_DIR/\"'",
            resource_files=(staged.application_file("first_attempt.py"),),
            elevation=ElevationLevel.ADMIN,
        )

    def job(self) -> JobSpec:
        return replace(super().job(), constraints=JobConstraints(max_task_retry_count=MAX_RETRIES))

    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        flaky = (
            f'/bin/sh -c \'python3 "$AZ_BATCH_NODE_SHARED_DIR/first_attempt.py" '
            f'"{staged.output_container_url}" "$AZ_BATCH_TASK_ID"\''
        )
        specs = []
        for i in range(TASKS):
            if i % 100 == 0:
                command = "/bin/sh -c 'exit 1'"
            elif i % 10 == 0:
                command = flaky
            else:
                command = "/bin/sh -c 'echo $AZ_BATCH_TASK_ID'"
            specs.append(TaskSpec(id=f"s{i:04d}", command_line=command))
        return specs


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


class MemoryProbe(Reporter):
    """Samples the emulator's memory when the tasks are submitted and at every tenth of them completed."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: dict[str, dict[str, int]] = {}
        self.curve: list[tuple[int, int]] = []
        """(tasks completed, VmRSS KiB) at 0%, 10%, ... 100%."""
        self.polls = 0

    def step_started(self, step: str) -> None:
        if step == "tasks":
            self.samples["start"] = memory_kib(self.pid)
            self.curve.append((0, self.samples["start"]["VmRSS"]))

    def progress(self, counts: TaskCounts, total: int, elapsed: float) -> None:
        self.polls += 1
        while self.curve and counts.completed >= self.curve[-1][0] + TASKS // 10:
            self.curve.append((self.curve[-1][0] + TASKS // 10, memory_kib(self.pid)["VmRSS"]))
        if "mid" not in self.samples and counts.completed >= TASKS // 2:
            self.samples["mid"] = memory_kib(self.pid)


@pytest.mark.slow
def test_soak_5000_tasks_with_first_attempt_failures(emulator: Any, azurite: Any, tmp_path: Path) -> None:
    script = tmp_path / "first_attempt.py"
    script.write_text(FIRST_ATTEMPT_SCRIPT)
    workload = Soak(script)
    endpoints = LocalEndpoints(
        batch_url=emulator.url,
        batch_account=emulator.account_name,
        batch_key=emulator.account_key,
        storage_connection_string=azurite.connection_string,
        state_dir=str(emulator.state_dir),
    )
    probe = MemoryProbe(emulator.pid)
    began = time.monotonic()
    with LocalBackend(endpoints) as backend:
        options = RunOptions(output_dir=tmp_path / "out", keep_job=True, poll_interval=0.5, job_timeout=800)
        result = Workflow(backend, workload, options, probe).run()
        elapsed = time.monotonic() - began
        probe.samples["end"] = memory_kib(emulator.pid)
        try:
            tasks = backend.compute.list_tasks(workload.job_id)
        finally:
            backend.compute.delete_job(workload.job_id)

    always, flaky = TASKS // 100, TASKS // 10 - TASKS // 100
    assert (result.counts.succeeded, result.counts.failed) == (TASKS - always, always)
    assert (result.counts.active, result.counts.running, result.total_tasks) == (0, 0, TASKS)
    assert sorted(f.task_id for f in result.failed) == [f"s{i:04d}" for i in range(0, TASKS, 100)]
    assert all(
        f.exit_code == 1 and f.failure is not None and f.failure.code == "FailureExitCode" for f in result.failed
    )

    assert len(tasks) == TASKS
    retries = {t.id: t.retry_count for t in tasks}
    assert retries == {f"s{i:04d}": expected_retries(i) for i in range(TASKS)}
    assert all(t.state is TaskState.COMPLETED and t.requeue_count == 0 for t in tasks)
    assert Counter(retries.values()) == {0: TASKS - always - flaky, 1: flaky, MAX_RETRIES: always}

    markers = sorted(p.name for p in (tmp_path / "out" / "markers").iterdir())
    assert markers == sorted(f"s{i:04d}" for i in range(0, TASKS, 10) if i % 100)

    runs = TASKS + flaky + always * MAX_RETRIES
    print(
        f"\nsoak: {TASKS} tasks, {runs} runs in {elapsed:.0f} s ({runs / elapsed:.0f} runs/s), "
        f"{probe.polls} count polls; emulator memory (KiB): "
        + ", ".join(f"{name} {probe.samples[name]}" for name in ("start", "mid", "end"))
        + "; VmRSS by tasks completed: "
        + ", ".join(f"{done}: {rss}" for done, rss in probe.curve)
    )
    assert set(probe.samples) == {"start", "mid", "end"}
    assert probe.samples["end"]["VmHWM"] < RSS_LIMIT_KIB
