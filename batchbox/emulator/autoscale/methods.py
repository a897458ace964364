"""The sample methods of the service-defined metrics: ``GetSample``, ``GetSamplePercent``, ``GetSamplePeriod``,
``Count`` and ``HistoryBeginTime``.

Time windows are given as look-backs from now (a timeinterval: ``TimeInterval_Minute * 10`` is "since ten minutes
ago") or as timestamps. ``GetSample(start)`` covers start..now; ``GetSample(a, b)`` covers the span between the two
instants whichever order they are written in, so ``GetSample(1 * TimeInterval_Minute, 6 * TimeInterval_Minute)`` is
"from six minutes ago to one minute ago".

A window's *sample percentage* compares the samples it holds with the number of sample periods that fit in it (ten
minutes at 30 s periods expect 20). ``GetSample(window, p)`` fails with ``InsufficientSampleData`` when fewer than
``p`` percent are present; ``GetSample(n)`` asks for the ``n`` newest samples and fails unless all ``n`` exist. A
window without a percentage returns what it holds, possibly nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .errors import INSUFFICIENT_SAMPLES, FormulaFault
from .limits import Budget
from .samples import SampleHistory
from .values import Interval, Timestamp, Value, Vec, type_name

__all__ = ["METHODS", "MethodContext", "call_method"]

METHODS: dict[str, tuple[int, int]] = {
    "GetSample": (1, 3),
    "GetSamplePercent": (1, 2),
    "GetSamplePeriod": (0, 0),
    "Count": (0, 0),
    "HistoryBeginTime": (0, 0),
}
"""Method name -> (fewest, most arguments)."""


@dataclass(frozen=True)
class MethodContext:
    """The history a method reads, the evaluation's notion of now, and its budget."""

    history: SampleHistory
    now: datetime
    budget: Budget


def call_method(metric: str, method: str, args: list[Value], ctx: MethodContext) -> Value:
    """Call a sample method on a metric.

    Raises:
        FormulaFault: wrong argument types, or (code ``InsufficientSampleData``) not enough samples.
    """
    history = ctx.history
    if method == "GetSamplePeriod":
        return Interval.of(history.period)
    if method == "Count":
        return float(history.count(metric))
    if method == "HistoryBeginTime":
        begin = history.begin_time(metric)
        if begin is None:
            raise FormulaFault(f"Insufficient data from data set: {metric} has no samples", INSUFFICIENT_SAMPLES)
        return Timestamp(begin)
    if method == "GetSamplePercent":
        if not all(isinstance(arg, (Interval, Timestamp)) for arg in args):
            raise FormulaFault("GetSamplePercent takes timestamps or timeintervals")
        start, end = _window(args, ctx.now)
        return history.percent_available(metric, start, end)
    return _get_sample(metric, args, ctx)


def _get_sample(metric: str, args: list[Value], ctx: MethodContext) -> Value:
    history = ctx.history
    first = args[0]
    if isinstance(first, float):
        if len(args) != 1:
            raise FormulaFault("GetSample(count) takes no other argument")
        return _newest(metric, first, ctx)
    times = [arg for arg in args if isinstance(arg, (Interval, Timestamp))]
    rest = args[len(times) :]
    if not times or len(times) > 2 or len(rest) > 1 or not all(isinstance(arg, float) for arg in rest):
        shown = ", ".join(type_name(arg) for arg in args)
        raise FormulaFault(f"GetSample cannot take ({shown})")
    start, end = _window(times, ctx.now)
    values = history.window(metric, start, end)
    ctx.budget.allocate(len(values))
    if rest:
        wanted = rest[0]
        assert isinstance(wanted, float)
        if not 0.0 <= wanted <= 100.0:
            raise FormulaFault("The sample percentage must be between 0 and 100")
        received = history.percent_available(metric, start, end)
        if received < wanted:
            raise _insufficient(metric, wanted, received)
    return Vec(values)


def _newest(metric: str, count: float, ctx: MethodContext) -> Vec:
    if not count.is_integer() or count < 1:
        raise FormulaFault("GetSample(count) takes a positive whole number")
    wanted = int(count)
    ctx.budget.allocate(min(wanted, ctx.history.count(metric)))
    values = ctx.history.last(metric, wanted)
    if len(values) < wanted:
        raise _insufficient(metric, 100.0, 100.0 * len(values) / wanted)
    return Vec(values)


def _window(bounds: Sequence[Value], now: datetime) -> tuple[datetime, datetime]:
    instants = [_instant(bound, now) for bound in bounds]
    if len(instants) == 1:
        instants.append(now)
    return min(instants), max(instants)


def _instant(bound: Value, now: datetime) -> datetime:
    if isinstance(bound, Timestamp):
        return bound.moment
    if isinstance(bound, Interval):
        try:
            return now - bound.as_timedelta()
        except OverflowError:
            raise FormulaFault("The time interval is out of range") from None
    raise FormulaFault(f"A sample window is given by timestamps or timeintervals, not a {type_name(bound)}")


def _insufficient(metric: str, wanted: float, received: float) -> FormulaFault:
    return FormulaFault(
        f"Insufficient data from data set: {metric} wanted {wanted:g}%, received {received:g}%", INSUFFICIENT_SAMPLES
    )
