"""Upgrades: a state directory written by an earlier release opens with this code, and a newer one is refused.

``tests/upgrade/states/schema-<N>/`` holds the ``state.db`` and ``manifest.json`` that
``tests/upgrade/write_state.py`` wrote with the release of schema ``N`` (see ``tests/upgrade/README.md``). For
each one, the test starts the containers of the pool the manifest names as running (same node ids, the node
secrets opened from the old database with the account key), starts the emulator on a copy of the state, and
checks:

* every pool, job and task answers GET with what the old release answered (properties added since may appear);
* task counts are exact; the secrets users put in documents come back intact and the database files never hold
  them in plain text; the node secrets open and the agents authenticate with them;
* the running pool is re-adopted (same nodes, same containers), the pool whose containers are gone gets a new
  node, queued tasks run once a node is there, and new tasks run on the re-adopted nodes;
* the database now carries this release's schema version and passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.backends.local.azurite import find_free_port
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME, EmulatorConfig
from batchbox.emulator.nodes.docker_driver import NodeDriver
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import SCHEMA_VERSION, Store, StoreError
from tests.fixtures.docker import TEST_LABELS
from tests.fixtures.emulator import EmulatorProcess

T = TypeVar("T")
STATES = Path(__file__).resolve().parent / "upgrade" / "states"
FIRST_KEPT_SCHEMA = 2
"""The oldest schema with a kept state (schema 1 predates the fixtures; test_emulator_store.py covers it)."""
_URL = re.compile(r"http://127\.0\.0\.1:\d+")


def _state_dirs() -> list[Path]:
    return sorted(STATES.glob("schema-*"), key=lambda p: int(p.name.split("-")[1]))


def _wait(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def _doc(model: Any) -> dict[str, Any]:
    doc: dict[str, Any] = model.as_dict()
    doc.pop("odata.metadata", None)
    return doc


def _normal(value: Any) -> Any:
    """The emulator's own URLs carry its port, which differs from run to run."""
    if isinstance(value, str):
        return _URL.sub("http://emulator", value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _missing(old: Any, new: Any, where: str = "") -> list[str]:
    """Where ``new`` lacks or changed what ``old`` holds (keys ``new`` adds are fine: later releases add them)."""
    if isinstance(old, dict) and isinstance(new, dict):
        problems: list[str] = []
        for key, value in old.items():
            if key not in new:
                problems.append(f"{where}.{key} is gone")
            else:
                problems += _missing(value, new[key], f"{where}.{key}")
        return problems
    return [] if _normal(old) == _normal(new) else [f"{where}: {old!r} became {new!r}"]


def _sealed_node_secrets(database: Path) -> dict[str, str]:
    """The node secrets of a schema-2 database (``nodes.secret``, sealed under the account key), by node id."""
    sealer = Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME)
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, secret FROM nodes WHERE secret IS NOT NULL").fetchall()
    finally:
        db.close()
    return {str(node_id): sealer.open(secret, "nodes.secret") for node_id, secret in rows}


def _database_bytes(state_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(state_dir.glob("state.db*")))


@pytest.fixture
def upgraded(
    request: pytest.FixtureRequest, tmp_path: Path, docker_client: docker.DockerClient, node_image: str
) -> Iterator[tuple[EmulatorProcess, dict[str, Any], dict[str, str]]]:
    """The emulator on a copy of one kept state, with the containers of its running pool started again."""
    source: Path = request.param
    manifest = json.loads((source / "manifest.json").read_text())
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    shutil.copy2(source / "state.db", state_dir / "state.db")
    emulator = EmulatorProcess(
        port=find_free_port(),
        state_dir=state_dir,
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
        node_image=node_image,
        docker_client=docker_client,
    )
    secrets = _sealed_node_secrets(state_dir / "state.db")
    driver = NodeDriver(
        docker_client,
        EmulatorConfig(
            port=emulator.port, state_dir=state_dir, instance_label=emulator.instance_label, node_image=node_image
        ),
        extra_labels=TEST_LABELS,
    )
    containers: dict[str, str] = {}
    try:
        for pool_id, node_ids in manifest["recreate"].items():
            for node_id in node_ids:
                containers[node_id] = driver.create_node(pool_id, node_id, secrets[node_id])
        emulator.start()
        yield emulator, manifest, containers
    finally:
        emulator.cleanup()


@pytest.mark.docker
@pytest.mark.timeout(240)
@pytest.mark.parametrize("upgraded", _state_dirs(), ids=lambda p: p.name, indirect=True)
def test_a_kept_state_opens_intact_and_its_running_pool_is_re_adopted(
    upgraded: tuple[EmulatorProcess, dict[str, Any], dict[str, str]],
) -> None:
    emulator, manifest, containers = upgraded
    client: BatchClient = emulator.batch_client()
    for value in manifest["secrets"].values():
        assert value.encode() not in _database_bytes(emulator.state_dir), "a secret lies in plain text"

    # Resources as the old release answered them; counts exact.
    problems: list[str] = []
    for pool_id, old in manifest["pools"].items():
        new = _doc(client.get_pool(pool_id))
        if pool_id in manifest["lost"]:  # its lost node is being replaced: allocation fields move
            moving = ("allocationState", "current", "eTag", "lastModified")
            old = {k: v for k, v in old.items() if not k.startswith(moving)}
        problems += _missing(old, new, pool_id)
    for job_id, old in manifest["jobs"].items():
        problems += _missing(old, _doc(client.get_job(job_id)), job_id)
        assert _doc(client.get_job_task_counts(job_id)) == manifest["task_counts"][job_id], job_id
        tasks = {t.id: _doc(t) for t in client.list_tasks(job_id)}
        assert sorted(tasks) == sorted(manifest["tasks"][job_id]), job_id
        for task_id, old_task in manifest["tasks"][job_id].items():
            problems += _missing(old_task, tasks[task_id], f"{job_id}/{task_id}")
    assert problems == [], "\n".join(problems)
    secrets = manifest["secrets"]
    start_env = {e.name: e.value for e in client.get_pool("up-pool").start_task.environment_settings}
    assert start_env["UPGRADE_POOL_SECRET"] == secrets["pool"]
    t4 = client.get_task("up-job", "t4")
    assert secrets["sig"] in t4.command_line
    assert {e.name: e.value for e in t4.environment_settings}["UPGRADE_TASK_SECRET"] == secrets["task"]
    assert (t4.execution_info.retry_count, t4.execution_info.exit_code) == (1, 3)

    # The node secrets opened from the old state are the ones its containers had; the agents authenticate with
    # them and the running pool is re-adopted: the same nodes in the same containers, idle.
    opened = _sealed_node_secrets(emulator.state_dir / "state.db")
    for pool_nodes in manifest["nodes"].values():
        for node in pool_nodes:
            if node["id"] in opened:
                assert hashlib.sha256(opened[node["id"]].encode()).hexdigest() == node["secret_sha256"]
    kept = sorted(manifest["recreate"]["up-pool"])
    _wait(
        "the re-adopted nodes to be idle",
        lambda: sorted(n.id for n in client.list_nodes("up-pool") if n.state == m.BatchNodeState.IDLE) == kept,
    )
    by_node = {c.labels["batchbox.node"]: c.id for c in emulator.containers()}
    assert {node_id: by_node.get(node_id) for node_id in kept} == containers
    # The pool whose containers are gone gets a new node.
    (lost,) = manifest["lost"]["up-lost-pool"]

    def replaced() -> list[str] | None:
        ids = [n.id for n in client.list_nodes("up-lost-pool") if n.state == m.BatchNodeState.IDLE]
        return ids if len(ids) == 1 and lost not in ids else None

    _wait("the lost pool's replacement node", replaced)

    # Work goes on: a new task runs on a re-adopted node; the queued job runs once its pool has a node.
    client.create_task("up-job", m.BatchTaskCreateOptions(id="after-upgrade", command_line="/bin/true"))
    client.begin_resize_pool(
        "up-empty-pool", m.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=1
    ).result()
    done = _wait(
        "the new task",
        lambda: (t := client.get_task("up-job", "after-upgrade")).state == m.BatchTaskState.COMPLETED and t,
    )
    assert done.node_info.node_id in kept and done.execution_info.exit_code == 0
    _wait("the queued tasks", lambda: client.get_job_task_counts("up-queued").task_counts.succeeded == 3)
    counts = client.get_job_task_counts("up-job").task_counts
    assert (counts.active, counts.running, counts.succeeded, counts.failed) == (0, 0, 5, 2)

    emulator.stop()
    db = sqlite3.connect(str(emulator.state_dir / "state.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        version = db.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
    finally:
        db.close()
    assert version == (str(SCHEMA_VERSION),)


def test_every_schema_since_the_first_kept_has_a_kept_state() -> None:
    """Raising ``SCHEMA_VERSION`` needs a migration, and a kept state of the schema it replaces (written by
    ``tests/upgrade/write_state.py`` on the release before the change) so the migration is tested."""
    kept = {int(p.name.split("-")[1]) for p in _state_dirs()}
    assert set(range(FIRST_KEPT_SCHEMA, SCHEMA_VERSION)) <= kept, sorted(kept)
    assert max(kept) <= SCHEMA_VERSION
    for state in _state_dirs():
        manifest = json.loads((state / "manifest.json").read_text())
        assert manifest["written_by"]["schema_version"] == int(state.name.split("-")[1])
        assert sorted(p.name for p in state.iterdir()) == ["manifest.json", "state.db"]


def _newer_state(tmp_path: Path) -> Path:
    """A copy of the newest kept state, marked as written by a schema this batchbox does not know yet."""
    state_dir = tmp_path / "newer"
    state_dir.mkdir()
    shutil.copy2(_state_dirs()[-1] / "state.db", state_dir / "state.db")
    db = sqlite3.connect(str(state_dir / "state.db"), isolation_level=None)
    try:
        db.execute("UPDATE meta SET v = ? WHERE k = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    finally:
        db.close()
    return state_dir


def test_a_state_written_by_a_newer_batchbox_is_refused_with_one_line_and_left_alone(tmp_path: Path) -> None:
    state_dir = _newer_state(tmp_path)
    before = (state_dir / "state.db").read_bytes()
    with pytest.raises(StoreError) as refused:
        Store(state_dir / "state.db", Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME))
    assert "newer batchbox" in str(refused.value) and "\n" not in str(refused.value)

    done = subprocess.run(
        [sys.executable, "-m", "batchbox.emulator", "--port", str(find_free_port()), "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == f"Error: {refused.value}"
    assert f"schema version {SCHEMA_VERSION + 1}" in lines[0] and f"reads up to {SCHEMA_VERSION}" in lines[0]
    assert (state_dir / "state.db").read_bytes() == before
    assert sorted(p.name for p in state_dir.iterdir()) == ["state.db"]
