"""The live terminal display of a run (rich), and plain log lines when stdout is not a terminal."""

from __future__ import annotations

import threading
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from batchbox.core.models import ComputeNodeInfo, TaskCounts
from batchbox.core.reporting import Reporter
from batchbox.core.results import FailedTask, RunResult

__all__ = ["RichReporter"]

_STEP_TITLES = {
    "stage": "staging inputs",
    "pool": "preparing the pool",
    "job": "creating the job",
    "tasks": "adding tasks",
    "monitor": "running tasks",
    "collect": "downloading outputs",
    "failures": "collecting failures",
    "cleanup": "cleaning up",
}


class RichReporter(Reporter):
    """A live progress display: the current step, node states while the pool grows, and task counts."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self.display = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._step: TaskID | None = None
        self._tasks: TaskID | None = None

    def step_started(self, step: str) -> None:
        with self._lock:
            if not self.display.live.is_started:
                self.display.start()
            self._step = self.display.add_task(_STEP_TITLES.get(step, step), total=None, detail="")

    def step_finished(self, step: str, seconds: float) -> None:
        with self._lock:
            if self._step is not None:
                self.display.update(self._step, total=1, completed=1, detail=f"{seconds:.1f} s")

    def uploaded(self, container: str, blob: str, size: int, done: int, total: int) -> None:
        with self._lock:
            if self._step is not None:
                self.display.update(self._step, total=total, completed=done, detail=container)

    def nodes_changed(self, pool_id: str, nodes: list[ComputeNodeInfo]) -> None:
        states = Counter(n.state.value for n in nodes)
        detail = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "allocating"
        with self._lock:
            if self._step is not None:
                self.display.update(self._step, detail=f"{pool_id}: {detail}")

    def progress(self, counts: TaskCounts, total: int, elapsed: float) -> None:
        detail = (
            f"[yellow]{counts.active} active[/] [blue]{counts.running} running[/] "
            f"[green]{counts.succeeded} succeeded[/] [red]{counts.failed} failed[/]"
        )
        with self._lock:
            if self._tasks is None:
                self._tasks = self.display.add_task("tasks", total=total, detail=detail)
            self.display.update(self._tasks, total=total, completed=counts.completed, detail=detail)

    def task_failed(self, failure: FailedTask) -> None:
        self.display.stop()
        info = failure.failure
        why = f"{info.code}: {info.message}" if info else "non-zero exit code"
        self.console.print(f"[red]task {failure.task_id} failed[/] (exit code {failure.exit_code}) {why}", markup=True)
        if failure.stderr_tail.strip():
            self.console.print(failure.stderr_tail, markup=False, highlight=False, style="dim")

    def message(self, text: str) -> None:
        self.display.console.print(text, markup=False, highlight=False)

    def finished(self, result: RunResult) -> None:
        self.display.stop()
