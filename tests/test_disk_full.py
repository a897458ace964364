"""A full disk under the emulator's state directory, and under its node directories.

Each test puts the directory on a small tmpfs of its own (``mount -t tmpfs -o size=...``; it needs root and is
skipped without it) and unmounts it afterwards, also when the test fails:

* the state directory filled up: Batch writes get ``503 StateDiskFull`` with a message naming the directory, and
  change nothing; reads go on (GET, lists, counts, task files); a node's report waits (its agent retries) instead of
  being lost; ``PRAGMA integrity_check`` passes; once space is freed the same process carries on: the request is
  accepted, the waiting report lands, new tasks run;
* the disk filling up under a commit already under way: the commit lands in the room the store keeps in its
  write-ahead log;
* the node directories filled up by a task: the task fails with the usual failure information (exit code,
  ``FailureExitCode``), its node stays usable, the emulator is untouched, and tasks run again once space is freed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from batchbox.backends.local.azurite import find_free_port
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.disk_space import StateDisk
from batchbox.emulator.errors import BatchError
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import Store
from tests.fixtures.emulator import EmulatorProcess

pytestmark = [pytest.mark.timeout(240)]

T = TypeVar("T")
_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
MiB = 1024 * 1024


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def _mount_tmpfs(path: Path, size_mib: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True)  # still busy: detach it now, freed when unused


@pytest.fixture
def small_filesystem() -> Iterator[Callable[[Path, int], Path]]:
    """``small_filesystem(path, size_mib)`` mounts a tmpfs of that size at ``path``; every mount is undone at
    teardown, also when the test failed (after the emulators of ``emulator_on``, which depends on this)."""
    mounted: list[Path] = []

    def mount(path: Path, size_mib: int) -> Path:
        _mount_tmpfs(path, size_mib)
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            _unmount(path)


def fill(directory: Path) -> Path:
    """Write ``directory/filler`` until the file system is full; returns the file."""
    filler = directory / "filler"
    block = b"\0" * MiB
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(block)
            except OSError:
                break
        for size in (64 * 1024, 4096, 512):  # the last pieces
            with contextlib.suppress(OSError):
                while True:
                    out.write(block[:size])
    return filler


def integrity(database: Path) -> str:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def no_retry_client(emulator: EmulatorProcess) -> BatchClient:
    """A client that answers the first error (the SDK would otherwise retry a 503 a few times)."""
    credential = AzureNamedKeyCredential(emulator.account_name, emulator.account_key)
    return BatchClient(endpoint=emulator.url, credential=credential, retry_total=0)


def refused(action: Callable[[], object]) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as info:
        action()
    return info.value


def _pool(pool_id: str, nodes: int = 1, slots: int = 2) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2_v3",
        virtual_machine_configuration=_VM,
        target_dedicated_nodes=nodes,
        task_slots_per_node=slots,
    )


def _idle_node(client: BatchClient, pool_id: str) -> str:
    return wait_for(
        "an idle node",
        lambda: next((n.id for n in client.list_nodes(pool_id) if n.state == m.BatchNodeState.IDLE), None),
    )


def _state(client: BatchClient, job_id: str, task_id: str) -> Any:
    return client.get_task(job_id, task_id).state


@pytest.fixture
def emulator_on(
    small_filesystem: Callable[[Path, int], Path],
    tmp_path: Path,
    docker_client: docker.DockerClient,
    node_image: str,
) -> Iterator[Callable[[Path], EmulatorProcess]]:
    """Starts an emulator on a given state directory; stopped and its containers removed at teardown (before the
    test's file systems are unmounted)."""
    started: list[EmulatorProcess] = []

    def start(state_dir: Path) -> EmulatorProcess:
        emulator = EmulatorProcess(
            port=find_free_port(),
            state_dir=state_dir,
            instance_label=f"test-{uuid.uuid4().hex[:12]}",
            node_image=node_image,
            docker_client=docker_client,
        )
        started.append(emulator)
        emulator.start()
        return emulator

    try:
        yield start
    finally:
        for emulator in started:
            emulator.cleanup()


@pytest.mark.docker
def test_a_full_state_disk_refuses_writes_keeps_reads_and_carries_on_once_space_is_freed(
    tmp_path: Path, small_filesystem: Callable[[Path, int], Path], emulator_on: Callable[[Path], EmulatorProcess]
) -> None:
    fs = small_filesystem(tmp_path / "fs", 48)
    emulator = emulator_on(fs / "state")
    client = emulator.batch_client()
    strict = no_retry_client(emulator)
    client.create_pool(_pool("disk-pool"))
    node_id = _idle_node(client, "disk-pool")
    client.create_job(m.BatchJobCreateOptions(id="disk-job", pool_info=m.BatchPoolInfo(pool_id="disk-pool")))
    client.create_task("disk-job", m.BatchTaskCreateOptions(id="before", command_line="/bin/echo before"))
    wait_for("the first task", lambda: _state(client, "disk-job", "before") == m.BatchTaskState.COMPLETED)
    shared = emulator.state_dir / "nodes" / node_id / "shared"
    waiting = "/bin/sh -c 'until [ -e $AZ_BATCH_NODE_SHARED_DIR/go ]; do sleep 0.1; done; touch ended'"
    client.create_task("disk-job", m.BatchTaskCreateOptions(id="during", command_line=waiting))
    wait_for("the waiting task to run", lambda: _state(client, "disk-job", "during") == m.BatchTaskState.RUNNING)

    filler = fill(fs)
    # Writes are refused with a Batch error body, and change nothing.
    attempts: dict[str, Callable[[], object]] = {
        "add job": lambda: strict.create_job(
            m.BatchJobCreateOptions(id="refused-job", pool_info=m.BatchPoolInfo(pool_id="disk-pool"))
        ),
        "add task": lambda: strict.create_task(
            "disk-job", m.BatchTaskCreateOptions(id="refused-task", command_line="/bin/true")
        ),
        "add collection": lambda: strict.create_task_collection(
            "disk-job",
            m.BatchTaskGroup(task_values=[m.BatchTaskCreateOptions(id="refused-c", command_line="/bin/true")]),
        ),
        "resize pool": lambda: strict.begin_resize_pool(
            "disk-pool", m.BatchPoolResizeOptions(target_dedicated_nodes=2), polling_interval=1
        ).result(),
        "delete task": lambda: strict.delete_task("disk-job", "before"),
    }
    for name, attempt in attempts.items():
        error = refused(attempt)
        assert error.status_code == 503, name
        assert error.error is not None and error.error.code == "StateDiskFull", name
        assert str(emulator.state_dir) in str(error.error.message), name
    # Reads go on.
    assert [j.id for j in client.list_jobs()] == ["disk-job"]
    assert sorted(t.id for t in client.list_tasks("disk-job")) == ["before", "during"]
    assert client.get_pool("disk-pool").target_dedicated_nodes == 1
    assert b"".join(client.download_task_file("disk-job", "before", "stdout.txt")) == b"before\n"
    counts = client.get_job_task_counts("disk-job").task_counts
    assert (counts.running, counts.succeeded) == (1, 1)

    # The waiting task ends on its node (an empty file needs no space); its report cannot be stored now, so it
    # waits with its agent.
    (shared / "go").touch()
    task_dir = (
        emulator.state_dir / "nodes" / node_id / client.get_task("disk-job", "during").node_info.task_root_directory
    )
    wait_for("the task's process to end", lambda: (task_dir / "wd" / "ended").exists())
    wait_for("the agent's report to be refused", lambda: "refusing writes" in emulator.log_text())
    assert _state(client, "disk-job", "during") == m.BatchTaskState.RUNNING
    assert integrity(emulator.state_dir / "state.db") == "ok"

    # Space freed: the same process carries on.
    pid = emulator.pid
    filler.unlink()
    done = wait_for(
        "the waiting report to land",
        lambda: (t := client.get_task("disk-job", "during")).state == m.BatchTaskState.COMPLETED and t,
    )
    assert done.execution_info.exit_code == 0 and done.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    assert (done.execution_info.retry_count, done.execution_info.requeue_count) == (0, 0)
    strict.create_task("disk-job", m.BatchTaskCreateOptions(id="after", command_line="/bin/echo after"))
    wait_for("the task added after", lambda: _state(client, "disk-job", "after") == m.BatchTaskState.COMPLETED)
    counts = client.get_job_task_counts("disk-job").task_counts
    assert (counts.active, counts.running, counts.succeeded, counts.failed) == (0, 0, 3, 0)
    assert sorted(t.id for t in client.list_tasks("disk-job")) == ["after", "before", "during"]
    assert emulator.pid == pid
    emulator.stop()
    assert integrity(emulator.state_dir / "state.db") == "ok"


@pytest.mark.parametrize("room", [4 * MiB, 0], ids=["with-room", "without-room"])
def test_a_commit_the_disk_filled_up_under_lands_in_the_room_the_store_keeps(
    tmp_path: Path, small_filesystem: Callable[[Path, int], Path], room: int
) -> None:
    """Without the room (the control) the same commit fails: SQLite rolls the transaction back."""
    fs = small_filesystem(tmp_path / "fs", 24)
    state_dir = fs / "state"
    state_dir.mkdir()
    disk = StateDisk(state_dir, floor=4 * MiB, room=room)
    store = Store(state_dir / "state.db", Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME), disk=disk)
    try:
        store.insert_job({"id": "j", "state": "active", "poolInfo": {"poolId": "p"}})
        docs = [{"id": f"t{i}", "state": "active", "commandLine": "x" * 2000} for i in range(400)]
        if not room:
            with pytest.raises(sqlite3.OperationalError, match="full"), store.transaction():
                store.insert_tasks("j", docs)
                fill(fs)
            assert store.task_counts("j")["active"] == 0
            return
        with store.transaction():
            store.insert_tasks("j", docs)
            filler = fill(fs)  # the disk fills up while the transaction is open
        assert store.task_counts("j")["active"] == 400
        # The next transaction is refused before it starts; nothing is half-written.
        with pytest.raises(BatchError) as info, store.transaction():
            store.delete_task("j", "t0")
        assert (info.value.status, info.value.code) == (503, "StateDiskFull")
        assert store.get_task("j", "t0") is not None
        filler.unlink()
        store.delete_task("j", "t0")
        assert store.task_counts("j")["active"] == 399
    finally:
        store.close()
    assert integrity(state_dir / "state.db") == "ok"


@pytest.mark.docker
def test_a_task_filling_its_node_disk_fails_as_usual_and_harms_nothing_else(
    tmp_path: Path, small_filesystem: Callable[[Path, int], Path], emulator_on: Callable[[Path], EmulatorProcess]
) -> None:
    state_dir = tmp_path / "state"
    small_filesystem(state_dir / "nodes", 32)
    emulator = emulator_on(state_dir)
    client = emulator.batch_client()
    client.create_pool(_pool("full-node-pool", slots=1))
    node_id = _idle_node(client, "full-node-pool")
    client.create_job(m.BatchJobCreateOptions(id="full-job", pool_info=m.BatchPoolInfo(pool_id="full-node-pool")))
    huge = "/bin/sh -c 'dd if=/dev/zero of=huge.bin bs=1M count=256'"
    client.create_task("full-job", m.BatchTaskCreateOptions(id="huge", command_line=huge))
    task = wait_for(
        "the huge task to end",
        lambda: (t := client.get_task("full-job", "huge")).state == m.BatchTaskState.COMPLETED and t,
    )
    info = task.execution_info
    assert info.result == m.BatchTaskExecutionResult.FAILURE and info.exit_code not in (None, 0)
    assert info.failure_info.code == "FailureExitCode"
    assert info.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
    wd = emulator.state_dir / "nodes" / node_id / task.node_info.task_root_directory / "wd"
    assert (wd / "huge.bin").stat().st_size < 256 * MiB
    # The emulator and the node are fine: its state is on another disk.
    assert client.get_node("full-node-pool", node_id).state == m.BatchNodeState.IDLE
    assert client.get_job_task_counts("full-job").task_counts.failed == 1

    (wd / "huge.bin").unlink()  # space freed
    client.create_task("full-job", m.BatchTaskCreateOptions(id="next", command_line="/bin/echo next"))
    after = wait_for(
        "the next task",
        lambda: (t := client.get_task("full-job", "next")).state == m.BatchTaskState.COMPLETED and t,
    )
    assert after.execution_info.exit_code == 0 and after.node_info.node_id == node_id
    assert b"".join(client.download_task_file("full-job", "next", "stdout.txt")) == b"next\n"


def test_a_read_only_state_disk_refuses_writes_until_it_is_writable_again(
    tmp_path: Path, small_filesystem: Callable[[Path, int], Path]
) -> None:
    """The read-only branch of the check (a file system remounted read-only after errors). A file system with the
    emulator's files open cannot be remounted here, so the check is exercised on its own."""
    fs = small_filesystem(tmp_path / "fs", 8)
    (fs / "state").mkdir()
    disk = StateDisk(fs / "state", floor=MiB)
    disk.check()
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    try:
        with pytest.raises(BatchError) as info:
            disk.check()
        assert (info.value.status, info.value.code) == (503, "StateDiskFull")
        assert "is read-only" in info.value.message and str(fs / "state") in info.value.message
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
    disk.check()
    assert disk.refused == 0
