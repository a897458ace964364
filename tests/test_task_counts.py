"""Task counts kept by the database stay exact: randomized sequences of operations, compared with a full scan.

The counts (``GET /jobs/{id}/taskcounts``) are maintained by triggers on the tasks table, not computed per request.
Each check here recounts the job from its task documents (state, ``executionInfo.result``, ``requiredSlots``) and
compares. Two levels:

* the store, driven by hypothesis through every task write it has (insert, update, delete, job delete, the queue
  flag) and reopened like an emulator restart, plus the upgrade of a schema-2 database;
* the real emulator with a real node, driven through the REST API by a randomized sequence of adds, task
  terminate / delete / reactivate, job terminate / delete, requeues (the pool shrinks with ``requeue``) and
  restarts (clean and crashed); each check stops the emulator and reads its database directly, so no task can
  change between the two readings.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models as m

# 15.1 exports no public name for it; without a reason the SDK sends no content-type and fails client-side.
from azure.batch.models._models import BatchJobTerminateOptions
from azure.core.exceptions import HttpResponseError
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import SCHEMA_VERSION, Store
from tests.fixtures.emulator import EmulatorProcess

_JOBS = ("jobA", "JobB")
_STATES = ("active", "preparing", "running", "completed")


def _sealer() -> Sealer:
    return Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME)


def scanned_counts(store: Store, job_id: str) -> dict[str, Any]:
    """The job's task counts recounted from every task document, in the shape of ``Store.task_counts``."""
    names = ("active", "running", "completed", "succeeded", "failed")
    counts = dict.fromkeys(names, 0)
    slots = dict.fromkeys(names, 0)
    for doc in store.list_tasks(job_id):
        state = doc.get("state", "active")
        bucket = "running" if state == "preparing" else state
        required = doc.get("requiredSlots", 1)
        buckets = [bucket]
        if bucket == "completed":
            result = (doc.get("executionInfo") or {}).get("result")
            buckets.append("succeeded" if result == "success" else "failed")
        for name in buckets:
            counts[name] += 1
            slots[name] += required
    return {**counts, "slots": slots}


# ------------------------------------------------------------------------------------------ the store, randomized


class StoreCounts(RuleBasedStateMachine):
    """Random task writes through every store method, with reopenings; counts are compared after each step."""

    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="batchbox-counts-")
        self.path = Path(self._dir.name) / "state.db"
        self.store = Store(self.path, _sealer())
        self.next_id = 0

    def teardown(self) -> None:
        self.store.close()
        self._dir.cleanup()

    @rule(
        target=tasks,
        job=st.sampled_from(_JOBS),
        states=st.lists(st.sampled_from(_STATES), min_size=1, max_size=6),
        slots=st.integers(min_value=1, max_value=3),
        duplicate=st.booleans(),
    )
    def insert(self, job: str, states: list[str], slots: int, duplicate: bool) -> Any:
        docs = []
        for state in states:
            self.next_id += 1
            docs.append({"id": f"Task-{self.next_id}", "state": state, "requiredSlots": slots})
        if duplicate:  # the same id again (another spelling) is refused, and must not be counted
            docs.append({"id": docs[0]["id"].upper(), "state": "active", "requiredSlots": slots})
        flags = self.store.insert_tasks(job, docs)
        assert flags[: len(states)] == [True] * len(states) and not any(flags[len(states) :])
        return multiple_of(job, [d["id"] for d in docs[: len(states)]])

    @rule(
        chosen=st.lists(tasks, min_size=1, max_size=4, unique=True),
        state=st.sampled_from(_STATES),
        result=st.sampled_from([None, "success", "failure"]),
        slots=st.integers(min_value=1, max_value=3),
    )
    def change(self, chosen: list[tuple[str, str]], state: str, result: str | None, slots: int) -> None:
        for job in _JOBS:
            docs = [self.store.get_task(job, task_id) for j, task_id in chosen if j == job]
            present = [doc for doc in docs if doc is not None]
            for doc in present:
                doc["state"] = state
                doc["requiredSlots"] = slots
                doc["executionInfo"] = {} if result is None else {"result": result}
            if len(present) == 1:
                self.store.update_task(job, present[0])
            elif present:
                self.store.update_tasks(job, present)

    @rule(chosen=tasks)
    def delete(self, chosen: tuple[str, str]) -> None:
        self.store.delete_task(*chosen)

    @rule(chosen=tasks, held=st.booleans())
    def hold(self, chosen: tuple[str, str], held: bool) -> None:
        self.store.set_held(chosen[0], [chosen[1]], held)

    @rule(job=st.sampled_from(_JOBS))
    def delete_job(self, job: str) -> None:
        self.store.delete_job(job)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.path, _sealer())

    @rule(chosen=tasks)
    def rolled_back(self, chosen: tuple[str, str]) -> None:
        doc = self.store.get_task(*chosen)
        if doc is None:
            return
        doc["state"] = "completed" if doc["state"] != "completed" else "active"
        with pytest.raises(RuntimeError), self.store.transaction():
            self.store.update_task(chosen[0], doc)
            raise RuntimeError("abandon the transaction")

    @invariant()
    def counts_match_a_scan(self) -> None:
        for job in _JOBS:
            assert self.store.task_counts(job) == scanned_counts(self.store, job)
            queued = {key for key, _ in self.store.queued_tasks(job, 10_000)}
            active = {doc["id"].lower() for doc in self.store.list_tasks(job, states=["active"])}
            assert queued <= active


def multiple_of(job: str, task_ids: list[str]) -> Any:
    return multiple(*[(job, task_id) for task_id in task_ids])


TestStoreCounts = StoreCounts.TestCase
TestStoreCounts.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_a_schema_2_database_is_upgraded_with_its_counts(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store(db, _sealer())
    store.insert_tasks("j", [{"id": f"t{i}", "state": "active", "requiredSlots": 1 + i % 2} for i in range(7)])
    done = store.get_task("j", "t1")
    assert done is not None
    done.update(state="completed", executionInfo={"result": "failure"})
    store.update_task("j", done)
    expected = scanned_counts(store, "j")
    store.close()
    conn = sqlite3.connect(db, isolation_level=None)  # make it what a schema-2 batchbox left
    for trigger in ("task_counts_on_insert", "task_counts_on_delete", "task_counts_on_update"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP INDEX tasks_queued")
    conn.execute("DROP TABLE task_counts")
    conn.execute("ALTER TABLE tasks DROP COLUMN held")
    conn.execute("UPDATE meta SET v = '2' WHERE k = 'schema_version'")
    conn.close()

    upgraded = Store(db, _sealer())
    try:
        assert upgraded.meta_get("schema_version") == str(SCHEMA_VERSION)
        assert upgraded.task_counts("j") == expected
        assert expected["active"] == 6 and expected["failed"] == 1 and expected["slots"]["active"] == 8
        assert [key for key, _ in upgraded.queued_tasks("j", 100)] == ["t0", "t2", "t3", "t4", "t5", "t6"]
        upgraded.delete_task("j", "t0")
        assert upgraded.task_counts("j") == scanned_counts(upgraded, "j")
    finally:
        upgraded.close()


# ------------------------------------------------------------------------------ the emulator, randomized, restarts

_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)
_COMMANDS = ("/bin/true", "/bin/false", "/bin/sleep 60")
_OPERATIONS = (
    "add",
    "add",
    "terminate_task",
    "delete_task",
    "reactivate",
    "requeue",
    "restart",
    "crash",
    "terminate_job",
    "delete_job",
    "settle",
)


class EmulatorScenario:
    """One job at a time on a one-node pool; operations through the REST API as a user would send them."""

    def __init__(self, emulator: EmulatorProcess, pool_id: str) -> None:
        self.emulator = emulator
        self.pool_id = pool_id
        self.client = emulator.batch_client()
        self.jobs: list[str] = []
        self.wait_for_a_node()
        self.new_job()
        self.serial = 0

    @property
    def job(self) -> str:
        return self.jobs[-1]

    def new_job(self) -> None:
        job_id = f"counts-{uuid.uuid4().hex[:8]}"
        self.client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=self.pool_id)))
        self.jobs.append(job_id)

    def task_ids(self, state: str | None = None) -> list[str]:
        tasks = self.client.list_tasks(self.job, select=["id", "state", "executionInfo"])
        return sorted(
            t.id
            for t in tasks
            if state is None
            or (state == "failed" and t.execution_info is not None and str(t.execution_info.result) == "failure")
            or str(t.state).lower().endswith(state)
        )

    def wait_for_a_node(self) -> None:
        """Until the pool's node takes tasks (after a requeue or a restart it comes back)."""
        deadline = time.monotonic() + 90
        while not any(str(n.state).lower().endswith(("idle", "running")) for n in self.client.list_nodes(self.pool_id)):
            assert time.monotonic() < deadline, f"the pool's node did not come up:\n{self.emulator.log_tail(40)}"
            time.sleep(0.2)

    def apply(self, operation: str, pick: int) -> None:
        if operation == "add":
            tasks = []
            for offset in range(4):
                self.serial += 1
                command = _COMMANDS[(pick + offset) % len(_COMMANDS)]
                tasks.append(m.BatchTaskCreateOptions(id=f"t{self.serial}", command_line=command))
            self.client.create_tasks(self.job, tasks)
            time.sleep(0.5)  # some run, some finish, some stay queued
        elif operation in ("terminate_task", "delete_task", "reactivate"):
            candidates = self.task_ids("failed" if operation == "reactivate" else None)
            if not candidates:
                return
            task_id = candidates[pick % len(candidates)]
            if operation == "terminate_task":
                self._tolerating_conflict(lambda: self.client.terminate_task(self.job, task_id))
            elif operation == "delete_task":
                self.client.delete_task(self.job, task_id)
            else:
                self._tolerating_conflict(lambda: self.client.reactivate_task(self.job, task_id))
        elif operation == "requeue":
            self._resize(0, m.BatchNodeDeallocationOption.REQUEUE)
            self._resize(1)
        elif operation in ("restart", "crash"):
            self.emulator.restart(crash=operation == "crash")
            self.client = self.emulator.batch_client()
        elif operation == "terminate_job":
            self.client.begin_terminate_job(
                self.job, BatchJobTerminateOptions(termination_reason="ByTest"), polling_interval=0.5
            ).result()
            self.new_job()
        elif operation == "delete_job":
            self.client.begin_delete_job(self.job, polling_interval=0.5).result()
            self.new_job()
        elif operation == "settle":
            time.sleep(1.5)

    @staticmethod
    def _tolerating_conflict(call: Any) -> None:
        try:
            call()
        except HttpResponseError as exc:  # the task completed meanwhile: Batch answers 409
            if exc.status_code != 409:
                raise

    def _resize(self, nodes: int, option: m.BatchNodeDeallocationOption | None = None) -> None:
        options = m.BatchPoolResizeOptions(target_dedicated_nodes=nodes, node_deallocation_option=option)
        self.client.begin_resize_pool(self.pool_id, options, polling_interval=0.5).result()

    def check(self) -> None:
        """Stop the emulator, compare every job's kept counts with a scan of its documents, start it again."""
        self.emulator.stop()
        store = Store(self.emulator.state_dir / "state.db", _sealer())
        try:
            for job in self.jobs:
                assert store.task_counts(job) == scanned_counts(store, job), job
        finally:
            store.close()
        self.emulator.start()
        self.client = self.emulator.batch_client()
        self.wait_for_a_node()


@pytest.fixture(scope="module")
def counted_pool(emulator: EmulatorProcess) -> Iterator[str]:
    client = emulator.batch_client()
    pool_id = f"counts-{uuid.uuid4().hex[:8]}"
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=1,
            task_slots_per_node=2,
            virtual_machine_configuration=_VM,
        )
    )
    yield pool_id
    emulator.batch_client().begin_delete_pool(pool_id, polling_interval=1).result()


@pytest.mark.docker
@pytest.mark.timeout(900)
@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking would restart the emulator for minutes
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(
    steps=[
        ("add", 0),
        ("settle", 0),
        ("add", 1),
        ("requeue", 0),
        ("settle", 0),
        ("terminate_task", 3),
        ("reactivate", 0),
        ("crash", 0),
        ("add", 2),
        ("delete_task", 1),
        ("restart", 0),
        ("terminate_job", 0),
        ("add", 0),
        ("delete_job", 0),
    ]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(_OPERATIONS), st.integers(min_value=0, max_value=99)), min_size=6, max_size=9
    )
)
def test_emulator_counts_match_a_scan_after_random_operations(
    emulator: EmulatorProcess, counted_pool: str, steps: list[tuple[str, int]]
) -> None:
    scenario = EmulatorScenario(emulator, counted_pool)
    scenario.apply("add", len(steps))
    for operation, pick in steps:
        scenario.apply(operation, pick)
        scenario.check()
    final = scenario.client.get_job_task_counts(scenario.job).task_counts
    assert final.active + final.running + final.completed == len(scenario.task_ids())
