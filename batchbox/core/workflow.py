"""The orchestration engine: the tutorial's nine steps as a reusable, backend-agnostic, resumable run.

stage -> pool -> job -> tasks -> monitor -> collect -> report failures -> clean up.

A rerun after a crash or Ctrl-C resumes: the pool and job are reused, tasks already added are not added again,
and outputs already downloaded are kept. Any other error still cleans up as configured (a pool left behind
keeps billing); reading a failed task's files never aborts the run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from batchbox.core.backend import Backend
from batchbox.core.collector import OutputCollector
from batchbox.core.errors import BatchboxError, InvalidRequestError
from batchbox.core.models import ComputeNodeInfo, JobSpec, PoolInfo, TaskCounts, TaskInfo
from batchbox.core.polling import poll_until, unless_being_deleted
from batchbox.core.pool_health import NodeWatch
from batchbox.core.reporting import Reporter
from batchbox.core.results import FailedTask, RunResult
from batchbox.core.states import AllocationState, JobState, PoolState
from batchbox.core.storage import ContainerPermission, UploadItem
from batchbox.core.workload import KEPT_POOL_SAS_LIFETIME, StagedFiles, Workload

__all__ = ["FailedTask", "RunOptions", "RunResult", "Workflow"]

STDERR_TAIL_LINES = 20
_T = TypeVar("_T")


@dataclass(frozen=True)
class RunOptions:
    """How to run a workload. ``None`` keeps the workload's own value."""

    node_count: int | None = None
    vm_size: str | None = None
    output_dir: Path | None = None
    keep_pool: bool = False
    keep_job: bool = False
    keep_containers: bool = False
    poll_interval: float = 1.0
    pool_timeout: float = 900.0
    job_timeout: float | None = None
    max_concurrency: int = 8
    """Task-collection requests in flight while adding tasks."""
    transfer_concurrency: int = 32
    """Blob uploads and downloads in flight while staging and collecting (each waits a round trip to the store)."""
    collect_while_running: bool = True
    """Download outputs already written while tasks still run (see ``batchbox.core.collector``)."""
    node_check_interval: float = 30.0
    """Seconds between two looks at the pool's nodes while tasks wait and none runs (see ``NodeWatch``)."""


Confirm = Callable[[str], bool]


class Workflow:
    """Runs one workload on one backend.

    Args:
        backend: storage + compute.
        workload: what to run.
        options: run options.
        reporter: receives progress (default: silent).
        confirm: asked before deleting the job and the pool (default: always yes).
    """

    def __init__(
        self,
        backend: Backend,
        workload: Workload,
        options: RunOptions | None = None,
        reporter: Reporter | None = None,
        confirm: Confirm | None = None,
    ) -> None:
        self.backend = backend
        self.workload = workload
        self.options = options or RunOptions()
        self.reporter = reporter or Reporter()
        self.confirm: Confirm = confirm or (lambda _question: True)
        self.result = RunResult(job_id=workload.job_id, pool_id=workload.pool_id)

    def run(self) -> RunResult:
        """Run every step; returns the result (``result.ok`` is False when any task failed).

        Clean-up runs as configured also when a step fails (then its own errors are reported, and the step's
        error is raised), but not after Ctrl-C: the pool and job are kept so that a rerun resumes.
        """
        started = time.monotonic()
        failure: BaseException | None = None
        try:
            staged = self._step("stage", self.stage)
            self._step("pool", lambda: self.ensure_pool(staged))
            job_done = self._step("job", self.ensure_job)
            if not job_done:
                self._step("tasks", lambda: self.submit_tasks(staged))
            self._step("monitor", self.monitor)
            self._step("collect", self.collect)
            self._step("failures", self.collect_failures)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if not isinstance(failure, KeyboardInterrupt):
                self._clean_up_after(failure)
        self.result.elapsed = time.monotonic() - started
        self.reporter.finished(self.result)
        return self.result

    def _clean_up_after(self, failure: BaseException | None) -> None:
        if failure is None:
            self._step("cleanup", self.cleanup)
            return
        try:
            self._step("cleanup", self.cleanup)
        except Exception as exc:  # the step's error is the one to raise; say what clean-up could not do
            self.reporter.message(f"clean-up after the error failed too: {exc}")

    def _step(self, name: str, action: Callable[[], _T]) -> _T:
        self.reporter.step_started(name)
        began = time.monotonic()
        value = action()
        self.result.step_seconds[name] = time.monotonic() - began
        self.reporter.step_finished(name, self.result.step_seconds[name])
        return value

    # -- 1-3: stage ---------------------------------------------------------------------------------------------
    def stage(self) -> StagedFiles:
        """Create the containers, upload application files and inputs concurrently, and make the SAS URLs."""
        storage = self.backend.storage
        names = self.workload.containers()
        lifetime = self.sas_lifetime()
        for container in names.all():
            storage.create_container(container)
        application = self._upload(names.application, self.workload.application_files())
        inputs = self._upload(names.input, self.workload.input_files())
        output_url = storage.container_sas_url(
            names.output, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=lifetime
        )
        return StagedFiles(
            application={blob: storage.blob_sas_url(names.application, blob, expiry=lifetime) for blob in application},
            inputs={blob: storage.blob_sas_url(names.input, blob, expiry=lifetime) for blob in inputs},
            output_container_url=output_url,
            containers=names,
            expiry=lifetime,
        )

    def sas_lifetime(self) -> timedelta:
        """How long the SAS URLs made at staging stay valid: the workload's (its job's time limit plus a margin)
        plus ``pool_timeout``, since the job, whose clock counts, starts only once the pool has nodes."""
        return self.workload.sas_lifetime() + timedelta(seconds=self.options.pool_timeout)

    def _upload(self, container: str, paths: Sequence[Path]) -> list[str]:
        items = [UploadItem(path=Path(p), blob_name=Path(p).name) for p in paths]
        if not items:
            return []
        done = 0

        def progress(blob: str, size: int) -> None:
            nonlocal done
            done += 1
            self.reporter.uploaded(container, blob, size, done, len(items))

        return self.backend.storage.upload_files(
            container, items, max_concurrency=self.options.transfer_concurrency, progress=progress
        )

    # -- 4: pool ------------------------------------------------------------------------------------------------
    def ensure_pool(self, staged: StagedFiles) -> list[ComputeNodeInfo]:
        """Create the pool, or reuse a compatible existing one; wait until it has usable nodes.

        A reused pool gets this run's start task (fresh SAS URLs) before it grows; it is resized only once it
        is ``steady``. With ``keep_pool`` the start task's SAS URLs last :data:`KEPT_POOL_SAS_LIFETIME`.
        """
        compute = self.backend.compute
        spec = self.workload.pool(
            self._pool_files(staged), node_count=self.options.node_count, vm_size=self.options.vm_size
        )
        info = self._existing_pool(spec.id)
        if info is not None:
            if info.vm_size.lower() != spec.vm_size.lower() or info.task_slots_per_node != spec.task_slots_per_node:
                raise InvalidRequestError(
                    "pool",
                    spec.id,
                    f"pool '{spec.id}' exists with vm size {info.vm_size} and {info.task_slots_per_node} slot(s) per "
                    f"node; the workload wants {spec.vm_size} and {spec.task_slots_per_node}: delete it "
                    "(batchbox cleanup) or choose another pool id",
                )
            self.reporter.message(f"reusing pool {spec.id} ({info.current_dedicated_nodes} node(s))")
            if spec.start_task is not None:
                compute.update_start_task(spec.id, spec.start_task)
            self._grow(info, spec.dedicated_nodes)
        else:
            compute.create_pool(spec)
        nodes = compute.wait_for_nodes(
            spec.id,
            timeout=self.options.pool_timeout,
            poll_interval=self.options.poll_interval,
            on_poll=lambda nodes: self.reporter.nodes_changed(spec.id, nodes),
        )
        settled = compute.get_pool(spec.id)
        if settled.resize_errors:
            errors = "; ".join(str(error) for error in settled.resize_errors)
            self.reporter.message(
                f"pool {spec.id} has {len(nodes)} usable node(s) of {settled.target_dedicated_nodes}: {errors}"
            )
        return nodes

    def _pool_files(self, staged: StagedFiles) -> StagedFiles:
        """``staged``, with the application files signed for :data:`KEPT_POOL_SAS_LIFETIME` when the pool is kept."""
        if not self.options.keep_pool or self.sas_lifetime() >= KEPT_POOL_SAS_LIFETIME:
            return staged
        container = staged.containers.application
        storage = self.backend.storage
        longer = {
            blob: storage.blob_sas_url(container, blob, expiry=KEPT_POOL_SAS_LIFETIME) for blob in staged.application
        }
        return dataclasses.replace(staged, application=longer)

    def _grow(self, info: PoolInfo, dedicated_nodes: int) -> None:
        """Resize a reused pool up to ``dedicated_nodes``, after waiting for a resize in progress to end."""
        if info.target_dedicated_nodes >= dedicated_nodes:
            return
        compute = self.backend.compute
        if info.allocation_state is not AllocationState.STEADY:
            self.reporter.message(f"waiting for pool {info.id} to finish resizing ({info.allocation_state.value})")
            info = compute.wait_for_steady(info.id, **self._wait_limits())
        if info.target_dedicated_nodes < dedicated_nodes:
            compute.resize_pool(info.id, dedicated_nodes)

    def _existing_pool(self, pool_id: str) -> PoolInfo | None:
        """The pool if it exists and is not being deleted; waits for a pool being deleted to be gone."""
        compute = self.backend.compute

        def wait_until_deleted() -> None:
            self.reporter.message(f"waiting for the old pool {pool_id} to be deleted")
            compute.wait_for_pool_deleted(pool_id, **self._wait_limits())

        return unless_being_deleted(
            lambda: compute.get_pool(pool_id), lambda info: info.state is PoolState.DELETING, wait_until_deleted
        )

    def _wait_limits(self) -> dict[str, float]:
        return {"timeout": self.options.pool_timeout, "poll_interval": self.options.poll_interval}

    # -- 5: job -------------------------------------------------------------------------------------------------
    def ensure_job(self) -> bool:
        """Create the job, or reuse it (waiting for one being deleted to be gone). Returns True when the job exists
        and has already completed."""
        compute = self.backend.compute
        spec = self.job_spec()
        state = unless_being_deleted(
            lambda: compute.job_state(spec.id),
            lambda found: found is JobState.DELETING,
            lambda: compute.wait_for_job_deleted(spec.id, **self._wait_limits()),
        )
        if state is not None:
            self.result.resumed = True
            self.reporter.message(f"resuming job {spec.id} ({state.value})")
            return state is JobState.COMPLETED
        compute.create_job(spec)
        return False

    def job_spec(self) -> JobSpec:
        """The workload's job, with the workload's ``job_time_limit`` when the job sets no time limit itself (the
        SAS URLs nodes receive last as long as the job may run)."""
        spec = self.workload.job()
        if spec.constraints.max_wall_clock_time is not None:
            return spec
        limited = dataclasses.replace(spec.constraints, max_wall_clock_time=self.workload.job_time_limit)
        return dataclasses.replace(spec, constraints=limited)

    # -- 6: tasks -----------------------------------------------------------------------------------------------
    def submit_tasks(self, staged: StagedFiles) -> None:
        """Add every task in chunks of 100, concurrently; tasks added by an earlier run are left alone."""
        tasks = list(self.workload.tasks(staged))
        added = self.backend.compute.add_tasks(
            self.workload.job_id, tasks, max_concurrency=self.options.max_concurrency
        )
        self.result.total_tasks = len(tasks)
        if added.already_existed:
            self.reporter.message(f"{len(added.already_existed)} task(s) were added by an earlier run")

    # -- 7: monitor ---------------------------------------------------------------------------------------------
    def monitor(self) -> TaskCounts:
        """Poll task counts (one request per poll) until every task has completed.

        Polls start :data:`~batchbox.core.polling.FIRST_POLL_DELAY` apart; the delay doubles up to
        ``poll_interval``. While tasks wait and none runs, the pool's nodes are looked at every
        ``node_check_interval`` seconds. With ``collect_while_running``, outputs already written are downloaded
        meanwhile (:class:`~batchbox.core.collector.OutputCollector`), so the collect step has little left.

        Raises:
            WaitTimeoutError: ``job_timeout`` passed first.
            NoNodeCanRunError: tasks wait, nothing runs, and no node of the pool can run them (their states and
                errors are named), or the pool is gone.
        """
        compute = self.backend.compute
        began = time.monotonic()
        watch = NodeWatch(
            compute, self.job_spec().pool_id, self.workload.job_id, interval=self.options.node_check_interval
        )

        def probe() -> TaskCounts:
            counts = compute.task_counts(self.workload.job_id)
            self.result.count_requests += 1
            self.reporter.progress(counts, self._expected_total(counts), time.monotonic() - began)
            watch.check(counts)
            if collector is not None:
                collector.completed(counts.completed)
            return counts

        def finished(counts: TaskCounts) -> bool:
            return counts.active == 0 and counts.running == 0 and counts.completed >= self._expected_total(counts)

        def too_late(counts: TaskCounts) -> str:
            return (
                f"job '{self.workload.job_id}' did not finish within {self.options.job_timeout:.0f} s "
                f"({counts.active} active, {counts.running} running)"
            )

        collector = self._collector() if self.options.collect_while_running else None
        try:
            counts = poll_until(
                probe,
                finished,
                timeout=self.options.job_timeout,
                poll_interval=self.options.poll_interval,
                timeout_message=too_late,
            )
        finally:
            if collector is not None:
                self._finish_collector(collector)
        self.result.counts = counts
        self.result.total_tasks = self._expected_total(counts)
        return counts

    def _collector(self) -> OutputCollector:
        return OutputCollector(
            self.backend.storage,
            self.workload.containers().output,
            self.output_dir(),
            max_concurrency=self.options.transfer_concurrency,
        )

    def _finish_collector(self, collector: OutputCollector) -> None:
        try:
            collector.finish()
        except BatchboxError as exc:  # the collect step lists and downloads again
            self.reporter.message(f"outputs downloaded during the run are checked again: {exc}")
        for error in collector.errors[-3:]:
            self.reporter.message(f"downloading outputs during the run failed once (the collect step retries): {error}")

    def _expected_total(self, counts: TaskCounts) -> int:
        return max(self.result.total_tasks, counts.total)

    # -- 8: collect ---------------------------------------------------------------------------------------------
    def collect(self) -> list[Path]:
        """Download the output container into the output directory (atomically; files already there are kept)."""
        destination = self.output_dir()
        names = self.workload.containers()
        paths = self.backend.storage.download_container(
            names.output, destination, max_concurrency=self.options.transfer_concurrency, skip_existing=True
        )
        self.result.outputs = sorted(paths)
        self.result.output_dir = destination
        return self.result.outputs

    def output_dir(self) -> Path:
        return self.options.output_dir or Path("outputs") / self.workload.job_id

    def collect_failures(self) -> list[FailedTask]:
        """For each failed task: exit code, failure info and the tail of its stderr.

        Always asks the service for the failed tasks (a filtered listing): task counts may lag behind the tasks'
        states. Nothing here aborts the run: what cannot be read is reported as such.
        """
        try:
            failed = self.backend.compute.list_tasks(self.workload.job_id, failed_only=True)
        except BatchboxError as exc:
            self.reporter.message(f"could not list the failed tasks of job {self.workload.job_id}: {exc}")
            return []
        self.result.failed = [self._describe_failure(task) for task in failed]
        for report in self.result.failed:
            self.reporter.task_failed(report)
        return self.result.failed

    def _describe_failure(self, task: TaskInfo) -> FailedTask:
        try:
            raw = self.backend.compute.read_task_file(self.workload.job_id, task.id, "stderr.txt")
            tail = "\n".join(raw.decode("utf-8", "replace").splitlines()[-STDERR_TAIL_LINES:])
        except BatchboxError as exc:  # gone, or on a node being torn down (409 NodeNotReady), or unreachable
            tail = f"(stderr.txt could not be read: {exc})"
        return FailedTask(task_id=task.id, exit_code=task.exit_code, failure=task.failure, stderr_tail=tail)

    # -- 9: clean up --------------------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Delete the containers, then (if confirmed) the job and the pool, each unless asked to keep it.

        With ``keep_pool`` the application container stays: the kept pool's start task reads from it.
        """
        compute = self.backend.compute
        if not self.options.keep_containers:
            names = self.workload.containers()
            for container in names.all():
                if self.options.keep_pool and container == names.application and self.workload.application_files():
                    self.reporter.message(f"keeping container {container}: the kept pool's start task reads it")
                    continue
                self.backend.storage.delete_container(container)
        if not self.options.keep_job and self.confirm(f"Delete job {self.workload.job_id}?"):
            compute.delete_job(self.workload.job_id)
        if not self.options.keep_pool and self.confirm(f"Delete pool {self.workload.pool_id}?"):
            compute.delete_pool(self.workload.pool_id)
