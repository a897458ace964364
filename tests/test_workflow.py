"""The workflow end to end: the tutorial through the Python API and the CLI, failures, and resuming."""

from __future__ import annotations

import collections
import os
import string
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from batchbox.backends.local.stack import LocalEndpoints
from batchbox.core import TaskSpec, TaskState
from batchbox.core.backend import Backend
from batchbox.core.workflow import RunOptions, Workflow
from batchbox.core.workload import StagedFiles, Workload

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "topn_words"))
from workload import TopNWords  # noqa: E402

DATA = sorted((REPO / "examples" / "topn_words" / "data").glob("*.txt"))

pytestmark = pytest.mark.docker


def expected_top_words(path: Path, n: int = 3) -> list[tuple[str, int]]:
    """The tutorial's counting rule (empty tokens dropped, as topn.py documents)."""
    words = (w.strip(string.punctuation) for w in path.read_text(encoding="utf-8-sig").split())
    return collections.Counter(w for w in words if w).most_common(n)


def parse_output(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    body = lines[2 : lines.index("-" * 30, 2)]
    return [(word.rstrip(":"), int(count)) for word, count in (line.split("\t") for line in body)]


def unique_topn() -> TopNWords:
    workload = TopNWords()
    suffix = uuid.uuid4().hex[:8]
    workload.job_id = f"topn-test-{suffix}"
    workload.pool_id = f"topn-pool-{suffix}"
    return workload


def test_tutorial_through_the_python_api(any_backend: Backend, tmp_path: Path) -> None:
    workload = unique_topn()
    result = Workflow(any_backend, workload, RunOptions(output_dir=tmp_path, poll_interval=0.2)).run()
    assert result.ok, result.failed
    assert result.counts.succeeded == len(DATA) and result.counts.failed == 0
    assert sorted(p.name for p in result.outputs) == sorted(f"{p.stem}_OUTPUT.txt" for p in DATA)
    for source in DATA:
        output = tmp_path / f"{source.stem}_OUTPUT.txt"
        assert parse_output(output) == expected_top_words(source)
        assert f"Job:  {workload.job_id}" in output.read_text()
    assert not any(p.name.startswith(".") or ".part" in p.name for p in tmp_path.iterdir())
    assert not any_backend.compute.job_exists(workload.job_id)
    monitor_polls = result.count_requests
    assert monitor_polls >= 1


def _cli_env(stack: LocalEndpoints) -> dict[str, str]:
    from urllib.parse import urlsplit

    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    azurite_port = stack.storage_connection_string.split("BlobEndpoint=http://127.0.0.1:")[1].split("/")[0]
    env.update(
        {
            "BATCHBOX_HOME": stack.state_dir,
            "BATCHBOX_EMULATOR_PORT": str(urlsplit(stack.batch_url).port),
            "BATCHBOX_AZURITE_PORT": azurite_port,
        }
    )
    return env


def run_cli(stack: LocalEndpoints, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchbox.cli.main", *args],
        capture_output=True,
        text=True,
        env=_cli_env(stack),
        cwd=REPO,
        timeout=300,
    )


def test_tutorial_through_the_cli(local_stack: LocalEndpoints, tmp_path: Path) -> None:
    done = run_cli(local_stack, "run", "examples/topn_words/workload.py", "--yes", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"job topn-words-job: {len(DATA)} succeeded, 0 failed of {len(DATA)}" in done.stdout
    for source in DATA:
        assert parse_output(tmp_path / f"{source.stem}_OUTPUT.txt") == expected_top_words(source)


FAILING_WORKLOAD = """
from batchbox.core import TaskSpec
from batchbox.core.workload import Workload

class Failing(Workload):
    job_id = "{job}"
    pool_id = "{pool}"

    def tasks(self, staged):
        return [
            TaskSpec(id="good", command_line="/bin/sh -c 'echo fine'"),
            TaskSpec(id="bad", command_line="/bin/sh -c 'echo first line >&2; echo it broke >&2; exit 3'"),
        ]
"""


def test_failing_task_makes_run_exit_nonzero_with_exit_code_and_stderr(
    local_stack: LocalEndpoints, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    workload_file = tmp_path / "failing.py"
    workload_file.write_text(FAILING_WORKLOAD.format(job=f"fail-{suffix}", pool=f"fail-pool-{suffix}"))
    done = run_cli(local_stack, "run", str(workload_file), "--yes", "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"job fail-{suffix}: 1 succeeded, 1 failed of 2" in done.stdout
    assert "FAILED bad: exit code 3; FailureExitCode" in done.stdout
    assert "| it broke" in done.stdout


class Counting(Workload):
    """Five tasks that each write one output blob."""

    def __init__(self, suffix: str) -> None:
        self.job_id = f"resume-{suffix}"
        self.pool_id = f"resume-pool-{suffix}"

    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        return [TaskSpec(id=f"task{i}", command_line=f"/bin/sh -c 'echo {i}'") for i in range(5)]


def test_rerun_after_interrupted_submission_leaves_exactly_the_intended_tasks(
    local_backend: Backend, tmp_path: Path
) -> None:
    workload = Counting(uuid.uuid4().hex[:8])
    first = Workflow(local_backend, workload, RunOptions(output_dir=tmp_path, keep_pool=True))
    staged = first.stage()
    first.ensure_pool(staged)
    first.ensure_job()
    # the first run died after submitting two of the five tasks
    local_backend.compute.add_tasks(workload.job_id, list(workload.tasks(staged))[:2])

    result = Workflow(local_backend, workload, RunOptions(output_dir=tmp_path, keep_job=True, poll_interval=0.2)).run()
    assert result.resumed
    assert result.ok and result.counts.succeeded == 5
    tasks = local_backend.compute.list_tasks(workload.job_id)
    assert sorted(t.id for t in tasks) == [f"task{i}" for i in range(5)]
    assert all(t.state is TaskState.COMPLETED and t.exit_code == 0 for t in tasks)
    local_backend.compute.delete_job(workload.job_id)


def test_workload_reference_forms() -> None:
    from batchbox.cli.loader import load_workload

    by_file = load_workload("examples/topn_words/workload.py")
    by_class = load_workload("examples/topn_words/workload.py:TopNWords")
    assert type(by_file).__name__ == type(by_class).__name__ == "TopNWords"
    assert by_file.job_id == "topn-words-job"


def test_rerun_right_after_cleanup_waits_for_the_old_pool_and_job(local_backend: Backend, tmp_path: Path) -> None:
    workload = Counting(uuid.uuid4().hex[:8])
    first = Workflow(local_backend, workload, RunOptions(output_dir=tmp_path, poll_interval=0.2)).run()
    assert first.ok and first.counts.succeeded == 5
    # The first run deleted its job and pool; Batch deletes them asynchronously, so they may still be 'deleting'.
    second = Workflow(local_backend, workload, RunOptions(output_dir=tmp_path, poll_interval=0.2)).run()
    assert second.ok and second.counts.succeeded == 5
    assert not second.resumed
