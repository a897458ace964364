"""What is particular to the memory backend (the contract it shares with the others is in tests/contract/):
registration and the CLI, http(s) files through the node agent's blob client, SAS of another storage, scheduling
order, job and retention limits, and that closing it stops every process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.memory import MemoryBackend, MemoryStorage
from batchbox.core import (
    ContainerPermission,
    InvalidRequestError,
    JobConstraints,
    JobSpec,
    NodeFillType,
    OutputFile,
    PoolSpec,
    ResourceFile,
    ResourceNotFoundError,
    StartTask,
    TaskConstraints,
    TaskSpec,
    TaskState,
    open_backend,
)
from batchbox.core.compute import ComputeBackend
from batchbox.core.settings import load_settings
from tests.contract.helpers import eventually, unique

REPO = Path(__file__).resolve().parents[1]
HOUR = timedelta(hours=1)


@pytest.fixture
def backend() -> Iterator[MemoryBackend]:
    with MemoryBackend() as opened:
        yield opened


def pool_and_job(compute: ComputeBackend, **pool: object) -> tuple[str, str]:
    pool_id, job_id = unique("pool"), unique("job")
    compute.create_pool(PoolSpec(id=pool_id, **pool))  # type: ignore[arg-type]
    compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
    return pool_id, job_id


def completed(compute: ComputeBackend, job_id: str, task_id: str) -> None:
    eventually(
        lambda: compute.get_task(job_id, task_id).state, lambda s: s is TaskState.COMPLETED, timeout=30, what=task_id
    )


def test_the_registry_opens_it_and_closing_removes_its_directory() -> None:
    backend = open_backend(load_settings(environ={}, backend="memory"))
    assert isinstance(backend, MemoryBackend) and backend.describe().startswith("memory (")
    root = backend.root
    assert root.is_dir()
    backend.close()
    assert not root.exists()


WORKLOAD = """
from batchbox.core import OutputFile, TaskSpec, Workload

class Echo(Workload):
    job_id = "echo-job"
    pool_id = "echo-pool"

    def tasks(self, staged):
        keep = (OutputFile(file_pattern="out.txt", container_url=staged.output_container_url),)
        return [
            TaskSpec(id="good", command_line="/bin/sh -c 'echo fine > out.txt'", output_files=keep),
            TaskSpec(id="bad", command_line="/bin/sh -c 'echo it broke >&2; exit 3'"),
        ]
"""


def test_the_cli_runs_a_workload_on_it(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(WORKLOAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchbox.cli.main",
            "run",
            str(tmp_path / "echo.py"),
            "--backend",
            "memory",
            "--yes",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "job echo-job: 1 succeeded, 1 failed of 2" in done.stdout
    assert "FAILED bad: exit code 3; FailureExitCode" in done.stdout and "| it broke" in done.stdout
    assert (tmp_path / "out" / "out.txt").read_text() == "fine\n"


def test_http_resource_and_output_files_use_the_node_blob_client(
    backend: MemoryBackend, blob_storage: BlobStorage, blob_container: str
) -> None:
    blob_storage.upload_bytes(blob_container, "in.txt", b"from azurite\n")
    reader = blob_storage.blob_sas_url(blob_container, "in.txt", expiry=HOUR)
    writer = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=HOUR
    )
    _, job_id = pool_and_job(backend.compute)
    backend.compute.add_tasks(
        job_id,
        [
            TaskSpec(
                id="copy",
                command_line="/bin/sh -c 'tr a-z A-Z < in.txt > up.txt'",
                resource_files=(ResourceFile(http_url=reader, file_path="in.txt"),),
                output_files=(OutputFile(file_pattern="up.txt", container_url=writer, path="result/up.txt"),),
            )
        ],
    )
    completed(backend.compute, job_id, "copy")
    assert not backend.compute.get_task(job_id, "copy").failed
    assert blob_storage.read_blob(blob_container, "result/up.txt") == b"FROM AZURITE\n"
    assert b"result/up.txt" in backend.compute.read_task_file(job_id, "copy", "fileuploadout.txt")


def test_a_sas_of_another_storage_is_refused(backend: MemoryBackend) -> None:
    other = MemoryStorage()
    other.create_container("elsewhere")
    other.upload_bytes("elsewhere", "x.txt", b"x")
    _, job_id = pool_and_job(backend.compute)
    url = other.blob_sas_url("elsewhere", "x.txt", expiry=HOUR)
    backend.compute.add_tasks(
        job_id,
        [TaskSpec(id="t", command_line="/bin/true", resource_files=(ResourceFile(http_url=url, file_path="x"),))],
    )
    completed(backend.compute, job_id, "t")
    task = backend.compute.get_task(job_id, "t")
    assert task.failed and task.exit_code is None
    assert task.failure is not None and task.failure.code == "BlobAccessDenied"
    assert "sig=" not in (task.failure.message or "")


def test_refused_inputs(backend: MemoryBackend) -> None:
    _, job_id = pool_and_job(backend.compute)
    bad = OutputFile(file_pattern="*.txt", container_url="ftp://host/container")
    with pytest.raises(InvalidRequestError) as refused:
        backend.compute.add_tasks(job_id, [TaskSpec(id="t", command_line="/bin/true", output_files=(bad,))])
    assert (refused.value.kind, refused.value.name) == ("task", "t")
    backend.compute.add_tasks(job_id, [TaskSpec(id="t", command_line="/bin/true")])
    completed(backend.compute, job_id, "t")
    with pytest.raises(InvalidRequestError):
        backend.compute.read_task_file(job_id, "t", "../../../../etc/passwd")


def test_higher_priority_jobs_and_older_tasks_go_first(backend: MemoryBackend) -> None:
    compute = backend.compute
    pool_id = unique("pool")
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
    low, high = unique("low"), unique("high")
    compute.create_job(JobSpec(id=low, pool_id=pool_id, priority=-5))
    compute.create_job(JobSpec(id=high, pool_id=pool_id, priority=100))
    stamp = "/bin/sh -c 'date +%s%N > $AZ_BATCH_TASK_WORKING_DIR/at; sleep 0.05'"
    compute.add_tasks(low, [TaskSpec(id="l0", command_line=stamp)])
    compute.add_tasks(high, [TaskSpec(id=f"h{i}", command_line=stamp) for i in range(2)])
    compute.resize_pool(pool_id, 1)  # one node with one slot: tasks run one after the other
    for job_id, task_id in ((low, "l0"), (high, "h0"), (high, "h1")):
        completed(compute, job_id, task_id)
    started = {
        task_id: int(compute.read_task_file(job_id, task_id, "wd/at"))
        for job_id, task_id in ((low, "l0"), (high, "h0"), (high, "h1"))
    }
    assert started["h0"] < started["h1"] < started["l0"]


@pytest.mark.parametrize(("fill", "busy_nodes"), [(NodeFillType.SPREAD, 2), (NodeFillType.PACK, 1)])
def test_the_fill_type_places_tasks(backend: MemoryBackend, fill: NodeFillType, busy_nodes: int) -> None:
    compute = backend.compute
    pool_id, job_id = pool_and_job(compute, dedicated_nodes=2, task_slots_per_node=2, node_fill_type=fill)
    compute.add_tasks(job_id, [TaskSpec(id=f"t{i}", command_line="sleep 600") for i in range(2)])
    nodes = eventually(
        lambda: compute.list_nodes(pool_id), lambda ns: sum(n.running_tasks for n in ns) == 2, timeout=30
    )
    assert sum(1 for node in nodes if node.running_tasks) == busy_nodes


def test_low_priority_nodes_say_they_are_not_dedicated(backend: MemoryBackend) -> None:
    pool_id, job_id = pool_and_job(backend.compute, dedicated_nodes=0, low_priority_nodes=1)
    assert backend.compute.get_pool(pool_id).current_dedicated_nodes == 0
    backend.compute.add_tasks(job_id, [TaskSpec(id="t", command_line="/bin/sh -c 'echo $AZ_BATCH_NODE_IS_DEDICATED'")])
    completed(backend.compute, job_id, "t")
    assert backend.compute.read_task_file(job_id, "t", "stdout.txt") == b"false\n"


def test_a_start_task_that_need_not_succeed_leaves_the_node_usable(backend: MemoryBackend) -> None:
    start = StartTask(command_line="/bin/sh -c 'exit 9'", wait_for_success=False)
    pool_id, job_id = pool_and_job(backend.compute, dedicated_nodes=1, start_task=start)
    [node] = eventually(
        lambda: backend.compute.list_nodes(pool_id), lambda ns: ns[0].start_task_failure is not None, timeout=30
    )
    assert node.state.is_usable
    backend.compute.add_tasks(job_id, [TaskSpec(id="t", command_line="/bin/true")])
    completed(backend.compute, job_id, "t")
    assert not backend.compute.get_task(job_id, "t").failed


def test_the_job_wall_clock_limit_ends_the_job(backend: MemoryBackend) -> None:
    compute = backend.compute
    pool_id = unique("pool")
    compute.create_pool(PoolSpec(id=pool_id))
    job_id = unique("job")
    compute.create_job(JobSpec(id=job_id, pool_id=pool_id, constraints=JobConstraints(timedelta(seconds=0.3))))
    compute.add_tasks(job_id, [TaskSpec(id="t", command_line="sleep 600")])
    completed(compute, job_id, "t")
    task = compute.get_task(job_id, "t")
    assert task.failure is not None and task.failure.code == "TaskEnded"
    assert "MaxWallClockTimeExpiry" in (task.failure.message or "")


def test_task_files_go_when_the_retention_time_is_over(backend: MemoryBackend) -> None:
    _, job_id = pool_and_job(backend.compute)
    keep = TaskConstraints(retention_time=timedelta(seconds=0.2))
    backend.compute.add_tasks(job_id, [TaskSpec(id="t", command_line="/bin/sh -c 'echo hi'", constraints=keep)])
    completed(backend.compute, job_id, "t")
    assert backend.compute.read_task_file(job_id, "t", "stdout.txt") == b"hi\n"
    time.sleep(0.3)
    with pytest.raises(ResourceNotFoundError) as gone:
        backend.compute.read_task_file(job_id, "t", "stdout.txt")
    assert gone.value.kind == "file"


def test_closing_stops_every_process(tmp_path: Path) -> None:
    backend = MemoryBackend(root=tmp_path / "nodes")
    _, job_id = pool_and_job(backend.compute)
    backend.compute.add_tasks(job_id, [TaskSpec(id="t", command_line="/bin/sh -c 'echo $$ > pid; exec sleep 600'")])
    pid_file = eventually(
        lambda: list((tmp_path / "nodes").rglob("wd/pid")), lambda found: bool(found) and found[0].stat().st_size > 0
    )[0]
    pid = int(pid_file.read_text())
    backend.close()
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    assert pid_file.exists()  # a root given by the caller is kept
