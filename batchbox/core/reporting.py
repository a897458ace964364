"""Progress reporting hooks of the workflow. The base class is silent; the CLI renders them with rich."""

from __future__ import annotations

import logging

from batchbox.core.models import ComputeNodeInfo, TaskCounts
from batchbox.core.results import FailedTask, RunResult

__all__ = ["LogReporter", "Reporter"]


class Reporter:
    """Receives the workflow's progress. Override what you want to show; every method is a no-op here."""

    def step_started(self, step: str) -> None:
        """A step (stage, pool, job, tasks, monitor, collect, failures, cleanup) begins."""

    def step_finished(self, step: str, seconds: float) -> None:
        """A step ended after ``seconds``."""

    def uploaded(self, container: str, blob: str, size: int, done: int, total: int) -> None:
        """One file was uploaded (called from worker threads)."""

    def nodes_changed(self, pool_id: str, nodes: list[ComputeNodeInfo]) -> None:
        """The pool's nodes, polled while it grows."""

    def progress(self, counts: TaskCounts, total: int, elapsed: float) -> None:
        """Task counts, once per monitoring poll."""

    def task_failed(self, failure: FailedTask) -> None:
        """A task failed (reported after monitoring)."""

    def message(self, text: str) -> None:
        """A line worth telling the user."""

    def finished(self, result: RunResult) -> None:
        """The run ended."""


class LogReporter(Reporter):
    """Plain log lines, for when output is not a terminal."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("batchbox")
        self._last: tuple[int, int, int, int] | None = None

    def step_started(self, step: str) -> None:
        self.log.info("step %s", step)

    def step_finished(self, step: str, seconds: float) -> None:
        self.log.info("step %s done in %.1f s", step, seconds)

    def nodes_changed(self, pool_id: str, nodes: list[ComputeNodeInfo]) -> None:
        states = ", ".join(sorted(f"{n.state.value}" for n in nodes)) or "no nodes yet"
        self.log.info("pool %s: %s", pool_id, states)

    def progress(self, counts: TaskCounts, total: int, elapsed: float) -> None:
        key = (counts.active, counts.running, counts.succeeded, counts.failed)
        if key != self._last:
            self._last = key
            self.log.info(
                "%d/%d done: %d active, %d running, %d succeeded, %d failed (%.0f s)",
                counts.completed,
                total,
                counts.active,
                counts.running,
                counts.succeeded,
                counts.failed,
                elapsed,
            )

    def task_failed(self, failure: FailedTask) -> None:
        code = failure.failure.code if failure.failure else "-"
        self.log.warning("task %s failed: exit code %s, %s", failure.task_id, failure.exit_code, code)

    def message(self, text: str) -> None:
        self.log.info("%s", text)
