"""Multi-instance tasks on a real emulator with real node containers, driven by the 15.x SDK: the coordination
command on every node and the application command on the primary, the multi-instance variables, common resource
files in the task's shared directory, subtasks (kept across restarts, gone with their task or job), gang scheduling,
failures, a lost node, restarts, retention on every node and the refused combinations."""

from __future__ import annotations

import functools
import http.server
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import ResourceNotFoundError

from tests.fixtures.emulator import EmulatorProcess
from tests.job_helpers import add_job, create_pool, error_code, idle_nodes, stdout_of, task_of, unique, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_COMMON_TEXT = "common to every instance\n"
_PRIMARY_TEXT = "for the primary only\n"


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server; node containers (host network) download resource files from it."""
    root: Path = tmp_path_factory.mktemp("served")
    (root / "common.txt").write_text(_COMMON_TEXT)
    (root / "primary.txt").write_text(_PRIMARY_TEXT)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mpi_pool(client: BatchClient) -> str:
    """Three nodes with inter-node communication and one task slot each."""
    pool_id = create_pool(client, unique("mpi"), 3, enable_inter_node_communication=True)
    idle_nodes(client, pool_id, 3)
    return pool_id


def _settings(count: int, coordination: str, **extra: object) -> m.MultiInstanceSettings:
    return m.MultiInstanceSettings(number_of_instances=count, coordination_command_line=coordination, **extra)


def _sh(script: str) -> str:
    return f"/bin/sh -c '{script}'"


def _node_file(client: BatchClient, pool_id: str, node_id: str, path: str) -> str:
    return b"".join(client.download_node_file(pool_id, node_id, path)).decode()


def _env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _all_idle(client: BatchClient, pool_id: str, count: int) -> list[m.BatchNode]:
    return idle_nodes(client, pool_id, count)


# ------------------------------------------------------------------------------------------------------ running
def test_every_node_coordinates_and_the_primary_runs_the_application(
    client: BatchClient, mpi_pool: str, file_server: str
) -> None:
    job_id = add_job(client, mpi_pool)
    coordination = _sh('echo "coordinated on $AZ_BATCH_NODE_ID"; env > "$AZ_BATCH_TASK_SHARED_DIR/env.txt"')
    application = _sh('echo application; cat primary.txt; cat "$AZ_BATCH_TASK_SHARED_DIR/common.txt"; exit 0')
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="mpi",
            command_line=application,
            resource_files=[m.ResourceFile(http_url=f"{file_server}/primary.txt", file_path="primary.txt")],
            multi_instance_settings=_settings(
                3,
                coordination,
                common_resource_files=[m.ResourceFile(http_url=f"{file_server}/common.txt", file_path="common.txt")],
            ),
        ),
    )
    task = task_of(client, job_id, "mpi", m.BatchTaskState.COMPLETED)
    assert task.execution_info.exit_code == 0 and task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS
    assert task.multi_instance_settings.number_of_instances == 3
    master = task.node_info.node_id
    out = stdout_of(client, job_id, "mpi")
    assert f"coordinated on {master}" in out  # the coordination output comes first in the same file
    assert out.index(f"coordinated on {master}") < out.index("application")
    assert _PRIMARY_TEXT in out and _COMMON_TEXT in out

    directory = f"workitems/{job_id}/job-1/mpi"
    primary_env = _env(_node_file(client, mpi_pool, master, f"{directory}/env.txt"))
    hosts = primary_env["AZ_BATCH_HOST_LIST"].split(",")
    assert len(hosts) == 3
    assert primary_env["AZ_BATCH_NODE_LIST"].split(";") == hosts
    assert primary_env["AZ_BATCH_MASTER_NODE"] == f"{hosts[0]}:6000"
    assert primary_env["AZ_BATCH_IS_CURRENT_NODE_MASTER"] == "true"
    assert primary_env["AZ_BATCH_TASK_SHARED_DIR"] == f"/mnt/batch/tasks/{directory}"
    assert primary_env["CCP_NODES"].split()[0] == "3"

    subtasks = sorted(client.list_subtasks(job_id, "mpi"), key=lambda s: s.id)
    assert [s.id for s in subtasks] == [1, 2]
    nodes = {s.node_info.node_id for s in subtasks}
    assert len(nodes) == 2 and master not in nodes
    assert nodes | {master} == {n.id for n in client.list_nodes(mpi_pool)}
    for subtask in subtasks:
        assert subtask.state == m.BatchSubtaskState.COMPLETED
        assert subtask.exit_code == 0 and subtask.result == m.BatchTaskExecutionResult.SUCCESS
        assert subtask.node_info.pool_id == mpi_pool and subtask.start_time is not None
        node_id = subtask.node_info.node_id
        assert f"coordinated on {node_id}" in _node_file(client, mpi_pool, node_id, f"{directory}/stdout.txt")
        assert _node_file(client, mpi_pool, node_id, f"{directory}/common.txt") == _COMMON_TEXT
        env = _env(_node_file(client, mpi_pool, node_id, f"{directory}/env.txt"))
        assert env["AZ_BATCH_IS_CURRENT_NODE_MASTER"] == "false"
        assert env["AZ_BATCH_HOST_LIST"] == primary_env["AZ_BATCH_HOST_LIST"]
        assert env["AZ_BATCH_TASK_SHARED_DIR"] == primary_env["AZ_BATCH_TASK_SHARED_DIR"]
        assert env["AZ_BATCH_NODE_ID"] == node_id
        with pytest.raises(ResourceNotFoundError):  # the task's own resource files go to the primary only
            _node_file(client, mpi_pool, node_id, f"{directory}/wd/primary.txt")
    _all_idle(client, mpi_pool, 3)


def test_the_primary_exit_code_is_the_task_exit_code_and_subtasks_end_with_it(
    client: BatchClient, mpi_pool: str
) -> None:
    job_id = add_job(client, mpi_pool)
    # The coordination command leaves a process behind: it keeps each subtask running until the primary ends.
    coordination = _sh("sleep 300 >/dev/null 2>&1 & echo started")
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="exits", command_line=_sh("sleep 1; exit 3"), multi_instance_settings=_settings(2, coordination)
        ),
    )
    running = task_of(client, job_id, "exits", m.BatchTaskState.RUNNING)
    assert running.node_info is not None
    task = task_of(client, job_id, "exits", m.BatchTaskState.COMPLETED)
    assert task.execution_info.exit_code == 3
    assert task.execution_info.failure_info.code == "FailureExitCode"
    (subtask,) = list(client.list_subtasks(job_id, "exits"))
    assert subtask.state == m.BatchSubtaskState.COMPLETED and subtask.exit_code == 0
    assert subtask.end_time is not None and subtask.end_time >= subtask.start_time
    _all_idle(client, mpi_pool, 3)  # the subtask's node is free again: its background process was ended


def test_a_multi_instance_task_waits_until_enough_nodes_are_free(client: BatchClient, mpi_pool: str) -> None:
    _all_idle(client, mpi_pool, 3)
    busy_job = add_job(client, mpi_pool)
    client.create_task(busy_job, m.BatchTaskCreateOptions(id="busy", command_line="/bin/sleep 6"))
    busy = task_of(client, busy_job, "busy", m.BatchTaskState.RUNNING)
    job_id = add_job(client, mpi_pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="gang", command_line="/bin/true", multi_instance_settings=_settings(3, "/bin/true")
        ),
    )
    time.sleep(2)  # two nodes are free, the task needs three: it may not start
    assert client.get_task(busy_job, "busy").state == m.BatchTaskState.RUNNING
    assert client.get_task(job_id, "gang").state == m.BatchTaskState.ACTIVE
    assert list(client.list_subtasks(job_id, "gang")) == []
    done = task_of(client, busy_job, "busy", m.BatchTaskState.COMPLETED)
    gang = task_of(client, job_id, "gang", m.BatchTaskState.COMPLETED)
    assert gang.execution_info.exit_code == 0
    assert gang.execution_info.start_time >= done.execution_info.end_time
    used = {s.node_info.node_id for s in client.list_subtasks(job_id, "gang")} | {gang.node_info.node_id}
    assert busy.node_info.node_id in used and len(used) == 3


def test_a_failing_coordination_command_on_a_subtask_fails_the_task(client: BatchClient, mpi_pool: str) -> None:
    job_id = add_job(client, mpi_pool)
    coordination = _sh('test "$AZ_BATCH_IS_CURRENT_NODE_MASTER" = true || exit 7')
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="broken",
            command_line="/bin/true",
            constraints=m.BatchTaskConstraints(max_task_retry_count=1),
            multi_instance_settings=_settings(2, coordination),
        ),
    )
    task = task_of(client, job_id, "broken", m.BatchTaskState.COMPLETED)
    assert task.execution_info.exit_code == 7 and task.execution_info.retry_count == 1
    assert task.execution_info.result == m.BatchTaskExecutionResult.FAILURE
    assert {"name": "SubtaskId", "value": "1"} in [d.as_dict() for d in task.execution_info.failure_info.details]
    (subtask,) = list(client.list_subtasks(job_id, "broken"))
    assert subtask.exit_code == 7 and subtask.result == m.BatchTaskExecutionResult.FAILURE
    _all_idle(client, mpi_pool, 3)


def test_a_pool_without_inter_node_communication_never_runs_it(client: BatchClient) -> None:
    pool_id = create_pool(client, unique("nocomm"), 1)
    idle_nodes(client, pool_id, 1)
    job_id = add_job(client, pool_id)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(id="mpi", command_line="/bin/true", multi_instance_settings=_settings(1, "/bin/true")),
    )
    other = add_job(client, pool_id)
    client.create_task(other, m.BatchTaskCreateOptions(id="plain", command_line="/bin/true"))
    task_of(client, other, "plain", m.BatchTaskState.COMPLETED)  # the node was free all along
    assert client.get_task(job_id, "mpi").state == m.BatchTaskState.ACTIVE
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_a_single_instance_runs_coordination_then_application_on_one_node(client: BatchClient, mpi_pool: str) -> None:
    job_id = add_job(client, mpi_pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="one",
            command_line=_sh('echo "app $AZ_BATCH_HOST_LIST"'),
            multi_instance_settings=m.MultiInstanceSettings(coordination_command_line=_sh("echo coord")),
        ),
    )
    task = task_of(client, job_id, "one", m.BatchTaskState.COMPLETED)
    assert task.multi_instance_settings.number_of_instances == 1
    assert task.execution_info.exit_code == 0
    lines = stdout_of(client, job_id, "one").split()
    assert lines[0] == "coord" and lines[1] == "app" and len(lines[2].split(",")) == 1
    assert list(client.list_subtasks(job_id, "one")) == []


# ------------------------------------------------------------------------------------------------- lost nodes
def test_rebooting_a_subtask_node_requeues_the_whole_task_and_frees_its_nodes(
    client: BatchClient, mpi_pool: str
) -> None:
    _all_idle(client, mpi_pool, 3)
    job_id = add_job(client, mpi_pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="long", command_line="/bin/sleep 120", multi_instance_settings=_settings(2, "/bin/true")
        ),
    )
    task_of(client, job_id, "long", m.BatchTaskState.RUNNING)
    subtask = wait_for(
        "a running subtask",
        lambda: next((s for s in client.list_subtasks(job_id, "long") if s.state == "running"), None),
    )
    reboot = client.begin_reboot_node(
        mpi_pool, subtask.node_info.node_id, {"nodeRebootOption": "requeue"}, polling_interval=1
    )
    requeued = wait_for(
        "the task requeued", lambda: (t := client.get_task(job_id, "long")).execution_info.requeue_count == 1 and t
    )
    assert requeued.execution_info.retry_count == 0
    reboot.result()
    client.terminate_task(job_id, "long")
    task = task_of(client, job_id, "long", m.BatchTaskState.COMPLETED)
    assert task.execution_info.failure_info.code == "TaskEnded"
    _all_idle(client, mpi_pool, 3)  # every node of both runs is free again


def test_an_emulator_restart_requeues_a_running_multi_instance_task_without_holding_nodes(
    emulator: EmulatorProcess, client: BatchClient, mpi_pool: str
) -> None:
    _all_idle(client, mpi_pool, 3)
    job_id = add_job(client, mpi_pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="across", command_line="/bin/sleep 120", multi_instance_settings=_settings(3, "/bin/true")
        ),
    )
    task_of(client, job_id, "across", m.BatchTaskState.RUNNING)
    wait_for("every subtask running", lambda: len([s for s in client.list_subtasks(job_id, "across")]) == 2)
    emulator.restart()
    requeued = wait_for(
        "the task requeued after the restart",
        lambda: (t := client.get_task(job_id, "across")).execution_info.requeue_count >= 1 and t,
    )
    assert requeued.execution_info.retry_count == 0
    task_of(client, job_id, "across", m.BatchTaskState.RUNNING, timeout=120)  # on all three nodes again
    client.terminate_task(job_id, "across")
    task_of(client, job_id, "across", m.BatchTaskState.COMPLETED)
    _all_idle(client, mpi_pool, 3)


# ------------------------------------------------------------------------------------------- kept subtasks
def _kept_subtask_rows(emulator: EmulatorProcess, job_id: str, task_id: str | None = None) -> int:
    """Rows of the state database's ``subtasks`` table for the job (and task), read beside the running emulator."""
    db = sqlite3.connect(f"file:{emulator.state_dir / 'state.db'}?mode=ro", uri=True)
    try:
        sql, params = "SELECT COUNT(*) FROM subtasks WHERE job_key = ?", [job_id.lower()]
        if task_id is not None:
            sql, params = f"{sql} AND task_key = ?", [*params, task_id.lower()]
        return int(db.execute(sql, params).fetchone()[0])
    finally:
        db.close()


def _subtask_dirs(emulator: EmulatorProcess, subtasks: list[m.BatchSubtask]) -> list[Path]:
    """Each subtask's copy of the task directory, on its node's filesystem under the state directory."""
    return [
        Path(emulator.state_dir) / "nodes" / s.node_info.node_id / s.node_info.task_root_directory for s in subtasks
    ]


def _sorted_subtasks(client: BatchClient, job_id: str, task_id: str) -> list[m.BatchSubtask]:
    return sorted(client.list_subtasks(job_id, task_id), key=lambda s: s.id)


def _stays_active(client: BatchClient, job_id: str, task_id: str) -> None:
    """Add ``task_id`` again as a task needing more nodes than the pool has: it stays active, never runs."""
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(id=task_id, command_line="/bin/true", multi_instance_settings=_settings(4, "x")),
    )
    assert client.get_task(job_id, task_id).state == m.BatchTaskState.ACTIVE


def test_subtasks_outlive_a_restart_and_go_with_their_task_or_job(
    emulator: EmulatorProcess, client: BatchClient, mpi_pool: str
) -> None:
    _all_idle(client, mpi_pool, 3)
    job_id = add_job(client, mpi_pool)
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="done",
            command_line=_sh("exit 3"),
            multi_instance_settings=_settings(3, _sh('echo "$AZ_BATCH_NODE_ID" > "$AZ_BATCH_TASK_SHARED_DIR/mark"')),
        ),
    )
    task_of(client, job_id, "done", m.BatchTaskState.COMPLETED)
    coordination = _sh('test "$AZ_BATCH_IS_CURRENT_NODE_MASTER" = true || exit 7')
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="broken", command_line="/bin/true", multi_instance_settings=_settings(2, coordination)
        ),
    )
    task_of(client, job_id, "broken", m.BatchTaskState.COMPLETED)
    before = {task_id: _sorted_subtasks(client, job_id, task_id) for task_id in ("done", "broken")}
    assert [(s.id, s.state, s.exit_code, s.result) for s in before["done"]] == [
        (1, m.BatchSubtaskState.COMPLETED, 0, m.BatchTaskExecutionResult.SUCCESS),
        (2, m.BatchSubtaskState.COMPLETED, 0, m.BatchTaskExecutionResult.SUCCESS),
    ]
    (failed,) = before["broken"]
    assert (failed.exit_code, failed.failure_info.code) == (7, "FailureExitCode")
    assert _kept_subtask_rows(emulator, job_id) == 2

    emulator.restart()
    for task_id, subtasks in before.items():
        after = _sorted_subtasks(client, job_id, task_id)
        assert [s.as_dict() for s in after] == [s.as_dict() for s in subtasks], task_id

    client.delete_task(job_id, "done")
    assert _kept_subtask_rows(emulator, job_id, "done") == 0
    assert _kept_subtask_rows(emulator, job_id, "broken") == 1
    _stays_active(client, job_id, "done")
    assert list(client.list_subtasks(job_id, "done")) == [], "a new task of the same id lists nothing of the old one"

    kept_dirs = _subtask_dirs(emulator, before["broken"])
    assert all(path.is_dir() for path in kept_dirs)
    kept_dirs += _subtask_dirs(emulator, before["done"])
    client.begin_delete_job(job_id, polling_interval=1).result()
    wait_for("the job deleted", lambda: job_id not in {j.id for j in client.list_jobs()})
    assert _kept_subtask_rows(emulator, job_id) == 0
    wait_for("every subtask's directory removed with the job", lambda: not any(p.exists() for p in kept_dirs))
    add_job(client, mpi_pool, job_id)
    _stays_active(client, job_id, "broken")
    assert list(client.list_subtasks(job_id, "broken")) == []
    client.begin_delete_job(job_id, polling_interval=1)
    _all_idle(client, mpi_pool, 3)


def test_retention_removes_the_task_directory_from_every_node_it_ran_on(
    emulator: EmulatorProcess, client: BatchClient, mpi_pool: str
) -> None:
    _all_idle(client, mpi_pool, 3)
    job_id = add_job(client, mpi_pool)
    coordination = _sh('echo "$AZ_BATCH_NODE_ID" > "$AZ_BATCH_TASK_SHARED_DIR/mark"')

    def run(task_id: str, seconds: int) -> tuple[list[Path], list[m.BatchSubtask]]:
        client.create_task(
            job_id,
            m.BatchTaskCreateOptions(
                id=task_id,
                command_line="/bin/true",
                constraints=m.BatchTaskConstraints(retention_time=timedelta(seconds=seconds)),
                multi_instance_settings=_settings(3, coordination),
            ),
        )
        task = task_of(client, job_id, task_id, m.BatchTaskState.COMPLETED)
        subtasks = _sorted_subtasks(client, job_id, task_id)
        master = Path(emulator.state_dir) / "nodes" / task.node_info.node_id / task.node_info.task_root_directory
        copies = _subtask_dirs(emulator, subtasks)
        assert len(copies) == 2 and all((path / "mark").is_file() for path in [master, *copies])
        return [master, *copies], subtasks

    def cleaned_up(task_id: str, copies: list[Path], subtasks: list[m.BatchSubtask]) -> None:
        wait_for(f"{task_id}: the directory removed from all three nodes", lambda: not any(p.exists() for p in copies))
        assert error_code(lambda: list(client.list_task_files(job_id, task_id))) == (409, "TaskFilesCleanedup")
        assert [s.as_dict() for s in _sorted_subtasks(client, job_id, task_id)] == [s.as_dict() for s in subtasks]

    cleaned_up("brief", *run("brief", 8))
    # Due after a restart: the emulator finds the subtasks' nodes in its state.
    later = run("later", 10)
    emulator.restart()
    cleaned_up("later", *later)
    client.begin_delete_job(job_id, polling_interval=1)
    _all_idle(client, mpi_pool, 3)


# --------------------------------------------------------------------------------------------------- refusals
def test_refused_multi_instance_settings_get_batch_errors(client: BatchClient) -> None:
    pool_id = unique("nopool")
    job_id = add_job(client, pool_id)

    def add(**options: object) -> None:
        client.create_task(job_id, m.BatchTaskCreateOptions(id=unique("t"), command_line="/bin/true", **options))

    no_coordination = m.MultiInstanceSettings({"numberOfInstances": 2})
    assert error_code(lambda: add(multi_instance_settings=no_coordination)) == (400, "MissingRequiredProperty")
    assert error_code(lambda: add(multi_instance_settings=_settings(0, "/bin/true"))) == (400, "InvalidPropertyValue")
    assert error_code(lambda: add(multi_instance_settings=_settings(2, "/bin/true"), required_slots=2)) == (
        400,
        "InvalidPropertyValue",
    )
    container = m.BatchTaskContainerSettings(image_name="busybox")
    assert error_code(lambda: add(multi_instance_settings=_settings(2, "/bin/true"), container_settings=container)) == (
        400,
        "UnsupportedProperty",
    )
    prepared = add_job(client, pool_id, job_preparation_task=m.BatchJobPreparationTask(command_line="/bin/true"))
    assert error_code(
        lambda: client.create_task(
            prepared,
            m.BatchTaskCreateOptions(
                id="mpi", command_line="/bin/true", multi_instance_settings=_settings(2, "/bin/true")
            ),
        )
    ) == (400, "UnsupportedProperty")
    assert error_code(lambda: list(client.list_subtasks(job_id, "absent"))) == (404, "TaskNotFound")
    # Accepted where the pool does not exist (yet): it stays active, as the recorded service answered.
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(id="waits", command_line="/bin/true", multi_instance_settings=_settings(3, "x")),
    )
    stored = client.get_task(job_id, "waits")
    assert stored.state == m.BatchTaskState.ACTIVE and stored.required_slots == 1
    assert stored.multi_instance_settings.coordination_command_line == "x"
