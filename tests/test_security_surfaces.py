"""Security of the newer surfaces (docs/security.md): file APIs confined to their directories, and the secret scan
extended to registry passwords, the portal token and the portal's own pages.

* File APIs: a task (as admin) plants links that lead out of its working directory, the node's shared directory,
  the node root, the applications directory and a job preparation task's directory (absolute links to the host's
  ``/etc`` and ``/``, relative ``..`` chains). The Batch file APIs (task files, node files; get, properties, list)
  and the portal's file views refuse every one with ``FileNotFound`` and never list what lies outside; a real file
  next to them is served (control).
* Secrets: a container pool with a registry password, a container task with its own registry password, and tasks
  with SAS signatures in their command line and resource file. No registry password, no portal token and no account
  key appears in the emulator's log, in any file of its state directory (the database and its WAL; not the token
  file itself), in Batch GET answers (passwords) or in any portal page or JSON answer; the portal also shows no SAS
  signature (a control checks the scan finds the registry password in the request the test sent).
* Node users: the password and SSH key of a node user are never in the emulator's log or state, in Batch answers,
  in the node's files, in its container's configuration or log; the node keeps only the password's hash.
* ``uploadbatchservicelogs`` writes only into the container of the SAS it is given, under ``<pool>/<node>/``, and
  what it uploads carries no node secret and no SAS signature; the SAS does not reach the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import ContainerPermission
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY
from batchbox.emulator.portal import read_token
from tests.fixtures.emulator import EmulatorProcess
from tests.portal_helpers import all_done, make_scenario, portal_session, unique
from tests.signing import SignedClient

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

_SIG = re.compile(r"sig=[A-Za-z0-9%/+=]{10,}", re.IGNORECASE)
"""A SAS signature value, as the security scan looks for it (the masked ``sig=REDACTED`` does not match)."""
POOL_REGISTRY_PASSWORD = "pool-registry-password-4d1e9a7c"
TASK_REGISTRY_PASSWORD = "task-registry-password-0b8e2f63"
_PLANT = (
    "/bin/sh -c 'echo inside > $AZ_BATCH_TASK_WORKING_DIR/real.txt; "
    "ln -s /etc/passwd $AZ_BATCH_TASK_WORKING_DIR/leak; "
    "ln -s ../../../../../../../../../../etc $AZ_BATCH_TASK_WORKING_DIR/up; "
    "ln -s / $AZ_BATCH_NODE_SHARED_DIR/hostroot; "
    "ln -s /etc $AZ_BATCH_NODE_ROOT_DIR/escape; "
    "mkdir -p $AZ_BATCH_NODE_ROOT_DIR/applications; ln -s /etc $AZ_BATCH_NODE_ROOT_DIR/applications/pkg'"
)
_HOST_PASSWD = "root:x:0:0"


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> Iterator[BatchClient]:
    yield emulator.batch_client()


@pytest.fixture(scope="module")
def planted(client: BatchClient) -> dict[str, str]:
    """A task that planted links out of every directory the file APIs serve; its ids and node."""
    ids = make_scenario(client, unique("sec-pool"), nodes=1)
    task = m.BatchTaskCreateOptions(
        id="planter",
        command_line=_PLANT,
        user_identity=m.UserIdentity(
            auto_user=m.AutoUserSpecification(elevation_level=m.ElevationLevel.ADMIN, scope=m.AutoUserScope.POOL)
        ),
    )
    client.create_task(ids["job"], task)
    all_done(client, ids["job"], 9)
    done = client.get_task(ids["job"], "planter")
    assert done.execution_info.exit_code == 0, done.execution_info.as_dict()
    return {**ids, "task": "planter", "node": done.node_info.node_id}


@pytest.fixture(scope="module")
def rest(emulator: EmulatorProcess) -> Iterator[SignedClient]:
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as signed:
        yield signed


def test_file_apis_follow_no_link_out_of_the_task_node_shared_application_or_prep_dirs(
    emulator: EmulatorProcess, client: BatchClient, rest: SignedClient, planted: dict[str, str]
) -> None:
    job, task, pool, node = planted["job"], planted["task"], planted["pool"], planted["node"]
    task_files = f"/jobs/{job}/tasks/{task}/files"
    node_files = f"/pools/{pool}/nodes/{node}/files"
    assert rest.send("GET", f"{task_files}/wd/real.txt").content == b"inside\n"  # control
    escapes = [
        f"{task_files}/wd/leak",
        f"{task_files}/wd/up/passwd",
        f"{node_files}/shared/hostroot/etc/passwd",
        f"{node_files}/escape/passwd",
        f"{node_files}/applications/pkg/passwd",
        f"{node_files}/workitems/{job}/job-1/{task}/wd/leak",
    ]
    for path in escapes:
        for method in ("GET", "HEAD"):
            answer = rest.send(method, path)
            assert answer.status_code == 404, (method, path, answer.status_code)
            if method == "GET":
                assert answer.json()["code"] == "FileNotFound", path
                assert _HOST_PASSWD not in answer.text
    for listing in (task_files, node_files):
        answer = rest.send("GET", listing, query="recursive=true&api-version=2025-06-01")
        assert answer.status_code == 200, listing
        names = [entry["name"] for entry in answer.json()["value"]]
        assert names and not [n for n in names if "passwd" in n or n.startswith(("shared/hostroot/", "escape/"))]

    # A job preparation task's directory (beside the job's tasks) is confined the same way.
    prep_job = unique("sec-prep")
    client.create_job(
        m.BatchJobCreateOptions(
            id=prep_job,
            pool_info=m.BatchPoolInfo(pool_id=pool),
            job_preparation_task=m.BatchJobPreparationTask(
                command_line="/bin/sh -c 'ln -s /etc/passwd leak; ln -s / $AZ_BATCH_JOB_PREP_DIR/hostroot'"
            ),
        )
    )
    client.create_task(prep_job, m.BatchTaskCreateOptions(id="after-prep", command_line="/bin/true"))
    all_done(client, prep_job, 1)
    prep_dir = f"{node_files}/workitems/{prep_job}/job-1/jobpreparation"
    listed = rest.send("GET", node_files, query="recursive=true&api-version=2025-06-01").json()["value"]
    names = {entry["name"] for entry in listed}
    assert f"workitems/{prep_job}/job-1/jobpreparation/stdout.txt" in names  # control: the directory is served
    assert not [n for n in names if "/jobpreparation/hostroot/" in n or n.endswith("passwd")]
    for path in (f"{prep_dir}/wd/leak", f"{prep_dir}/hostroot/etc/passwd"):
        answer = rest.send("GET", path)
        assert answer.status_code == 404 and _HOST_PASSWD not in answer.text, path

    session = portal_session(emulator)
    try:
        base = f"/portal/api/jobs/{job}/tasks/{task}"
        assert session.get(f"{base}/file", params={"path": "wd/real.txt"}).text == "inside\n"  # control
        for path in ("wd/leak", "wd/up/passwd"):
            answer = session.get(f"{base}/file", params={"path": path})
            assert answer.status_code == 404 and _HOST_PASSWD not in answer.text, path
            tail = session.get(f"{base}/tail", params={"path": path}).json()  # the tail says "no such file"
            assert (tail["exists"], tail["text"]) == (False, ""), path
        node_base = f"/portal/api/pools/{pool}/nodes/{node}"
        for path in ("shared/hostroot/etc/passwd", "escape/passwd", "applications/pkg/passwd"):
            answer = session.get(f"{node_base}/file", params={"path": path})
            assert answer.status_code == 404 and _HOST_PASSWD not in answer.text, path
        for path in ("shared/hostroot", "escape", "applications/pkg"):
            answer = session.get(f"{node_base}/files", params={"path": path})
            assert answer.status_code == 404 or "passwd" not in answer.text, path
    finally:
        session.close()


def _container_pool_and_task(client: BatchClient) -> tuple[str, str]:
    """A container pool (no nodes: nothing is pulled) with a registry password, and a job with a container task
    that has its own registry password."""
    pool_id, job_id = unique("sec-registry"), unique("sec-registry-job")
    registry = m.ContainerRegistryReference(
        registry_server="127.0.0.1:9", username="pool-user", password=POOL_REGISTRY_PASSWORD
    )
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2_v3",
            virtual_machine_configuration=m.VirtualMachineConfiguration(
                image_reference=m.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204"),
                node_agent_sku_id="batch.node.ubuntu 22.04",
                container_configuration=m.BatchContainerConfiguration(
                    type=m.ContainerType.DOCKER_COMPATIBLE,
                    container_image_names=["127.0.0.1:9/sec/image:1"],
                    container_registries=[registry],
                ),
            ),
            target_dedicated_nodes=0,
        )
    )
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    task_registry = m.ContainerRegistryReference(
        registry_server="127.0.0.2:9", username="task-user", password=TASK_REGISTRY_PASSWORD
    )
    client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="in-a-container",
            command_line="/bin/true",
            container_settings=m.BatchTaskContainerSettings(
                image_name="127.0.0.2:9/sec/task:1", registry=task_registry
            ),
        ),
    )
    return pool_id, job_id


def _portal_texts(session: httpx.Client, jobs: list[str], pools: list[str]) -> dict[str, str]:
    """Every portal page and JSON answer about these jobs and pools (and the page's own HTML and scripts)."""
    texts: dict[str, str] = {}

    def fetch(url: str, **params: str) -> Any:
        answer = session.get(url, params=params)
        assert answer.status_code == 200, (url, answer.status_code)
        texts[f"portal {url} {params}"] = answer.text
        return answer.json() if "json" in answer.headers.get("content-type", "") else None

    html = session.get("/portal/")
    texts["portal /portal/"] = html.text
    for script in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html.text):
        texts[f"portal {script}"] = session.get(script if script.startswith("/") else f"/portal/{script}").text
    fetch("/portal/api/pools")
    for pool in pools:
        detail = fetch(f"/portal/api/pools/{pool}")
        for node in (detail or {}).get("nodes", []):
            fetch(f"/portal/api/pools/{pool}/nodes/{node['id']}/files", path="")
    fetch("/portal/api/jobs")
    for job in jobs:
        fetch(f"/portal/api/jobs/{job}")
        fetch(f"/portal/api/jobs/{job}/timeline")
        listing = fetch(f"/portal/api/jobs/{job}/tasks", limit="100")
        for task in (listing or {}).get("tasks", []):
            fetch(f"/portal/api/jobs/{job}/tasks/{task['id']}")
    return texts


def test_no_registry_password_portal_token_or_key_in_state_logs_rest_or_portal(
    emulator: EmulatorProcess, client: BatchClient, planted: dict[str, str]
) -> None:
    pool_id, job_id = _container_pool_and_task(client)
    token = read_token(emulator.state_dir)
    assert token
    secrets = {
        "pool registry password": POOL_REGISTRY_PASSWORD,
        "task registry password": TASK_REGISTRY_PASSWORD,
        "portal token": token,
        "Batch account key": DEFAULT_ACCOUNT_KEY,
    }
    # Batch GET answers: the passwords never come back (the SAS users put in commands do, as in Batch).
    rest = {
        "GET pool": client.get_pool(pool_id).as_dict(),
        "list pools": [p.as_dict() for p in client.list_pools()],
        "GET task": client.get_task(job_id, "in-a-container").as_dict(),
        "list tasks": [t.as_dict() for t in client.list_tasks(job_id)],
    }
    texts = {name: repr(value) for name, value in rest.items()}
    assert "pool-user" in texts["GET pool"] and "task-user" in texts["GET task"]  # the rest of the reference is kept

    session = portal_session(emulator)
    try:
        portal = _portal_texts(session, [job_id, planted["job"]], [pool_id, planted["pool"]])
    finally:
        session.close()
    assert any('"sas"' in text for where, text in portal.items() if f"/{planted['job']}/tasks" in where)
    texts.update(portal)
    texts["emulator log"] = emulator.log_text()
    for path in sorted(emulator.state_dir.glob("*")):
        if path.is_file() and path.name != "portal.token":
            texts[str(path.name)] = path.read_bytes().decode("utf-8", "replace")
    assert "state.db" in texts and any(name.endswith("-wal") for name in texts)

    findings = [
        f"{what} in {where}" for where, text in texts.items() for what, value in secrets.items() if value in text
    ]
    # The scenario's tasks carry the SAS signatures CMDSECRET (command line) and URLSECRET (resource file).
    findings += [
        f"a SAS signature in {where}"
        for where, text in portal.items()
        if _SIG.search(text) or "CMDSECRET" in text or "URLSECRET" in text
    ]
    assert findings == [], findings
    # Control: the scan finds what it looks for where it is (the request body the client sent had the password).
    sent = m.ContainerRegistryReference(registry_server="x", username="u", password=POOL_REGISTRY_PASSWORD)
    assert POOL_REGISTRY_PASSWORD in repr(sent.as_dict())
    returned = repr(client.get_task(planted["job"], "sas").as_dict())  # Batch returns what users submitted
    assert "sig=CMDSECRET" in returned and "sig=URLSECRET" in returned


NODE_USER_PASSWORD = "node-user-Pa55word-91c3e7"
NODE_USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIsecuritysurfacekey0123456789 bob@test"


def _node_exec(emulator: EmulatorProcess, node_id: str, command: str) -> str:
    (container,) = [c for c in emulator.containers() if c.labels.get("batchbox.node") == node_id]
    code, output = container.exec_run(["/bin/sh", "-c", command], user="root")
    assert code == 0, output
    return output.decode("utf-8", "replace")


def test_node_user_password_and_key_are_never_stored_logged_or_returned(
    emulator: EmulatorProcess, client: BatchClient, planted: dict[str, str]
) -> None:
    pool, node = planted["pool"], planted["node"]
    client.create_node_user(
        pool,
        node,
        m.BatchNodeUserCreateOptions(name="bob", password=NODE_USER_PASSWORD, ssh_public_key=NODE_USER_KEY),
    )
    try:
        hashed = _node_exec(emulator, node, "getent shadow bob | cut -d: -f2").strip()
        assert hashed.startswith("$") and NODE_USER_PASSWORD not in hashed  # a hash, in the node only
        texts = {
            "GET node": repr(client.get_node(pool, node).as_dict()),
            "list nodes": repr([n.as_dict() for n in client.list_nodes(pool)]),
            "emulator log": emulator.log_text(),
        }
        for path in sorted(emulator.state_dir.glob("*")):
            if path.is_file():
                texts[path.name] = path.read_bytes().decode("utf-8", "replace")
        for path in sorted((emulator.state_dir / "nodes" / node).rglob("*")):
            if path.is_file() and not path.is_symlink():
                texts[str(path.relative_to(emulator.state_dir))] = path.read_bytes().decode("utf-8", "replace")
        (container,) = [c for c in emulator.containers() if c.labels.get("batchbox.node") == node]
        container.reload()
        texts["container configuration"] = repr(container.attrs)
        texts["container log"] = container.logs().decode("utf-8", "replace")
        texts["node passwd and shadow"] = _node_exec(emulator, node, "cat /etc/passwd /etc/shadow")
        findings = [
            f"{what} in {where}"
            for where, text in texts.items()
            for what, value in (("password", NODE_USER_PASSWORD), ("ssh key", "securitysurfacekey0123456789"))
            if value in text
        ]
        assert findings == [], findings
        assert any("agent.log" in where for where in texts) and "bob" in texts["node passwd and shadow"]
        # The key is where it belongs (the control: the scan would find it).
        assert "securitysurfacekey0123456789" in _node_exec(emulator, node, "cat /home/bob/.ssh/authorized_keys")
    finally:
        client.delete_node_user(pool, node, "bob")


def test_node_logs_go_only_to_the_container_of_the_given_sas(
    emulator: EmulatorProcess,
    client: BatchClient,
    planted: dict[str, str],
    blob_storage: BlobStorage,
    unique_container: Callable[[], str],
) -> None:
    target, other = unique_container(), unique_container()
    for name in (target, other):
        blob_storage.create_container(name)
    blob_storage.upload_bytes(other, "keep.txt", b"untouched")
    url = blob_storage.container_sas_url(
        target, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=1)
    )
    before = {c: sorted(b.name for b in blob_storage.list_blobs(c)) for c in (target, other)}
    result = client.upload_node_logs(
        planted["pool"],
        planted["node"],
        m.UploadBatchServiceLogsOptions(container_url=url, start_time=datetime(2020, 1, 1)),
    )
    after = {c: sorted(b.name for b in blob_storage.list_blobs(c)) for c in (target, other)}
    assert before[target] == [] and after[other] == before[other] == ["keep.txt"]
    prefix = f"{planted['pool']}/{planted['node']}/"
    assert after[target] and all(name.startswith(prefix) for name in after[target])
    assert len(after[target]) == result.number_of_files_uploaded
    secret = _node_exec(emulator, planted["node"], "cat /proc/1/environ | tr '\\0' '\\n' | grep NODE_SECRET")
    secret = secret.strip().split("=", 1)[1]
    for name in after[target]:
        content = blob_storage.read_blob(target, name).decode("utf-8", "replace")
        assert secret not in content and not _SIG.search(content), name
    assert url.split("sig=", 1)[1][:20] not in emulator.log_text()
