"""The operators and the types they accept, exactly as the documented operations table lists them.

==========================================  =========================  ============
Operands                                    Operators                  Result
==========================================  =========================  ============
double, double                              ``+ - * /``                double
double, timeinterval                        ``*``                      timeinterval
doubleVec, double                           ``+ - * /``                doubleVec
doubleVec, doubleVec (same length)          ``+ - * /``                doubleVec
timeinterval, double                        ``* /``                    timeinterval
timeinterval, timeinterval                  ``+ -``                    timeinterval
timeinterval, timestamp (either order)      ``+``                      timestamp
timestamp, timestamp                        ``-``                      timeinterval
double; timeinterval (unary)                ``- !``; ``-``             same type
double/string/timestamp/timeinterval pairs  ``< <= == >= > !=``        double (1 or 0)
double, double                              ``&& ||``                  double (1 or 0)
==========================================  =========================  ============

Any other combination is a formula error. Results that are not finite numbers (a division by zero, an overflow) are
errors too: a target node count cannot be infinite.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .errors import FormulaFault
from .limits import Budget
from .values import Interval, Timestamp, Value, Vec, type_name

__all__ = ["ARITHMETIC", "COMPARISONS", "apply_binary", "apply_unary", "truth"]

ARITHMETIC = frozenset({"+", "-", "*", "/"})
"""The arithmetic operators."""
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
    "!=": operator.ne,
}
"""The comparison operators."""

_DOUBLE_OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def truth(value: Value) -> bool:
    """Whether a condition holds: the value must be a double; nonzero is true.

    Raises:
        FormulaFault: the value is not a double.
    """
    if not isinstance(value, float):
        raise FormulaFault(f"A condition must be a double, not a {type_name(value)}")
    return value != 0.0


def apply_unary(op: str, operand: Value) -> Value:
    """``-x`` (double or timeinterval) or ``!x`` (double).

    Raises:
        FormulaFault: the operator does not apply to the operand's type.
    """
    if isinstance(operand, float):
        return -operand if op == "-" else (1.0 if operand == 0.0 else 0.0)
    if op == "-" and isinstance(operand, Interval):
        return Interval(-operand.ticks)
    raise FormulaFault(f"Operator '{op}' cannot be applied to a {type_name(operand)}")


def apply_binary(op: str, left: Value, right: Value, budget: Budget) -> Value:
    """Apply an arithmetic or comparison operator.

    Raises:
        FormulaFault: the operand types are not in the operations table, or the result is not finite.
    """
    if op in COMPARISONS:
        return _compare(op, left, right)
    result = _arithmetic(op, left, right, budget)
    if result is None:
        raise FormulaFault(f"Operator '{op}' cannot combine a {type_name(left)} and a {type_name(right)}")
    return result


def _compare(op: str, left: Value, right: Value) -> float:
    comparable = (float, str, Timestamp, Interval)
    if type(left) is not type(right) or not isinstance(left, comparable):
        raise FormulaFault(f"Operator '{op}' cannot compare a {type_name(left)} and a {type_name(right)}")
    if isinstance(left, Timestamp) and isinstance(right, Timestamp):
        return 1.0 if COMPARISONS[op](left.moment, right.moment) else 0.0
    if isinstance(left, Interval) and isinstance(right, Interval):
        return 1.0 if COMPARISONS[op](left.ticks, right.ticks) else 0.0
    return 1.0 if COMPARISONS[op](left, right) else 0.0


def _arithmetic(op: str, left: Value, right: Value, budget: Budget) -> Value | None:
    if isinstance(left, float) and isinstance(right, float):
        return _double(op, left, right)
    if isinstance(left, Vec) and isinstance(right, float):
        budget.allocate(len(left))
        return Vec(tuple(_double(op, item, right) for item in left.values))
    if isinstance(left, Vec) and isinstance(right, Vec):
        if len(left) != len(right):
            raise FormulaFault(f"Operator '{op}' needs vectors of equal length, not {len(left)} and {len(right)}")
        budget.allocate(len(left))
        return Vec(tuple(_double(op, a, b) for a, b in zip(left.values, right.values, strict=True)))
    if op == "*" and isinstance(left, float) and isinstance(right, Interval):
        return _scaled(right, left)
    if isinstance(left, Interval) and isinstance(right, float) and op in ("*", "/"):
        if op == "/" and right == 0.0:
            raise FormulaFault("Division by zero")
        return _scaled(left, right if op == "*" else 1.0 / right)
    if isinstance(left, Interval) and isinstance(right, Interval) and op in ("+", "-"):
        return Interval(left.ticks + right.ticks if op == "+" else left.ticks - right.ticks)
    if op == "+" and isinstance(left, Interval) and isinstance(right, Timestamp):
        return _shifted(right, left)
    if op == "+" and isinstance(left, Timestamp) and isinstance(right, Interval):
        return _shifted(left, right)
    if op == "-" and isinstance(left, Timestamp) and isinstance(right, Timestamp):
        return Interval.of(left.moment - right.moment)
    return None


def _double(op: str, left: float, right: float) -> float:
    if op == "/" and right == 0.0:
        raise FormulaFault("Division by zero")
    result = _DOUBLE_OPS[op](left, right)
    if not math.isfinite(result):
        raise FormulaFault("The result is not a finite number")
    return result


def _scaled(interval: Interval, factor: float) -> Interval:
    ticks = interval.ticks * factor
    if not math.isfinite(ticks) or abs(ticks) > timedelta.max.total_seconds() * 10_000_000:
        raise FormulaFault("The time interval is out of range")
    return Interval(round(ticks))


def _shifted(stamp: Timestamp, interval: Interval) -> Timestamp:
    try:
        return Timestamp(stamp.moment + interval.as_timedelta())
    except OverflowError:
        raise FormulaFault("The timestamp is out of range") from None
