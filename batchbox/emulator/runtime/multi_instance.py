"""Multi-instance tasks (``multiInstanceSettings``): one primary and ``numberOfInstances - 1`` subtasks, one per node.

* Placement (gang scheduling): the task starts only when ``numberOfInstances`` schedulable nodes of its pool are
  free at once; until then it stays ``active`` and the rest of its job's queue waits behind it. A pool without
  ``enableInterNodeCommunication`` or with more than one task slot per node never runs it (Batch documents that
  such a task stays ``active``). The master node is the one the scheduler picked for the task (affinity, fill
  type); the subtasks take the other free nodes in node id order.
* On every node the run downloads ``commonResourceFiles`` into the task directory (``AZ_BATCH_TASK_SHARED_DIR``,
  the same path on every node) and runs the coordination command; the task's own ``resourceFiles`` and
  ``outputFiles`` belong to the primary only. A subtask keeps running (what its coordination command left in the
  background too) until the task's run ends. The primary is sent to its node once every subtask's coordination
  command succeeded; it runs its own coordination command and then the application command (``commandLine``).
* The primary's end is the task's end (its exit code is the task's); the subtasks are then stopped. A subtask
  whose coordination command fails, or that ends on its own, fails the whole run: the task is retried up to its
  ``maxTaskRetryCount`` or completes with that subtask's exit code and failure. A node of the run that is lost,
  rebooted, removed or preempted requeues (or, by ``nodeDeallocationOption: terminate``, ends) the whole task and
  frees all its nodes.
* Variables: ``AZ_BATCH_HOST_LIST`` (``ip,ip``), ``AZ_BATCH_NODE_LIST`` (``ip;ip``), ``AZ_BATCH_MASTER_NODE``
  (``ip:6000``), ``AZ_BATCH_IS_CURRENT_NODE_MASTER``, ``AZ_BATCH_TASK_SHARED_DIR`` and ``CCP_NODES``
  (``n ip 1 ip 1``), the master first. Local nodes share the host's network, so every address is the node
  document's ``ipAddress`` (``127.0.0.1``).

``GET .../subtasksinfo`` lists the subtasks of the task's latest run: in memory while the run goes on, and kept in
the store (``subtasks`` table) once it is over, so they outlive an emulator restart and go with the task or its
job. A run cut short by a restart is requeued (recovery) and lists no subtasks until the task runs again. A task's
``retentionTime`` removes its directory from the master node and every subtask's node (``retention.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.node_layout import NODE_ROOT, task_dir
from batchbox.emulator.resources.multi_instance import instance_count
from batchbox.emulator.runtime.documents import (
    exit_code_failure,
    parse_exit_code,
    parse_failure_info,
    record_recent_task,
    task_ended_failure,
    task_running,
)
from batchbox.emulator.runtime.environment import job_environment_doc, task_assignment
from batchbox.emulator.runtime.model import Assignment, Gang, JobRuntime, NodeRuntime, PoolRuntime, task_assignment_id
from batchbox.emulator.runtime.scheduler import node_info, pool_doc_cache
from batchbox.emulator.runtime.transitions import Transitions

__all__ = ["MASTER_PORT", "MultiInstance"]

MASTER_PORT = 6000
"""The port ``AZ_BATCH_MASTER_NODE`` names (Batch's documented example, ``10.0.0.4:6000``)."""

Doc = dict[str, Any]
_ENDED = "The subtask was ended because the run of its multi-instance task ended"


def _retry_limit(doc: Mapping[str, Any], job: JobRuntime) -> int:
    value = (doc.get("constraints") or {}).get("maxTaskRetryCount")
    return value if isinstance(value, int) and not isinstance(value, bool) else job.max_task_retry_count


def _batch_variables(nodes: list[NodeRuntime], directory: str) -> dict[str, str]:
    hosts = [str(node.doc.get("ipAddress") or "127.0.0.1") for node in nodes]
    return {
        "AZ_BATCH_HOST_LIST": ",".join(hosts),
        "AZ_BATCH_NODE_LIST": ";".join(hosts),
        "AZ_BATCH_MASTER_NODE": f"{hosts[0]}:{MASTER_PORT}",
        "AZ_BATCH_TASK_SHARED_DIR": f"{NODE_ROOT}/{directory}",
        "CCP_NODES": " ".join([str(len(hosts)), *(f"{host} 1" for host in hosts)]),
    }


def _complete(info: Doc, now: str, exit_code: int | None, failure: Doc | None) -> None:
    info["previousState"] = info.get("state", "running")
    info["previousStateTransitionTime"] = info.get("stateTransitionTime", now)
    info["state"] = "completed"
    info["stateTransitionTime"] = now
    info["endTime"] = now
    if exit_code is not None:
        info["exitCode"] = exit_code
    info["result"] = "failure" if failure is not None else "success"
    if failure is not None:
        info["failureInfo"] = failure


class MultiInstance:
    """Places multi-instance tasks on their nodes and follows their subtasks (the scheduler's ``place_gang`` and
    the transitions' ``multi``)."""

    def __init__(self, transitions: Transitions) -> None:
        self.trans = transitions
        self.sched = transitions.sched
        self.store = transitions.store
        self._subtasks: dict[tuple[str, str], tuple[Gang, list[Doc]]] = {}
        transitions.multi = self
        transitions.job_end_hooks.append(self._job_ended)
        self.sched.place_gang = self.place
        self.sched.gang_ended = self._gang_ended

    # ----------------------------------------------------------------- placement
    def place(self, pool: PoolRuntime, job: JobRuntime, doc: Doc, first: NodeRuntime, nodes: list[NodeRuntime]) -> bool:
        """Start the multi-instance task ``doc`` on ``first`` (its master) and free ``nodes`` when there are enough
        of them; False (nothing changed) when it has to wait."""
        count = instance_count(doc) or 1
        if pool_doc_cache(self.store, pool).get("enableInterNodeCommunication") is not True or pool.slots_per_node != 1:
            return False
        others = sorted(
            (n for n in nodes if n is not first and n.free_slots >= 1 and n.node_id not in job.excluded_nodes),
            key=lambda n: n.node_id,
        )
        if len(others) < count - 1:
            return False
        chosen = [first, *others[: count - 1]]
        gang = self._build(pool, job, doc, chosen)
        now = now_iso()
        task_key = str(doc["id"]).lower()
        directory = task_dir(job.job_id, str(doc["id"]))
        task_running(doc, node_info(first, pool, directory), now)
        self.store.update_task(job.job_id, doc)
        infos: list[Doc] = []
        for index, (node, held) in enumerate(gang.members):
            node.running[held.assignment_id] = held
            record_recent_task(node.doc, doc, job.job_id)
            self.sched.touch_node(node)
            if index:
                infos.append(
                    {
                        "id": index,
                        "nodeInfo": node_info(node, pool, directory),
                        "startTime": now,
                        "state": "running",
                        "stateTransitionTime": now,
                    }
                )
                node.deliver(held.payload)
        self._subtasks[(job.key, task_key)] = (gang, infos)
        self.store.delete_subtasks(job.job_id, task_key)  # an earlier run's: the latest run's are listed
        self.sched.placements[(job.key, task_key)] = gang.primary
        job.take(task_key)
        self.sched.count_placement(job)
        if count == 1:
            first.deliver(gang.primary[1].payload)
        return True

    def _build(self, pool: PoolRuntime, job: JobRuntime, doc: Doc, nodes: list[NodeRuntime]) -> Gang:
        task_id = str(doc["id"])
        task_key = task_id.lower()
        attempt = self.sched.next_attempt(job, task_key, doc)
        self.sched.attempt_floor.pop((job.key, task_key), None)
        primary_id = task_assignment_id(job.job_id, task_id, attempt)
        variables = _batch_variables(nodes, task_dir(job.job_id, task_id))
        settings = doc.get("multiInstanceSettings") or {}
        gang = Gang()
        for index, node in enumerate(nodes):
            assignment_id = f"{primary_id}/{index}" if index else primary_id
            payload = task_assignment(
                self.sched.config,
                assignment_id=assignment_id,
                attempt=attempt,
                job_doc=job_environment_doc(job),
                task_doc=doc,
                pool_doc=pool_doc_cache(self.store, pool),
                node_id=node.node_id,
                dedicated=node.dedicated,
                max_task_retry_count=_retry_limit(doc, job),
                batch_variables={**variables, "AZ_BATCH_IS_CURRENT_NODE_MASTER": "false" if index else "true"},
            )
            payload["multiInstance"] = {
                "coordinationCommandLine": str(settings.get("coordinationCommandLine") or ""),
                "commonResourceFiles": list(settings.get("commonResourceFiles") or []),
                "primary": index == 0,
            }
            if index:  # a subtask runs the coordination command only
                payload.update(commandLine="", resourceFiles=[], outputFiles=[])
            held = Assignment(
                assignment_id=assignment_id,
                kind="subtask" if index else "task",
                job_id=job.job_id,
                task_id=task_id,
                attempt=attempt,
                slots=1,
                payload=payload,
                gang=gang,
            )
            gang.members.append((node, held))
        return gang

    # ----------------------------------------------------------------- subtask events
    def coordinated(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None:
        """A subtask's coordination command ended: a failure fails the run; the last success sends the primary."""
        gang = held.gang
        index = gang.index_of(held) if gang is not None else None
        if gang is None or index is None or gang.ended or held.cancelled:
            return
        exit_code, failure = self._result(event)
        if failure is not None:
            self._fail(gang, index, exit_code, failure)
            return
        gang.coordinated[index] = 0 if exit_code is None else exit_code
        if len(gang.coordinated) == len(gang.members) - 1:
            master, primary = gang.primary
            if master.running.get(primary.assignment_id) is primary and primary.delivered_at is None:
                master.deliver(primary.payload)

    def subtask_completed(self, node: NodeRuntime, held: Assignment, event: Mapping[str, Any]) -> None:
        """A subtask's run is over: expected once the run was stopped, else it fails the whole run."""
        self.sched.release(node, held)
        gang = held.gang
        index = gang.index_of(held) if gang is not None else None
        if gang is None or index is None or gang.ended or held.cancelled:
            return
        exit_code, failure = self._result(event)
        if failure is None:
            failure = task_ended_failure("The subtask ended before its multi-instance task's primary")
        self._fail(gang, index, exit_code, failure)

    def subtask_lost(self, node: NodeRuntime, held: Assignment, end_message: str | None) -> None:
        """A subtask's node is lost, rebooted, removed or preempted: the whole task is requeued (``end_message``
        None) or ends with ``TaskEnded``."""
        self.sched.release(node, held)
        gang = held.gang
        if gang is None or gang.ended or held.cancelled:
            return
        master, primary = gang.primary
        self.sched.cancel_run(master, primary)
        doc, job = self._current(master, primary)
        if doc is None or job is None:
            return
        if end_message is None:
            self.trans.requeue_doc(job, doc)
            self.trans.run_ended(job)
        else:
            self.trans.end_doc(job.job_id, doc, end_message)
            self.trans.completed(job.job_id, doc)

    @staticmethod
    def _result(event: Mapping[str, Any]) -> tuple[int | None, Doc | None]:
        exit_code = parse_exit_code(event.get("exitCode"))
        failure = parse_failure_info(event.get("failureInfo"))
        if failure is None and (exit_code is None or exit_code != 0 or event.get("result") == "failure"):
            failure = exit_code_failure(exit_code)
        return exit_code, failure

    def _fail(self, gang: Gang, index: int, exit_code: int | None, failure: Doc) -> None:
        """Subtask ``index`` failed: stop the run and let the task retry or complete with that failure."""
        master, primary = gang.primary
        infos = self._infos(gang)
        if infos is not None and 0 < index <= len(infos):
            _complete(infos[index - 1], now_iso(), exit_code, failure)
        self.sched.cancel_run(master, primary)
        doc, _job = self._current(master, primary)
        if doc is None:
            return
        failure = {**failure, "details": [*failure.get("details", []), {"name": "SubtaskId", "value": str(index)}]}
        result = {"exitCode": exit_code, "failureInfo": failure, "result": "failure", "endTime": now_iso()}
        self.trans.apply_result(master, primary, doc, result)

    def _current(self, master: NodeRuntime, primary: Assignment) -> tuple[Doc | None, JobRuntime | None]:
        """The task document while ``primary`` still holds it (running on ``master``), and its job."""
        doc = self.store.get_task(primary.job_id, primary.task_id)
        job = self.sched.jobs.get(primary.job_key)
        if doc is None or doc.get("state") != "running":
            return None, job
        if (doc.get("nodeInfo") or {}).get("nodeId") != master.node_id:
            return None, job
        return doc, job

    # ----------------------------------------------------------------- subtask information
    def _infos(self, gang: Gang) -> list[Doc] | None:
        primary = gang.primary[1]
        entry = self._subtasks.get((primary.job_key, primary.task_key))
        return entry[1] if entry is not None and entry[0] is gang else None

    def _gang_ended(self, gang: Gang) -> None:
        """The primary's run is over: every subtask still running completes (with its coordination command's exit
        code when that succeeded), and the subtasks move from memory to the store (nothing changes them any more)."""
        infos = self._infos(gang)
        if infos is None:
            return
        primary = gang.primary[1]
        del self._subtasks[(primary.job_key, primary.task_key)]
        now = now_iso()
        for info in infos:
            if info.get("state") == "completed":
                continue
            index = int(info["id"])
            if index in gang.coordinated:
                _complete(info, now, gang.coordinated[index], None)
            else:
                _complete(info, now, None, task_ended_failure(_ENDED))
        self.store.put_subtasks(primary.job_id, primary.task_id, infos)

    def subtasks(self, job_id: str, task_id: str) -> list[Doc]:
        """The subtasks of the task's latest run (``subtasksinfo``); none for a task that is not multi-instance."""
        entry = self._subtasks.get((job_id.lower(), task_id.lower()))
        if entry is not None:
            return [dict(info) for info in entry[1]]
        return self.store.get_subtasks(job_id, task_id)

    def forget(self, job_id: str, task_id: str) -> None:
        """The task was deleted (after the delete's hooks ran): its subtasks go too."""
        self._subtasks.pop((job_id.lower(), task_id.lower()), None)
        self.store.delete_subtasks(job_id, task_id)

    def _job_ended(self, job_id: str, how: str) -> None:
        if how == "deleted":  # its subtasks left the store with it
            key = job_id.lower()
            for pair in [pair for pair in self._subtasks if pair[0] == key]:
                del self._subtasks[pair]
