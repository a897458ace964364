"""The node agent running single assignments inside a real node container (uid 1000 exists, the node root is
the bind mount), with resource and output files on a real Azurite; and the agent's HTTP client on real sockets.

Each test hands one Assignment (as the emulator would send it) to ``run_assignment`` through ``docker exec`` and
reads back the ``started`` and ``completed`` events; files are checked on the host side of the node root mount.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import secrets
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import find_free_port
from batchbox.core.storage import ContainerPermission
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.nodes.docker_driver import NodeDriver
from batchbox.node._agent_common import setup_logging
from batchbox.node._agent_files import blob_name_for
from batchbox.node._agent_http import AgentClient, Backoff, ServerUnreachable
from tests.fixtures.docker import TEST_LABELS

pytestmark = pytest.mark.docker

ROOT = "/mnt/batch/tasks"
JOB = "job1"
READ = [ContainerPermission.READ]
READ_LIST = [ContainerPermission.READ, ContainerPermission.LIST]
WRITE = [ContainerPermission.CREATE, ContainerPermission.WRITE]

# Runs inside the node: imports the agent from its read-only mount like `python3 agent.py` would, runs one
# assignment and prints the events.
_RUNNER = """
import json, sys
sys.path.insert(0, "/opt/batchbox/node")
import agent
started = []
completed = agent.run_assignment(json.loads(sys.argv[1]), sys.argv[2], emit=started.append)
print(json.dumps({"started": started, "completed": completed}))
"""


@dataclass
class Node:
    container: Any
    node_id: str
    root: Path


@dataclass
class Outcome:
    started: list[dict[str, Any]]
    completed: dict[str, Any]
    task_dir: Path

    @property
    def wd(self) -> Path:
        return self.task_dir / "wd"

    @property
    def stdout(self) -> str:
        return (self.task_dir / "stdout.txt").read_text()

    @property
    def stderr(self) -> str:
        return (self.task_dir / "stderr.txt").read_text()

    @property
    def failure(self) -> dict[str, Any]:
        info = self.completed["failureInfo"]
        assert info is not None, self.completed
        return dict(info)


@pytest.fixture(scope="module")
def node(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    """One node container for the module (each test uses its own task directory)."""
    config = EmulatorConfig(
        port=find_free_port(),
        state_dir=tmp_path_factory.mktemp("emulator-state"),
        node_image=node_image,
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
    )
    driver = NodeDriver(docker_client, config, extra_labels=TEST_LABELS)
    try:
        node_id = f"tvmps_{uuid.uuid4().hex[:24]}_d"
        container_id = driver.create_node("pool-x", node_id, secrets.token_hex(16))
        root = driver.node_root(node_id)
        deadline = time.monotonic() + 20
        while not (root / "shared").is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield Node(docker_client.containers.get(container_id), node_id, root)
    finally:
        driver.remove_all()


def assignment(task_id: str, command: str, node_id: str = "node", **fields: Any) -> dict[str, Any]:
    """An Assignment as the emulator sends it (environment included)."""
    task_dir = f"workitems/{JOB}/job-1/{task_id}"
    environment = {
        "AZ_BATCH_ACCOUNT_NAME": "devbatchaccount1",
        "AZ_BATCH_POOL_ID": "pool-x",
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_ROOT_DIR": ROOT,
        "AZ_BATCH_NODE_SHARED_DIR": f"{ROOT}/shared",
        "AZ_BATCH_NODE_STARTUP_DIR": f"{ROOT}/startup",
        "AZ_BATCH_TASK_DIR": f"{ROOT}/{task_dir}",
        "AZ_BATCH_TASK_WORKING_DIR": f"{ROOT}/{task_dir}/wd",
        "AZ_BATCH_JOB_ID": JOB,
        "AZ_BATCH_TASK_ID": task_id,
    }
    environment.update(fields.pop("environment", {}))
    body: dict[str, Any] = {
        "assignmentId": f"{JOB}/{task_id}/0",
        "kind": "task",
        "jobId": JOB,
        "taskId": task_id,
        "attempt": 0,
        "commandLine": command,
        "environment": environment,
        "taskDir": task_dir,
        "resourceFiles": [],
        "outputFiles": [],
        "elevationLevel": "nonadmin",
        "maxWallClockSeconds": None,
        "maxTaskRetryCount": 0,
        "requiredSlots": 1,
    }
    body.update(fields)
    return body


def run(node: Node, body: dict[str, Any]) -> Outcome:
    result = node.container.exec_run(["python3", "-c", _RUNNER, json.dumps(body), ROOT], demux=True)
    stdout, stderr = (part.decode() if part else "" for part in result.output)
    assert result.exit_code == 0, stderr
    events = json.loads(stdout)
    return Outcome(events["started"], events["completed"], node.root / body["taskDir"])


def task_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


# -- the process ----------------------------------------------------------------------------------------------


def test_success_reports_started_and_completed_events(node: Node) -> None:
    body = assignment(task_id(), "/bin/sh -c 'echo to-out; echo to-err >&2'")
    outcome = run(node, body)

    assert [e["type"] for e in outcome.started] == ["started"]
    assert outcome.started[0]["assignmentId"] == body["assignmentId"]
    done = outcome.completed
    assert done["type"] == "completed"
    assert done["assignmentId"] == body["assignmentId"]
    assert done["exitCode"] == 0
    assert done["result"] == "success"
    assert done["failureInfo"] is None
    assert done["startTime"] == outcome.started[0]["time"]
    assert done["startTime"] <= done["endTime"]
    assert done["eventId"] != outcome.started[0]["eventId"]
    assert outcome.stdout == "to-out\n"
    assert outcome.stderr == "to-err\n"


def test_task_sees_its_environment_and_runs_in_its_working_dir(node: Node) -> None:
    body = assignment(
        task_id(),
        "/bin/sh -c 'echo \"$AZ_BATCH_TASK_ID|$MY_SETTING|$HOME|$LANG\"; pwd; env'",
        environment={"MY_SETTING": "value with spaces"},
    )
    outcome = run(node, body)

    lines = outcome.stdout.splitlines()
    assert lines[0] == f"{body['taskId']}|value with spaces|/home/batchuser|C.UTF-8"
    assert lines[1] == f"{ROOT}/{body['taskDir']}/wd"
    env_names = {line.split("=", 1)[0] for line in lines[2:] if "=" in line}
    assert "AZ_BATCH_TASK_WORKING_DIR" in env_names
    assert "PATH" in env_names
    assert not any(name.startswith("BATCHBOX_") for name in env_names)  # the node secret never reaches a task


def test_command_line_is_not_run_in_a_shell(node: Node) -> None:
    outcome = run(node, assignment(task_id(), "echo $HOME 'two words' \"*\""))

    assert outcome.stdout == "$HOME two words *\n"


def test_nonadmin_runs_as_batchuser_and_shares_the_shared_dir(node: Node) -> None:
    (node.root / "shared" / "seed.txt").write_text("seeded by the host\n")
    tid = task_id()
    body = assignment(
        tid,
        "/bin/sh -c 'id -u; id -g; id -G; cat $AZ_BATCH_NODE_SHARED_DIR/seed.txt; "
        "echo mine > $AZ_BATCH_NODE_SHARED_DIR/" + tid + ".txt; touch ../in-task-dir'",
    )
    outcome = run(node, body)

    assert outcome.completed["exitCode"] == 0, outcome.stderr
    assert outcome.stdout.splitlines() == ["1000", "1000", "1000", "seeded by the host"]
    written = node.root / "shared" / f"{tid}.txt"
    assert written.read_text() == "mine\n"
    assert written.stat().st_uid == 1000
    assert (outcome.task_dir / "in-task-dir").exists()


def test_admin_runs_as_root(node: Node) -> None:
    outcome = run(node, assignment(task_id(), "id -u", elevationLevel="admin"))

    assert outcome.stdout == "0\n"


def test_non_zero_exit_code_is_a_failure(node: Node) -> None:
    outcome = run(node, assignment(task_id(), "/bin/sh -c 'exit 3'"))

    assert outcome.completed["exitCode"] == 3
    assert outcome.completed["result"] == "failure"
    assert outcome.failure["category"] == "usererror"
    assert outcome.failure["code"] == "FailureExitCode"


def test_missing_program_gives_127_and_failure_info(node: Node) -> None:
    outcome = run(node, assignment(task_id(), "no-such-program-here --flag"))

    assert outcome.completed["exitCode"] == 127
    assert outcome.completed["result"] == "failure"
    assert outcome.failure["category"] == "usererror"
    assert outcome.failure["code"] == "CommandProgramNotFound"
    assert "no-such-program-here" in outcome.failure["message"]


def test_program_that_is_not_executable_gives_126(node: Node) -> None:
    script = node.root / "shared" / f"not-executable-{uuid.uuid4().hex[:6]}.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    outcome = run(node, assignment(task_id(), f"{ROOT}/shared/{script.name}"))

    assert outcome.completed["exitCode"] == 126
    assert outcome.failure["code"] == "CommandLaunchFailed"
    assert outcome.stdout == ""


def test_wall_clock_limit_kills_the_process_group(node: Node) -> None:
    body = assignment(task_id(), "/bin/sh -c 'sleep 300 & echo $! > child.pid; sleep 300'", maxWallClockSeconds=1.0)
    outcome = run(node, body)

    assert outcome.completed["exitCode"] == 137  # 128 + SIGKILL
    assert outcome.completed["result"] == "failure"
    assert outcome.failure["code"] == "TaskEnded"
    assert outcome.failure["category"] == "servererror"
    child = (outcome.wd / "child.pid").read_text().strip()
    # the background child died with its group (tini reaps it): its /proc entry goes away or is a zombie
    check = f"for i in $(seq 50); do grep -qs '^State:.*[RSD]' /proc/{child}/status || exit 0; sleep 0.1; done; exit 1"
    assert node.container.exec_run(["/bin/sh", "-c", check]).exit_code == 0


def test_unparsable_command_line_starts_nothing(node: Node) -> None:
    outcome = run(node, assignment(task_id(), "echo 'unbalanced"))

    assert outcome.completed["exitCode"] is None
    assert outcome.failure["code"] == "CommandLaunchFailed"


# -- resource files ---------------------------------------------------------------------------------------------


def test_resource_file_by_http_url_with_a_read_sas(node: Node, blob_storage: BlobStorage, blob_container: str) -> None:
    blob_storage.upload_bytes(blob_container, "inputs/data.txt", b"hello from azurite\n")
    url = blob_storage.blob_sas_url(blob_container, "inputs/data.txt", expiry=timedelta(hours=1))
    body = assignment(
        task_id(),
        "/bin/sh -c 'cat in/data.txt; stat -c %a in/data.txt; stat -c %a m.txt'",
        resourceFiles=[
            {"httpUrl": url, "filePath": "in/data.txt"},
            {"httpUrl": url, "filePath": "m.txt", "fileMode": "0640"},
        ],
    )
    outcome = run(node, body)

    assert outcome.completed["result"] == "success", outcome.completed
    assert outcome.stdout.splitlines() == ["hello from azurite", "770", "640"]
    assert (outcome.wd / "in" / "data.txt").stat().st_uid == 1000


def test_resource_files_from_a_container_with_a_blob_prefix(
    node: Node, blob_storage: BlobStorage, blob_container: str
) -> None:
    for name in ("set/a.txt", "set/sub/b.txt", "setx/c.txt", "other/d.txt"):
        blob_storage.upload_bytes(blob_container, name, name.encode())
    url = blob_storage.container_sas_url(blob_container, READ_LIST, expiry=timedelta(hours=1))
    body = assignment(
        task_id(),
        "/bin/true",
        resourceFiles=[
            {"storageContainerUrl": url, "blobPrefix": "set/", "filePath": "downloaded"},
            {"storageContainerUrl": url, "blobPrefix": "nothing-matches/", "filePath": "empty"},
        ],
    )
    outcome = run(node, body)

    assert outcome.completed["result"] == "success", outcome.completed
    files = sorted(p.relative_to(outcome.wd).as_posix() for p in outcome.wd.rglob("*") if p.is_file())
    assert files == ["downloaded/set/a.txt", "downloaded/set/sub/b.txt"]
    assert (outcome.wd / "downloaded" / "set" / "sub" / "b.txt").read_text() == "set/sub/b.txt"
    assert (outcome.wd / "empty").is_dir()


def test_missing_blob_fails_without_starting_the_process(
    node: Node, blob_storage: BlobStorage, blob_container: str
) -> None:
    url = blob_storage.blob_sas_url(blob_container, "not-there.txt", expiry=timedelta(hours=1))
    body = assignment(task_id(), "/bin/sh -c 'touch ran'", resourceFiles=[{"httpUrl": url, "filePath": "x.txt"}])
    outcome = run(node, body)

    assert outcome.completed["exitCode"] is None
    assert outcome.completed["result"] == "failure"
    assert outcome.failure["category"] == "usererror"
    assert outcome.failure["code"] == "BlobNotFound"
    assert "x.txt" in outcome.failure["message"]
    assert "sig=" not in json.dumps(outcome.completed)
    assert not (outcome.wd / "ran").exists()
    assert not (outcome.task_dir / "stdout.txt").exists()


def test_container_sas_without_list_permission_is_access_denied(
    node: Node, blob_storage: BlobStorage, blob_container: str
) -> None:
    blob_storage.upload_bytes(blob_container, "a.txt", b"a")
    url = blob_storage.container_sas_url(blob_container, READ, expiry=timedelta(hours=1))
    outcome = run(node, assignment(task_id(), "/bin/true", resourceFiles=[{"storageContainerUrl": url}]))

    assert outcome.completed["exitCode"] is None
    assert outcome.failure["code"] == "BlobAccessDenied"
    assert "sig=" not in json.dumps(outcome.completed)


@pytest.mark.parametrize("file_path", ["../escape.txt", "a/../../escape.txt", "/etc/escape.txt"])
def test_resource_file_path_leaving_the_working_dir_is_refused(node: Node, file_path: str) -> None:
    body = assignment(
        task_id(), "/bin/sh -c 'touch ran'", resourceFiles=[{"httpUrl": "http://127.0.0.1:9/x", "filePath": file_path}]
    )
    outcome = run(node, body)

    assert outcome.completed["exitCode"] is None
    assert outcome.failure["category"] == "usererror"
    assert outcome.failure["code"] == "ResourceFileCreateFailed"
    assert file_path in outcome.failure["message"]
    assert not (outcome.task_dir / "escape.txt").exists()
    assert not (outcome.wd / "ran").exists()


def test_auto_storage_container_is_not_supported_locally(node: Node) -> None:
    body = assignment(task_id(), "/bin/true", resourceFiles=[{"autoStorageContainerName": "inputs"}])
    outcome = run(node, body)

    assert outcome.completed["exitCode"] is None
    assert "not supported" in outcome.failure["message"]


# -- output files -------------------------------------------------------------------------------------------------


def _destination(url: str, path: str = "") -> dict[str, Any]:
    return {"container": {"containerUrl": url, "path": path}}


def _output(pattern: str, url: str, path: str = "", condition: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"filePattern": pattern, "destination": _destination(url, path)}
    if condition:
        spec["uploadOptions"] = {"uploadCondition": condition}
    return spec


def _blob_names(storage: BlobStorage, container: str) -> list[str]:
    return sorted(blob.name for blob in storage.list_blobs(container))


def test_output_files_follow_their_upload_condition(node: Node, blob_storage: BlobStorage, blob_container: str) -> None:
    url = blob_storage.container_sas_url(blob_container, WRITE, expiry=timedelta(hours=1))
    body = assignment(
        task_id(),
        "/bin/sh -c 'echo result > result.txt; exit 1'",
        outputFiles=[
            _output("result.txt", url, "on-success/result.txt", "tasksuccess"),
            _output("result.txt", url, "on-failure/result.txt", "taskfailure"),
            _output("result.txt", url, "always/result.txt", "taskcompletion"),
            _output("result.txt", url, "default/result.txt"),
        ],
    )
    outcome = run(node, body)

    assert outcome.completed["exitCode"] == 1
    assert outcome.failure["code"] == "FailureExitCode"
    assert _blob_names(blob_storage, blob_container) == [
        "always/result.txt",
        "default/result.txt",
        "on-failure/result.txt",
    ]
    assert blob_storage.read_blob(blob_container, "on-failure/result.txt") == b"result\n"


def test_output_file_globs_and_blob_names(node: Node, blob_storage: BlobStorage, blob_container: str) -> None:
    url = blob_storage.container_sas_url(blob_container, WRITE, expiry=timedelta(hours=1))
    script = (
        "mkdir -p sub/deeper; echo a > a.txt; echo b > sub/b.txt; echo c > sub/deeper/c.txt; "
        "echo h > .hidden.txt; echo l > d.log; echo log-line"
    )
    body = assignment(
        task_id(),
        f"/bin/sh -c {shlex.quote(script)}",
        outputFiles=[
            _output("**/*.txt", url, "prefix"),
            _output("sub/*.txt", url, "flat/"),
            _output("../stdout.txt", url, "logs/stdout-of-task.txt"),
            _output("d.log", url),
            _output("nomatch*.bin", url, "never"),
        ],
    )
    outcome = run(node, body)

    assert outcome.completed["result"] == "success", outcome.completed
    assert _blob_names(blob_storage, blob_container) == [
        "d.log",
        "flat/b.txt",
        "logs/stdout-of-task.txt",
        "prefix/a.txt",
        "prefix/sub/b.txt",
        "prefix/sub/deeper/c.txt",
    ]
    assert blob_storage.read_blob(blob_container, "logs/stdout-of-task.txt") == b"log-line\n"
    upload_log = (outcome.task_dir / "fileuploadout.txt").read_text()
    assert "prefix/sub/deeper/c.txt" in upload_log
    assert "nomatch*.bin" in upload_log
    assert "sig=" not in upload_log
    assert (outcome.task_dir / "fileuploaderr.txt").read_text() == ""


def test_large_output_file_is_uploaded_in_blocks(node: Node, blob_storage: BlobStorage, blob_container: str) -> None:
    url = blob_storage.container_sas_url(blob_container, WRITE, expiry=timedelta(hours=1))
    body = assignment(
        task_id(),
        "/bin/sh -c 'head -c 9000001 /dev/urandom > big.bin'",
        outputFiles=[_output("big.bin", url, "big/big.bin")],
    )
    outcome = run(node, body)

    assert outcome.completed["result"] == "success", outcome.completed
    assert blob_storage.read_blob(blob_container, "big/big.bin") == (outcome.wd / "big.bin").read_bytes()


def test_upload_failure_keeps_the_exit_code_and_sets_failure_info(
    node: Node, blob_storage: BlobStorage, blob_container: str
) -> None:
    read_only = blob_storage.container_sas_url(blob_container, READ_LIST, expiry=timedelta(hours=1))
    body = assignment(task_id(), "/bin/sh -c 'echo x > out.txt'", outputFiles=[_output("out.txt", read_only)])
    outcome = run(node, body)

    assert outcome.completed["exitCode"] == 0
    assert outcome.completed["result"] == "failure"
    assert outcome.failure["code"] == "FileUploadMiscError"
    assert "out.txt" in outcome.failure["message"]
    errors = (outcome.task_dir / "fileuploaderr.txt").read_text()
    assert "out.txt" in errors
    assert "sig=" not in errors + json.dumps(outcome.completed)
    assert _blob_names(blob_storage, blob_container) == []


# -- the agent's HTTP client (real sockets, no emulator) --------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[tuple[str, int]] = set()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"null")
        type(self).connections.add(self.client_address)
        answer = json.dumps({"path": self.path, "auth": self.headers.get("Authorization"), "body": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if self.path.endswith("close-after"):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def json_server() -> Iterator[http.server.ThreadingHTTPServer]:
    _Handler.connections = set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_client_reuses_one_connection_and_authenticates(json_server: http.server.ThreadingHTTPServer) -> None:
    port = json_server.server_address[1]
    client = AgentClient(f"http://127.0.0.1:{port}/_agent/v1", "node-1", "the-secret")
    answers = [client.post("/nodes/node-1/events", {"n": i}) for i in range(5)]
    client.close()

    assert [status for status, _ in answers] == [200] * 5
    assert answers[0][1]["path"] == "/_agent/v1/nodes/node-1/events"
    assert answers[0][1]["auth"] == "BatchboxNode node-1:the-secret"
    assert [answer["body"] for _, answer in answers] == [{"n": i} for i in range(5)]
    assert len(_Handler.connections) == 1


def test_client_replaces_a_connection_the_server_closed(json_server: http.server.ThreadingHTTPServer) -> None:
    port = json_server.server_address[1]
    client = AgentClient(f"http://127.0.0.1:{port}", "n", "s")
    first = client.post("/close-after", {})
    time.sleep(0.2)  # let the server's FIN arrive: the idle socket is then readable
    second = client.post("/again", {"x": 1})
    client.close()

    assert first[0] == 200
    assert second == (200, {"path": "/again", "auth": "BatchboxNode n:s", "body": {"x": 1}})
    assert len(_Handler.connections) == 2


def test_client_reports_an_unreachable_server() -> None:
    port = find_free_port()
    client = AgentClient(f"http://127.0.0.1:{port}/_agent/v1", "n", "secret-value")

    with pytest.raises(ServerUnreachable) as caught:
        client.post("/nodes/n/poll?wait=1", {"running": []})
    assert "secret-value" not in str(caught.value)


def test_client_times_out_on_a_silent_server() -> None:
    with contextlib.closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        client = AgentClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "n", "s")
        with pytest.raises(ServerUnreachable):
            client.post("/poll", {}, timeout=0.3)


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay() for _ in range(7)]
    backoff.reset()

    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert backoff.next_delay() == pytest.approx(0.1)


# -- pure helpers (no container) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "match", "blob"),
    [
        ("result.txt", "", "/wd/result.txt", "result.txt"),
        ("result.txt", "renamed/out.bin", "/wd/result.txt", "renamed/out.bin"),
        ("**/*.txt", "prefix", "/wd/a/b.txt", "prefix/a/b.txt"),
        ("**/*.txt", "", "/wd/top.txt", "top.txt"),
        ("out/*.csv", "dir/", "/wd/out/x.csv", "dir/x.csv"),
        ("../std*.txt", "logs", "/stderr.txt", "logs/stderr.txt"),
        ("/data/run?/*.log", "l", "/data/run1/a.log", "l/run1/a.log"),
    ],
)
def test_blob_names_of_matched_output_files(pattern: str, path: str, match: str, blob: str) -> None:
    assert blob_name_for(pattern, path, match, "/wd") == blob


def test_agent_log_hides_the_secret_and_sas_signatures(tmp_path: Path) -> None:
    logger = logging.getLogger("batchbox.agent")
    before = list(logger.handlers)
    setup_logging(str(tmp_path), "node-secret-value")
    try:
        logger.warning("GET %s with %s", "http://127.0.0.1:10000/a/c/b?sv=2021&sig=abc%2Bdef&se=x", "node-secret-value")
        try:
            raise RuntimeError("failed http://h/c?sp=r&sig=zzz node-secret-value")
        except RuntimeError:
            logger.exception("download failed")
    finally:
        for handler in logger.handlers[len(before) :]:
            handler.close()
            logger.removeHandler(handler)
    text = (tmp_path / "agent.log").read_text()
    assert "sig=<redacted>" in text
    assert "abc%2Bdef" not in text
    assert "zzz" not in text
    assert "node-secret-value" not in text
    assert "download failed" in text
