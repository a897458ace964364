"""The outcome of one evaluation, in the shape of Batch's ``autoScaleRun``.

``results`` lists ``$TargetDedicatedNodes``, ``$TargetLowPriorityNodes`` and ``$NodeDeallocationOption`` first, then
every user variable in ordinal order of its name, as ``name=value`` joined by ``;`` - e.g. the recorded
``$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;$samples=96.6667;
$targetVMs=0.5;$tasks=0;cappedPoolSize=3``.

The node counts a successful run asks for are the targets truncated to whole nodes (the documented formulas round up
by adding ``n - 1`` before dividing by ``n``); a negative, non-finite or non-double target is an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import FormulaError, FormulaFault
from .values import NODE_DEALLOCATION_OPTIONS, Value, format_value, type_name

__all__ = ["AutoScaleRun", "deallocation_option", "node_count", "render_results"]


@dataclass(frozen=True)
class AutoScaleRun:
    """One evaluation of a formula.

    Attributes:
        timestamp: when the formula was evaluated.
        results: the ``$name=value;...`` string (``None`` when the formula never ran, e.g. a syntax error).
        error: why the evaluation failed, or ``None``.
        target_dedicated_nodes: the dedicated node count to apply (``None`` after an error).
        target_low_priority_nodes: the low-priority node count to apply (``None`` after an error).
        node_deallocation_option: how to remove nodes when shrinking (``None`` after an error).
    """

    timestamp: datetime
    results: str | None = None
    error: FormulaError | None = None
    target_dedicated_nodes: int | None = None
    target_low_priority_nodes: int | None = None
    node_deallocation_option: str | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the run produced targets to apply."""
        return self.error is None

    def to_rest(self) -> dict[str, Any]:
        """The ``autoScaleRun`` JSON object (``timestamp`` with seven fractional digits, like every Batch time)."""
        moment = self.timestamp.astimezone(timezone.utc)
        body: dict[str, Any] = {"timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"}
        if self.results is not None:
            body["results"] = self.results
        if self.error is not None:
            body["error"] = self.error.to_run_error()
        return body


def render_results(outputs: Mapping[str, Value], user_variables: Mapping[str, Value]) -> str:
    """The ``results`` string: the service-defined outputs in their fixed order, then user variables by name."""
    pairs = [f"{name}={format_value(value)}" for name, value in outputs.items()]
    pairs += [f"{name}={format_value(user_variables[name])}" for name in sorted(user_variables)]
    return ";".join(pairs)


def node_count(name: str, value: Value) -> int:
    """The whole number of nodes a target value asks for.

    Raises:
        FormulaFault: the value is not a finite, non-negative double.
    """
    if not isinstance(value, float):
        raise FormulaFault(f"{name} must be a double, not a {type_name(value)}")
    if not math.isfinite(value) or value < 0:
        raise FormulaFault(f"{name} must be zero or more, not {format_value(value)}")
    return int(value)


def deallocation_option(value: Value) -> str:
    """The ``$NodeDeallocationOption`` value, checked.

    Raises:
        FormulaFault: the value is not one of ``requeue``, ``terminate``, ``taskcompletion``, ``retaineddata``.
    """
    if not isinstance(value, str) or value.lower() not in NODE_DEALLOCATION_OPTIONS:
        shown = format_value(value)
        raise FormulaFault(
            f"$NodeDeallocationOption must be one of {', '.join(NODE_DEALLOCATION_OPTIONS)}, not {shown}"
        )
    return value.lower()
