"""The batchbox node agent: the main process of every node container (``python3 -u agent.py``).

It registers with the emulator, runs the pool's start task, keeps one long poll outstanding for work, runs each
assignment in its own thread (see ``_agent_assignments``; one run is ``_agent_runner.run_assignment``) and reports
``started``/``completed`` events as they happen. The protocol is the node-agent API of docs/emulator-design.md.

Environment: ``BATCHBOX_AGENT_URL``, ``BATCHBOX_NODE_ID``, ``BATCHBOX_NODE_SECRET`` and ``BATCHBOX_NODE_ROOT``
(default ``/mnt/batch/tasks``); with an emulator serving TLS, ``BATCHBOX_CA_FILE`` (see ``_agent_tls``). The log
goes to ``<root>/agent.log`` and to stderr, without the node secret or SAS signatures. When the emulator is
unreachable the agent keeps its tasks running, buffers events and retries with backoff (0.1 s doubling to 2 s);
when it answers again the agent registers again and resends the buffered events.

Stdlib only, Python >= 3.9. Helper modules live next to this file (``_agent_*.py``) and are imported as
``batchbox.node._agent_*``: run as a script, the directory two levels up is put on ``sys.path`` first (inside a
node container ``/opt``, where ``/opt/batchbox`` is then a namespace package holding the mounted ``node``).
"""

from __future__ import annotations

import os
import sys

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from batchbox.node._agent_assignments import Assignments
from batchbox.node._agent_cleanup import remove_directories
from batchbox.node._agent_common import setup_logging
from batchbox.node._agent_container import ContainerTasks
from batchbox.node._agent_events import STARTED_LINGER, EventQueue
from batchbox.node._agent_http import AgentClient, Backoff, NodeApi, ServerUnreachable
from batchbox.node._agent_packages import PackageInstaller
from batchbox.node._agent_runner import run_assignment
from batchbox.node._agent_tls import trust_in_node
from batchbox.node._node_users import ensure_accounts

__all__ = [
    "AGENT_VERSION",
    "DEFAULT_NODE_ROOT",
    "NODE_DIRS",
    "Agent",
    "AgentConfig",
    "EventQueue",
    "main",
    "prepare_node_root",
    "run_assignment",
    "setup_logging",
]

AGENT_VERSION = "1"
DEFAULT_NODE_ROOT = "/mnt/batch/tasks"
NODE_DIRS = ("shared", "startup", "workitems", "applications", "fsmounts")
SLOW_RETRY = 10.0
"""Seconds between attempts while the emulator refuses this node (403: removed, or a different emulator)."""

log = logging.getLogger("batchbox.agent")


@dataclass(frozen=True)
class AgentConfig:
    """Settings of one agent, from its environment."""

    agent_url: str
    node_id: str
    secret: str
    node_root: str = DEFAULT_NODE_ROOT

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AgentConfig:
        """Read ``BATCHBOX_AGENT_URL``, ``BATCHBOX_NODE_ID``, ``BATCHBOX_NODE_SECRET``, ``BATCHBOX_NODE_ROOT``.

        Raises:
            ValueError: a required variable is missing (the message names it).
        """
        missing = [
            name for name in ("BATCHBOX_AGENT_URL", "BATCHBOX_NODE_ID", "BATCHBOX_NODE_SECRET") if not environ.get(name)
        ]
        if missing:
            raise ValueError(f"missing environment variable(s): {', '.join(missing)}")
        return cls(
            environ["BATCHBOX_AGENT_URL"],
            environ["BATCHBOX_NODE_ID"],
            environ["BATCHBOX_NODE_SECRET"],
            environ.get("BATCHBOX_NODE_ROOT") or DEFAULT_NODE_ROOT,
        )


def prepare_node_root(root: str) -> None:
    """Create the node's directory layout; ``shared`` is world-writable (0777) for every task user."""
    for name in NODE_DIRS:
        os.makedirs(os.path.join(root, name), exist_ok=True)
    os.chmod(os.path.join(root, "shared"), 0o777)


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class Agent:
    """The agent's threads, its connection state with the emulator and the node's :class:`Assignments`.

    Args:
        config: the agent's settings.
    """

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.events = EventQueue()
        api = NodeApi(config.agent_url, config.node_id, config.secret)
        self.containers = ContainerTasks(api)
        self.packages = PackageInstaller(api, config.node_root)
        self._register_lock = threading.Lock()
        self._needs_register = True
        self._unreachable = False
        self._poll_wait = 20.0
        self._stopping = threading.Event()
        self._reporter_wake = threading.Event()
        self.assignments = Assignments(config.node_root, self.events, self.containers, self.packages, self._stopping)

    # -- talking to the emulator -------------------------------------------------------------------------------

    def _client(self) -> AgentClient:
        return AgentClient(self.config.agent_url, self.config.node_id, self.config.secret)

    def _path(self, action: str) -> str:
        return f"/nodes/{self.config.node_id}/{action}"

    def _ensure_registered(self, client: AgentClient) -> None:
        """Register when needed (first contact, after a connection failure or a refusal)."""
        with self._register_lock:
            if not self._needs_register:
                return
            body = {
                "agentVersion": AGENT_VERSION,
                "running": self.assignments.running_ids(),
                "startTaskState": self.assignments.start_task_state,
            }
            status, answer = client.post(self._path("register"), body)
            self._answered()
            if status != 200 or not isinstance(answer, dict):
                raise _Refused(status)
            self._needs_register = False
            self._poll_wait = float(answer.get("pollWait") or 20.0)
            log.info(
                "registered with the emulator (running: %d, start task: %s)",
                len(body["running"]),
                self.assignments.start_task_state,
            )
            accounts = answer.get("userAccounts")
            if isinstance(accounts, list):
                for problem in ensure_accounts([a for a in accounts if isinstance(a, dict)]):
                    log.warning("pool user account not created: %s", problem)
            start_task = answer.get("startTask")
            if isinstance(start_task, dict):
                self.assignments.start_start_task(start_task)
        self._reporter_wake.set()

    def _lost(self, where: str, exc: Exception) -> None:
        with self._register_lock:
            self._needs_register = True
            first = not self._unreachable
            self._unreachable = True
        if first:
            log.warning("emulator unreachable (%s: %s); tasks keep running, retrying", where, exc)

    def _answered(self) -> None:
        if self._unreachable:
            self._unreachable = False
            log.info("emulator reachable again")

    def _refused(self, where: str, status: int) -> None:
        with self._register_lock:
            self._needs_register = True
        log.warning(
            "emulator refused %s with HTTP %d (node removed or unknown?); retrying in %.0f s", where, status, SLOW_RETRY
        )

    def _handle_work(self, answer: Mapping[str, Any]) -> None:
        for assignment_id in answer.get("cancel") or []:
            self.assignments.cancel(str(assignment_id))
        for assignment in answer.get("assignments") or []:
            if isinstance(assignment, dict):
                self.assignments.start(assignment)
        removals = answer.get("remove")
        if isinstance(removals, list) and removals:
            remove_directories(self.config.node_root, removals)
        if answer.get("shutdown"):
            log.info("the emulator asked this node to shut down")
            self.stop(cancel_tasks=True)

    # -- threads -----------------------------------------------------------------------------------------------

    def poll_loop(self) -> None:
        """Keep one long poll outstanding; start what it brings."""
        client = self._client()
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                self._ensure_registered(client)
                wait = self._poll_wait
                status, answer = client.post(
                    f"{self._path('poll')}?wait={wait:g}",
                    {"running": self.assignments.running_ids()},
                    timeout=wait + 30.0,
                )
            except ServerUnreachable as exc:
                self._lost("poll", exc)
                self._stopping.wait(backoff.next_delay())
                continue
            except _Refused as exc:
                self._refused("register", exc.status)
                self._stopping.wait(SLOW_RETRY)
                continue
            self._answered()
            if status == 200 and isinstance(answer, dict):
                backoff.reset()
                self._handle_work(answer)
            elif status in (401, 403):
                self._refused("poll", status)
                self._stopping.wait(SLOW_RETRY)
            else:
                log.warning("poll answered HTTP %d; retrying", status)
                self._stopping.wait(backoff.next_delay())
        client.close()

    def _reporter_sleep(self, seconds: float) -> None:
        self._reporter_wake.clear()
        self._reporter_wake.wait(seconds)

    def report_loop(self) -> None:
        """Send events as they happen (batched), until stopped and nothing is left to send."""
        client = self._client()
        backoff = Backoff()
        # Order matters: a task's completed event is queued before it stops counting as running.
        while not (self._stopping.is_set() and not self.assignments.task_running() and len(self.events) == 0):
            batch = self.events.peek(0.5, linger=0.0 if self._stopping.is_set() else STARTED_LINGER)
            if not batch:
                continue
            try:
                self._ensure_registered(client)
                status, answer = client.post(self._path("events"), {"events": batch})
            except ServerUnreachable as exc:
                self._lost("events", exc)
                self._reporter_sleep(backoff.next_delay())
                continue
            except _Refused as exc:
                self._refused("register", exc.status)
                self._reporter_sleep(SLOW_RETRY)
                continue
            self._answered()
            if status == 200 and isinstance(answer, dict):
                backoff.reset()
                self.assignments.acknowledged(self.events.settle(batch, {str(i) for i in answer.get("ack") or []}))
                self._handle_work(answer)
            elif status in (401, 403):
                self._refused("events", status)
                self._reporter_sleep(SLOW_RETRY)
            else:
                log.warning("events answered HTTP %d; retrying", status)
                self._reporter_sleep(backoff.next_delay())
        client.close()

    def stop(self, cancel_tasks: bool = False) -> None:
        """Stop polling (and kill every running assignment when ``cancel_tasks``); the reporter drains."""
        self._stopping.set()
        self._reporter_wake.set()
        if cancel_tasks:
            self.assignments.cancel_all()

    def run(self, drain_timeout: float = 5.0) -> int:
        """Run the poll and report threads until :meth:`stop`; give the reporter ``drain_timeout`` s to finish."""
        log.info("agent %s for node %s starting (root %s)", AGENT_VERSION, self.config.node_id, self.config.node_root)
        reporter = threading.Thread(target=self.report_loop, name="reporter", daemon=True)
        poller = threading.Thread(target=self.poll_loop, name="poller", daemon=True)
        reporter.start()
        poller.start()
        self._stopping.wait()
        reporter.join(drain_timeout)
        log.info("agent stopped")
        return 0


def main() -> int:
    """Entry point inside a node container."""
    try:
        config = AgentConfig.from_env(os.environ)
    except ValueError as exc:
        print(f"batchbox agent: {exc}", file=sys.stderr)
        return 2
    prepare_node_root(config.node_root)
    setup_logging(config.node_root, config.secret)
    try:
        bundle = trust_in_node()
    except OSError as exc:
        log.warning("could not add the local CA to the node's CA bundle (tasks may not trust it): %s", exc)
    else:
        if bundle:
            log.info("the local CA is trusted by this node (%s)", bundle)
    agent = Agent(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
