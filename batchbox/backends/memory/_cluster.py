"""The in-memory compute's engine: nodes that come and go, start tasks, task placement, and every state change a
run causes (completion, retry, requeue, job end).

Everything here runs with :attr:`Cluster.lock` held, except the processes themselves: each run has a thread that
waits for its process and then takes the lock to record the outcome and place more tasks.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from batchbox.backends.memory._layout import make_node_dirs, start_task_environment, task_dir, task_environment
from batchbox.backends.memory._records import JobRecord, NodeRecord, PoolRecord, Run, TaskRecord, utc_now
from batchbox.backends.memory._runner import Outcome, RunRequest, run_process
from batchbox.backends.memory.storage import MemoryStorage
from batchbox.core.models import FailureInfo, StartTask
from batchbox.core.states import (
    ComputeNodeState,
    JobState,
    NodeFillType,
    OnAllTasksComplete,
    TaskExecutionResult,
    TaskState,
)
from batchbox.node._agent_common import SERVER_ERROR, TASK_ENDED, UNKNOWN, USER_ERROR

__all__ = ["Cluster"]

log = logging.getLogger(__name__)


class Cluster:
    """Pools, jobs and the runs between them, for one :class:`~batchbox.backends.memory.compute.MemoryCompute`.

    Args:
        storage: resolves the ``memory://`` URLs of resource and output files.
        root: the directory under which every node gets its own.
        account: the account name tasks see in ``AZ_BATCH_ACCOUNT_NAME``.
    """

    def __init__(self, storage: MemoryStorage, root: Path, account: str) -> None:
        self.storage = storage
        self.root = root
        self.account = account
        self.lock = threading.RLock()
        self.pools: dict[str, PoolRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.sequence = itertools.count()
        self.closed = False
        self._threads: set[threading.Thread] = set()

    # -- nodes -----------------------------------------------------------------------------------------------

    def resize(self, pool: PoolRecord) -> None:
        """Add or remove nodes until the pool has its targets; tasks on removed nodes are requeued."""
        for dedicated, target in ((True, pool.dedicated_target), (False, pool.low_priority_target)):
            mine = [node for node in pool.nodes.values() if node.dedicated == dedicated]
            for _ in range(target - len(mine)):
                self._add_node(pool, dedicated)
            if len(mine) > target:
                victims = sorted(mine, key=lambda node: (node.state is ComputeNodeState.IDLE, node.used_slots))
                for node in victims[: len(mine) - target]:
                    self.remove_node(pool, node)
        self.dispatch()

    def _add_node(self, pool: PoolRecord, dedicated: bool) -> None:
        node_id = f"tvmps_{secrets.token_hex(16)}_{'d' if dedicated else 'p'}"
        node = NodeRecord(id=node_id, pool_id=pool.spec.id, dedicated=dedicated, root=self.root / node_id)
        make_node_dirs(node.root)
        pool.nodes[node_id] = node
        start = pool.spec.start_task
        if start is None:
            node.state = ComputeNodeState.IDLE
            return
        node.state = ComputeNodeState.WAITING_FOR_START_TASK if start.wait_for_success else ComputeNodeState.IDLE
        self._spawn(self._run_start_task, node, start)

    def remove_node(self, pool: PoolRecord, node: NodeRecord) -> None:
        """Take a node out of its pool: its start task stops, its tasks go back to active (requeued)."""
        node.removed = True
        pool.nodes.pop(node.id, None)
        for run in list(node.runs):
            run.cancel()
            if run.task is not None and run.task.run is run:
                self._requeue(run.task)

    def _run_start_task(self, node: NodeRecord, start: StartTask) -> None:
        request = RunRequest(
            command_line=start.command_line,
            task_dir=node.root / "startup",
            environment=start_task_environment(self.account, node, start.elevation, start.environment),
            resource_files=start.resource_files,
        )
        for attempt in itertools.count():
            run = Run(node, slots=0)
            with self.lock:
                if node.removed or self.closed:
                    return
                node.runs.append(run)
            outcome = self._run(request, run)
            with self.lock:
                _forget(node, run)
                if node.removed or run.cancelled:
                    return
                if outcome.failure is None:
                    node.start_task_failure = None
                    node.state = ComputeNodeState.IDLE
                    self.dispatch()
                    return
                if outcome.retryable and attempt < start.max_task_retry_count:
                    continue
                node.start_task_failure = outcome.failure
                if start.wait_for_success:
                    node.state = ComputeNodeState.START_TASK_FAILED
                return

    # -- placement -------------------------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Start queued tasks on free slots: jobs by priority (then age), tasks in queue order."""
        if self.closed:
            return
        for job in sorted(self.jobs.values(), key=lambda j: (-j.spec.priority, j.sequence)):
            pool = self.pools.get(job.spec.pool_id.lower())
            if job.state is not JobState.ACTIVE or pool is None or not job.queue:
                continue
            slots = pool.spec.task_slots_per_node
            nodes = [n for n in pool.nodes.values() if n.state is ComputeNodeState.IDLE and n.used_slots < slots]
            for key in list(job.queue):
                if not nodes:
                    break
                task = job.tasks[key]
                fitting = [n for n in nodes if slots - n.used_slots >= task.spec.required_slots]
                if not fitting:
                    continue
                busiest_first = pool.spec.node_fill_type is NodeFillType.PACK
                node = sorted(fitting, key=lambda n: n.used_slots, reverse=busiest_first)[0]
                self._start(job, task, node)
                nodes = [n for n in nodes if n.used_slots < slots]

    def _start(self, job: JobRecord, task: TaskRecord, node: NodeRecord) -> None:
        job.queue.pop(task.spec.id.lower(), None)
        run = Run(node, task.spec.required_slots, task)
        node.runs.append(run)
        directory = task_dir(node, job.spec.id, task.spec.id)
        task.node, task.directory, task.run = node, directory, run
        task.report(
            state=TaskState.RUNNING,
            node_id=node.id,
            start_time=utc_now(),
            end_time=None,
            exit_code=None,
            result=None,
            failure=None,
        )
        request = RunRequest(
            command_line=task.spec.command_line,
            task_dir=directory,
            environment=task_environment(
                self.account,
                node,
                job_id=job.spec.id,
                task_id=task.spec.id,
                directory=directory,
                elevation=task.spec.elevation,
                common=job.spec.environment,
                own=task.spec.environment,
            ),
            resource_files=task.spec.resource_files,
            output_files=task.spec.output_files,
            max_wall_clock_time=task.spec.constraints.max_wall_clock_time,
        )
        self._spawn(self._execute, job, task, run, request)

    def _execute(self, job: JobRecord, task: TaskRecord, run: Run, request: RunRequest) -> None:
        outcome = self._run(request, run)
        with self.lock:
            _forget(run.node, run)
            if task.run is run and not run.cancelled:
                task.run = None
                self._complete_run(job, task, outcome)
            self.dispatch()

    def _run(self, request: RunRequest, run: Run) -> Outcome:
        try:
            return run_process(self.storage, request, run)
        except Exception as exc:  # the run must end whatever went wrong here
            log.exception("a run on node %s failed", run.node.id)
            now = utc_now()
            failure = FailureInfo(SERVER_ERROR, UNKNOWN, f"The node could not run the task: {type(exc).__name__}")
            return Outcome(None, failure, False, now, now)

    # -- state changes ---------------------------------------------------------------------------------------

    def _complete_run(self, job: JobRecord, task: TaskRecord, outcome: Outcome) -> None:
        limit = job.retry_limit(task)
        if outcome.retryable and (limit < 0 or task.info.retry_count < limit):
            task.report(retry_count=task.info.retry_count + 1)
            self._reactivate(job, task)
            return
        succeeded = outcome.exit_code == 0 and outcome.failure is None
        task.report(
            state=TaskState.COMPLETED,
            exit_code=outcome.exit_code,
            failure=outcome.failure,
            result=TaskExecutionResult.SUCCESS if succeeded else TaskExecutionResult.FAILURE,
            start_time=outcome.start_time,
            end_time=outcome.end_time,
        )
        self.check_job_end(job)

    def _reactivate(self, job: JobRecord, task: TaskRecord) -> None:
        task.node, task.run = None, None
        task.report(state=TaskState.ACTIVE, node_id=None)
        job.queue[task.spec.id.lower()] = None

    def _requeue(self, task: TaskRecord) -> None:
        job = self.jobs.get(task.job_id.lower())
        task.report(requeue_count=task.info.requeue_count + 1)
        if job is not None:
            self._reactivate(job, task)

    def end_task(self, job: JobRecord, task: TaskRecord, reason: str) -> None:
        """Complete an active or running task with ``TaskEnded`` (a running one is killed)."""
        if task.run is not None:
            task.run.cancel()
            task.run = None
        job.queue.pop(task.spec.id.lower(), None)
        task.report(
            state=TaskState.COMPLETED,
            exit_code=None,
            result=TaskExecutionResult.FAILURE,
            failure=FailureInfo(USER_ERROR, TASK_ENDED, f"Task was ended by user request: {reason}"),
            end_time=utc_now(),
        )

    def end_job(self, job: JobRecord, reason: str) -> None:
        """Terminate a job: every unfinished task ends (``TaskEnded``), the job completes."""
        if job.state is not JobState.ACTIVE:
            return
        for task in job.tasks.values():
            if task.state is not TaskState.COMPLETED:
                self.end_task(job, task, f"its job was terminated ({reason})")
        job.state = JobState.COMPLETED
        if job.deadline_timer is not None:
            job.deadline_timer.cancel()

    def check_job_end(self, job: JobRecord) -> None:
        """``on_all_tasks_complete=terminatejob`` and nothing left to run: the job completes."""
        if job.spec.on_all_tasks_complete is OnAllTasksComplete.TERMINATE_JOB and all(
            task.state is TaskState.COMPLETED for task in job.tasks.values()
        ):
            self.end_job(job, "AllTasksComplete")

    def expire_job(self, job: JobRecord) -> None:
        """The job's ``max_wall_clock_time`` passed (called from a timer thread)."""
        with self.lock:
            if self.jobs.get(job.spec.id.lower()) is job:
                self.end_job(job, "MaxWallClockTimeExpiry")
                self.dispatch()

    # -- threads ---------------------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        def body() -> None:
            try:
                target(*args)
            finally:
                with self.lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=body, name="batchbox-memory-run", daemon=True)
        self._threads.add(thread)
        thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Kill every process, stop every timer and wait for the run threads to end."""
        with self.lock:
            self.closed = True
            for pool in self.pools.values():
                for node in pool.nodes.values():
                    for run in node.runs:
                        run.cancel()
            for job in self.jobs.values():
                if job.deadline_timer is not None:
                    job.deadline_timer.cancel()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)


def _forget(node: NodeRecord, run: Run) -> None:
    if run in node.runs:
        node.runs.remove(run)
