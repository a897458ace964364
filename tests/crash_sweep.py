"""Crash consistency: SIGKILL the emulator at chosen points of an operation, restart it, check the state.

The emulator kills itself at a crash point (``batchbox/emulator/crash_points.py``) chosen through
``BATCHBOX_EMULATOR_CRASH_AT`` and armed by a file (``BATCHBOX_EMULATOR_CRASH_ARM``) that the sweep creates just
before it sends the operation, so set-up writes are not counted. One emulator process per kill point: it starts
with that point's settings, first checks what the previous kill left behind (unarmed), then prepares and runs the
next operation and dies in it.

Operations (scenarios) and what must hold after the restart:

* ``collection``: a 100-task ``addtaskcollection`` to a job whose pool has no node. The job holds all 100 tasks
  or none; none only when the client was not told it succeeded; sending the same collection again makes it whole
  (``TaskExists`` for every task that was there); task counts equal the listing.
* ``running``: a 12-task collection on a pool with a node, the kill landing while tasks are added, dispatched,
  started or completed. All or none of the collection; after sending it again every task completes, counts are
  exact (12 succeeded, none active or running), no task was retried, and the node is the same node (re-adopted).
* ``job-delete``: deleting a job whose 4 tasks are running. The job is found whole (4 tasks, counts consistent)
  or it is deleting or gone; a delete the client was told was accepted is never undone; after the delete is sent
  again the job and its tasks are gone and the node is idle again, running nothing.
* ``pool-delete``: deleting a pool with 2 idle nodes. The pool is found with 2 usable nodes in running
  containers, or deleting, or gone with no container and no node left; once deleted nothing of it remains.
* ``pool-grow``: resizing a pool from 0 to 2 nodes. After the restart the pool reaches 2 idle nodes, each in its
  own container, and no container is left that belongs to no node (a container made but not recorded is removed,
  a node recorded but not made is replaced).
* ``schedule-firing``: a job schedule (every 3 s) reaching its first occurrence. The schedule is there with at most
  one job, whole, and its ``recentJob`` names a job that exists; it goes on firing after the restart (the test ends
  each job as it comes), and no occurrence makes two jobs (a missed one may still fire late, within its window).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.rest import HttpRequest

from batchbox.emulator.crash_points import CRASH_ARM_ENV, CRASH_AT_ENV
from tests.fixtures.emulator import EmulatorProcess

__all__ = ["FULL_SWEEP", "SAMPLE", "KillPoint", "SweepReport", "run_sweep"]

T = TypeVar("T")
API = "api-version=2025-06-01"
_VM = {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}
RUNNING_TASKS = 12


@dataclass(frozen=True)
class KillPoint:
    scenario: str
    point: str
    hit: int

    def __str__(self) -> str:
        return f"{self.scenario}@{self.point}:{self.hit}"


def _points(scenario: str, spec: dict[str, int]) -> list[KillPoint]:
    return [KillPoint(scenario, point, hit) for point, last in spec.items() for hit in range(1, last + 1)]


FULL_SWEEP: list[KillPoint] = [
    *_points("collection", {"store.seal/tasks": 100, "store.commit": 1, "store.committed": 1}),
    *_points("running", {"store.seal/tasks": 3 * RUNNING_TASKS, "store.commit": 12, "store.committed": 12}),
    *_points("job-delete", {"store.seal/jobs": 1, "store.seal/nodes": 2, "store.commit": 6, "store.committed": 6}),
    *_points(
        "pool-delete",
        {"store.seal/nodes": 2, "store.seal/pools": 2, "driver.removed": 2, "store.commit": 4, "store.committed": 4},
    ),
    *_points(
        "pool-grow",
        {"driver.created": 2, "store.seal/nodes": 6, "store.seal/pools": 2, "store.commit": 5, "store.committed": 5},
    ),
    *_points("schedule-firing", {"store.seal/jobs": 2, "store.commit": 3, "store.committed": 3}),
]
"""Every kill point of the long sweep (``make soak``); a few are not reached in every run (timing)."""

SAMPLE: list[KillPoint] = [
    KillPoint("collection", "store.seal/tasks", 1),
    KillPoint("collection", "store.seal/tasks", 57),
    KillPoint("collection", "store.seal/tasks", 100),
    KillPoint("collection", "store.commit", 1),
    KillPoint("collection", "store.committed", 1),
    KillPoint("running", "store.seal/tasks", 5),
    KillPoint("running", "store.seal/tasks", 20),
    KillPoint("job-delete", "store.seal/jobs", 1),
    KillPoint("job-delete", "store.committed", 1),
    KillPoint("pool-delete", "driver.removed", 1),
    KillPoint("pool-delete", "store.seal/nodes", 1),
    KillPoint("pool-grow", "driver.created", 1),
    KillPoint("schedule-firing", "store.committed", 1),
]
"""The kill points ``make test`` runs: each operation, before and after its commit, each container call."""


@dataclass
class SweepReport:
    killed: list[KillPoint] = field(default_factory=list)
    not_reached: list[KillPoint] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        by_scenario = Counter(k.scenario for k in self.killed)
        return (
            f"{len(self.killed)} kill points reached in {self.seconds:.0f} s ({dict(by_scenario)}), "
            f"{len(self.not_reached)} not reached, {self.restarts} restarts; client told: {dict(self.outcomes)}"
        )


class SweepFailure(AssertionError):
    pass


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SweepFailure(message)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(AzureError):
            last = probe()
            if last:
                return last
        time.sleep(0.1)
    raise SweepFailure(f"timed out waiting for {what} (last: {last!r})")


class Rig:
    """One emulator on one state directory, its clients, and what the scenarios share."""

    def __init__(self, emulator: EmulatorProcess, arm: Path) -> None:
        self.emulator = emulator
        self.arm = arm
        self.client: BatchClient | None = None
        self.strict: BatchClient | None = None
        self.run_node: str = ""
        self.log_offset = 0

    def _clients(self) -> None:
        credential = AzureNamedKeyCredential(self.emulator.account_name, self.emulator.account_key)
        for client in (self.client, self.strict):
            if client is not None:
                client.close()
        self.client = BatchClient(endpoint=self.emulator.url, credential=credential)
        self.strict = BatchClient(endpoint=self.emulator.url, credential=credential, retry_total=0)

    def start(self, kill_point: KillPoint | None) -> None:
        self.emulator.stop()  # nothing when it is not running (or was killed)
        self.arm.unlink(missing_ok=True)
        self.emulator.extra_env = (
            {CRASH_AT_ENV: f"{kill_point.point}:{kill_point.hit}", CRASH_ARM_ENV: str(self.arm)} if kill_point else {}
        )
        self.log_offset = len(self.emulator.log_text())
        self.emulator.start()
        self._clients()

    def log_since_start(self) -> str:
        return self.emulator.log_text()[self.log_offset :]

    def ensure_run_pool(self, pool_id: str) -> None:
        """The pool with one 4-slot node the running scenarios share (made once, re-adopted at each restart)."""
        if self.get(f"/pools/{pool_id}") is None:
            self.call(
                "POST",
                "/pools",
                {
                    "id": pool_id,
                    "vmSize": "standard_d2_v3",
                    "virtualMachineConfiguration": _VM,
                    "targetDedicatedNodes": 1,
                    "taskSlotsPerNode": 4,
                },
            )
            self.run_node = ""
        if not self.run_node:
            (self.run_node,) = self.idle_nodes(pool_id, 1)

    def call(self, method: str, path: str, body: Any = None, *, strict: bool = False) -> Any:
        """A signed request; returns (status, JSON body or None). Connection errors raise AzureError."""
        client = self.strict if strict else self.client
        assert client is not None
        headers = {"content-type": "application/json; odata=minimalmetadata"} if body is not None else {}
        url = f"{self.emulator.url}{path}{'&' if '?' in path else '?'}{API}"
        try:
            response = client.send_request(HttpRequest(method, url, json=body, headers=headers))
        except HttpResponseError as exc:  # this SDK's send_request raises on 4xx / 5xx
            if exc.response is None:
                raise
            response = exc.response
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        return response.status_code, data

    def get(self, path: str) -> Any:
        status, data = self.call("GET", path)
        return data if status == 200 else None

    def listing(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        status, data = self.call("GET", path)
        while status == 200 and data is not None:
            items += data.get("value", [])
            link = data.get("odata.nextLink")
            if not link:
                break
            status, data = self.call("GET", link.split(self.emulator.url, 1)[1].split("&api-version")[0])
        return items

    def containers_of(self, pool_id: str) -> dict[str, str]:
        return {
            c.labels["batchbox.node"]: c.status
            for c in self.emulator.containers()
            if c.labels.get("batchbox.pool") == pool_id
        }

    def idle_nodes(self, pool_id: str, count: int) -> list[str]:
        def probe() -> list[str] | None:
            nodes = self.listing(f"/pools/{pool_id}/nodes")
            ids = sorted(n["id"] for n in nodes if n["state"] == "idle")
            return ids if len(nodes) == count == len(ids) else None

        return wait_for(f"{count} idle node(s) in {pool_id}", probe)

    def pool_gone(self, pool_id: str) -> bool:
        return self.get(f"/pools/{pool_id}") is None and not self.containers_of(pool_id)

    def delete_pool_fully(self, pool_id: str) -> None:
        self.call("DELETE", f"/pools/{pool_id}")
        wait_for(f"pool {pool_id} and its containers to be gone", lambda: self.pool_gone(pool_id))


# ---------------------------------------------------------------------------------------------- the scenarios
def _task(task_id: str, command: str = "/bin/true") -> dict[str, Any]:
    return {"id": task_id, "commandLine": command}


def _add_collection(rig: Rig, job_id: str, tasks: list[dict[str, Any]], *, strict: bool) -> list[str]:
    """Send the collection; returns each task's outcome (``success`` or the error code)."""
    status, data = rig.call("POST", f"/jobs/{job_id}/addtaskcollection", {"value": tasks}, strict=strict)
    _check(status == 200, f"addtaskcollection answered {status}: {data}")
    return [
        v.get("status") if v.get("status") == "success" else (v.get("error") or {}).get("code") for v in data["value"]
    ]


def _whole_collection(rig: Rig, job_id: str, tasks: list[dict[str, Any]], told_ok: bool) -> None:
    """All or none of ``tasks`` exist, all when the client was told so; sending again makes it whole."""
    present = {t["id"] for t in rig.listing(f"/jobs/{job_id}/tasks")}
    _check(len(present) in (0, len(tasks)), f"{job_id}: {len(present)} of {len(tasks)} tasks after the crash")
    _check(not (told_ok and not present), f"{job_id}: the client was told the collection was added, it is gone")
    again = set(_add_collection(rig, job_id, tasks, strict=False))
    _check(again == ({"TaskExists"} if present else {"success"}), f"{job_id}: sending again gave {again}")


def _send_collection(rig: Rig, ctx: dict[str, Any]) -> str:
    def send() -> int:
        outcomes = set(_add_collection(rig, ctx["job"], ctx["tasks"], strict=True))
        return 200 if outcomes == {"success"} else 500

    return _operate(rig, send)


def _operate(rig: Rig, action: Callable[[], Any]) -> str:
    """Run the operation with the strict client: ``ok`` (answered 2xx), ``refused <status>`` or ``cut``."""
    try:
        status = action()
    except AzureError:
        return "cut"
    return "ok" if 200 <= status < 300 else f"refused {status}"


class Scenario:
    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        raise NotImplementedError

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        raise NotImplementedError


class Collection(Scenario):
    pool = "crash-empty"

    @classmethod
    def pool_exists(cls, rig: Rig) -> None:
        if rig.get(f"/pools/{cls.pool}") is None:
            rig.call("POST", "/pools", {"id": cls.pool, "vmSize": "standard_d2_v3", "virtualMachineConfiguration": _VM})

    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        self.pool_exists(rig)
        job_id = f"col-{index}"
        rig.call("POST", "/jobs", {"id": job_id, "poolInfo": {"poolId": self.pool}})
        return {"job": job_id, "tasks": [_task(f"t{i:03d}") for i in range(100)]}

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        return _send_collection(rig, ctx)

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        job = ctx["job"]
        _whole_collection(rig, job, ctx["tasks"], outcome == "ok")
        counts = rig.get(f"/jobs/{job}/taskcounts")["taskCounts"]
        _check(counts["active"] == 100 and counts["completed"] == 0, f"{job}: counts {counts}")
        rig.call("DELETE", f"/jobs/{job}")
        wait_for(f"{job} to be deleted", lambda: rig.get(f"/jobs/{job}") is None)


class Running(Scenario):
    pool = "crash-run"

    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        rig.ensure_run_pool(self.pool)
        job_id = f"run-{index}"
        rig.call("POST", "/jobs", {"id": job_id, "poolInfo": {"poolId": self.pool}})
        tasks = [_task(f"r{i:02d}", "/bin/sh -c 'sleep 0.2'") for i in range(RUNNING_TASKS)]
        return {"job": job_id, "tasks": tasks}

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        outcome = _send_collection(rig, ctx)
        with contextlib.suppress(SweepFailure):  # the kill lands while the tasks run
            wait_for("the tasks", lambda: rig.emulator.returncode is not None or self._done(rig, ctx["job"]), 20)
        return outcome

    @staticmethod
    def _done(rig: Rig, job_id: str) -> bool:
        counts = (rig.get(f"/jobs/{job_id}/taskcounts") or {}).get("taskCounts", {})
        return counts.get("succeeded") == RUNNING_TASKS

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        job = ctx["job"]
        _whole_collection(rig, job, ctx["tasks"], outcome == "ok")
        wait_for(f"{job}'s tasks to complete", lambda: self._done(rig, job))
        counts = rig.get(f"/jobs/{job}/taskcounts")["taskCounts"]
        _check((counts["active"], counts["running"], counts["failed"]) == (0, 0, 0), f"{job}: counts {counts}")
        tasks = rig.listing(f"/jobs/{job}/tasks")
        _check(all(t["executionInfo"]["retryCount"] == 0 for t in tasks), f"{job}: a task was retried")
        _check(rig.idle_nodes(self.pool, 1) == [rig.run_node], f"{self.pool}: its node was not re-adopted")
        rig.call("DELETE", f"/jobs/{job}")
        wait_for(f"{job} to be deleted", lambda: rig.get(f"/jobs/{job}") is None)


class JobDelete(Running):
    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        rig.ensure_run_pool(self.pool)
        job = f"del-{index}"
        rig.call("POST", "/jobs", {"id": job, "poolInfo": {"poolId": self.pool}})
        tasks = [_task(f"d{i}", "/bin/sh -c 'sleep 300'") for i in range(4)]
        _add_collection(rig, job, tasks, strict=False)
        wait_for(f"{job}'s tasks to run", lambda: rig.get(f"/jobs/{job}/taskcounts")["taskCounts"]["running"] == 4)
        return {"job": job}

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        outcome = _operate(rig, lambda: rig.call("DELETE", f"/jobs/{ctx['job']}", strict=True)[0])
        with contextlib.suppress(SweepFailure):
            wait_for(
                "the job to go",
                lambda: rig.emulator.returncode is not None or rig.get(f"/jobs/{ctx['job']}") is None,
                10,
            )
        return outcome

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        job = ctx["job"]
        doc = rig.get(f"/jobs/{job}")
        if doc is not None and doc["state"] != "deleting":
            _check(outcome != "ok", f"{job}: an accepted delete was undone (state {doc['state']})")
            tasks = rig.listing(f"/jobs/{job}/tasks")
            counts = rig.get(f"/jobs/{job}/taskcounts")["taskCounts"]
            _check(len(tasks) == 4, f"{job}: half deleted, {len(tasks)} tasks left")
            _check(counts["active"] + counts["running"] + counts["completed"] == 4, f"{job}: counts {counts}")
            rig.call("DELETE", f"/jobs/{job}")
        wait_for(f"{job} to be gone", lambda: rig.get(f"/jobs/{job}") is None)
        status, _ = rig.call("GET", f"/jobs/{job}/tasks")
        _check(status == 404, f"{job}: its tasks answer {status}")

        def quiet() -> bool:
            node = rig.get(f"/pools/{self.pool}/nodes/{rig.run_node}")
            return node is not None and node["state"] == "idle" and node.get("runningTasksCount", 0) == 0

        wait_for(f"node {rig.run_node} to run nothing", quiet)


class PoolDelete(Scenario):
    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        pool = f"pd-{index}"
        rig.call(
            "POST",
            "/pools",
            {"id": pool, "vmSize": "standard_d2_v3", "virtualMachineConfiguration": _VM, "targetDedicatedNodes": 2},
        )
        return {"pool": pool, "nodes": rig.idle_nodes(pool, 2)}

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        pool = ctx["pool"]
        outcome = _operate(rig, lambda: rig.call("DELETE", f"/pools/{pool}", strict=True)[0])
        with contextlib.suppress(SweepFailure):
            wait_for("the pool to go", lambda: rig.emulator.returncode is not None or rig.pool_gone(pool), 15)
        return outcome

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        pool = ctx["pool"]
        doc = rig.get(f"/pools/{pool}")
        if doc is not None and doc["state"] != "deleting":
            _check(outcome != "ok", f"{pool}: an accepted delete was undone")
            nodes = rig.idle_nodes(pool, 2)
            containers = rig.containers_of(pool)
            _check(containers == dict.fromkeys(nodes, "running"), f"{pool}: nodes {nodes}, containers {containers}")
        rig.delete_pool_fully(pool)
        _check(rig.listing(f"/pools/{pool}/nodes") == [], f"{pool}: nodes left")


class PoolGrow(Scenario):
    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        pool = f"pg-{index}"
        rig.call("POST", "/pools", {"id": pool, "vmSize": "standard_d2_v3", "virtualMachineConfiguration": _VM})
        return {"pool": pool}

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        pool = ctx["pool"]
        outcome = _operate(
            rig, lambda: rig.call("POST", f"/pools/{pool}/resize", {"targetDedicatedNodes": 2}, strict=True)[0]
        )
        with contextlib.suppress(SweepFailure):
            wait_for(
                "the nodes",
                lambda: rig.emulator.returncode is not None or len(rig.listing(f"/pools/{pool}/nodes")) == 2,
                15,
            )
        return outcome

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        pool = ctx["pool"]
        target = rig.get(f"/pools/{pool}")["targetDedicatedNodes"]
        _check(target == 2 or outcome != "ok", f"{pool}: an accepted resize was undone")
        if target != 2:
            wait_for(f"{pool} steady", lambda: rig.get(f"/pools/{pool}")["allocationState"] == "steady")
            rig.call("POST", f"/pools/{pool}/resize", {"targetDedicatedNodes": 2})
        nodes = rig.idle_nodes(pool, 2)
        wait_for(
            f"{pool}: one running container per node and no other",
            lambda: rig.containers_of(pool) == dict.fromkeys(nodes, "running"),
        )
        rig.delete_pool_fully(pool)


SCHEDULE_INTERVAL = 3.0
"""Seconds between a test schedule's occurrences (the sweep's emulator allows intervals from 1 s)."""


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class ScheduleFiring(Scenario):
    """A job schedule whose first occurrence comes just after the sweep armed the crash point."""

    def prepare(self, rig: Rig, index: int) -> dict[str, Any]:
        Collection.pool_exists(rig)
        schedule = f"sch-{index}"
        start = datetime.now(timezone.utc) + timedelta(seconds=1)
        rig.call(
            "POST",
            "/jobschedules",
            {
                "id": schedule,
                "schedule": {
                    "doNotRunUntil": start.isoformat().replace("+00:00", "Z"),
                    "recurrenceInterval": f"PT{SCHEDULE_INTERVAL:g}S",
                },
                "jobSpecification": {"poolInfo": {"poolId": Collection.pool}},
            },
        )
        return {"schedule": schedule, "start": start.timestamp()}

    @staticmethod
    def jobs(rig: Rig, schedule: str) -> list[dict[str, Any]]:
        return [j for j in rig.listing("/jobs") if j["id"].startswith(f"{schedule}:job-")]

    def operate(self, rig: Rig, ctx: dict[str, Any]) -> str:
        with contextlib.suppress(SweepFailure):
            wait_for("a job", lambda: rig.emulator.returncode is not None or self.jobs(rig, ctx["schedule"]), 8)
        return "ok"  # nothing was asked: the schedule fires by itself

    def verify(self, rig: Rig, ctx: dict[str, Any], outcome: str) -> None:
        schedule = ctx["schedule"]
        doc = rig.get(f"/jobschedules/{schedule}")
        _check(doc is not None, f"{schedule}: the schedule is gone")
        jobs = self.jobs(rig, schedule)
        _check(len(jobs) <= 1, f"{schedule}: {len(jobs)} jobs at once")
        recent = ((doc.get("executionInfo") or {}).get("recentJob") or {}).get("id")
        _check(recent is None or recent in {j["id"] for j in jobs}, f"{schedule}: recentJob {recent} does not exist")
        # Let it fire on: end each job as it comes, so the schedule creates the next one at its next occurrence.
        deadline = time.monotonic() + 3 * SCHEDULE_INTERVAL
        while time.monotonic() < deadline:
            for job in self.jobs(rig, schedule):
                if job["state"] == "active":
                    rig.call("POST", f"/jobs/{job['id']}/terminate", {})
            time.sleep(0.3)
        created = sorted(_when(j["creationTime"]) for j in self.jobs(rig, schedule))
        _check(len(created) >= 2, f"{schedule}: it stopped firing after the restart ({len(created)} job(s))")
        # Occurrences are start + k * interval, each open for one interval (its window): a job made at time c belongs
        # to occurrence k = (c - start) // interval, late or not. Two jobs of one occurrence would share k.
        occurrences = [int((c - ctx["start"]) // SCHEDULE_INTERVAL) for c in created]
        _check(len(set(occurrences)) == len(occurrences), f"{schedule}: an occurrence fired twice: {occurrences}")
        rig.call("DELETE", f"/jobschedules/{schedule}")
        wait_for(f"{schedule} to be deleted", lambda: rig.get(f"/jobschedules/{schedule}") is None, 30)


SCENARIOS: dict[str, Scenario] = {
    "collection": Collection(),
    "running": Running(),
    "job-delete": JobDelete(),
    "pool-delete": PoolDelete(),
    "pool-grow": PoolGrow(),
    "schedule-firing": ScheduleFiring(),
}


def _await_death(rig: Rig, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rig.emulator.returncode is not None:
            return True
        time.sleep(0.05)
    return False


def run_sweep(emulator: EmulatorProcess, points: list[KillPoint], arm: Path) -> SweepReport:
    """Kill the emulator at each point in turn and check each restart (see the module docstring).

    Raises:
        SweepFailure: an invariant broke; the message names the kill point.
    """
    rig = Rig(emulator, arm)
    report = SweepReport()
    began = time.monotonic()
    previous: tuple[KillPoint, dict[str, Any], str] | None = None
    try:
        for index, kill_point in enumerate([*points, None]):
            rig.start(kill_point)
            report.restarts += 1
            if previous is not None:
                last, ctx, outcome = previous
                try:
                    SCENARIOS[last.scenario].verify(rig, ctx, outcome)
                except SweepFailure as exc:
                    raise SweepFailure(f"after the kill at {last} (client told: {outcome}): {exc}") from None
            if kill_point is None:
                break
            scenario = SCENARIOS[kill_point.scenario]
            ctx = scenario.prepare(rig, index)
            rig.arm.touch()
            outcome = scenario.operate(rig, ctx)
            died = _await_death(rig)
            rig.arm.unlink(missing_ok=True)
            marker = f"crash point {kill_point.point}{'' if '/' in kill_point.point else '/'} hit {kill_point.hit}"
            if died and rig.emulator.returncode == -9 and marker in rig.log_since_start():
                report.killed.append(kill_point)
                report.outcomes[outcome] += 1
            else:
                report.not_reached.append(kill_point)
            previous = (kill_point, ctx, outcome)
    finally:
        report.seconds = time.monotonic() - began
        for client in (rig.client, rig.strict):
            if client is not None:
                client.close()
    return report
