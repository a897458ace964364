"""What a workflow run produced: its counts, failed tasks, outputs and timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batchbox.core.models import FailureInfo, TaskCounts

__all__ = ["FailedTask", "RunResult"]


@dataclass(frozen=True)
class FailedTask:
    """One failed task, with what a user needs to see why."""

    task_id: str
    exit_code: int | None
    failure: FailureInfo | None
    stderr_tail: str


@dataclass
class RunResult:
    """What a run did."""

    job_id: str
    pool_id: str
    total_tasks: int = 0
    counts: TaskCounts = field(default_factory=TaskCounts)
    failed: list[FailedTask] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    output_dir: Path | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    count_requests: int = 0
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """True when no task failed."""
        return not self.failed and self.counts.failed == 0
