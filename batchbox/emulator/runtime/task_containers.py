"""Container tasks, the emulator's side: a node's agent asks, the emulator runs the task's container for it.

The agent prepares the task directory and resource files as for any task, then calls ``containers/run`` with the
assignment id (see the node-agent protocol in docs/emulator-design.md). The container is built from the Assignment
the emulator itself issued (never from what the agent sends, except the ``AZ_BATCH_APP_PACKAGE_*`` variables of the
packages it installed): its image, the parsed and checked ``containerRunOptions``, the node's directories, the
registry credentials (passwords from the store's sealed secrets). Each run has a thread of its own (it streams the
container's output into the task directory until the container exits); ``run`` and ``wait`` answer as soon as the
container exits or after ``wait`` seconds (``{"state": "running"}``), so short tasks need one request. ``kill`` is
the agent's cancel and wall-clock kill. After an emulator restart, ``wait`` takes up a container still running
(its output rewritten from the engine's logs).

Answers: ``{"state": "running"}``, ``{"state": "exited", "exitCode": n | null, "failureInfo": {...} | null}`` or
``{"state": "missing"}`` (no such run or container).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.node_layout import NODE_ROOT, bind_mount_directory, task_bind_roots
from batchbox.emulator.resources.containers import registry_key, registry_secret_name
from batchbox.emulator.resources.run_options import RunOptionError, check_bind_sources, parse_run_options
from batchbox.emulator.runtime.container_payload import (
    CONTAINER_INVALID_IMAGE,
    CONTAINER_INVALID_SETTINGS,
    container_failure,
)
from batchbox.emulator.runtime.environment import start_task_assignment, start_task_assignment_id, task_assignment
from batchbox.emulator.runtime.model import NodeRuntime
from batchbox.emulator.runtime.ports import (
    ContainerExit,
    ContainerImageError,
    ContainerSettingsError,
    RegistryCredential,
    StoreLike,
    TaskContainersLike,
    TaskContainerSpec,
)
from batchbox.emulator.secret_owners import job_owner, lookup_names, pool_owner, task_owner

__all__ = ["ANSWER_KEEP_SECONDS", "TaskContainerRuns", "pool_images", "pool_registries", "registry_credentials"]

log = logging.getLogger(__name__)

ANSWER_KEEP_SECONDS = 600.0
"""How long a finished run's answer is kept for an agent asking again (its first answer may have been lost)."""
_PACKAGE_VARIABLE = "AZ_BATCH_APP_PACKAGE_"
_MAX_WAIT = 60.0
Answer = dict[str, Any]


class _Refused(Exception):
    def __init__(self, failure: dict[str, Any]) -> None:
        super().__init__(failure.get("message"))
        self.failure = failure


@dataclass
class _Run:
    future: concurrent.futures.Future[Answer] = field(default_factory=concurrent.futures.Future)
    answered_at: float | None = None


def _exited(exit_code: int | None, failure: dict[str, Any] | None = None) -> Answer:
    return {"state": "exited", "exitCode": exit_code, "failureInfo": failure}


def registry_credentials(store: StoreLike, registries: list[Any], owners: list[str]) -> list[RegistryCredential]:
    """The credentials of REST registry references whose password the store keeps under one of ``owners``."""
    credentials: list[RegistryCredential] = []
    for registry in registries:
        if not isinstance(registry, Mapping) or not registry.get("username"):
            continue
        server = str(registry.get("registryServer") or "")
        password = store.find_secret(lookup_names(owners, registry_secret_name(server, str(registry["username"]))))
        if password is not None:
            credentials.append(RegistryCredential(registry_key(server), str(registry["username"]), password))
    return credentials


def _container_configuration(pool_doc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    vm = (pool_doc or {}).get("virtualMachineConfiguration")
    config = vm.get("containerConfiguration") if isinstance(vm, Mapping) else None
    return config if isinstance(config, Mapping) else {}


def pool_registries(pool_doc: Mapping[str, Any] | None) -> list[Any]:
    """The pool's ``containerRegistries`` (without passwords)."""
    return list(_container_configuration(pool_doc).get("containerRegistries") or [])


def pool_images(pool_doc: Mapping[str, Any] | None) -> list[str]:
    """The pool's ``containerImageNames``: present on each node before it takes tasks."""
    return [str(image) for image in _container_configuration(pool_doc).get("containerImageNames") or []]


class TaskContainerRuns:
    """The task containers the emulator runs for its nodes, by node and assignment.

    Args:
        config: the emulator's settings.
        store: the state store (documents, registry passwords).
        driver: the driver's task containers.
    """

    def __init__(self, config: EmulatorConfig, store: StoreLike, driver: TaskContainersLike) -> None:
        self.config = config
        self.store = store
        self.driver = driver
        self._runs: dict[tuple[str, str], _Run] = {}
        self._ended: dict[tuple[str, str], dict[str, str]] = {}
        self.container_started: Callable[[str, str, dict[str, str]], None] = lambda _node, _assignment, _info: None
        """Called on the event loop with ``(node id, assignment id, containerInfo)`` when a run's container starts."""

    # ----------------------------------------------------------------- what to run
    def _payload(self, node: NodeRuntime, assignment_id: str) -> Mapping[str, Any] | None:
        """The Assignment the emulator issued (rebuilt from the documents when a restart lost it)."""
        held = node.running.get(assignment_id)
        if held is not None and held.payload:
            return held.payload
        pool_doc = self.store.get_pool(node.pool_id)
        if assignment_id == start_task_assignment_id(node.node_id):
            return start_task_assignment(self.config, pool_doc, node.node_id, node.dedicated) if pool_doc else None
        if held is None:
            return None
        job_doc = self.store.get_job(held.job_id)
        task_doc = self.store.get_task(held.job_id, held.task_id)
        if job_doc is None or task_doc is None:
            return None
        return task_assignment(
            self.config,
            assignment_id=assignment_id,
            attempt=held.attempt,
            job_doc=job_doc,
            task_doc=task_doc,
            pool_doc=pool_doc,
            node_id=node.node_id,
            dedicated=node.dedicated,
            max_task_retry_count=0,
        )

    def _spec(self, node: NodeRuntime, payload: Mapping[str, Any], extra: Mapping[str, Any]) -> TaskContainerSpec:
        container: Mapping[str, Any] = payload["container"]
        directory = str(payload.get("taskDir") or "")
        job_id = payload.get("jobId")
        job_id = str(job_id) if job_id else None
        try:
            command = shlex.split(str(payload.get("commandLine") or ""))
            options = parse_run_options(
                container.get("containerRunOptions"), allow_privileged=self.config.allow_privileged_containers
            )
            check_bind_sources(options, task_bind_roots(directory, job_id))
        except (ValueError, RunOptionError) as exc:
            raise _Refused(container_failure(CONTAINER_INVALID_SETTINGS, {"Message": str(exc)})) from None
        working_dir = options.workdir
        if working_dir is None and container.get("workingDirectory") != "containerImageDefault":
            working_dir = f"{NODE_ROOT}/{directory}/wd"
        mounts = container.get("containerHostBatchBindMounts")
        node_mounts: list[tuple[str, str, bool]] = [("", NODE_ROOT, False)]
        if isinstance(mounts, list):
            node_mounts = []
            for mount in mounts:
                relative = bind_mount_directory(str(mount.get("source")), directory, job_id)
                if relative is not None:
                    node_mounts.append((relative, f"{NODE_ROOT}/{relative}", bool(mount.get("isReadOnly"))))
        environment = {str(k): str(v) for k, v in (payload.get("environment") or {}).items()}
        environment.update({k: str(v) for k, v in extra.items() if str(k).startswith(_PACKAGE_VARIABLE)})
        registry = container.get("registry")
        task_id = payload.get("taskId")
        owners = [task_owner(job_id, str(task_id))] if job_id and task_id else []
        owners += [job_owner(job_id)] if job_id else []
        credentials = registry_credentials(self.store, [registry] if isinstance(registry, Mapping) else [], owners)
        pool_registry = pool_registries(self.store.get_pool(node.pool_id))
        credentials += registry_credentials(self.store, pool_registry, [pool_owner(node.pool_id)])
        return TaskContainerSpec(
            node_id=node.node_id,
            pool_id=node.pool_id,
            assignment_id=str(payload.get("assignmentId")),
            image=str(container.get("imageName")),
            command=command,
            environment=environment,
            working_dir=working_dir,
            options=options,
            node_mounts=node_mounts,
            stdout_path=f"{directory}/stdout.txt",
            stderr_path=f"{directory}/stderr.txt",
            credentials=credentials,
        )

    # ----------------------------------------------------------------- the threads
    def _start(self, key: tuple[str, str], work: Callable[[], tuple[Answer, str | None]]) -> _Run:
        run = self._runs[key] = _Run()

        def target() -> None:
            container_id = None
            try:
                answer, container_id = work()
            except Exception as exc:  # the agent must get an answer whatever went wrong
                log.exception("the task container of %s on node %s failed", key[1], key[0])
                answer = _exited(None, {"category": "servererror", "code": "Unknown", "message": str(exc)})
            run.future.set_result(answer)
            if container_id is not None:
                self.driver.remove(container_id)

        threading.Thread(target=target, name=f"container {key[1]}", daemon=True).start()
        return run

    def _run_container(
        self, spec: TaskContainerSpec, retry: bool = False, started: Callable[[str], None] | None = None
    ) -> tuple[Answer, str | None]:
        if retry:
            taken_up = self._follow_container(spec.node_id, spec.assignment_id, spec.stdout_path.rpartition("/")[0])
            if taken_up[0].get("state") != "missing":
                return taken_up
        try:
            ended: ContainerExit = self.driver.run(spec, started)
        except ContainerImageError as exc:
            details = {"ContainerImage": exc.image, "Message": str(exc)}
            return _exited(None, container_failure(CONTAINER_INVALID_IMAGE, details)), None
        except ContainerSettingsError as exc:
            if exc.program_missing:
                program = spec.command[0] if spec.command else (spec.options.entrypoint or spec.image)
                failure = {
                    "category": "usererror",
                    "code": "CommandProgramNotFound",
                    "message": f"The program '{program}' of the command line was not found in the container",
                    "details": [{"name": "Message", "value": str(exc)}],
                }
                return _exited(127, failure), None
            return _exited(None, container_failure(CONTAINER_INVALID_SETTINGS, {"Message": str(exc)})), None
        self._keep_info(spec.node_id, spec.assignment_id, ended)
        return {**_exited(ended.exit_code), "containerId": ended.container_id}, ended.container_id

    def _keep_info(self, node_id: str, assignment_id: str, ended: ContainerExit) -> None:
        info = {"containerId": ended.container_id, "state": ended.state}
        if ended.error:
            info["error"] = ended.error
        self._ended[(node_id, assignment_id)] = info

    def take_container_info(self, node_id: str, assignment_id: str) -> dict[str, str] | None:
        """The ``containerInfo`` of the run's container as it ended (once; ``None`` when it ran in none)."""
        return self._ended.pop((node_id, assignment_id), None)

    def _follow_container(self, node_id: str, assignment_id: str, directory: str) -> tuple[Answer, str | None]:
        ended = self.driver.follow(node_id, assignment_id, f"{directory}/stdout.txt", f"{directory}/stderr.txt")
        if ended is None:
            return {"state": "missing"}, None
        self._keep_info(node_id, assignment_id, ended)
        return {**_exited(ended.exit_code), "containerId": ended.container_id}, ended.container_id

    async def _answer(self, run: _Run, wait: float) -> Answer:
        try:
            answer = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(run.future)), max(0.0, wait))
        except asyncio.TimeoutError:
            return {"state": "running"}
        run.answered_at = run.answered_at or time.monotonic()
        return answer

    def _known(self, key: tuple[str, str]) -> _Run | None:
        """The run of an assignment, unless it found no container (then the next request looks again)."""
        run = self._runs.get(key)
        if run is not None and run.future.done() and run.future.result().get("state") == "missing":
            del self._runs[key]
            return None
        return run

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key, run in list(self._runs.items()):
            if run.answered_at is not None and now - run.answered_at > ANSWER_KEEP_SECONDS:
                del self._runs[key]
                self._ended.pop(key, None)

    # ----------------------------------------------------------------- what the agent asks
    async def run(
        self, node: NodeRuntime, assignment_id: str, extra: Mapping[str, Any], wait: float, *, retry: bool = False
    ) -> Answer:
        """Start the assignment's container (once) and answer when it exits or after ``wait`` seconds.

        ``retry``: the agent sent this before without an answer (an emulator restart): a container the first
        request started is taken up instead of started again.
        """
        self._forget_old()
        key = (node.node_id, assignment_id)
        run = self._known(key)
        if run is None:
            payload = self._payload(node, assignment_id)
            if payload is None or not isinstance(payload.get("container"), Mapping):
                return {"state": "missing"}
            try:
                spec = self._spec(node, payload, extra)
            except _Refused as exc:
                return _exited(None, exc.failure)
            loop = asyncio.get_running_loop()

            def started(container_id: str) -> None:
                info = {"containerId": container_id, "state": "running"}
                loop.call_soon_threadsafe(self.container_started, spec.node_id, spec.assignment_id, info)

            run = self._start(key, lambda: self._run_container(spec, retry, started))
        return await self._answer(run, min(wait, _MAX_WAIT))

    async def wait(self, node: NodeRuntime, assignment_id: str, wait: float) -> Answer:
        """Answer when the assignment's container exits or after ``wait`` seconds; take it up after a restart."""
        key = (node.node_id, assignment_id)
        run = self._known(key)
        if run is None:
            payload = self._payload(node, assignment_id)
            if payload is None:
                return {"state": "missing"}
            directory = str(payload.get("taskDir") or "")
            run = self._start(key, lambda: self._follow_container(node.node_id, assignment_id, directory))
        return await self._answer(run, min(wait, _MAX_WAIT))

    async def kill(self, node: NodeRuntime, assignment_id: str) -> Answer:
        """Kill the assignment's container (the agent's cancel or wall-clock limit)."""
        killed = await asyncio.to_thread(self.driver.kill, node.node_id, assignment_id)
        return {"killed": killed}
