"""The built-in functions: ``avg len lg ln log max min norm percentile rand range std stop sum time val``.

Functions documented as taking a ``doubleVecList`` accept any comma-separated mix of doubles and doubleVecs and
flatten it first: ``avg($v, 7)`` with ``$v = [1,2,3]`` is ``avg(1,2,3,7)``. ``lg``, ``ln`` and ``log`` return a
double for a single double argument and a doubleVec otherwise (component-wise).

Where the documentation is silent the emulator chooses, and says so here:

* ``percentile(v, p)`` takes ``p`` in 0..100 and returns an element of ``v`` (nearest rank).
* ``std`` is the sample standard deviation (n - 1); it needs at least two values.
* aggregates of an empty list (``avg``, ``max``, ...) are errors; ``len`` and ``sum`` of nothing are 0.
* ``time(s)`` parses W3C-DTF (ISO 8601) and RFC 1123; a time without a zone is UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from .errors import FormulaFault
from .limits import Budget
from .values import Timestamp, Value, Vec, type_name

__all__ = ["FUNCTIONS", "CallContext", "FormulaStopped", "call_function"]


class FormulaStopped(Exception):
    """Raised by ``stop()``: evaluation ends, keeping what the earlier statements assigned."""


@dataclass(frozen=True)
class CallContext:
    """What functions may use besides their arguments."""

    now: datetime
    random: Callable[[], float]
    budget: Budget


_Impl = Callable[[list[Value], CallContext], Value]


def _flatten(name: str, args: list[Value], budget: Budget) -> list[float]:
    flat: list[float] = []
    for arg in args:
        if isinstance(arg, float):
            budget.step()
            flat.append(arg)
        elif isinstance(arg, Vec):
            budget.step(len(arg))  # charged before copying, so a long argument list cannot build a huge list
            flat.extend(arg.values)
        else:
            raise FormulaFault(f"Function {name} takes doubles and doubleVecs, not a {type_name(arg)}")
    return flat


def _nonempty(name: str, args: list[Value], budget: Budget) -> list[float]:
    flat = _flatten(name, args, budget)
    if not flat:
        raise FormulaFault(f"Function {name} needs at least one value")
    return flat


def _finite(number: float) -> float:
    if not math.isfinite(number):
        raise FormulaFault("The result is not a finite number")
    return number


def _logarithm(name: str, log: Callable[[float], float]) -> _Impl:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        flat = _nonempty(name, args, ctx.budget)
        if any(item <= 0.0 for item in flat):
            raise FormulaFault(f"Function {name} is defined only for positive values")
        if len(args) == 1 and isinstance(args[0], float):
            return log(flat[0])
        ctx.budget.allocate(len(flat))
        return Vec(tuple(log(item) for item in flat))

    return apply


def _avg(args: list[Value], ctx: CallContext) -> Value:
    flat = _nonempty("avg", args, ctx.budget)
    return _finite(math.fsum(flat) / len(flat))


def _std(args: list[Value], ctx: CallContext) -> Value:
    flat = _nonempty("std", args, ctx.budget)
    if len(flat) < 2:
        raise FormulaFault("Function std needs at least two values")
    mean = math.fsum(flat) / len(flat)
    return _finite(math.sqrt(math.fsum((item - mean) ** 2 for item in flat) / (len(flat) - 1)))


def _norm(args: list[Value], ctx: CallContext) -> Value:
    return _finite(math.sqrt(math.fsum(item * item for item in _nonempty("norm", args, ctx.budget))))


def _range(args: list[Value], ctx: CallContext) -> Value:
    flat = _nonempty("range", args, ctx.budget)
    return _finite(max(flat) - min(flat))


def _percentile(args: list[Value], ctx: CallContext) -> Value:
    vector, rank = args
    if not isinstance(rank, float):
        raise FormulaFault(f"Function percentile takes a double percentile, not a {type_name(rank)}")
    if not 0.0 <= rank <= 100.0:
        raise FormulaFault("Function percentile takes a percentile between 0 and 100")
    ordered = sorted(_nonempty("percentile", [vector], ctx.budget))
    index = max(0, math.ceil(rank / 100.0 * len(ordered)) - 1)
    return ordered[index]


def _val(args: list[Value], ctx: CallContext) -> Value:
    vector, index = args
    if not isinstance(vector, Vec):
        raise FormulaFault(f"Function val takes a doubleVec, not a {type_name(vector)}")
    if not isinstance(index, float) or not index.is_integer():
        raise FormulaFault("Function val takes a whole-number index")
    if not 0 <= index < len(vector):
        raise FormulaFault(f"Index {index:g} is outside the vector of {len(vector)} values")
    return vector.values[int(index)]


def _time(args: list[Value], ctx: CallContext) -> Value:
    if not args:
        return Timestamp(ctx.now.astimezone(timezone.utc))
    (text,) = args
    if not isinstance(text, str):
        raise FormulaFault(f"Function time takes a string, not a {type_name(text)}")
    return Timestamp(_parse_time(text))


_W3C_DTF = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"([Zz]|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _parse_time(text: str) -> datetime:
    candidate = text.strip()
    match = _W3C_DTF.match(candidate)
    try:
        if match is None:
            parsed = parsedate_to_datetime(candidate)
        else:
            year, month, day, hour, minute, second, fraction, zone = match.groups()
            parsed = datetime(
                int(year),
                int(month or 1),
                int(day or 1),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((fraction or "0")[:6].ljust(6, "0")),
                _zone(zone),
            )
    except (TypeError, ValueError, IndexError):
        raise FormulaFault(f"'{text}' is not a W3C-DTF or RFC 1123 date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _zone(designator: str | None) -> timezone:
    if designator is None or designator in ("Z", "z"):
        return timezone.utc
    sign = -1 if designator[0] == "-" else 1
    hours, minutes = int(designator[1:3]), int(designator[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _stop(args: list[Value], ctx: CallContext) -> Value:
    raise FormulaStopped


FUNCTIONS: dict[str, tuple[int, int | None, _Impl]] = {
    "avg": (0, None, _avg),
    "len": (0, None, lambda args, ctx: float(len(_flatten("len", args, ctx.budget)))),
    "lg": (1, None, _logarithm("lg", math.log2)),
    "ln": (1, None, _logarithm("ln", math.log)),
    "log": (1, None, _logarithm("log", math.log10)),
    "max": (0, None, lambda args, ctx: max(_nonempty("max", args, ctx.budget))),
    "min": (0, None, lambda args, ctx: min(_nonempty("min", args, ctx.budget))),
    "norm": (0, None, _norm),
    "percentile": (2, 2, _percentile),
    "rand": (0, 0, lambda args, ctx: float(ctx.random())),
    "range": (0, None, _range),
    "std": (0, None, _std),
    "stop": (0, 0, _stop),
    "sum": (0, None, lambda args, ctx: _finite(math.fsum(_flatten("sum", args, ctx.budget)))),
    "time": (0, 1, _time),
    "val": (2, 2, _val),
}
"""Function name -> (fewest arguments, most arguments or ``None`` for any number, implementation)."""


def call_function(name: str, args: list[Value], ctx: CallContext) -> Value:
    """Call a built-in function on evaluated arguments.

    Raises:
        FormulaFault: the arguments do not fit the function.
        FormulaStopped: the function is ``stop()``.
    """
    return FUNCTIONS[name][2](args, ctx)
