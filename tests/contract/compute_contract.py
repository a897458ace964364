"""The compute contract (:class:`batchbox.core.compute.ComputeBackend`) and the README's node contract, as tests.

A target subclasses :class:`ComputeContract` and provides the class-scoped fixture ``backend``: a
:class:`~batchbox.core.backend.Backend` whose storage signs the SAS URLs its compute's tasks use. ``wait`` is how
long the target may take to reach a state (a Docker node starts in seconds, an Azure node in minutes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

import pytest

from batchbox.core.backend import Backend
from batchbox.core.compute import ComputeBackend
from batchbox.core.errors import (
    BatchboxError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
    StartTaskFailedError,
)
from batchbox.core.models import (
    EnvironmentSetting,
    JobConstraints,
    JobSpec,
    OutputFile,
    PoolSpec,
    ResourceFile,
    StartTask,
    TaskConstraints,
    TaskInfo,
    TaskSpec,
)
from batchbox.core.states import (
    AllocationState,
    ComputeNodeState,
    ElevationLevel,
    JobState,
    OnAllTasksComplete,
    OutputFileUploadCondition,
    PoolState,
    TaskExecutionResult,
    TaskState,
)
from batchbox.core.storage import ContainerPermission, StorageBackend
from tests.contract.helpers import eventually, unique

__all__ = ["ComputeContract"]

HOUR = timedelta(hours=1)
MARKER_TASK = "/bin/sh -c 'echo ready > $AZ_BATCH_NODE_SHARED_DIR/marker'"


class ComputeContract:
    """What every ComputeBackend does, and what a task on its nodes can rely on."""

    wait: float = 180.0
    """Seconds a target may take to reach a state (nodes started, tasks completed)."""

    # -- provided by each target ------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Backend:
        raise NotImplementedError("a compute contract target provides the class-scoped backend fixture")

    # -- shared -------------------------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def compute(cls, backend: Backend) -> ComputeBackend:
        return backend.compute

    @pytest.fixture(scope="class")
    @classmethod
    def storage(cls, backend: Backend) -> StorageBackend:
        return backend.storage

    @pytest.fixture(scope="class")
    @classmethod
    def pool(cls, compute: ComputeBackend) -> Iterator[str]:
        """One node with three task slots, whose start task (as admin) leaves a marker in the shared directory."""
        pool_id = unique("pool")
        start = StartTask(command_line=MARKER_TASK, elevation=ElevationLevel.ADMIN)
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=1, task_slots_per_node=3, start_task=start))
        try:
            compute.wait_for_nodes(pool_id, timeout=cls.wait, poll_interval=0.5)
            yield pool_id
        finally:
            compute.delete_pool(pool_id)

    @pytest.fixture
    def job(self, compute: ComputeBackend, pool: str) -> Iterator[str]:
        """A fresh job on the shared pool, deleted afterwards."""
        job_id = unique("job")
        compute.create_job(JobSpec(id=job_id, pool_id=pool))
        try:
            yield job_id
        finally:
            with contextlib.suppress(BatchboxError):
                compute.delete_job(job_id)

    @pytest.fixture
    def container(self, storage: StorageBackend) -> Iterator[str]:
        name = unique("c")
        storage.create_container(name)
        try:
            yield name
        finally:
            storage.delete_container(name)

    def completed(self, compute: ComputeBackend, job_id: str, task_id: str) -> TaskInfo:
        """Wait until the task has completed and return it."""
        return eventually(
            lambda: compute.get_task(job_id, task_id),
            lambda task: task.state is TaskState.COMPLETED,
            timeout=self.wait,
            what=f"task {task_id} completed",
        )

    # -- pools and jobs -----------------------------------------------------------------------------------------

    def test_pool_lifecycle_without_nodes(self, compute: ComputeBackend) -> None:
        pool_id = unique("pool")
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0, task_slots_per_node=2, metadata=(("k", "v"),)))
        with pytest.raises(ResourceExistsError) as exists:
            compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
        assert (exists.value.kind, exists.value.name) == ("pool", pool_id)

        info = compute.get_pool(pool_id)
        assert (info.id, info.state, info.target_dedicated_nodes, info.current_dedicated_nodes) == (
            pool_id,
            PoolState.ACTIVE,
            0,
            0,
        )
        assert info.task_slots_per_node == 2 and info.vm_size.lower() == "standard_d2s_v3"
        assert compute.pool_exists(pool_id)
        assert pool_id in [pool.id for pool in compute.list_pools()]
        assert compute.list_nodes(pool_id) == []

        compute.resize_pool(pool_id, 0)
        eventually(
            lambda: compute.get_pool(pool_id).allocation_state,
            lambda state: state is AllocationState.STEADY,
            timeout=self.wait,
            what="steady",
        )

        compute.delete_pool(pool_id)
        assert not compute.pool_exists(pool_id)
        compute.wait_for_pool_deleted(pool_id, timeout=self.wait, poll_interval=0.2)
        assert pool_id not in [pool.id for pool in compute.list_pools()]
        compute.delete_pool(pool_id)  # gone already: nothing happens
        with pytest.raises(ResourceNotFoundError) as missing:
            compute.get_pool(pool_id)
        assert (missing.value.kind, missing.value.name) == ("pool", pool_id)
        with pytest.raises(ResourceNotFoundError):
            compute.list_nodes(pool_id)
        with pytest.raises(ResourceNotFoundError):
            compute.resize_pool(pool_id, 1)

    def test_job_and_many_tasks_on_an_empty_pool(self, compute: ComputeBackend) -> None:
        pool_id, job_id = unique("pool"), unique("job")
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
        compute.create_job(JobSpec(id=job_id, pool_id=pool_id, priority=10))
        with pytest.raises(ResourceExistsError) as exists:
            compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        assert (exists.value.kind, exists.value.name) == ("job", job_id)
        assert compute.job_exists(job_id) and compute.job_state(job_id) is JobState.ACTIVE
        assert (job_id, JobState.ACTIVE) in compute.list_jobs()

        tasks = [
            TaskSpec(id=f"t{i:03d}", command_line=f"/bin/sh -c 'echo {i}'", constraints=TaskConstraints(None, 1))
            for i in range(250)
        ]
        first = compute.add_tasks(job_id, tasks[:120], max_concurrency=3)
        assert first.added == tuple(t.id for t in tasks[:120]) and first.already_existed == ()
        rerun = compute.add_tasks(job_id, tasks, max_concurrency=3)  # a rerun after a crash half-way
        assert rerun.already_existed == tuple(t.id for t in tasks[:120])
        assert rerun.added == tuple(t.id for t in tasks[120:])
        with pytest.raises(InvalidRequestError) as twice:
            compute.add_tasks(job_id, [tasks[0], tasks[0]])
        assert (twice.value.kind, twice.value.name) == ("task", "t000")

        counts = compute.task_counts(job_id)
        assert (counts.active, counts.running, counts.completed, counts.total) == (250, 0, 0, 250)
        active = compute.list_tasks(job_id, state=TaskState.ACTIVE)
        assert sorted(t.id for t in active) == [t.id for t in tasks]
        assert compute.list_tasks(job_id, failed_only=True) == []
        assert compute.list_tasks(job_id, state=TaskState.COMPLETED) == []
        task = compute.get_task(job_id, "t007")
        assert (task.id, task.state, task.exit_code, task.node_id) == ("t007", TaskState.ACTIVE, None, None)

        compute.terminate_task(job_id, "t007")
        stopped = self.completed(compute, job_id, "t007")
        assert stopped.failed and stopped.failure is not None and stopped.failure.code == "TaskEnded"
        compute.terminate_task(job_id, "t007")  # completed already: nothing happens

        compute.terminate_job(job_id)
        eventually(
            lambda: compute.job_state(job_id),
            lambda state: state is JobState.COMPLETED,
            timeout=self.wait,
            what="job completed",
        )
        ended = compute.task_counts(job_id)
        assert (ended.active, ended.completed, ended.failed) == (0, 250, 250)  # unfinished tasks end with the job
        compute.terminate_job(job_id)  # completed already: nothing happens

        compute.delete_job(job_id)
        assert not compute.job_exists(job_id)
        compute.wait_for_job_deleted(job_id, timeout=self.wait, poll_interval=0.2)
        compute.delete_job(job_id)  # gone already: nothing happens
        with pytest.raises(ResourceNotFoundError) as missing:
            compute.job_state(job_id)
        assert (missing.value.kind, missing.value.name) == ("job", job_id)
        compute.delete_pool(pool_id)

    def test_errors_name_the_resource(self, compute: ComputeBackend) -> None:
        pool_id, job_id = unique("pool"), unique("job")
        with pytest.raises(ResourceNotFoundError) as no_job:
            compute.get_task(job_id, "t1")
        assert (no_job.value.kind, no_job.value.name) == ("job", job_id)
        with pytest.raises(ResourceNotFoundError) as no_job_for_tasks:
            compute.add_tasks(job_id, [TaskSpec(id="t1", command_line="true")])
        assert (no_job_for_tasks.value.kind, no_job_for_tasks.value.name) == ("job", job_id)
        for call in (
            lambda: compute.task_counts(job_id),
            lambda: compute.list_tasks(job_id),
            lambda: compute.terminate_job(job_id),
        ):
            with pytest.raises(ResourceNotFoundError):
                call()
        assert not compute.job_exists(job_id)

        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        try:
            with pytest.raises(ResourceNotFoundError) as no_task:
                compute.get_task(job_id, "nosuchtask")
            assert (no_task.value.kind, no_task.value.name) == ("task", "nosuchtask")
            with pytest.raises(ResourceNotFoundError) as no_task_file:
                compute.read_task_file(job_id, "nosuchtask", "stdout.txt")
            assert no_task_file.value.kind == "task"

            with pytest.raises(InvalidRequestError) as invalid:
                compute.create_pool(PoolSpec(id=unique("pool"), dedicated_nodes=0, task_slots_per_node=1000))
            assert invalid.value.kind == "pool" and "taskSlotsPerNode" in str(invalid.value)
        finally:
            compute.delete_job(job_id)
            compute.delete_pool(pool_id)

    # -- tasks on a node ----------------------------------------------------------------------------------------

    def test_tasks_run_on_a_node(self, compute: ComputeBackend, pool: str, job: str) -> None:
        [node] = compute.list_nodes(pool)
        assert node.state in (ComputeNodeState.IDLE, ComputeNodeState.RUNNING)
        assert compute.get_pool(pool).current_dedicated_nodes == 1
        result = compute.add_tasks(
            job,
            [
                TaskSpec(id="ok", command_line="/bin/sh -c 'cat $AZ_BATCH_NODE_SHARED_DIR/marker; echo out > r.txt'"),
                TaskSpec(id="bad", command_line="/bin/sh -c 'echo oops >&2; exit 3'"),
                TaskSpec(id="long", command_line="sleep 600"),
            ],
        )
        assert result.added == ("ok", "bad", "long")
        eventually(
            lambda: compute.get_task(job, "long").state,
            lambda s: s is TaskState.RUNNING,
            timeout=self.wait,
            what="long task running",
        )
        assert compute.list_nodes(pool)[0].running_tasks >= 1
        eventually(lambda: compute.task_counts(job), lambda c: c.completed == 2, timeout=self.wait, what="two done")

        ok = compute.get_task(job, "ok")
        assert (ok.exit_code, ok.result, ok.node_id) == (0, TaskExecutionResult.SUCCESS, node.id)
        assert ok.start_time is not None and ok.end_time is not None and ok.start_time <= ok.end_time
        assert compute.read_task_file(job, "ok", "stdout.txt") == b"ready\n"
        assert compute.read_task_file(job, "ok", "wd/r.txt") == b"out\n"
        with pytest.raises(ResourceNotFoundError) as no_file:
            compute.read_task_file(job, "ok", "wd/nothing.txt")
        assert (no_file.value.kind, no_file.value.name) == ("file", "wd/nothing.txt")

        failed = compute.list_tasks(job, failed_only=True)
        assert [(t.id, t.exit_code, t.failed) for t in failed] == [("bad", 3, True)]
        assert failed[0].failure is not None and failed[0].failure.code == "FailureExitCode"
        assert compute.read_task_file(job, "bad", "stderr.txt") == b"oops\n"
        assert sorted(t.id for t in compute.list_tasks(job, state=TaskState.COMPLETED)) == ["bad", "ok"]

        compute.terminate_task(job, "long")
        assert self.completed(compute, job, "long").failed
        counts = compute.task_counts(job)
        assert (counts.completed, counts.succeeded, counts.failed) == (3, 1, 2)

    def test_task_environment_follows_the_node_contract(self, compute: ComputeBackend, pool: str, job: str) -> None:
        script = (
            "env | grep -E '^(AZ_BATCH_|SHARED_NAME|OWN_NAME)' | sort > env.txt; pwd > pwd.txt; "
            "touch $AZ_BATCH_NODE_SHARED_DIR/from-a-task"
        )
        spec = TaskSpec(
            id="env",
            command_line=f'/bin/sh -c "{script}"',
            environment=(EnvironmentSetting("OWN_NAME", "task value"),),
        )
        compute.add_tasks(job, [spec])
        assert not self.completed(compute, job, "env").failed
        lines = compute.read_task_file(job, "env", "wd/env.txt").decode().splitlines()
        env = dict(line.split("=", 1) for line in lines)
        [node] = compute.list_nodes(pool)
        assert (env["AZ_BATCH_JOB_ID"], env["AZ_BATCH_TASK_ID"]) == (job, "env")
        assert (env["AZ_BATCH_POOL_ID"], env["AZ_BATCH_NODE_ID"]) == (pool, node.id)
        assert env["AZ_BATCH_NODE_IS_DEDICATED"] == "true"
        assert env["OWN_NAME"] == "task value"
        for name in (
            "AZ_BATCH_ACCOUNT_NAME",
            "AZ_BATCH_ACCOUNT_URL",
            "AZ_BATCH_NODE_ROOT_DIR",
            "AZ_BATCH_NODE_SHARED_DIR",
            "AZ_BATCH_NODE_STARTUP_DIR",
            "AZ_BATCH_NODE_MOUNTS_DIR",
            "AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES",
        ):
            assert env.get(name), f"{name} is not set"
        assert env["AZ_BATCH_TASK_WORKING_DIR"] == env["AZ_BATCH_TASK_DIR"] + "/wd"
        assert compute.read_task_file(job, "env", "wd/pwd.txt").decode().strip() == env["AZ_BATCH_TASK_WORKING_DIR"]
        assert env["AZ_BATCH_TASK_DIR"].endswith(f"workitems/{job}/job-1/env")
        assert env["AZ_BATCH_NODE_SHARED_DIR"] == env["AZ_BATCH_NODE_ROOT_DIR"] + "/shared"

    def test_job_settings_come_before_the_task_own(self, compute: ComputeBackend, pool: str) -> None:
        job_id = unique("job")
        common = (EnvironmentSetting("WHO", "job"), EnvironmentSetting("JOB_ONLY", "yes"))
        compute.create_job(JobSpec(id=job_id, pool_id=pool, environment=common))
        try:
            spec = TaskSpec(
                id="t",
                command_line="/bin/sh -c 'echo $WHO $JOB_ONLY'",
                environment=(EnvironmentSetting("WHO", "task"),),
            )
            compute.add_tasks(job_id, [spec])
            assert not self.completed(compute, job_id, "t").failed
            assert compute.read_task_file(job_id, "t", "stdout.txt") == b"task yes\n"
        finally:
            compute.delete_job(job_id)

    def test_command_line_is_not_run_in_a_shell(self, compute: ComputeBackend, job: str) -> None:
        compute.add_tasks(
            job,
            [
                TaskSpec(id="literal", command_line="echo $HOME 'a  b'"),
                TaskSpec(id="missing", command_line="no-such-program-here --flag"),
            ],
        )
        self.completed(compute, job, "literal")
        assert compute.read_task_file(job, "literal", "stdout.txt") == b"$HOME a  b\n"
        missing = self.completed(compute, job, "missing")
        assert missing.failed and missing.exit_code == 127
        assert missing.failure is not None and missing.failure.code == "CommandProgramNotFound"

    def test_resource_and_output_files_go_through_the_storage(
        self, compute: ComputeBackend, storage: StorageBackend, job: str, container: str
    ) -> None:
        storage.upload_bytes(container, "in/one.txt", b"one\n")
        storage.upload_bytes(container, "in/two.txt", b"two\n")
        storage.upload_bytes(container, "other/three.txt", b"three\n")
        reader = storage.container_sas_url(container, [ContainerPermission.READ, ContainerPermission.LIST], expiry=HOUR)
        writer = storage.container_sas_url(
            container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=HOUR
        )
        task = TaskSpec(
            id="files",
            command_line="/bin/sh -c 'cat single.txt inputs/in/*.txt > all.txt; mkdir -p res; cp all.txt res/a.txt'",
            resource_files=(
                ResourceFile(
                    http_url=storage.blob_sas_url(container, "other/three.txt", expiry=HOUR), file_path="single.txt"
                ),
                ResourceFile(storage_container_url=reader, blob_prefix="in/", file_path="inputs"),
            ),
            output_files=(
                OutputFile(file_pattern="all.txt", container_url=writer, path="out/all.txt"),
                OutputFile(file_pattern="res/*.txt", container_url=writer, path="out/res"),
                OutputFile(
                    file_pattern="all.txt",
                    container_url=writer,
                    path="out/only-on-failure.txt",
                    upload_condition=OutputFileUploadCondition.TASK_FAILURE,
                ),
            ),
        )
        missing = TaskSpec(
            id="missing-input",
            command_line="/bin/sh -c 'echo ran'",
            resource_files=(
                ResourceFile(http_url=storage.blob_sas_url(container, "in/none.txt", expiry=HOUR), file_path="x"),
            ),
        )
        compute.add_tasks(job, [task, missing])
        assert not self.completed(compute, job, "files").failed
        assert storage.read_blob(container, "out/all.txt") == b"three\none\ntwo\n"
        assert storage.read_blob(container, "out/res/a.txt") == b"three\none\ntwo\n"
        assert "out/only-on-failure.txt" not in {blob.name for blob in storage.list_blobs(container, "out/")}

        failed = self.completed(compute, job, "missing-input")
        assert failed.failed and failed.exit_code is None
        assert failed.failure is not None and failed.failure.code == "BlobNotFound"

    def test_retries_and_the_wall_clock_limit(self, compute: ComputeBackend, pool: str) -> None:
        job_id = unique("job")
        compute.create_job(JobSpec(id=job_id, pool_id=pool, constraints=JobConstraints(max_task_retry_count=1)))
        try:
            compute.add_tasks(
                job_id,
                [
                    TaskSpec(
                        id="retried",
                        command_line="/bin/sh -c 'exit 5'",
                        constraints=TaskConstraints(max_task_retry_count=2),
                    ),
                    TaskSpec(id="job-default", command_line="/bin/sh -c 'exit 6'"),
                    TaskSpec(
                        id="too-long",
                        command_line="sleep 60",
                        constraints=TaskConstraints(max_wall_clock_time=timedelta(seconds=1)),
                    ),
                ],
            )
            retried = self.completed(compute, job_id, "retried")
            assert (retried.exit_code, retried.retry_count, retried.failed) == (5, 2, True)
            assert retried.failure is not None and retried.failure.code == "FailureExitCode"
            job_default = self.completed(compute, job_id, "job-default")
            assert (job_default.exit_code, job_default.retry_count) == (6, 1)
            too_long = self.completed(compute, job_id, "too-long")
            assert too_long.failed and too_long.retry_count == 0
            assert too_long.failure is not None and too_long.failure.code == "TaskEnded"
        finally:
            compute.delete_job(job_id)

    def test_a_job_ends_when_its_tasks_complete_if_asked(self, compute: ComputeBackend, pool: str) -> None:
        job_id = unique("job")
        compute.create_job(JobSpec(id=job_id, pool_id=pool, on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB))
        try:
            compute.add_tasks(job_id, [TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(3)])
            eventually(
                lambda: compute.job_state(job_id),
                lambda state: state is JobState.COMPLETED,
                timeout=self.wait,
                what="job completed",
            )
            assert compute.task_counts(job_id).succeeded == 3
            with pytest.raises(BatchboxError):
                compute.add_tasks(job_id, [TaskSpec(id="late", command_line="/bin/true")])
        finally:
            compute.delete_job(job_id)

    # -- nodes --------------------------------------------------------------------------------------------------

    def test_failed_start_task_makes_no_node_usable(self, compute: ComputeBackend) -> None:
        pool_id = unique("pool")
        start = StartTask(command_line="/bin/sh -c 'echo broken >&2; exit 3'", wait_for_success=True)
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=1, start_task=start))
        try:
            with pytest.raises(StartTaskFailedError) as caught:
                compute.wait_for_nodes(pool_id, timeout=self.wait, poll_interval=0.5)
            [node] = compute.list_nodes(pool_id)
            assert node.state is ComputeNodeState.START_TASK_FAILED
            assert list(caught.value.node_failures) == [node.id]
            assert node.start_task_failure is not None
        finally:
            compute.delete_pool(pool_id)

    def test_removing_a_node_requeues_its_task(self, compute: ComputeBackend) -> None:
        pool_id, job_id = unique("pool"), unique("job")
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=1))
        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        try:
            compute.wait_for_nodes(pool_id, timeout=self.wait, poll_interval=0.5)
            compute.add_tasks(job_id, [TaskSpec(id="long", command_line="sleep 600")])
            eventually(
                lambda: compute.get_task(job_id, "long").state,
                lambda state: state is TaskState.RUNNING,
                timeout=self.wait,
                what="long task running",
            )
            compute.resize_pool(pool_id, 0)
            requeued = eventually(
                lambda: compute.get_task(job_id, "long"),
                lambda task: task.state is TaskState.ACTIVE,
                timeout=self.wait,
                what="task back to active",
            )
            assert requeued.requeue_count == 1 and requeued.retry_count == 0
        finally:
            compute.delete_job(job_id)
            compute.delete_pool(pool_id)

    def test_an_updated_start_task_is_what_joining_nodes_run(self, compute: ComputeBackend) -> None:
        pool_id, job_id = unique("pool"), unique("job")
        old = StartTask(command_line="/bin/sh -c 'echo old > $AZ_BATCH_NODE_SHARED_DIR/which'")
        new = StartTask(command_line="/bin/sh -c 'echo new > $AZ_BATCH_NODE_SHARED_DIR/which'")
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0, start_task=old))
        try:
            with pytest.raises(ResourceNotFoundError) as missing:
                compute.update_start_task(unique("nopool"), new)
            assert missing.value.kind == "pool"
            compute.update_start_task(pool_id, new)
            steady = compute.wait_for_steady(pool_id, timeout=self.wait, poll_interval=0.5)
            assert steady.allocation_state is AllocationState.STEADY and steady.resize_errors == ()
            compute.resize_pool(pool_id, 1)
            compute.wait_for_nodes(pool_id, timeout=self.wait, poll_interval=0.5)
            compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
            reader = "/bin/sh -c 'cat $AZ_BATCH_NODE_SHARED_DIR/which'"
            compute.add_tasks(job_id, [TaskSpec(id="which", command_line=reader)])
            task = self.completed(compute, job_id, "which")
            assert task.exit_code == 0
            assert compute.read_task_file(job_id, "which", "stdout.txt") == b"new\n"
        finally:
            with contextlib.suppress(BatchboxError):
                compute.delete_job(job_id)
            compute.delete_pool(pool_id)
