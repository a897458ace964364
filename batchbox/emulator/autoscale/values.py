"""The formula language's values: double, doubleVec, string, timestamp and timeinterval.

``double`` is a Python ``float`` and ``string`` a ``str``; the other three are small immutable wrappers so that the
operator and function tables can dispatch on type. ``doubleVecList`` is not a value of its own: it is the
comma-separated argument list of functions such as ``avg(1, $v, 3)``, flattened into one vector.

Rendering follows what the service writes into ``autoScaleRun.results``: doubles with six significant digits
(``96.6667``), vectors as ``[1,2,3]``, timestamps as ``2016-10-14T18:36:43.282Z``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = [
    "NODE_DEALLOCATION_OPTIONS",
    "TICKS_PER_SECOND",
    "TIMESTAMP_MEMBERS",
    "TIME_INTERVAL_CONSTANTS",
    "Interval",
    "Timestamp",
    "Value",
    "Vec",
    "format_double",
    "format_value",
    "type_name",
]

TICKS_PER_SECOND = 10_000_000
"""A timeinterval counts 100-nanosecond ticks, the resolution of ``TimeInterval_100ns``."""


@dataclass(frozen=True)
class Vec:
    """A ``doubleVec``: an ordered vector of doubles."""

    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Interval:
    """A ``timeinterval``: a signed duration in 100 ns ticks."""

    ticks: int

    @classmethod
    def of(cls, delta: timedelta) -> Interval:
        """The interval equal to a ``timedelta`` (microsecond resolution)."""
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return cls(micros * 10)

    def as_timedelta(self) -> timedelta:
        """The interval as a ``timedelta`` (truncated to microseconds)."""
        micros = abs(self.ticks) // 10
        return timedelta(microseconds=-micros if self.ticks < 0 else micros)


@dataclass(frozen=True)
class Timestamp:
    """A ``timestamp``: an instant, always in UTC."""

    moment: datetime

    def member(self, name: str) -> float:
        """One of the documented members (``year`` ... ``second``; ``weekday`` is 0 for Sunday, 1 for Monday)."""
        moment = self.moment
        parts = {
            "year": moment.year,
            "month": moment.month,
            "day": moment.day,
            "weekday": moment.isoweekday() % 7,
            "hour": moment.hour,
            "minute": moment.minute,
            "second": moment.second,
        }
        return float(parts[name])


Value = float | Vec | str | Timestamp | Interval
"""Any value a formula expression can produce."""

TIMESTAMP_MEMBERS = frozenset({"year", "month", "day", "weekday", "hour", "minute", "second"})
"""The members a timestamp exposes (``time().hour``)."""

TIME_INTERVAL_CONSTANTS: dict[str, Interval] = {
    "TimeInterval_Zero": Interval(0),
    "TimeInterval_100ns": Interval(1),
    "TimeInterval_Microsecond": Interval(10),
    "TimeInterval_Millisecond": Interval(10_000),
    "TimeInterval_Second": Interval(TICKS_PER_SECOND),
    "TimeInterval_Minute": Interval(60 * TICKS_PER_SECOND),
    "TimeInterval_Hour": Interval(3600 * TICKS_PER_SECOND),
    "TimeInterval_Day": Interval(86_400 * TICKS_PER_SECOND),
    "TimeInterval_Week": Interval(7 * 86_400 * TICKS_PER_SECOND),
    "TimeInterval_Year": Interval(365 * 86_400 * TICKS_PER_SECOND),
}
"""The predefined ``TimeInterval_*`` constants (a year is 365 days)."""

NODE_DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
"""The values ``$NodeDeallocationOption`` accepts; each is also a bare word in formulas (``= taskcompletion``)."""


def type_name(value: Value) -> str:
    """The language's name for the type of a value (for error messages)."""
    if isinstance(value, float):
        return "double"
    if isinstance(value, Vec):
        return "doubleVec"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Timestamp):
        return "timestamp"
    return "timeinterval"


def format_double(number: float) -> str:
    """Six significant digits, as the service renders doubles (``96.6667``, ``0.5``, ``3``)."""
    if number == 0:
        return "0"
    return f"{number:g}"


def format_value(value: Value) -> str:
    """A value as it appears after ``$name=`` in ``autoScaleRun.results``."""
    if isinstance(value, float):
        return format_double(value)
    if isinstance(value, Vec):
        return "[" + ",".join(format_double(item) for item in value.values) + "]"
    if isinstance(value, str):
        return value
    if isinstance(value, Timestamp):
        moment = value.moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return _format_interval(value)


def _format_interval(interval: Interval) -> str:
    # The .NET TimeSpan invariant form the service is written in: [-][d.]hh:mm:ss[.fffffff].
    sign = "-" if interval.ticks < 0 else ""
    seconds, fraction = divmod(abs(interval.ticks), TICKS_PER_SECOND)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{sign}{f'{days}.' if days else ''}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return text + (f".{fraction:07d}" if fraction else "")
