"""Write a state directory with a small fixed workload, kept in the repository for the upgrade test.

Run it with the release whose state should be kept (Docker and the node image are needed), from the repository
root::

    .venv/bin/python -m tests.upgrade.write_state tests/upgrade/states/schema-<N>

It starts a real emulator on a temporary state directory, runs the workload below through the azure-batch SDK,
stops the emulator cleanly (SIGTERM), removes its node containers, and keeps two files: ``state.db``
(checkpointed and vacuumed: one file, no WAL) and ``manifest.json`` (what the state holds, as GET answered it, and
what the upgrade test must recreate). Node directories are not kept.

The workload:

* pool ``up-pool``: 2 nodes with 2 slots each and a start task whose environment holds a secret; the upgrade test
  starts containers for these nodes again (same ids, same secrets) so the new emulator re-adopts a running pool;
* pool ``up-lost-pool``: 1 node whose container the test does not recreate: the node is lost and replaced;
* pool ``up-empty-pool``: no nodes;
* job ``up-job`` on ``up-pool``: 4 tasks that succeed and 2 that exit 3 twice (``maxTaskRetryCount`` 1), each with
  a secret in its environment and a SAS-like URL in its command line;
* job ``up-queued`` on ``up-empty-pool``: 3 tasks waiting for a node;
* job ``up-ended`` on ``up-empty-pool``: 2 tasks, then the job terminated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from azure.batch import BatchClient
from azure.batch import models as m

from batchbox import __version__
from batchbox.backends.local.azurite import find_free_port
from batchbox.backends.local.node_image import ensure_node_image
from batchbox.emulator.nodes.docker_engine import connect_docker
from batchbox.emulator.store import SCHEMA_VERSION
from tests.fixtures.emulator import EmulatorProcess

__all__ = ["SECRETS", "main", "write_state"]

T = TypeVar("T")

SECRETS = {
    "pool": "upgrade-pool-secret-6f1d0c2e",
    "task": "upgrade-task-secret-93ab7e51",
    "sig": "sig=UpgradeFixtureSignature0123456789abcdefXYZ%3D",
}
"""Values the workload puts where users put secrets; the test checks they come back intact and never lie in the
database file in plain text. They are made up for the fixture and grant nothing."""

_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


def _wait(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"write_state: timed out waiting for {what}")


def _doc(model: Any) -> dict[str, Any]:
    doc: dict[str, Any] = model.as_dict()
    doc.pop("odata.metadata", None)
    return doc


def _idle(client: BatchClient, pool_id: str, count: int) -> list[Any]:
    def probe() -> list[Any] | None:
        nodes = list(client.list_nodes(pool_id))
        return nodes if len(nodes) == count and all(n.state == m.BatchNodeState.IDLE for n in nodes) else None

    return _wait(f"{count} idle node(s) in {pool_id}", probe)


def _pool(pool_id: str, nodes: int, **extra: Any) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(
        id=pool_id, vm_size="standard_d2_v3", virtual_machine_configuration=_VM, target_dedicated_nodes=nodes, **extra
    )


def _true_tasks(prefix: str, count: int) -> m.BatchTaskGroup:
    return m.BatchTaskGroup(
        task_values=[m.BatchTaskCreateOptions(id=f"{prefix}{i}", command_line="/bin/true") for i in range(count)]
    )


def _run_workload(client: BatchClient) -> None:
    start = m.BatchStartTask(
        command_line="/bin/sh -c 'echo ready > $AZ_BATCH_NODE_SHARED_DIR/ready'",
        environment_settings=[m.EnvironmentSetting(name="UPGRADE_POOL_SECRET", value=SECRETS["pool"])],
        wait_for_success=True,
    )
    client.create_pool(_pool("up-pool", 2, task_slots_per_node=2, start_task=start))
    client.create_pool(_pool("up-lost-pool", 1))
    client.create_pool(_pool("up-empty-pool", 0))
    _idle(client, "up-pool", 2)
    _idle(client, "up-lost-pool", 1)

    client.create_job(
        m.BatchJobCreateOptions(
            id="up-job",
            pool_info=m.BatchPoolInfo(pool_id="up-pool"),
            constraints=m.BatchJobConstraints(max_task_retry_count=1),
        )
    )
    url = f"https://upgrade.invalid/inputs/data.txt?sv=2021-08-06&sp=r&{SECRETS['sig']}"
    tasks = [
        m.BatchTaskCreateOptions(
            id=f"t{i}",
            command_line=f"/bin/sh -c 'echo {url} > /dev/null; exit {0 if i < 4 else 3}'",
            environment_settings=[m.EnvironmentSetting(name="UPGRADE_TASK_SECRET", value=SECRETS["task"])],
        )
        for i in range(6)
    ]
    client.create_task_collection("up-job", m.BatchTaskGroup(task_values=tasks))
    _wait("up-job's tasks to complete", lambda: client.get_job_task_counts("up-job").task_counts.completed == 6)

    client.create_job(m.BatchJobCreateOptions(id="up-queued", pool_info=m.BatchPoolInfo(pool_id="up-empty-pool")))
    client.create_task_collection(
        "up-queued",
        _true_tasks("q", 3),
    )
    client.create_job(m.BatchJobCreateOptions(id="up-ended", pool_info=m.BatchPoolInfo(pool_id="up-empty-pool")))
    client.create_task_collection(
        "up-ended",
        _true_tasks("e", 2),
    )
    client.begin_terminate_job(
        "up-ended", m._models.BatchJobTerminateOptions(termination_reason="UpgradeFixture"), polling_interval=1
    ).result()
    _wait("up-ended to complete", lambda: client.get_job("up-ended").state == m.BatchJobState.COMPLETED)


def _snapshot(client: BatchClient, emulator: EmulatorProcess) -> dict[str, Any]:
    """What the state holds, as the emulator answered GET, and what the upgrade test must recreate."""
    pools = {p.id: _doc(p) for p in client.list_pools()}
    jobs = {j.id: _doc(j) for j in client.list_jobs()}
    tasks = {job_id: {t.id: _doc(t) for t in client.list_tasks(job_id)} for job_id in jobs}
    counts = {job_id: _doc(client.get_job_task_counts(job_id)) for job_id in jobs}
    secrets: dict[str, str] = {}
    for container in emulator.containers():
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        secrets[env["BATCHBOX_NODE_ID"]] = hashlib.sha256(env["BATCHBOX_NODE_SECRET"].encode()).hexdigest()
    nodes = {
        pool_id: [{"id": n.id, "secret_sha256": secrets[n.id], "doc": _doc(n)} for n in client.list_nodes(pool_id)]
        for pool_id in pools
    }
    return {
        "written_by": {"batchbox": __version__, "schema_version": SCHEMA_VERSION},
        "account_name": emulator.account_name,
        "secrets": SECRETS,
        "pools": pools,
        "nodes": nodes,
        "jobs": jobs,
        "tasks": tasks,
        "task_counts": counts,
        "recreate": {"up-pool": [n["id"] for n in nodes["up-pool"]]},
        "lost": {"up-lost-pool": [n["id"] for n in nodes["up-lost-pool"]]},
    }


def _compact(database: Path, target: Path) -> None:
    """Copy the database into one file: WAL checkpointed, free pages vacuumed away."""
    connection = sqlite3.connect(str(database), isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("VACUUM INTO ?", (str(target),))
    finally:
        connection.close()


def write_state(out_dir: Path) -> dict[str, Any]:
    """Run the workload on a fresh emulator and keep its state in ``out_dir``; returns the manifest."""
    docker_client = connect_docker()
    work = Path(tempfile.mkdtemp(prefix="batchbox-upgrade-state-"))
    emulator = EmulatorProcess(
        port=find_free_port(),
        state_dir=work / "state",
        instance_label=f"upgrade-{uuid.uuid4().hex[:10]}",
        node_image=ensure_node_image(docker_client),
        docker_client=docker_client,
    )
    try:
        emulator.start()
        client = emulator.batch_client()
        _run_workload(client)
        manifest = _snapshot(client, emulator)
        emulator.stop()
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "state.db").unlink(missing_ok=True)
        _compact(emulator.state_dir / "state.db", out_dir / "state.db")
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return manifest
    finally:
        emulator.cleanup()
        docker_client.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where state.db and manifest.json go")
    args = parser.parse_args(argv)
    manifest = write_state(args.out_dir)
    size = (args.out_dir / "state.db").stat().st_size
    print(f"wrote {args.out_dir}: schema {manifest['written_by']['schema_version']}, state.db {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
