"""Evaluate a checked formula against a pool's sample history: the sandboxed interpreter.

The interpreter walks the syntax tree; it never hands formula text to Python. Every node costs a step and every vector
element touched costs more (:mod:`.limits`), so an evaluation ends within a bounded amount of work and memory.

What the service-defined variables read:

* ``$TargetDedicatedNodes`` / ``$TargetLowPriorityNodes`` (and their aliases) start at the pool's current targets;
  ``$NodeDeallocationOption`` starts as ``requeue``. If a formula sets both a target and its alias, the full name wins.
* A metric used as a plain value (``$CurrentDedicatedNodes * 1.1``) is its current value when the caller supplies one,
  else its newest sample; a metric with neither fails with ``InsufficientSampleData``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from .checker import DEALLOCATION, DEDICATED, DEDICATED_ALIAS, LOW_PRIORITY, LOW_PRIORITY_ALIAS, OUTPUTS
from .errors import INSUFFICIENT_SAMPLES, FormulaError, FormulaFault
from .functions import CallContext, FormulaStopped, call_function
from .limits import DEFAULT_LIMITS, Budget, EvaluationLimits
from .methods import MethodContext, call_method
from .nodes import Call, Chain, Conditional, Expr, Formula, Logical, Member, MethodCall, Name, Number, String, Unary
from .operators import apply_binary, apply_unary, truth
from .result import AutoScaleRun, deallocation_option, node_count, render_results
from .samples import METRICS, SampleHistory
from .values import NODE_DEALLOCATION_OPTIONS, TIME_INTERVAL_CONSTANTS, Timestamp, Value

__all__ = ["EvaluationContext", "evaluate"]

_SERVICE_NAMES = frozenset({*OUTPUTS, DEDICATED_ALIAS, LOW_PRIORITY_ALIAS})
_ALIASES = {DEDICATED: DEDICATED_ALIAS, LOW_PRIORITY: LOW_PRIORITY_ALIAS}


@dataclass(frozen=True)
class EvaluationContext:
    """Everything an evaluation reads besides the formula.

    Attributes:
        now: the evaluation time (``time()``, look-back windows).
        history: the pool's metric samples.
        target_dedicated_nodes: the pool's current dedicated target (the initial ``$TargetDedicatedNodes``).
        target_low_priority_nodes: the pool's current low-priority target.
        current: metric -> current value, for metrics the caller knows exactly (``$TaskSlotsPerNode``).
        random: the source of ``rand()`` (a seeded one makes runs reproducible).
        limits: the sandbox limits.
    """

    now: datetime
    history: SampleHistory
    target_dedicated_nodes: float = 0.0
    target_low_priority_nodes: float = 0.0
    current: Mapping[str, float] = field(default_factory=dict)
    random: Callable[[], float] = random.random
    limits: EvaluationLimits = DEFAULT_LIMITS


def evaluate(formula: Formula, context: EvaluationContext) -> AutoScaleRun:
    """Run a formula once.

    Args:
        formula: a formula from :func:`~.checker.parse_formula`.
        context: the pool state and history to evaluate against.

    Returns:
        The run: targets to apply and the ``results`` string, or the error and the results assigned before it.
    """
    return _Interpreter(formula, context).run()


class _Interpreter:
    def __init__(self, formula: Formula, context: EvaluationContext) -> None:
        self.formula = formula
        self.context = context
        self.budget = Budget(context.limits)
        self.calls = CallContext(context.now, context.random, self.budget)
        self.methods = MethodContext(context.history, context.now, self.budget)
        self.variables: dict[str, Value] = {
            DEDICATED: float(context.target_dedicated_nodes),
            LOW_PRIORITY: float(context.target_low_priority_nodes),
            DEALLOCATION: "requeue",
            DEDICATED_ALIAS: float(context.target_dedicated_nodes),
            LOW_PRIORITY_ALIAS: float(context.target_low_priority_nodes),
        }
        self.assigned_at: dict[str, tuple[int, int]] = {}

    def run(self) -> AutoScaleRun:
        try:
            for statement in self.formula.statements:
                value = self._value(statement.value)
                self.variables[statement.target.name] = value
                self.assigned_at[statement.target.name] = (statement.line, statement.column)
        except FormulaStopped:
            pass
        except FormulaError as error:
            return AutoScaleRun(self.context.now, self._results(), error)
        outputs = self._outputs()
        try:
            with self._positioned(DEDICATED):
                dedicated = node_count(DEDICATED, outputs[DEDICATED])
            with self._positioned(LOW_PRIORITY):
                low_priority = node_count(LOW_PRIORITY, outputs[LOW_PRIORITY])
            with self._positioned(DEALLOCATION):
                option = deallocation_option(outputs[DEALLOCATION])
        except FormulaError as error:
            return AutoScaleRun(self.context.now, self._results(), error)
        return AutoScaleRun(self.context.now, self._results(), None, dedicated, low_priority, option)

    def _outputs(self) -> dict[str, Value]:
        outputs: dict[str, Value] = {}
        for name in OUTPUTS:
            alias = _ALIASES.get(name)
            chosen = name if name in self.assigned_at or alias is None or alias not in self.assigned_at else alias
            outputs[name] = self.variables[chosen]
        return outputs

    def _results(self) -> str:
        users = {name: value for name, value in self.variables.items() if name not in _SERVICE_NAMES}
        return render_results(self._outputs(), users)

    @contextmanager
    def _positioned(self, name: str) -> Iterator[None]:
        # An invalid output is reported at the statement that assigned it (or at the start when none did).
        try:
            yield
        except FormulaFault as fault:
            alias = _ALIASES.get(name, "")
            line, column = self.assigned_at.get(name) or self.assigned_at.get(alias, (1, 1))
            raise fault.at(line, column) from None

    def _value(self, expr: Expr) -> Value:
        try:
            self.budget.step()
            return self._compute(expr)
        except FormulaFault as fault:
            raise fault.at(expr.line, expr.column) from None

    def _compute(self, expr: Expr) -> Value:
        if isinstance(expr, Number):
            return expr.value
        if isinstance(expr, String):
            return expr.value
        if isinstance(expr, Name):
            return self._name(expr.name)
        if isinstance(expr, Call):
            return call_function(expr.function, [self._value(arg) for arg in expr.args], self.calls)
        if isinstance(expr, MethodCall):
            args = [self._value(arg) for arg in expr.args]
            return call_method(expr.target.name, expr.method, args, self.methods)
        if isinstance(expr, Member):
            target = self._value(expr.target)
            if not isinstance(target, Timestamp):
                raise FormulaFault(f"Only a timestamp has the member '{expr.member}'")
            return target.member(expr.member)
        if isinstance(expr, Unary):
            return apply_unary(expr.operator, self._value(expr.operand))
        if isinstance(expr, Chain):
            return self._chain(expr)
        if isinstance(expr, Logical):
            return self._logical(expr)
        if isinstance(expr, Conditional):
            return self._value(expr.when_true if truth(self._value(expr.condition)) else expr.when_false)
        raise FormulaFault(f"Unsupported expression {type(expr).__name__}")

    def _chain(self, expr: Chain) -> Value:
        result = self._value(expr.operands[0])
        for op, operand, (line, column) in zip(expr.operators, expr.operands[1:], expr.operator_positions, strict=True):
            right = self._value(operand)
            try:
                result = apply_binary(op, result, right, self.budget)
            except FormulaFault as fault:
                raise fault.at(line, column) from None
        return result

    def _logical(self, expr: Logical) -> Value:
        for operand in expr.operands:
            holds = truth(self._value(operand))
            if holds == (expr.operator == "||"):
                return 1.0 if holds else 0.0
        return 1.0 if expr.operator == "&&" else 0.0

    def _name(self, name: str) -> Value:
        if name in self.variables:
            return self.variables[name]
        if name in TIME_INTERVAL_CONSTANTS:
            return TIME_INTERVAL_CONSTANTS[name]
        if name in NODE_DEALLOCATION_OPTIONS:
            return name
        if name in METRICS:
            if name in self.context.current:
                return float(self.context.current[name])
            latest = self.context.history.latest(name)
            if latest is None:
                raise FormulaFault(
                    f"Insufficient data from data set: {name} wanted 100%, received 0%", INSUFFICIENT_SAMPLES
                )
            return latest
        raise FormulaFault(f"Unknown variable {name}")
