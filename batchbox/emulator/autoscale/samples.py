"""Timestamped samples of the service-defined metrics that formulas read (``$PendingTasks.GetSample(...)``).

The runtime records one sample per metric it can measure every :attr:`SampleHistory.period`; a metric it never
records simply has no samples, and formulas that ask for it get Batch's ``InsufficientSampleData`` error. History is
bounded: samples older than :attr:`SampleHistory.retention` before the newest one are dropped.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

__all__ = [
    "DEFAULT_RETENTION",
    "DEFAULT_SAMPLE_PERIOD",
    "METRICS",
    "SampleHistory",
]

METRICS = (
    "$CPUPercent",
    "$WallClockSeconds",
    "$MemoryBytes",
    "$DiskBytes",
    "$DiskReadBytes",
    "$DiskWriteBytes",
    "$DiskReadOps",
    "$DiskWriteOps",
    "$NetworkInBytes",
    "$NetworkOutBytes",
    "$SampleNodeCount",
    "$ActiveTasks",
    "$RunningTasks",
    "$PendingTasks",
    "$SucceededTasks",
    "$FailedTasks",
    "$TaskSlotsPerNode",
    "$CurrentDedicatedNodes",
    "$CurrentLowPriorityNodes",
    "$PreemptedNodeCount",
)
"""The read-only service-defined variables: each is a metric with a sample history and the sample methods."""

DEFAULT_SAMPLE_PERIOD = timedelta(seconds=30)
"""Batch records a sample every 30 seconds; the emulator may record more often."""
DEFAULT_RETENTION = timedelta(hours=6)
"""How much history is kept per metric unless configured otherwise."""


class SampleHistory:
    """The bounded sample history of every metric of one pool.

    Args:
        period: the interval at which the runtime records samples; sample percentages compare what a window holds
            with the number of periods that fit in it.
        retention: how far back (from the newest sample of a metric) samples are kept.
    """

    def __init__(self, *, period: timedelta = DEFAULT_SAMPLE_PERIOD, retention: timedelta = DEFAULT_RETENTION) -> None:
        if period <= timedelta(0):
            raise ValueError("the sample period must be positive")
        if retention < period:
            raise ValueError("the retention must be at least one sample period")
        self._period = period
        self._retention = retention
        self._times: dict[str, list[float]] = {name: [] for name in METRICS}
        self._values: dict[str, list[float]] = {name: [] for name in METRICS}

    @property
    def period(self) -> timedelta:
        """The interval between two recorded samples."""
        return self._period

    @property
    def retention(self) -> timedelta:
        """How much history is kept per metric."""
        return self._retention

    def record(self, at: datetime, values: Mapping[str, float]) -> None:
        """Record one sample of each given metric, taken at ``at``.

        Args:
            at: when the samples were taken (timezone-aware).
            values: metric name (``$PendingTasks``) -> value. Metrics left out get no sample for this period.

        Raises:
            ValueError: an unknown metric, a non-finite value, a naive time, or a time not after the metric's
                newest sample.
        """
        if at.tzinfo is None:
            raise ValueError("sample times must be timezone-aware")
        stamp = at.timestamp()
        for name, value in values.items():
            if name not in self._times:
                raise ValueError(f"unknown metric {name!r}")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{name}: a sample must be a finite number, not {value!r}")
            times = self._times[name]
            if times and stamp <= times[-1]:
                raise ValueError(f"{name}: samples must be recorded in time order")
            times.append(stamp)
            self._values[name].append(number)
            self._trim(name, stamp - self._retention.total_seconds())

    def _trim(self, name: str, oldest_kept: float) -> None:
        times = self._times[name]
        drop = bisect_left(times, oldest_kept)
        if drop:
            del times[:drop]
            del self._values[name][:drop]

    def count(self, name: str) -> int:
        """How many samples of a metric are held."""
        return len(self._times[name])

    def latest(self, name: str) -> float | None:
        """The newest sample of a metric, or ``None`` when it has none."""
        values = self._values[name]
        return values[-1] if values else None

    def last(self, name: str, count: int) -> tuple[float, ...]:
        """The newest ``count`` samples of a metric, oldest first (fewer when fewer are held)."""
        values = self._values[name]
        return tuple(values[-count:]) if count > 0 else ()

    def begin_time(self, name: str) -> datetime | None:
        """When the oldest held sample of a metric was taken, or ``None`` when it has none."""
        times = self._times[name]
        return datetime.fromtimestamp(times[0], timezone.utc) if times else None

    def window(self, name: str, start: datetime, end: datetime) -> tuple[float, ...]:
        """The samples taken after ``start`` and at or before ``end``, oldest first."""
        times = self._times[name]
        first = bisect_right(times, start.timestamp())
        stop = bisect_right(times, end.timestamp())
        return tuple(self._values[name][first:stop])

    def expected_samples(self, start: datetime, end: datetime) -> int:
        """How many samples a complete history holds between ``start`` and ``end`` (at least one)."""
        span = (end - start).total_seconds()
        return max(1, int(span // self._period.total_seconds()))

    def percent_available(self, name: str, start: datetime, end: datetime) -> float:
        """The share (0-100) of the expected samples between ``start`` and ``end`` that the history holds."""
        held = len(self.window(name, start, end))
        return min(100.0, 100.0 * held / self.expected_samples(start, end))
