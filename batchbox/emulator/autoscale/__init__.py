"""Batch's autoscale formula language: parse, check and evaluate formulas against a pool's metric history.

Pure code (no store, no runtime, no HTTP)::

    from batchbox.emulator.autoscale import EvaluationContext, SampleHistory, evaluate, parse_formula

    history = SampleHistory(period=timedelta(seconds=5))
    history.record(now, {"$PendingTasks": 12, "$ActiveTasks": 10, "$RunningTasks": 2})
    formula = parse_formula("$TargetDedicatedNodes = min(10, $PendingTasks.GetSample(1));")  # FormulaError if bad
    run = evaluate(formula, EvaluationContext(now=now, history=history))
    run.target_dedicated_nodes, run.to_rest()   # 10, {"timestamp": ..., "results": "$TargetDedicatedNodes=10;..."}

Modules: :mod:`.parser` (lark grammar -> :mod:`.nodes`), :mod:`.checker` (names, functions, arity),
:mod:`.evaluator` (the sandboxed interpreter, bounded by :mod:`.limits`), :mod:`.values`, :mod:`.operators`,
:mod:`.functions`, :mod:`.methods` and :mod:`.samples` (the language), :mod:`.result` (``autoScaleRun``) and
:mod:`.errors` (Batch's error shapes).
"""

from __future__ import annotations

from .checker import parse_formula
from .errors import FORMULA_TOO_LONG, INSUFFICIENT_SAMPLES, SYNTAX_ERROR, FormulaError
from .evaluator import EvaluationContext, evaluate
from .limits import DEFAULT_LIMITS, EvaluationLimits
from .nodes import Formula
from .result import AutoScaleRun
from .samples import DEFAULT_RETENTION, DEFAULT_SAMPLE_PERIOD, METRICS, SampleHistory

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_RETENTION",
    "DEFAULT_SAMPLE_PERIOD",
    "FORMULA_TOO_LONG",
    "INSUFFICIENT_SAMPLES",
    "METRICS",
    "SYNTAX_ERROR",
    "AutoScaleRun",
    "EvaluationContext",
    "EvaluationLimits",
    "Formula",
    "FormulaError",
    "SampleHistory",
    "evaluate",
    "evaluate_text",
    "parse_formula",
]


def evaluate_text(text: str, context: EvaluationContext) -> AutoScaleRun:
    """Parse and evaluate in one go: a formula that does not parse gives a run carrying the error (no results)."""
    try:
        formula = parse_formula(text)
    except FormulaError as error:
        return AutoScaleRun(context.now, None, error)
    return evaluate(formula, context)
