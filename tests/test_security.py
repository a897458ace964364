"""Security: the tutorial with debug logging leaks no secret anywhere; least privilege; authentication; loopback.

One local stack under its own home runs the tutorial through ``batchbox --debug run`` plus a job whose tasks fail
on purpose (a tampered SAS, a missing blob, an upload through a read-only SAS). Then every log, CLI output, task
file, node file, container log and the emulator's state is searched for the storage account key, the Batch
account key, the nodes' secrets, any SAS signature value (``sig=`` followed by ten or more signature
characters; the redacted forms ``sig=REDACTED`` and ``sig=<redacted>`` do not match), any signed JSON Web Token
and any PEM private key (``test_entra.py`` runs the same scan over the Entra ID run).

What the user submitted is returned as submitted (a task's ``commandLine``, ``resourceFiles`` and ``outputFiles``
carry the SAS URLs the user put there, as Azure Batch keeps and returns them), but the emulator's state holds it
sealed under the account key, like the node secrets it needs to authenticate agents: the scan covers every byte
of the database files and every column of every row, and a positive control opens the sealed documents to show
the scanner finds the SAS and the node secrets there. The full scan is the module's last test, so it also covers
what the refused-credential tests made the services log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import docker
import docker.errors
import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from starlette.routing import Route

from batchbox.backends.azure import BlobStorage
from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.backends.local.azurite import AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME, find_free_port
from batchbox.backends.local.stack import LocalStack
from batchbox.core.errors import BatchboxError
from batchbox.core.storage import ContainerPermission
from batchbox.core.workflow import RunOptions
from batchbox.core.workload import DEFAULT_JOB_TIME_LIMIT, SAS_MARGIN
from batchbox.emulator.app import ROUTES
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.sealing import Sealer

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
DATA = sorted((REPO / "examples" / "topn_words" / "data").glob("*.txt"))
API_VERSION = "2025-06-01"
_SIG = re.compile(r"sig=[A-Za-z0-9%/+=]{10,}", re.IGNORECASE)
"""A SAS signature value (a real one is 44 base64 characters, 46+ URL-encoded)."""
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
"""A signed JSON Web Token (an Entra ID access token): base64url header and claims, then a signature."""
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
"""A PEM private key (PKCS#8, or the older RSA / EC forms)."""
_PATTERNS = (("sig=", _SIG), ("a bearer token", _JWT), ("a private key", _PRIVATE_KEY))
_WRONG_KEY = base64.b64encode(b"not-the-key-" + uuid.uuid4().bytes * 3).decode()


@dataclass
class Finding:
    where: str
    what: str
    context: str


def scan(where: str, text: str, secrets: dict[str, str]) -> list[Finding]:
    """Every secret value, SAS signature, bearer token and private key in ``text`` (with 40 characters of context,
    the secret cut out)."""
    found: list[Finding] = []
    for name, value in secrets.items():
        index = text.find(value)
        if value and index >= 0:
            found.append(Finding(where, name, text[max(0, index - 40) : index]))
    for what, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            found.append(Finding(where, what, text[max(0, match.start() - 40) : match.start() + 4]))
    return found


# --------------------------------------------------------------------------------------------- the local stack
@dataclass
class SecuredStack:
    home: Path
    local: LocalStack
    env: dict[str, str]
    run: subprocess.CompletedProcess[str] | None = None
    run_started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    output_dir: Path | None = None
    failing_job: str = ""
    extra_texts: dict[str, str] = field(default_factory=dict)

    @property
    def nodes_dir(self) -> Path:
        return self.home / "emulator" / "nodes"

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "batchbox.cli.main", *args],
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=REPO,
            timeout=240,
        )

    def client(self, key: str = DEFAULT_ACCOUNT_KEY) -> BatchClient:
        return BatchClient(self.local.batch_url, AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, key))

    def storage(self) -> BlobStorage:
        return BlobStorage.from_connection_string(self.local.endpoints().storage_connection_string)

    def node_containers(self, docker_client: docker.DockerClient) -> list[Any]:
        return list(
            docker_client.containers.list(
                all=True, ignore_removed=True, filters={"label": f"batchbox.emulator={self.local.instance_label}"}
            )
        )


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, node_image: str
) -> Iterator[SecuredStack]:
    """The tutorial run with ``--debug`` (job and pool kept for inspection), then a job of failing tasks."""
    home = tmp_path_factory.mktemp("security-home")
    ports = (find_free_port(), find_free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    env.update(
        BATCHBOX_HOME=str(home),
        BATCHBOX_AZURITE_PORT=str(ports[0]),
        BATCHBOX_EMULATOR_PORT=str(ports[1]),
        BATCHBOX_NODE_LABELS="batchbox.test=1",
        BATCHBOX_EMULATOR_LOG_LEVEL="debug",
    )
    secured = SecuredStack(home, LocalStack(home, azurite_port=ports[0], emulator_port=ports[1]), env)
    try:
        secured.output_dir = home.parent / "security-outputs"
        secured.run_started = datetime.now(timezone.utc)
        secured.run = secured.cli(
            "--debug",
            "run",
            "examples/topn_words/workload.py",
            "--yes",
            "--keep-job",
            "--keep-pool",
            "--output-dir",
            str(secured.output_dir),
        )
        assert secured.run.returncode == 0, secured.run.stderr[-3000:]
        secured.failing_job = _run_failing_job(secured)
        yield secured
    finally:
        secured.cli("local", "down", "--remove-nodes")
        for container in secured.node_containers(docker_client):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


def _tampered(sas_url: str) -> str:
    base, _, query = sas_url.partition("?")
    params = [p.split("=", 1) for p in query.split("&")]
    return base + "?" + "&".join(f"{k}={'A' * len(v) if k == 'sig' else v}" for k, v in params)


def _run_failing_job(secured: SecuredStack) -> str:
    """Tasks that fail on the node because of storage access, and tasks that report their user id."""
    job_id = f"failing-{uuid.uuid4().hex[:8]}"
    hour = timedelta(hours=1)
    with secured.storage() as storage:
        storage.create_container("sec-inputs")
        storage.create_container("sec-readonly")
        storage.upload_bytes("sec-inputs", "data.txt", b"data\n")
        good = storage.blob_sas_url("sec-inputs", "data.txt", expiry=hour)
        missing = storage.blob_sas_url("sec-inputs", "missing.txt", expiry=hour)
        read_only = storage.container_sas_url("sec-readonly", [ContainerPermission.READ], expiry=hour)
    upload = m.OutputFile(
        file_pattern="out.txt",
        destination=m.OutputFileDestination(
            container=m.OutputFileBlobContainerDestination(container_url=read_only, path="out.txt")
        ),
        upload_options=m.OutputFileUploadConfiguration(upload_condition=m.OutputFileUploadCondition.TASK_COMPLETION),
    )
    admin = m.UserIdentity(
        auto_user=m.AutoUserSpecification(scope=m.AutoUserScope.TASK, elevation_level=m.ElevationLevel.ADMIN)
    )
    tasks = [
        m.BatchTaskCreateOptions(
            id="tampered-sas",
            command_line="/bin/true",
            resource_files=[m.ResourceFile(http_url=_tampered(good), file_path="data.txt")],
        ),
        m.BatchTaskCreateOptions(
            id="missing-blob",
            command_line="/bin/true",
            resource_files=[m.ResourceFile(http_url=missing, file_path="missing.txt")],
        ),
        m.BatchTaskCreateOptions(
            id="read-only-upload", command_line="/bin/sh -c 'echo out > out.txt'", output_files=[upload]
        ),
        m.BatchTaskCreateOptions(id="uid", command_line="/usr/bin/id -u"),
        m.BatchTaskCreateOptions(id="uid-admin", command_line="/usr/bin/id -u", user_identity=admin),
    ]
    with secured.client() as client:
        client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="topn-words-pool")))
        client.create_task_collection(job_id, m.BatchTaskGroup(task_values=tasks))
        deadline = datetime.now(timezone.utc) + timedelta(seconds=120)
        while client.get_job_task_counts(job_id).task_counts.completed < len(tasks):
            assert datetime.now(timezone.utc) < deadline, "the failing tasks did not complete"
            time.sleep(0.2)
    return job_id


def _secrets(secured: SecuredStack, docker_client: docker.DockerClient) -> dict[str, str]:
    found = {"storage account key": AZURITE_ACCOUNT_KEY, "Batch account key": DEFAULT_ACCOUNT_KEY}
    found["a wrong key tried by a test"] = _WRONG_KEY
    for container in secured.node_containers(docker_client):
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        found[f"the secret of node {env['BATCHBOX_NODE_ID']}"] = env["BATCHBOX_NODE_SECRET"]
    return found


def _state_dump(state_db: Path) -> dict[str, str]:
    """Every column of every row of every table as stored (sealed values as their raw bytes)."""
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    dump: dict[str, str] = {}
    try:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # table names come from sqlite_master
            columns = [d[0] for d in cursor.description]
            for index, row in enumerate(cursor):
                values = [
                    f"{column}={value.decode('latin-1') if isinstance(value, bytes) else value}"
                    for column, value in zip(columns, row, strict=True)
                ]
                dump[f"state.db {table} row {index}"] = " ".join(values)
    finally:
        db.close()
    return dump


def _opened_state(state_db: Path, table: str, column: str = "doc", **equals: str) -> list[str]:
    """The sealed ``column`` of ``table`` (rows whose plain columns match ``equals``), opened with the account key."""
    sealer = Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME)
    context = "nodes.secret" if column == "secret" else table
    conditions = "".join(f" AND {name} = ?" for name in equals)  # names come from this module's calls
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        rows = db.execute(
            f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL{conditions}", tuple(equals.values())
        )
        return [sealer.open(row[0], context) for row in rows]
    finally:
        db.close()


def _files_under(root: Path, skip: Callable[[Path], bool]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not skip(path):
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return texts


# ------------------------------------------------------------------------------------ error texts of refusals
def test_error_texts_of_refused_credentials_carry_no_secret(stack: SecuredStack, tmp_path: Path) -> None:
    endpoints = stack.local.endpoints()
    texts: dict[str, str] = {}

    def failure_text(name: str, action: Callable[[], object]) -> None:
        try:
            action()
        except BatchboxError as exc:
            texts[name] = "".join(traceback.format_exception(exc))
            return
        pytest.fail(f"{name}: no error")

    wrong_storage = endpoints.storage_connection_string.replace(AZURITE_ACCOUNT_KEY, _WRONG_KEY)
    with stack.storage() as storage:
        sas_url = storage.container_sas_url("sec-inputs", [ContainerPermission.READ], expiry=timedelta(hours=1))
        failure_text("missing blob", lambda: storage.read_blob("sec-inputs", "nope.txt"))
    with BlobStorage.from_connection_string(wrong_storage, retry_total=0) as storage:
        failure_text("wrong storage key", lambda: storage.list_blobs("sec-inputs"))
    endpoint = f"http://127.0.0.1:{stack.local.azurite_port}/{AZURITE_ACCOUNT_NAME}"
    tampered = _tampered(sas_url).partition("?")[2]
    with BlobStorage(endpoint, AzureSasCredential(tampered), retry_total=0) as storage:
        failure_text("tampered SAS", lambda: storage.read_blob("sec-inputs", "data.txt"))
    with BlobStorage(endpoint, AzureSasCredential(sas_url.partition("?")[2]), retry_total=0) as storage:
        failure_text("SAS without write", lambda: storage.upload_bytes("sec-inputs", "x.txt", b"x"))
    compute = AzureBatchCompute.from_shared_key(endpoints.batch_url, DEFAULT_ACCOUNT_NAME, _WRONG_KEY)
    try:
        failure_text("wrong Batch key", compute.list_pools)
    finally:
        compute.close()

    azure_env = {k: v for k, v in stack.env.items() if k != "BATCHBOX_HOME"}
    azure_env.update(
        BATCHBOX_BATCH_URL=endpoints.batch_url,
        BATCHBOX_BATCH_ACCOUNT=DEFAULT_ACCOUNT_NAME,
        BATCHBOX_BATCH_KEY=_WRONG_KEY,
        BATCHBOX_STORAGE_CONNECTION_STRING=endpoints.storage_connection_string,
    )
    refused = stack.cli("--debug", "status", "--backend", "azure", env=azure_env)
    assert refused.returncode != 0 and "batchbox: error:" in refused.stderr
    texts["batchbox --debug status with a wrong Batch key"] = refused.stdout + refused.stderr
    azure_env.update(BATCHBOX_BATCH_KEY=DEFAULT_ACCOUNT_KEY, BATCHBOX_STORAGE_CONNECTION_STRING=wrong_storage)
    workload = tmp_path / "tiny.py"
    workload.write_text(
        "from batchbox.core import TaskSpec\nfrom batchbox.core.workload import Workload\n"
        "class Tiny(Workload):\n    job_id = 'tiny-sec'\n    pool_id = 'tiny-sec-pool'\n"
        "    def tasks(self, staged):\n        return [TaskSpec(id='t', command_line='/bin/true')]\n"
    )
    refused = stack.cli("--debug", "run", str(workload), "--backend", "azure", "--yes", env=azure_env)
    assert refused.returncode != 0 and "batchbox: error:" in refused.stderr
    texts["batchbox --debug run with a wrong storage key"] = refused.stdout + refused.stderr

    assert "refused" in texts["wrong Batch key"] and "refused" in texts["wrong storage key"]
    secrets = {
        "storage account key": AZURITE_ACCOUNT_KEY,
        "Batch account key": DEFAULT_ACCOUNT_KEY,
        "the wrong key": _WRONG_KEY,
    }
    findings = [f for where, text in texts.items() for f in scan(where, text, secrets)]
    assert findings == [], "\n".join(f"{f.what} in {f.where}: ...{f.context}" for f in findings[:20])


# ------------------------------------------------------------------------------------------- least privilege
def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_sas_urls_are_least_privilege_and_bounded_by_the_job(stack: SecuredStack) -> None:
    state_db = stack.home / "emulator" / "state.db"
    task_docs = [json.loads(d) for d in _opened_state(state_db, "tasks", job_key="topn-words-job")]
    (pool_doc,) = [json.loads(d) for d in _opened_state(state_db, "pools", key="topn-words-pool")]
    assert len(task_docs) == len(DATA)
    # The SAS outlive the job's time limit (2 hours for the tutorial) by SAS_MARGIN, plus the pool step before the job.
    lifetime = DEFAULT_JOB_TIME_LIMIT + SAS_MARGIN + timedelta(seconds=RunOptions().pool_timeout)
    latest_expiry = stack.run_started + lifetime + timedelta(minutes=5)
    for doc in task_docs:
        output_url = re.search(r'--container-url "([^"]+)"', doc["commandLine"]).group(1)  # type: ignore[union-attr]
        output = _query(output_url)
        assert output["sp"] == "cw", "output SAS: create + write only (no read, list or delete)"
        assert "sr" in output and output["sr"] == "c"
        (resource,) = doc["resourceFiles"]
        inputs = _query(resource["httpUrl"])
        assert inputs["sp"] == "r" and inputs["sr"] == "b", "input SAS: read one blob"
        for query in (output, inputs):
            expiry = datetime.fromisoformat(query["se"].replace("Z", "+00:00"))
            assert stack.run_started < expiry <= latest_expiry
    (application,) = pool_doc["startTask"]["resourceFiles"]
    assert _query(application["httpUrl"])["sp"] == "r"
    (job_doc,) = [json.loads(d) for d in _opened_state(state_db, "jobs", key="topn-words-job")]
    assert job_doc["constraints"]["maxWallClockTime"] == "PT2H"


def test_node_containers_get_no_key_no_privilege_and_only_their_own_files(
    stack: SecuredStack, docker_client: docker.DockerClient
) -> None:
    containers = stack.node_containers(docker_client)
    assert containers
    for container in containers:
        config, host = container.attrs["Config"], container.attrs["HostConfig"]
        env = dict(item.split("=", 1) for item in config["Env"])
        text = json.dumps(container.attrs)
        assert AZURITE_ACCOUNT_KEY not in text and DEFAULT_ACCOUNT_KEY not in text and "AccountKey" not in text
        assert {k for k in env if k.startswith("BATCHBOX_")} == {
            "BATCHBOX_AGENT_URL",
            "BATCHBOX_NODE_ID",
            "BATCHBOX_NODE_SECRET",
            "BATCHBOX_NODE_ROOT",
        }
        assert host["Privileged"] is False and not host.get("CapAdd")
        mounts = {(mount["Destination"], mount["RW"]) for mount in container.attrs["Mounts"]}
        assert mounts == {("/mnt/batch/tasks", True), ("/opt/batchbox/node", False)}, mounts
        node_id = env["BATCHBOX_NODE_ID"]
        (root,) = [mount["Source"] for mount in container.attrs["Mounts"] if mount["Destination"] == "/mnt/batch/tasks"]
        assert Path(root) == stack.nodes_dir / node_id
    secrets = [dict(i.split("=", 1) for i in c.attrs["Config"]["Env"])["BATCHBOX_NODE_SECRET"] for c in containers]
    assert len(set(secrets)) == len(secrets) and all(len(s) >= 32 for s in secrets)


def test_tasks_run_unprivileged_unless_elevated(stack: SecuredStack) -> None:
    with stack.client() as client:
        uid = b"".join(client.download_task_file(stack.failing_job, "uid", "stdout.txt")).decode().strip()
        admin = b"".join(client.download_task_file(stack.failing_job, "uid-admin", "stdout.txt")).decode().strip()
        tutorial = [client.get_task("topn-words-job", f"topNtask{i}") for i in range(len(DATA))]
    assert (uid, admin) == ("1000", "0")
    # The tutorial's tasks (nonadmin) wrote their outputs as uid 1000; its start task (admin) copied as root.
    for task in tutorial:
        wd = stack.nodes_dir / task.node_info.node_id / task.node_info.task_root_directory / "wd"
        (output,) = list(wd.glob("*_OUTPUT.txt"))
        assert output.stat().st_uid == 1000
        assert (stack.nodes_dir / task.node_info.node_id / "shared" / "topn.py").stat().st_uid == 0


# --------------------------------------------------------------------------------------------- authentication
def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_batch_route_refuses_unsigned_and_wrongly_signed_requests(stack: SecuredStack) -> None:
    batch_routes = [r for r in ROUTES if isinstance(r, Route) and not r.path.startswith("/_agent/")]
    assert len(batch_routes) > 30
    wrong = stack.client(_WRONG_KEY)
    checked = 0
    try:
        for route in batch_routes:
            for method in sorted(route.methods or ()):
                url = f"{stack.local.batch_url}{_fill(route.path)}?api-version={API_VERSION}"
                body = b"{}" if method in ("POST", "PUT", "PATCH") else None
                headers = {"content-type": "application/json; odata=minimalmetadata"} if body else {}
                unsigned = httpx.request(method, url, content=body, headers=headers, timeout=10)
                assert unsigned.status_code == 403, f"unsigned {method} {route.path}: {unsigned.status_code}"
                try:
                    signed = wrong.send_request(HttpRequest(method, url, content=body, headers=headers))
                    status = signed.status_code
                except HttpResponseError as exc:  # the SDK's pipeline raises on errors
                    status = exc.status_code
                assert status == 403, f"{method} {route.path} signed with a wrong key: {status}"
                if method != "HEAD":
                    assert unsigned.json()["code"] == "AuthenticationFailed"
                checked += 1
    finally:
        wrong.close()
    assert checked >= len(batch_routes)


def test_agent_api_needs_the_node_own_secret(stack: SecuredStack, docker_client: docker.DockerClient) -> None:
    envs = [dict(i.split("=", 1) for i in c.attrs["Config"]["Env"]) for c in stack.node_containers(docker_client)]
    node = envs[0]["BATCHBOX_NODE_ID"]
    others = [e["BATCHBOX_NODE_SECRET"] for e in envs[1:]] + [envs[0]["BATCHBOX_NODE_SECRET"][::-1]]
    for route in ("register", "poll", "events"):
        url = f"{stack.local.batch_url}/_agent/v1/nodes/{node}/{route}?wait=0"
        attempts = [{}, {"Authorization": f"SharedKey {DEFAULT_ACCOUNT_NAME}:{DEFAULT_ACCOUNT_KEY}"}]
        attempts += [{"Authorization": f"BatchboxNode {node}:{secret}"} for secret in others]
        for headers in attempts:
            answer = httpx.post(url, json={"running": [], "events": []}, headers=headers, timeout=10)
            assert answer.status_code == 403, (route, answer.status_code)


def test_services_listen_on_loopback_only(stack: SecuredStack) -> None:
    ports = {stack.local.azurite_port, stack.local.emulator_port}
    listening: dict[int, set[str]] = {port: set() for port in ports}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) in ports:  # 0A: LISTEN
                listening[int(port_hex, 16)].add(address)
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    for port, addresses in listening.items():
        assert addresses and addresses <= loopback, (port, addresses)


# ---------------------------------------------------- the whole scan, last: it sees the logs the tests above caused
def test_no_secret_in_any_log_output_task_file_or_state(
    stack: SecuredStack, docker_client: docker.DockerClient
) -> None:
    assert stack.run is not None and stack.output_dir is not None
    assert f"job topn-words-job: {len(DATA)} succeeded, 0 failed of {len(DATA)}" in stack.run.stdout
    assert " DEBUG " in stack.run.stderr, "debug logging was on (SDK request logs included)"
    secrets = _secrets(stack, docker_client)
    assert len(secrets) > 3, "the node secrets were found"

    texts = {"batchbox run stdout": stack.run.stdout, "batchbox run stderr": stack.run.stderr}
    for task in ("tampered-sas", "missing-blob", "read-only-upload"):
        logs = stack.cli("--debug", "logs", stack.failing_job, task, "--stderr")
        texts[f"batchbox logs {task}"] = logs.stdout + logs.stderr
    status = stack.cli("--debug", "status", stack.failing_job)
    texts["batchbox status"] = status.stdout + status.stderr
    assert "failed tampered-sas: exit code None; BlobAccessDenied" in status.stdout
    # Every file of the stack's home: logs, pid files, the emulator's database files (and WAL), node dirs (task
    # files, agent.log, wd, shared); not Azurite's blob data (what users uploaded).
    texts |= _files_under(stack.home, lambda p: (stack.local.azurite_dir / "data") in p.parents)
    assert any(where.endswith("state.db") for where in texts)
    texts |= _files_under(stack.output_dir, lambda p: False)
    texts |= _state_dump(stack.home / "emulator" / "state.db")
    for container in stack.node_containers(docker_client):
        texts[f"docker logs {container.name}"] = container.logs().decode("utf-8", "replace")

    assert any("agent.log" in where for where in texts)
    assert " DEBUG " in texts[str(stack.local.emulator_log)], "the emulator logged at debug level"
    assert any(where.endswith("fileuploaderr.txt") for where in texts)
    findings = [f for where, text in texts.items() for f in scan(where, text, secrets)]
    print(f"scanned {len(texts)} sources, {sum(len(t) for t in texts.values())} characters, for {len(secrets)} secrets")
    assert findings == [], "\n".join(f"{f.what} in {f.where}: ...{f.context}" for f in findings[:20])
    # The scanner does find what is sealed: the SAS in the commands users submitted, the secrets of the nodes.
    state_db = stack.home / "emulator" / "state.db"
    opened = _opened_state(state_db, "tasks") + _opened_state(state_db, "nodes", "secret")
    control = {f.what for text in opened for f in scan("opened state", text, secrets)}
    assert "sig=" in control and any(what.startswith("the secret of node") for what in control), control

    # The failures are still explained (without the signature).
    with stack.client() as client:
        tampered = client.get_task(stack.failing_job, "tampered-sas").execution_info.failure_info
        missing = client.get_task(stack.failing_job, "missing-blob").execution_info.failure_info
        upload = client.get_task(stack.failing_job, "read-only-upload").execution_info.failure_info
    assert (tampered.code, missing.code, upload.code) == ("BlobAccessDenied", "BlobNotFound", "FileUploadMiscError")
    details = {d.name: d.value for d in tampered.details}
    assert details["Url"].endswith("/sec-inputs/data.txt?<redacted>") and details["HttpStatusCode"] == "403"
