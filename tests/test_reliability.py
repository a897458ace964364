"""Faults, each with real processes and containers: a node container killed mid-task, the emulator SIGKILLed
mid-job, Azurite stopped for 30 s while tasks move files, ``batchbox run`` killed during task submission, and
Docker or Azurite unreachable at start.

Every fault test asserts that nothing was lost and that nothing which had already completed ran twice. Runs are
made visible outside the emulator: tasks append lines to a file in their node's shared directory (a host
directory under the emulator's state dir) or upload a blob under a name unique to the run.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError as AzureNotFound

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import AzuriteProcess, find_free_port, read_pid_file, stop_pid
from batchbox.backends.local.stack import LocalStack
from batchbox.core.errors import BatchboxError
from batchbox.core.storage import ContainerPermission

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
_TEST_LABELS = "batchbox.test=1"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def idle_nodes(client: BatchClient, pool_id: str, count: int, timeout: float = 90.0) -> list[m.BatchNode]:
    def probe() -> list[m.BatchNode] | None:
        nodes = list(client.list_nodes(pool_id))
        if len(nodes) == count and all(n.state == m.BatchNodeState.IDLE for n in nodes):
            return nodes
        return None

    return wait_for(f"{count} idle node(s) in pool {pool_id}", probe, timeout)


def task_total(client: BatchClient, job_id: str) -> int:
    counts = client.get_job_task_counts(job_id).task_counts
    return int(counts.active + counts.running + counts.completed)


def rest_doc(model: Any) -> dict[str, Any]:
    """A REST model as its JSON document, without the per-response ``odata.metadata``."""
    doc: dict[str, Any] = model.as_dict()
    doc.pop("odata.metadata", None)
    return doc


def runs_lines(nodes_dir: Path, name: str) -> list[str]:
    """Every line tasks appended to ``shared/<name>`` on any node (node dirs outlive their containers)."""
    lines: list[str] = []
    for path in sorted(nodes_dir.glob(f"*/shared/{name}")):
        lines += path.read_text().splitlines()
    return lines


# ------------------------------------------------------------------------------------------ a CLI-driven stack
class CliStack:
    """A local stack under its own home, on its own ports, driven through ``batchbox`` like a user would.

    Its node containers carry ``batchbox.test=1``; ``close`` stops the services by PID and removes the nodes.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.azurite_port = find_free_port()
        self.emulator_port = find_free_port()
        self.local = LocalStack(home, azurite_port=self.azurite_port, emulator_port=self.emulator_port)
        self.nodes_dir = home / "emulator" / "nodes"
        self._clients: list[BatchClient] = []
        self.restarted: list[AzuriteProcess] = []
        """Azurite processes a test started in place of the stack's own (stopped by ``local down``, reaped here)."""

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
        env.update(
            BATCHBOX_HOME=str(self.home),
            BATCHBOX_AZURITE_PORT=str(self.azurite_port),
            BATCHBOX_EMULATOR_PORT=str(self.emulator_port),
            BATCHBOX_NODE_LABELS=_TEST_LABELS,
        )
        env.update(extra)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "batchbox.cli.main", *args]

    def cli(self, *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, env=self.env(), cwd=REPO, timeout=timeout
        )

    def client(self) -> BatchClient:
        endpoints = self.local.endpoints()
        client = BatchClient(endpoints.batch_url, AzureNamedKeyCredential(endpoints.batch_account, endpoints.batch_key))
        self._clients.append(client)
        return client

    def storage(self) -> BlobStorage:
        return BlobStorage.from_connection_string(self.local.endpoints().storage_connection_string)

    def azurite_pid(self) -> int:
        info = read_pid_file(self.local.azurite_dir / AzuriteProcess.PID_FILE_NAME)
        assert info is not None, "the stack's Azurite wrote no pid file"
        return info.pid

    def close(self, docker_client: docker.DockerClient) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        with contextlib.suppress(subprocess.SubprocessError):
            self.cli("local", "down", "--remove-nodes", timeout=60)
        for process in self.restarted:
            process.stop()
        for container in docker_client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"batchbox.emulator={self.local.instance_label}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


@pytest.fixture(scope="module")
def cli_stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, node_image: str
) -> Iterator[CliStack]:
    stack = CliStack(tmp_path_factory.mktemp("reliability-home"))
    try:
        up = stack.cli("local", "up", "--node-image", node_image, timeout=120)
        assert up.returncode == 0, up.stderr
        yield stack
    finally:
        stack.close(docker_client)


def delete_quietly(client: BatchClient, job_id: str | None = None, pool_id: str | None = None) -> None:
    with contextlib.suppress(Exception):
        if job_id:
            client.begin_delete_job(job_id, polling_interval=1)
    with contextlib.suppress(Exception):
        if pool_id:
            client.begin_delete_pool(pool_id, polling_interval=1)


# ------------------------------------------------------------------------- fault 1: docker kill of a busy node
# Each run writes out/<random>/result.txt, uploaded as <task>/<random>/result.txt: a run that uploads twice
# leaves two blobs, so "exactly once" is checkable.
_RUN_AND_UPLOAD = (
    "/bin/sh -c 'touch $AZ_BATCH_TASK_WORKING_DIR/started; sleep {sleep}; run=$(cat /proc/sys/kernel/random/uuid); "
    'mkdir -p out/$run && echo "result of $AZ_BATCH_TASK_ID" > out/$run/result.txt\''
)


def _uploading_task(task_id: str, sas_url: str, sleep: float) -> m.BatchTaskCreateOptions:
    return m.BatchTaskCreateOptions(
        id=task_id,
        command_line=_RUN_AND_UPLOAD.format(sleep=sleep),
        output_files=[
            m.OutputFile(
                file_pattern="out/*/result.txt",
                destination=m.OutputFileDestination(
                    container=m.OutputFileBlobContainerDestination(container_url=sas_url, path=task_id)
                ),
                upload_options=m.OutputFileUploadConfiguration(
                    upload_condition=m.OutputFileUploadCondition.TASK_SUCCESS
                ),
            )
        ],
    )


def test_docker_kill_requeues_the_task_which_uploads_its_output_once_and_the_node_is_replaced(
    emulator: Any, blob_storage: BlobStorage, blob_container: str
) -> None:
    client = emulator.batch_client()
    pool_id, job_id = unique("kill"), unique("killjob")
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id, vm_size="standard_d2_v3", virtual_machine_configuration=_VM, target_dedicated_nodes=2
        )
    )
    try:
        idle_nodes(client, pool_id, 2)
        sas = blob_storage.container_sas_url(
            blob_container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=1)
        )
        client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
        # Two tasks at once on two one-slot nodes: one completes on each node before the fault.
        client.create_tasks(job_id, [_uploading_task(f"done{i}", sas, 1) for i in range(2)])
        wait_for("the first tasks", lambda: client.get_job_task_counts(job_id).task_counts.succeeded == 2)
        done_before = {f"done{i}": client.get_task(job_id, f"done{i}") for i in range(2)}
        assert len({t.node_info.node_id for t in done_before.values()}) == 2

        client.create_task(job_id, _uploading_task("victim", sas, 5))
        running = wait_for(
            "the victim to run",
            lambda: (t := client.get_task(job_id, "victim")).state == m.BatchTaskState.RUNNING and t,
        )
        lost = running.node_info.node_id
        lost_task_dir = emulator.state_dir / "nodes" / lost / running.node_info.task_root_directory
        wait_for("the victim's process to start", lambda: (lost_task_dir / "wd" / "started").exists())
        (container,) = [c for c in emulator.containers() if c.labels.get("batchbox.node") == lost]
        container.kill()

        states_after_kill: list[str] = []

        def lost_node_gone() -> bool:
            try:
                states_after_kill.append(str(client.get_node(pool_id, lost).state))
            except AzureNotFound:
                return True
            return False

        wait_for("the lost node to leave the pool", lost_node_gone, interval=0.05)
        print(f"states of the killed node until it left the pool: {sorted(set(states_after_kill))}")
        task = wait_for(
            "the victim to complete",
            lambda: (t := client.get_task(job_id, "victim")).state == m.BatchTaskState.COMPLETED and t,
        )
        info = task.execution_info
        assert (info.requeue_count, info.retry_count) == (1, 0)
        assert info.result == m.BatchTaskExecutionResult.SUCCESS and info.exit_code == 0
        assert task.node_info.node_id != lost

        # The output blob exists exactly once, with the right content; the killed run uploaded nothing.
        blobs = sorted(b.name for b in blob_storage.list_blobs(blob_container))
        per_task = Counter(name.split("/")[0] for name in blobs)
        assert per_task == {"done0": 1, "done1": 1, "victim": 1}, blobs
        for name in blobs:
            assert blob_storage.read_blob(blob_container, name) == f"result of {name.split('/')[0]}\n".encode()
        assert (lost_task_dir / "wd" / "started").exists()
        assert not (lost_task_dir / "fileuploadout.txt").exists()

        # What had completed on the lost node did not run again and kept its record.
        for task_id, before in done_before.items():
            after = client.get_task(job_id, task_id)
            assert rest_doc(after) == rest_doc(before)
        counts = client.get_job_task_counts(job_id).task_counts
        assert (counts.active, counts.running, counts.succeeded, counts.failed) == (0, 0, 3, 0)

        # Batch marks a lost node unusable and (here) replaces it: never idle again, gone, pool back at target.
        assert m.BatchNodeState.IDLE not in states_after_kill
        nodes = idle_nodes(client, pool_id, 2)
        assert lost not in {n.id for n in nodes}
        assert [c for c in emulator.containers() if c.labels.get("batchbox.node") == lost] == []
        pool = client.get_pool(pool_id)
        assert (pool.current_dedicated_nodes, pool.target_dedicated_nodes) == (2, 2)
    finally:
        delete_quietly(client, job_id, pool_id)


# --------------------------------------------------------------------------- fault 2: SIGKILL of the emulator
_LOGGED_RUN = (
    '/bin/sh -c \'echo "start $AZ_BATCH_TASK_ID" >> $AZ_BATCH_NODE_SHARED_DIR/{log}; sleep {sleep}; '
    'echo "end $AZ_BATCH_TASK_ID" >> $AZ_BATCH_NODE_SHARED_DIR/{log}\''
)


def test_emulator_sigkill_mid_job_loses_nothing_and_reruns_nothing(emulator: Any) -> None:
    client = emulator.batch_client()
    pool_id, job_id = unique("crash"), unique("crashjob")
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=_VM,
            target_dedicated_nodes=2,
            task_slots_per_node=2,
        )
    )
    fresh: BatchClient | None = None
    try:
        node_ids = {n.id for n in idle_nodes(client, pool_id, 2)}
        client.create_job(
            m.BatchJobCreateOptions(
                id=job_id,
                pool_info=m.BatchPoolInfo(pool_id=pool_id),
                all_tasks_complete_mode=m.BatchAllTasksCompleteMode.TERMINATE_JOB,
            )
        )
        count = 16
        log = f"{job_id}.runs"
        task_ids = [f"c{i:02d}" for i in range(count)]
        client.create_task_collection(
            job_id,
            m.BatchTaskGroup(
                task_values=[
                    m.BatchTaskCreateOptions(id=t, command_line=_LOGGED_RUN.format(log=log, sleep=2)) for t in task_ids
                ]
            ),
        )

        def mid_job() -> m.BatchTaskCounts | None:
            c = client.get_job_task_counts(job_id).task_counts
            return c if c.completed >= 4 and c.running == 4 and c.active > 0 else None

        wait_for("tasks running, queued and completed at once", mid_job, interval=0.05)
        before = {t.id: t for t in client.list_tasks(job_id)}
        emulator.kill()
        completed_before = {t for t, task in before.items() if task.state == m.BatchTaskState.COMPLETED}
        # Processes running at the crash: started (a line in the host-visible log) and not finished.
        at_kill = runs_lines(emulator.state_dir / "nodes", log)
        running_at_kill = {line.split()[1] for line in at_kill if line.startswith("start ")} - {
            line.split()[1] for line in at_kill if line.startswith("end ")
        }
        assert completed_before and running_at_kill and len(completed_before) + len(running_at_kill) < count
        print(f"emulator killed with {len(completed_before)} completed, {len(running_at_kill)} running")
        time.sleep(2)  # running tasks finish while the emulator is down; their agents buffer the results
        emulator.start()
        fresh = emulator.batch_client()

        # Intact at once: the pool with the same nodes, the job, every task, completed records unchanged.
        pool = fresh.get_pool(pool_id)
        assert pool.target_dedicated_nodes == 2 and pool.task_slots_per_node == 2
        assert fresh.get_job(job_id).pool_info.pool_id == pool_id
        assert sorted(t.id for t in fresh.list_tasks(job_id)) == task_ids
        for task_id in completed_before:
            assert rest_doc(fresh.get_task(job_id, task_id)) == rest_doc(before[task_id])

        job = wait_for(
            "the job to complete",
            lambda: (j := fresh.get_job(job_id)).state == m.BatchJobState.COMPLETED and j,
            timeout=120,
        )
        assert job.execution_info.termination_reason == "AllTasksComplete"
        counts = fresh.get_job_task_counts(job_id).task_counts
        assert (counts.active, counts.running, counts.completed, counts.succeeded, counts.failed) == (
            0,
            0,
            count,
            count,
            0,
        )
        lines = runs_lines(emulator.state_dir / "nodes", log)
        starts = Counter(line.split()[1] for line in lines if line.startswith("start "))
        ends = Counter(line.split()[1] for line in lines if line.startswith("end "))
        assert ends == dict.fromkeys(task_ids, 1), "every task finished exactly once"
        for task_id in task_ids:
            info = fresh.get_task(job_id, task_id).execution_info
            assert info.retry_count == 0
            # A run assigned but not yet received by its agent when the emulator died is requeued unstarted.
            assert 1 <= starts[task_id] <= 1 + info.requeue_count
        for task_id in running_at_kill:  # kept running through the crash and reported after the reconnect
            assert fresh.get_task(job_id, task_id).execution_info.requeue_count == 0
            assert starts[task_id] == 1
        assert {n.id for n in idle_nodes(fresh, pool_id, 2)} == node_ids, "the nodes were re-adopted"
    finally:
        delete_quietly(fresh or client, job_id, pool_id)


# ------------------------------------------------------------- fault 4: `batchbox run` killed during submission
_MANY_TASKS = """
from batchbox.core import TaskSpec
from batchbox.core.workload import Workload


class Many(Workload):
    job_id = "{job}"
    pool_id = "{pool}"
    node_count = 2
    task_slots_per_node = 4

    def tasks(self, staged):
        line = "echo $AZ_BATCH_TASK_ID >> $AZ_BATCH_NODE_SHARED_DIR/{job}.runs"
        return [TaskSpec(id=f"t{{i:04d}}", command_line=f"/bin/sh -c '{{line}}'") for i in range({count})]
"""


class _LinePump:
    """Reads a pipe line by line in a thread; ``wait_for(text)`` blocks until a line contains ``text``."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(text in line for line in self.lines), timeout)

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def _kill_during_submission(process: subprocess.Popen[str], client: BatchClient, job_id: str, count: int) -> int:
    """Let the CLI run in short bursts (SIGCONT / SIGSTOP) until the emulator holds some but not all of its tasks,
    then SIGKILL it. Returns how many tasks existed when it died."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(0.05)
        if task_total(client, job_id) > 0:
            time.sleep(0.5)  # requests already sent are served; a stopped client sends nothing new
            process.kill()
            process.wait(timeout=30)
            time.sleep(0.5)
            submitted = task_total(client, job_id)
            assert submitted < count, "the whole submission went through in one burst; nothing was interrupted"
            return submitted
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.002)
    pytest.fail("no task reached the emulator within 60 s")


def test_run_killed_during_submission_resumes_with_exactly_the_intended_tasks(
    cli_stack: CliStack, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    job_id, pool_id, count = f"sub-{suffix}", f"sub-pool-{suffix}", 1500
    workload = tmp_path / "many.py"
    workload.write_text(_MANY_TASKS.format(job=job_id, pool=pool_id, count=count))
    args = ("run", str(workload), "--yes", "--keep-job", "--keep-pool", "--output-dir", str(tmp_path / "out"))
    client = cli_stack.client()
    try:
        first = subprocess.Popen(
            cli_stack.command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_stack.env(),
            cwd=REPO,
        )
        try:
            stderr = _LinePump(first.stderr)
            assert stderr.wait_for("step tasks", timeout=120), stderr.lines
            submitted = _kill_during_submission(first, client, job_id, count)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=30)
        print(f"killed with {submitted} of {count} tasks submitted")
        assert first.returncode == -signal.SIGKILL
        pool_created = client.get_pool(pool_id).creation_time
        nodes_before = {n.id for n in client.list_nodes(pool_id)}

        second = cli_stack.cli(*args)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"job {job_id}: {count} succeeded, 0 failed of {count}" in second.stdout
        assert f"reusing pool {pool_id}" in second.stderr
        assert f"resuming job {job_id}" in second.stderr
        assert f"{submitted} task(s) were added by an earlier run" in second.stderr

        tasks = list(client.list_tasks(job_id))
        assert sorted(t.id for t in tasks) == [f"t{i:04d}" for i in range(count)]
        assert all(t.execution_info.retry_count == 0 and t.execution_info.requeue_count == 0 for t in tasks)
        runs = Counter(runs_lines(cli_stack.nodes_dir, f"{job_id}.runs"))
        assert runs == {f"t{i:04d}": 1 for i in range(count)}, "every task ran exactly once"
        assert client.get_pool(pool_id).creation_time == pool_created
        assert {n.id for n in client.list_nodes(pool_id)} == nodes_before
    finally:
        delete_quietly(client, job_id, pool_id)


# ------------------------------------------------------------------- fault 3: Azurite stopped for 30 seconds
# Every task downloads its input, then waits for go-<task id> in its node's shared directory (the test creates
# it through the host side of the node's root), then uploads its output. The test stops Azurite while six tasks
# hold their inputs and four wait for a slot, releases four of the six during the outage (their uploads fail),
# lets the four queued ones try their downloads during the outage (they fail), restarts Azurite 30 s after
# stopping it and releases the last two, whose uploads then succeed.
_OUTAGE_WORKLOAD = """
from pathlib import Path

from batchbox.core import OutputFile, TaskSpec
from batchbox.core.workload import Workload

INPUTS = Path(__file__).resolve().parent / "inputs"


class Outage(Workload):
    job_id = "{job}"
    pool_id = "{pool}"
    node_count = 2
    task_slots_per_node = 3

    def input_files(self):
        return sorted(INPUTS.glob("*.txt"))

    def tasks(self, staged):
        specs = []
        for name in sorted(staged.inputs):
            task_id = name[: -len(".txt")]
            script = (
                "touch started; "
                'until [ -e "$AZ_BATCH_NODE_SHARED_DIR/go-$AZ_BATCH_TASK_ID" ]; do sleep 0.1; done; '
                f"tr a-z A-Z < {{name}} > {{task_id}}.out"
            )
            output = OutputFile(file_pattern=f"{{task_id}}.out", container_url=staged.output_container_url,
                                path=f"{{task_id}}.out")
            specs.append(TaskSpec(id=task_id, command_line=f"/bin/sh -c '{{script}}'",
                                  resource_files=(staged.input_file(name),), output_files=(output,)))
        return specs
"""
OUTAGE_SECONDS = 30.0


def _release(cli_stack: CliStack, client: BatchClient, job_id: str, task_id: str) -> None:
    node_id = client.get_task(job_id, task_id).node_info.node_id
    (cli_stack.nodes_dir / node_id / "shared" / f"go-{task_id}").touch()


def test_azurite_down_for_30_seconds_fails_the_affected_tasks_cleanly_and_the_run_ends(
    cli_stack: CliStack, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    job_id, pool_id = f"outage-{suffix}", f"outage-pool-{suffix}"
    (tmp_path / "inputs").mkdir()
    task_ids = [f"f{i}" for i in range(10)]
    for task_id in task_ids:
        (tmp_path / "inputs" / f"{task_id}.txt").write_text(f"input of {task_id}\n")
    workload = tmp_path / "outage.py"
    workload.write_text(_OUTAGE_WORKLOAD.format(job=job_id, pool=pool_id))
    out = tmp_path / "out"
    client = cli_stack.client()
    run = subprocess.Popen(
        cli_stack.command("run", str(workload), "--yes", "--keep-job", "--output-dir", str(out)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_stack.env(),
        cwd=REPO,
    )
    try:
        stdout, stderr = _LinePump(run.stdout), _LinePump(run.stderr)

        def holding_inputs() -> list[str] | None:
            try:
                tasks = list(client.list_tasks(job_id))
            except AzureNotFound:
                return None
            started = [
                t.id
                for t in tasks
                if t.state == m.BatchTaskState.RUNNING
                and (
                    cli_stack.nodes_dir / t.node_info.node_id / t.node_info.task_root_directory / "wd" / "started"
                ).exists()
            ]
            return sorted(started) if len(started) == 6 else None

        holding = wait_for("six tasks holding their inputs", holding_inputs, timeout=120)
        queued = sorted(set(task_ids) - set(holding))
        uploads_during_outage, uploads_after = holding[:4], holding[4:]
        azurite_pid = cli_stack.azurite_pid()
        stopped_at = time.monotonic()
        assert stop_pid(azurite_pid)
        try:
            for task_id in uploads_during_outage:
                _release(cli_stack, client, job_id, task_id)

            def outage_casualties_done() -> bool:
                done = {t.id for t in client.list_tasks(job_id) if t.state == m.BatchTaskState.COMPLETED}
                return done >= set(uploads_during_outage) | set(queued)

            wait_for("the tasks hit by the outage to complete", outage_casualties_done, timeout=OUTAGE_SECONDS - 5)
        finally:
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
            restarted = AzuriteProcess(cli_stack.local.azurite_dir, port=cli_stack.azurite_port, detached=True)
            cli_stack.restarted.append(restarted)
            restarted.start()
        for task_id in uploads_after:
            _release(cli_stack, client, job_id, task_id)
        code = run.wait(timeout=120)  # never hangs
        report = stdout.text()
        assert code == 1, report + stderr.text()

        assert f"job {job_id}: 2 succeeded, 8 failed of 10" in report
        for task_id in uploads_during_outage:
            info = client.get_task(job_id, task_id).execution_info
            assert info.exit_code == 0 and info.result == m.BatchTaskExecutionResult.FAILURE
            assert info.failure_info.code == "FileUploadMiscError", info.failure_info
            assert info.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
            assert f"FAILED {task_id}: exit code 0; FileUploadMiscError" in report
        for task_id in queued:
            info = client.get_task(job_id, task_id).execution_info
            assert info.exit_code is None and info.result == m.BatchTaskExecutionResult.FAILURE
            assert info.failure_info.code == "BlobDownloadMiscError", info.failure_info
            assert info.failure_info.category == m.BatchErrorSourceCategory.SERVER_ERROR
            assert f"FAILED {task_id}: exit code None; BlobDownloadMiscError" in report
        for task_id in uploads_after:
            info = client.get_task(job_id, task_id).execution_info
            assert info.result == m.BatchTaskExecutionResult.SUCCESS and info.failure_info is None
        assert all(t.execution_info.retry_count == 0 for t in client.list_tasks(job_id))

        # The output dir holds exactly the outputs that exist, whole: no partial or temporary files.
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        assert written == sorted(f"{t}.out" for t in uploads_after)
        for task_id in uploads_after:
            assert (out / f"{task_id}.out").read_text() == f"INPUT OF {task_id.upper()}\n"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
        if not cli_stack.local.azurite_status().running:
            restarted = AzuriteProcess(cli_stack.local.azurite_dir, port=cli_stack.azurite_port, detached=True)
            cli_stack.restarted.append(restarted)
            with contextlib.suppress(BatchboxError):
                restarted.start()
        delete_quietly(client, job_id, pool_id)


def test_download_cut_by_a_storage_outage_leaves_no_partial_file(tmp_path: Path) -> None:
    """The collect step's download (BlobStorage.download_container) when Azurite dies mid-transfer."""
    azurite = AzuriteProcess(tmp_path / "azurite", port=0, in_memory=True).start()
    destination = tmp_path / "out"
    try:
        storage = BlobStorage.from_connection_string(azurite.connection_string, retry_total=1, retry_backoff=1)
        storage.create_container("outputs")
        storage.upload_bytes("outputs", "small.txt", b"small\n")
        storage.upload_bytes("outputs", "big.bin", os.urandom(256 * 1024 * 1024))
        stop = threading.Event()

        def kill_when_a_part_file_grows() -> None:
            while not stop.is_set():
                if any(p.stat().st_size > 0 for p in destination.glob("*.part-*") if p.exists()):
                    os.kill(azurite.pid, signal.SIGKILL)
                    return
                time.sleep(0.002)

        killer = threading.Thread(target=kill_when_a_part_file_grows, daemon=True)
        killer.start()
        with pytest.raises(BatchboxError):
            storage.download_container("outputs", destination, max_concurrency=1)
        stop.set()
        killer.join(timeout=5)
        assert azurite.pid and not azurite.is_running(), "Azurite was not killed mid-download"
        leftovers = sorted(p.name for p in destination.rglob("*") if p.is_file())
        assert "big.bin" not in leftovers and not [p for p in leftovers if ".part" in p], leftovers
        storage.close()
    finally:
        azurite.stop()


# ------------------------------------------------------------- fault 5: Docker or Azurite unreachable at start
_TINY_WORKLOAD = """
from pathlib import Path

from batchbox.core import TaskSpec
from batchbox.core.workload import Workload


class Tiny(Workload):
    job_id = "tiny-job"
    pool_id = "tiny-pool"

    def input_files(self):
        return [Path(__file__)]

    def tasks(self, staged):
        return [TaskSpec(id="t", command_line="/bin/true")]
"""


@pytest.fixture
def not_azurite() -> Iterator[int]:
    """A loopback HTTP server that is not Azurite (it answers 404 to everything)."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("case", ["docker", "azurite-not-installed", "azurite-port-taken"])
def test_unreachable_service_at_start_is_one_line_and_creates_nothing(
    case: str, tmp_path: Path, docker_client: docker.DockerClient, request: pytest.FixtureRequest
) -> None:
    stack = CliStack(tmp_path / "home")
    workload = tmp_path / "tiny.py"
    workload.write_text(_TINY_WORKLOAD)
    env = stack.env()
    if case == "docker":
        env["DOCKER_HOST"] = "unix:///nonexistent.sock"
    elif case == "azurite-not-installed":
        env["BATCHBOX_AZURITE_JS"] = str(tmp_path / "no-node-modules" / "main.js")
    else:
        stack.azurite_port = request.getfixturevalue("not_azurite")
        env["BATCHBOX_AZURITE_PORT"] = str(stack.azurite_port)
    done = subprocess.run(
        stack.command("run", str(workload), "--yes", "--output-dir", str(tmp_path / "out")),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    if case == "docker":
        assert line.startswith("batchbox: error: docker is not reachable: the engine at unix:///nonexistent.sock")
        assert "make setup" in line and "dockerd" in line
    elif case == "azurite-not-installed":
        assert line.startswith("batchbox: error: Azurite is not reachable:")
        assert "no-node-modules/main.js" in line and "make setup" in line
    else:
        assert line.startswith("batchbox: error: Azurite is not reachable:")
        assert f"port {stack.azurite_port} is taken by another program; set BATCHBOX_AZURITE_PORT" in line

    # Nothing was created: no state, no services, no node containers, nothing in storage or Batch.
    assert not stack.home.exists() or list(stack.home.rglob("*")) == []
    assert not stack.local.emulator_status().running
    assert case == "azurite-port-taken" or not stack.local.azurite_status().running
    assert (
        docker_client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"batchbox.emulator={stack.local.instance_label}"}
        )
        == []
    )
    assert not (tmp_path / "out").exists()
