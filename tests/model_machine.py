"""A hypothesis state machine that drives the real emulator through the azure-batch SDK against a reference model.

Rules (each step runs 1-3 of them at once, from as many client threads, on different tasks or jobs so that the
model's prediction does not depend on their order):

* add a task or a collection of 2-4 tasks; each task is ``ok`` (exits 0 at once), ``fail`` (exits 1: one retry, then
  failed) or ``hang`` (runs until it is terminated);
* terminate, delete and reactivate a task; terminate and delete a job; add a job; disable a job (``requeue`` or
  ``wait``) and enable it again, when the emulator serves those operations;
* resize the pool (1 or 2 dedicated nodes beside its one low-priority node); SIGKILL the emulator and restart it;
  ``docker kill`` a node container; reboot a node (``requeue``); preempt the low-priority node (the emulator's admin
  endpoint).

The model knows what Batch promises and, where a race decides (a task may finish just before a terminate), accepts
each answer Batch may give and follows the one it got. Invariants, after every step:

* task counts equal the per-state listing (read while the listing stays the same);
* no node runs more tasks than its slots, and no task is running twice;
* an eTag changes when a task document changes, and only then;
* nothing answers 500.

At quiescence (the end of each example: hanging tasks terminated, everything finished) every task is in the state
the model predicts, ``retryCount`` is exact, ``requeueCount`` is at least the requeues the model caused (a node
killed under a hanging task), and every task that succeeded without being disturbed (terminated, requeued) wrote its
output once, a disturbed one at least once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker.errors
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.rest import HttpRequest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.fixtures.emulator import EmulatorProcess

__all__ = ["BatchModel", "ModelWorld"]

T = TypeVar("T")
POOL = "mb-pool"
SLOTS = 2
KINDS = ("ok", "fail", "hang")
_COMMANDS = {
    "ok": "/bin/sh -c 'touch $AZ_BATCH_NODE_SHARED_DIR/done-$AZ_BATCH_JOB_ID-$AZ_BATCH_TASK_ID-$$'",
    "fail": "/bin/sh -c 'exit 1'",
    "hang": "/bin/sh -c 'sleep 3600'",
}
_VM = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AzureError:
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class ServerErrors:
    """The clients' ``raw_response_hook``: records every answer (each attempt) with a status of 500 or more."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, response: Any) -> None:
        status = response.http_response.status_code
        if status >= 500:
            with self._lock:
                self.seen.append(f"{response.http_request.method} {response.http_request.url} -> {status}")


class ModelWorld:
    """What outlives one example: the emulator, the pool, clients and the 500 recorder."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator
        self.errors = ServerErrors()
        self.client = self._client()
        self.pool_target = 1
        self.requeues_caused: dict[tuple[str, str], int] = {}
        self.disable_served: bool | None = None
        """Whether the emulator serves job disable / enable (None: not asked yet)."""

    def _client(self) -> BatchClient:
        credential = AzureNamedKeyCredential(self.emulator.account_name, self.emulator.account_key)
        return BatchClient(endpoint=self.emulator.url, credential=credential, raw_response_hook=self.errors)

    def ensure_pool(self) -> None:
        try:
            self.client.get_pool(POOL)
        except HttpResponseError:
            self.client.create_pool(
                m.BatchPoolCreateOptions(
                    id=POOL,
                    vm_size="standard_d2_v3",
                    virtual_machine_configuration=_VM,
                    target_dedicated_nodes=self.pool_target,
                    target_low_priority_nodes=1,
                    task_slots_per_node=SLOTS,
                )
            )

    def restart(self) -> None:
        self.emulator.kill()
        self.emulator.start()
        self.client.close()
        self.client = self._client()

    def shared_files(self, prefix: str) -> list[Path]:
        return sorted((self.emulator.state_dir / "nodes").glob(f"*/shared/{prefix}*"))


@dataclass
class TaskModel:
    job: str
    id: str
    kind: str
    fate: str = "kind"
    """``kind`` (ends as its kind says), ``terminated``, ``deleted`` or ``either`` (its kind or terminated)."""
    disturbed: bool = False
    requeues: int = 0


@dataclass
class JobModel:
    id: str
    state: str = "active"
    """``active``, ``disabled``, ``terminated`` or ``deleted``."""
    tasks: dict[str, TaskModel] = field(default_factory=dict)


def _code(exc: HttpResponseError) -> str:
    return str(exc.error.code) if exc.error is not None else str(exc.status_code)


class BatchModel(RuleBasedStateMachine):
    """The state machine; :func:`make_machine` binds it to a world."""

    world: ModelWorld

    def __init__(self) -> None:
        super().__init__()
        self.world.ensure_pool()
        self.prefix = f"mb{uuid.uuid4().hex[:6]}"
        self.jobs: dict[str, JobModel] = {}
        self.etags: dict[tuple[str, str], tuple[str, str]] = {}
        self.counter = 0
        self._add_job()

    # ------------------------------------------------------------------------------------------- helpers
    @property
    def client(self) -> BatchClient:
        return self.world.client

    def _add_job(self) -> JobModel:
        job = JobModel(f"{self.prefix}-j{len(self.jobs)}")
        self.client.create_job(
            m.BatchJobCreateOptions(
                id=job.id,
                pool_info=m.BatchPoolInfo(pool_id=POOL),
                constraints=m.BatchJobConstraints(max_task_retry_count=1),
            )
        )
        self.jobs[job.id] = job
        return job

    def _active_jobs(self) -> list[JobModel]:
        return [j for j in self.jobs.values() if j.state == "active"]

    def _tasks(self, fates: tuple[str, ...] = ("kind", "either")) -> list[TaskModel]:
        return [t for j in self._active_jobs() for t in j.tasks.values() if t.fate in fates]

    def _new_task(self, job: JobModel, kind: str) -> TaskModel:
        self.counter += 1
        return TaskModel(job.id, f"t{self.counter:03d}", kind)

    @staticmethod
    def _spec(task: TaskModel) -> m.BatchTaskCreateOptions:
        return m.BatchTaskCreateOptions(id=task.id, command_line=_COMMANDS[task.kind])

    def _concurrently(self, actions: list[Callable[[], None]]) -> None:
        with ThreadPoolExecutor(max_workers=len(actions)) as pool:
            for future in [pool.submit(a) for a in actions]:
                future.result()

    # ------------------------------------------------------------------------------------------- task rules
    def _act_add(self, job: JobModel, kinds: list[str]) -> Callable[[], None]:
        tasks = [self._new_task(job, k) for k in kinds]

        def act() -> None:
            if len(tasks) == 1:
                self.client.create_task(job.id, self._spec(tasks[0]))
            else:
                result = self.client.create_task_collection(
                    job.id, m.BatchTaskGroup(task_values=[self._spec(t) for t in tasks])
                )
                assert all(v.status == m.BatchTaskAddStatus.SUCCESS for v in result.result_values), result
            for task in tasks:
                job.tasks[task.id] = task

        return act

    def _act_on_task(self, task: TaskModel, action: str) -> Callable[[], None]:
        def act() -> None:
            try:
                if action == "terminate":
                    self.client.terminate_task(task.job, task.id)
                elif action == "delete":
                    self.client.delete_task(task.job, task.id)
                else:
                    self.client.reactivate_task(task.job, task.id)
            except HttpResponseError as exc:
                code = _code(exc)
                if action == "terminate":
                    # Completed before the terminate arrived: only a task that ends by itself can be.
                    assert code == "TaskCompleted" and (task.kind != "hang" or task.fate == "terminated"), code
                elif action == "reactivate":  # not (or not yet) completed with a failure
                    assert code == "OperationInvalidForCurrentState", code
                else:
                    raise
                return
            if action == "terminate":
                task.fate, task.disturbed = "terminated", True
            elif action == "delete":
                task.fate = "deleted"
            else:  # only a task that ended in a failure can be reactivated
                assert task.kind == "fail" or task.fate == "terminated", (task, "was reactivated")
                task.fate = "kind"

        return act

    @staticmethod
    def _pick(data: st.DataObject, items: list[T], label: str) -> T | None:
        """One of ``items``, or None when there is none. The draw does not depend on the list, whose length follows
        what the emulator answered: hypothesis needs the same draws whatever the environment did."""
        index = data.draw(st.integers(0, 1_000_000), label=label)
        return items[index % len(items)] if items else None

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """1-3 actions at once from as many threads, each on its own task or job."""
        count = data.draw(st.integers(1, 3), label="actions")
        actions: list[Callable[[], None]] = []
        busy_jobs: set[str] = set()
        busy_tasks: set[str] = set()
        for _ in range(count):
            kind = data.draw(st.sampled_from(["add", "collection", "terminate", "delete", "reactivate"]))
            size = 1 if kind != "collection" else data.draw(st.integers(2, 4), label="size")
            kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=size, max_size=size), label="kinds")
            if kind in ("add", "collection"):
                job = self._pick(data, [j for j in self._active_jobs() if j.id not in busy_jobs], "job")
                if job is not None:
                    busy_jobs.add(job.id)  # one add per job per step
                    actions.append(self._act_add(job, kinds))
            else:
                tasks = [t for t in self._tasks(("kind", "either", "terminated")) if t.id not in busy_tasks]
                task = self._pick(data, tasks, "task")
                if task is not None:
                    busy_tasks.add(task.id)
                    actions.append(self._act_on_task(task, kind))
        if actions:
            self._concurrently(actions)

    # -------------------------------------------------------------------------------------------- job rules
    @precondition(lambda self: len(self.jobs) < 4)
    @rule()
    def add_job(self) -> None:
        self._add_job()

    @precondition(lambda self: self.world.disable_served is not False)
    @rule(data=st.data(), requeue=st.booleans())
    def disable_or_enable_job(self, data: st.DataObject, requeue: bool) -> None:
        """Disable an active job (``requeue``: its running tasks go back to the queue; ``wait``: they finish), or
        enable a disabled one. While disabled, no task of it starts and the other rules leave it alone."""
        job = self._pick(data, [j for j in self.jobs.values() if j.state in ("active", "disabled")], "job")
        if job is None:
            return
        try:
            if job.state == "disabled":
                self.client.begin_enable_job(job.id, polling_interval=1).result()
                job.state = "active"
                return
            hanging = [] if not requeue else self._running_in(job)
            option = m._models.BatchJobDisableOptions(disable_tasks="requeue" if requeue else "wait")
            self.client.begin_disable_job(job.id, option, polling_interval=1).result()
        except HttpResponseError as exc:
            if _code(exc) in ("UnsupportedOperation", "InvalidUri"):
                self.world.disable_served = False
                return
            raise
        self.world.disable_served = True
        job.state = "disabled"
        for model in hanging:
            model.requeues += 1

    def _running_in(self, job: JobModel) -> list[TaskModel]:
        """Mark the job's running tasks disturbed; returns the hanging ones (certainly requeued by a disable)."""
        hanging = []
        for task in self.client.list_tasks(job.id):
            model = job.tasks.get(str(task.id))
            if model is not None and task.state == m.BatchTaskState.RUNNING and model.fate in ("kind", "either"):
                model.disturbed = True
                if model.kind == "hang":
                    hanging.append(model)
        return hanging

    @precondition(lambda self: len(self._active_jobs()) > 0)
    @rule(data=st.data(), delete=st.booleans())
    def end_job(self, data: st.DataObject, delete: bool) -> None:
        job = self._pick(data, self._active_jobs(), "job")
        assert job is not None
        if delete:
            self.client.begin_delete_job(job.id, polling_interval=1).result()
            job.state = "deleted"
            return
        # azure-batch 15.1 does not export BatchJobTerminateOptions, and terminate without options fails in the SDK.
        options = m._models.BatchJobTerminateOptions(termination_reason="ModelTerminate")
        self.client.begin_terminate_job(job.id, options, polling_interval=1).result()
        job.state = "terminated"
        for task in job.tasks.values():
            if task.fate == "kind":
                task.fate = "either"  # completed by itself before, or ended by the terminate

    # ------------------------------------------------------------------------------------ pool, nodes, emulator
    @rule(nodes=st.integers(1, 2))
    def resize(self, nodes: int) -> None:
        wait_for("the pool to be steady", lambda: self.client.get_pool(POOL).allocation_state == "steady")
        if nodes < (self.client.get_pool(POOL).current_dedicated_nodes or 0):
            # Shrinking removes a node and requeues what runs there (Batch's default nodeDeallocationOption); which
            # node goes is the emulator's choice, so every running task may run again.
            for node in self._usable_nodes(dedicated=True):
                self._running_on(node)
        self.client.begin_resize_pool(
            POOL,
            m.BatchPoolResizeOptions(target_dedicated_nodes=nodes, target_low_priority_nodes=1),
            polling_interval=1,
        ).result()
        self.world.pool_target = nodes

    @rule()
    def restart_emulator(self) -> None:
        self.world.restart()

    def _running_on(self, node_id: str) -> list[TaskModel]:
        """Mark the tasks running on the node as disturbed; returns the hanging ones (they cannot end by
        themselves, so whatever happens to the node now certainly requeues them)."""
        live = [j for j in self.jobs.values() if j.state in ("active", "disabled")]
        running = {(job.id, t.id): t for job in live for t in job.tasks.values() if t.fate in ("kind", "either")}
        hanging_here = []
        for job in live:
            for task in self.client.list_tasks(job.id):
                model = running.get((job.id, task.id))
                if model is None or task.state != m.BatchTaskState.RUNNING:
                    continue
                if task.node_info is not None and task.node_info.node_id == node_id:
                    model.disturbed = True
                    if model.kind == "hang":
                        hanging_here.append(model)
        return hanging_here

    @rule(data=st.data())
    def kill_node(self, data: st.DataObject) -> None:
        containers = [c for c in self.world.emulator.containers() if c.status == "running"]
        victim = self._pick(data, sorted(containers, key=lambda c: c.name), "node")
        if victim is None:
            return
        hanging_here = self._running_on(victim.labels["batchbox.node"])
        try:
            victim.kill()
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            # The emulator may stop the container between the listing and the kill (a preempted or removed
            # node going away); that node is already down, so this step kills nothing.
            if error.status_code == 409:
                return
            raise
        for model in hanging_here:
            model.requeues += 1

    def _usable_nodes(self, dedicated: bool) -> list[str]:
        usable = (m.BatchNodeState.IDLE, m.BatchNodeState.RUNNING)
        return sorted(
            n.id
            for n in self.client.list_nodes(POOL)
            if n.state in usable and bool(n.is_dedicated is not False) == dedicated
        )

    @rule(data=st.data())
    def reboot_node(self, data: st.DataObject) -> None:
        node_id = self._pick(data, self._usable_nodes(dedicated=True), "node")
        if node_id is None:
            return
        hanging_here = self._running_on(node_id)
        try:
            self.client.begin_reboot_node(POOL, node_id, {"nodeRebootOption": "requeue"}, polling_interval=1).result()
        except HttpResponseError as error:
            # A node killed in an earlier step may be noticed dead between the listing and the reboot: Batch then
            # refuses with NodeStateUnusable (409), and the node must indeed have left the usable states.
            code = error.error.code if error.error is not None else ""
            if error.status_code != 409 or code != "NodeStateUnusable" or node_id in self._usable_nodes(dedicated=True):
                raise
            return
        for model in hanging_here:
            model.requeues += 1

    @rule()
    def preempt_node(self) -> None:
        nodes = self._usable_nodes(dedicated=False)
        if not nodes:
            return
        hanging_here = self._running_on(nodes[0])
        url = f"{self.world.emulator.url}/_admin/v1/pools/{POOL}/preempt?api-version=2025-06-01"
        answer = self.client.send_request(HttpRequest("POST", url, json={"nodeIds": [nodes[0]]}))
        assert answer.status_code == 200, answer.text()
        for model in hanging_here:
            model.requeues += 1

    # ------------------------------------------------------------------------------------------- invariants
    @invariant()
    def nothing_answers_500(self) -> None:
        assert self.world.errors.seen == [], self.world.errors.seen

    @invariant()
    def counts_match_the_listing_and_slots_hold(self) -> None:
        for job in self._active_jobs():
            self._check_counts(job.id)
        per_node: dict[str, int] = {}
        for job in self._active_jobs():
            for task in self.client.list_tasks(job.id):
                self._check_etag(job.id, task)
                if task.state == m.BatchTaskState.RUNNING and task.node_info is not None:
                    per_node[task.node_info.node_id] = per_node.get(task.node_info.node_id, 0) + 1
        assert all(n <= SLOTS for n in per_node.values()), per_node
        for node in self.client.list_nodes(POOL):
            assert (node.running_task_slots_count or 0) <= SLOTS, node.as_dict()

    def _check_counts(self, job_id: str, attempts: int = 6) -> None:
        for _ in range(attempts):
            before = [(t.id, t.state) for t in self.client.list_tasks(job_id)]
            counts = self.client.get_job_task_counts(job_id).task_counts
            after = [(t.id, t.state) for t in self.client.list_tasks(job_id)]
            if before != after:
                continue  # something moved in between: read again
            states = [s for _, s in after]
            expected = (
                states.count(m.BatchTaskState.ACTIVE),
                states.count(m.BatchTaskState.RUNNING) + states.count(m.BatchTaskState.PREPARING),
                states.count(m.BatchTaskState.COMPLETED),
            )
            assert (counts.active, counts.running, counts.completed) == expected, (job_id, counts.as_dict(), expected)
            return

    def _check_etag(self, job_id: str, task: m.BatchTask) -> None:
        doc = task.as_dict()
        doc.pop("odata.metadata", None)
        etag = str(doc.pop("eTag"))
        doc.pop("lastModified", None)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        key = (job_id, str(task.id))
        seen = self.etags.get(key)
        self.etags[key] = (etag, digest)
        if seen is None:
            return
        if seen[0] == etag:
            assert seen[1] == digest, f"{key}: the document changed, its eTag {etag} did not"
        else:
            assert seen[1] != digest, f"{key}: the eTag changed from {seen[0]} to {etag}, the document did not"

    # ------------------------------------------------------------------------------------------- quiescence
    def teardown(self) -> None:
        try:
            self._quiesce_and_check()
        finally:
            for job in self.jobs.values():
                if job.state != "deleted":
                    with contextlib.suppress(AzureError):
                        self.client.begin_delete_job(job.id, polling_interval=1).result()

    def _quiesce_and_check(self) -> None:
        for job in self.jobs.values():
            if job.state == "disabled":
                self.client.begin_enable_job(job.id, polling_interval=1).result()
                job.state = "active"
        for job in self._active_jobs():
            for task in job.tasks.values():
                if task.kind == "hang" and task.fate in ("kind", "either"):
                    self._act_on_task(task, "terminate")()
            for found in self.client.list_tasks(job.id):  # after a failed step the model may not know a task
                if found.id not in job.tasks and found.state != m.BatchTaskState.COMPLETED:
                    with contextlib.suppress(HttpResponseError):
                        self.client.terminate_task(job.id, found.id)
        for job in self._active_jobs():

            def settled(job_id: str = job.id) -> bool:
                counts = self.client.get_job_task_counts(job_id).task_counts
                return counts.active == 0 and counts.running == 0

            wait_for(f"{job.id} to settle", settled, timeout=120)
            self._check_counts(job.id)
        self.nothing_answers_500()
        for job in self.jobs.values():
            self._check_job(job)

    def _check_job(self, job: JobModel) -> None:
        if job.state == "deleted":
            try:
                state = self.client.get_job(job.id).state
            except HttpResponseError as exc:
                assert exc.status_code == 404
                return
            assert state == m.BatchJobState.DELETING, (job.id, state)
            return
        found = {t.id: t for t in self.client.list_tasks(job.id)}
        expected_ids = {t.id for t in job.tasks.values() if t.fate != "deleted"}
        assert set(found) == expected_ids, (job.id, sorted(found), sorted(expected_ids))
        for model in job.tasks.values():
            if model.fate != "deleted":
                self._check_task(model, found[model.id])

    def _check_task(self, model: TaskModel, task: m.BatchTask) -> None:
        assert task.state == m.BatchTaskState.COMPLETED, (model, task.state)
        info = task.execution_info
        ended = info.failure_info is not None and info.failure_info.code == "TaskEnded"
        by_kind = {
            "ok": info.result == m.BatchTaskExecutionResult.SUCCESS and info.retry_count == 0,
            "fail": info.result == m.BatchTaskExecutionResult.FAILURE and info.retry_count == 1 and not ended,
            "hang": False,
        }[model.kind]
        terminated = info.result == m.BatchTaskExecutionResult.FAILURE and ended and info.retry_count <= 1
        if model.fate == "kind":
            assert by_kind, (model, info.as_dict())
        elif model.fate == "terminated":
            assert terminated, (model, info.as_dict())
        else:
            assert by_kind or terminated, (model, info.as_dict())
        assert info.requeue_count >= model.requeues, (model, info.requeue_count)
        if model.kind == "ok" and info.result == m.BatchTaskExecutionResult.SUCCESS:
            outputs = self.world.shared_files(f"done-{model.job}-{model.id}-")
            if model.disturbed:
                assert len(outputs) >= 1, (model, outputs)
            else:
                assert len(outputs) == 1, (model, outputs)
