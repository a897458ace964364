"""The workflow on the memory backend: failure reporting, resuming, cleanup, pool reuse and timeouts, each in well
under a second, without Docker or a service. tests/test_workflow.py runs the tutorial on the local stack."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from batchbox.backends.memory import MemoryBackend
from batchbox.core import (
    BatchboxError,
    FailedTask,
    InvalidRequestError,
    JobState,
    OutputFile,
    Reporter,
    RunOptions,
    RunResult,
    StagedFiles,
    StartTask,
    StartTaskFailedError,
    TaskSpec,
    TaskState,
    WaitTimeoutError,
    Workflow,
    Workload,
)


class Squares(Workload):
    """``count`` tasks; task i writes i*i into ``square<i>.txt``, which goes to the output container. Tasks named in
    ``failing`` print ``lines`` lines to stderr and exit 3; ``command`` replaces every command line when set."""

    def __init__(self, count: int = 4, failing: Sequence[int] = (), lines: int = 2, command: str | None = None):
        suffix = uuid.uuid4().hex[:8]
        self.job_id = f"squares-{suffix}"
        self.pool_id = f"squares-pool-{suffix}"
        self.count, self.failing, self.lines, self.command = count, set(failing), lines, command

    def _command(self, i: int) -> str:
        if self.command is not None:
            return self.command
        script = f"echo {i * i} > square{i}.txt"
        if i in self.failing:
            script += f"; for n in $(seq 1 {self.lines}); do echo line $n >&2; done; exit 3"
        return f"/bin/sh -c {shlex.quote(script)}"

    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        output = (OutputFile(file_pattern="square*.txt", container_url=staged.output_container_url),)
        return [TaskSpec(id=f"sq{i}", command_line=self._command(i), output_files=output) for i in range(self.count)]


class Recorder(Reporter):
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.failures: list[FailedTask] = []
        self.messages: list[str] = []
        self.results: list[RunResult] = []

    def step_started(self, step: str) -> None:
        self.steps.append(step)

    def task_failed(self, failure: FailedTask) -> None:
        self.failures.append(failure)

    def message(self, text: str) -> None:
        self.messages.append(text)

    def finished(self, result: RunResult) -> None:
        self.results.append(result)


@pytest.fixture
def backend() -> Iterator[MemoryBackend]:
    with MemoryBackend() as opened:
        yield opened


def options(tmp_path: Path, **changes: Any) -> RunOptions:
    return RunOptions(output_dir=tmp_path / "out", poll_interval=0.02, **changes)


def test_a_run_collects_outputs_and_cleans_up(backend: MemoryBackend, tmp_path: Path) -> None:
    workload, reporter = Squares(), Recorder()
    result = Workflow(backend, workload, options(tmp_path), reporter).run()

    assert result.ok and (result.counts.succeeded, result.total_tasks) == (4, 4)
    assert sorted(path.name for path in result.outputs) == [f"square{i}.txt" for i in range(4)]
    assert (tmp_path / "out" / "square3.txt").read_text() == "9\n"
    assert reporter.steps == ["stage", "pool", "job", "tasks", "monitor", "collect", "failures", "cleanup"]
    assert reporter.results == [result] and result.count_requests >= 1
    assert not backend.compute.job_exists(workload.job_id)
    assert not backend.compute.pool_exists(workload.pool_id)
    for container in workload.containers().all():
        with pytest.raises(BatchboxError):
            backend.storage.list_blobs(container)


def test_failed_tasks_are_reported_with_exit_code_failure_and_stderr_tail(
    backend: MemoryBackend, tmp_path: Path
) -> None:
    reporter = Recorder()
    result = Workflow(backend, Squares(failing=[1, 2], lines=30), options(tmp_path), reporter).run()

    assert not result.ok
    assert (result.counts.succeeded, result.counts.failed) == (2, 2)
    assert sorted(f.task_id for f in result.failed) == ["sq1", "sq2"]
    for failed in result.failed:
        assert failed.exit_code == 3
        assert failed.failure is not None and failed.failure.code == "FailureExitCode"
        assert failed.stderr_tail.splitlines() == [f"line {n}" for n in range(11, 31)]  # the last 20 lines
    assert reporter.failures == result.failed


def test_a_rerun_after_an_interrupted_submission_adds_only_the_missing_tasks(
    backend: MemoryBackend, tmp_path: Path
) -> None:
    workload = Squares(count=5)
    first = Workflow(backend, workload, options(tmp_path, keep_pool=True))
    staged = first.stage()
    first.ensure_pool(staged)
    first.ensure_job()
    backend.compute.add_tasks(workload.job_id, list(workload.tasks(staged))[:2])  # the run died here

    reporter = Recorder()
    result = Workflow(backend, workload, options(tmp_path, keep_job=True), reporter).run()
    assert result.resumed and result.ok and result.counts.succeeded == 5
    assert "2 task(s) were added by an earlier run" in reporter.messages
    tasks = backend.compute.list_tasks(workload.job_id)
    assert sorted(t.id for t in tasks) == [f"sq{i}" for i in range(5)]
    assert all(t.state is TaskState.COMPLETED and t.retry_count == 0 for t in tasks)


def test_a_rerun_of_a_finished_job_submits_nothing_and_keeps_downloaded_outputs(
    backend: MemoryBackend, tmp_path: Path
) -> None:
    workload = Squares(count=3)
    first = Workflow(backend, workload, options(tmp_path, keep_job=True, keep_pool=True, keep_containers=True)).run()
    assert first.ok
    backend.compute.terminate_job(workload.job_id)
    assert backend.compute.job_state(workload.job_id) is JobState.COMPLETED
    kept = tmp_path / "out" / "square2.txt"
    kept.write_text("K\n")  # same size as the blob ("4\n"): a resumed download keeps it
    (tmp_path / "out" / "square1.txt").unlink()

    reporter = Recorder()
    second = Workflow(backend, workload, options(tmp_path), reporter).run()
    assert second.resumed and second.ok and second.counts.succeeded == 3
    assert "tasks" not in reporter.steps  # the job had completed: nothing was submitted again
    assert kept.read_text() == "K\n"
    assert (tmp_path / "out" / "square1.txt").read_text() == "1\n"


def test_declined_confirmation_and_keep_options_leave_things_in_place(backend: MemoryBackend, tmp_path: Path) -> None:
    workload = Squares(count=1)
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return False

    result = Workflow(backend, workload, options(tmp_path, keep_containers=True), confirm=confirm).run()
    assert result.ok
    assert asked == [f"Delete job {workload.job_id}?", f"Delete pool {workload.pool_id}?"]
    assert backend.compute.job_exists(workload.job_id) and backend.compute.pool_exists(workload.pool_id)
    assert [blob.name for blob in backend.storage.list_blobs(workload.containers().output)] == ["square0.txt"]


def test_an_existing_pool_is_reused_and_grown_but_an_incompatible_one_is_refused(
    backend: MemoryBackend, tmp_path: Path
) -> None:
    workload = Squares(count=2)
    workload.node_count = 1
    Workflow(backend, workload, options(tmp_path, keep_pool=True)).run()
    workload.node_count = 2
    reporter = Recorder()
    assert Workflow(backend, workload, options(tmp_path, keep_pool=True), reporter).run().ok
    assert f"reusing pool {workload.pool_id} (1 node(s))" in reporter.messages
    assert backend.compute.get_pool(workload.pool_id).target_dedicated_nodes == 2

    workload.vm_size = "standard_e4s_v3"
    with pytest.raises(InvalidRequestError) as refused:
        Workflow(backend, workload, options(tmp_path)).run()
    assert "standard_e4s_v3" in str(refused.value) and "batchbox cleanup" in str(refused.value)


def test_a_job_timeout_cleans_up_as_configured_and_a_kept_job_resumes(backend: MemoryBackend, tmp_path: Path) -> None:
    workload = Squares(count=1, command="sleep 600")
    reporter = Recorder()
    with pytest.raises(WaitTimeoutError) as late:
        Workflow(backend, workload, options(tmp_path, job_timeout=0.2), reporter).run()
    assert isinstance(late.value, TimeoutError)
    assert f"job '{workload.job_id}' did not finish" in str(late.value) and "1 running" in str(late.value)
    assert reporter.steps[-2:] == ["monitor", "cleanup"]  # the error did not skip the clean-up
    assert not backend.compute.job_exists(workload.job_id) and not backend.compute.pool_exists(workload.pool_id)

    kept = Squares(count=1, command="sleep 600")
    with pytest.raises(WaitTimeoutError):
        Workflow(backend, kept, options(tmp_path, job_timeout=0.2, keep_job=True, keep_pool=True)).run()
    assert backend.compute.job_exists(kept.job_id) and backend.compute.pool_exists(kept.pool_id)
    backend.compute.terminate_task(kept.job_id, "sq0")
    result = Workflow(backend, kept, options(tmp_path), Recorder()).run()
    assert result.resumed and result.counts.failed == 1
    assert result.failed[0].failure is not None and result.failed[0].failure.code == "TaskEnded"


class BrokenStart(Squares):
    def start_task(self, staged: StagedFiles) -> StartTask:
        return StartTask(command_line="/bin/sh -c 'exit 4'", max_task_retry_count=1)


def test_a_failed_start_task_stops_the_run_at_the_pool_step(backend: MemoryBackend, tmp_path: Path) -> None:
    workload, reporter = BrokenStart(), Recorder()
    with pytest.raises(StartTaskFailedError) as failed:
        Workflow(backend, workload, options(tmp_path), reporter).run()
    [node] = failed.value.node_failures
    assert node.startswith("tvmps_") and "exit" in failed.value.node_failures[node]
    assert reporter.steps == ["stage", "pool", "cleanup"]
    assert not backend.compute.job_exists(workload.job_id) and not backend.compute.pool_exists(workload.pool_id)
