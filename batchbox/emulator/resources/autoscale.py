"""Autoscale settings of a pool: validate ``enableAutoScale`` / ``autoScaleFormula`` / ``autoScaleEvaluationInterval``
on pool add and on the enable / disable / evaluate requests, and edit the stored pool document accordingly.

A formula is parsed and checked when it is set (``autoscale.parse_formula``): a bad one is refused with Batch's
``AutoScalingFormulaSyntaxError`` (400) and its position. Evaluating it is the runtime's work
(``runtime/autoscale.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from batchbox.emulator.autoscale import FormulaError, parse_formula
from batchbox.emulator.clock import format_duration
from batchbox.emulator.errors import BatchError, invalid_property, missing_property
from batchbox.emulator.resources.common import (
    Body,
    opt_duration,
    reject_unknown_properties,
    req_object,
    req_str,
)
from batchbox.emulator.resources.guards import check_pool_not_deleting, check_pool_steady

__all__ = [
    "DEFAULT_EVALUATION_INTERVAL",
    "apply_disable_autoscale",
    "apply_enable_autoscale",
    "autoscale_add_settings",
    "check_formula",
    "check_not_autoscaling",
    "evaluate_request_formula",
]

DEFAULT_EVALUATION_INTERVAL = "PT15M"
_MAX_INTERVAL = timedelta(hours=168)


def check_formula(text: str, name: str = "autoScaleFormula") -> str:
    """The formula text when Batch would accept it.

    Raises:
        BatchError: ``AutoScalingFormulaSyntaxError`` / ``AutoScalingFormulaTooLong`` (400) with the position, or
            ``InvalidPropertyValue`` for an empty formula.
    """
    if not text.strip():
        raise invalid_property(name, text, "The autoscale formula must not be empty.")
    try:
        parse_formula(text)
    except FormulaError as error:
        raise error.to_batch_error() from None
    return text


def _interval(body: Body, min_seconds: float) -> str | None:
    parsed = opt_duration(body, "autoScaleEvaluationInterval")
    if parsed is None:
        return None
    value, text = parsed
    minimum = timedelta(seconds=min_seconds)
    if value < minimum or value > _MAX_INTERVAL:
        raise invalid_property(
            "autoScaleEvaluationInterval",
            text,
            f"The value must be between {format_duration(minimum)} and {format_duration(_MAX_INTERVAL)}.",
        )
    return text


def autoscale_add_settings(body: Body, min_interval: float) -> Body | None:
    """The autoscale part of a pool add body: ``None`` when ``enableAutoScale`` is not true, else the properties to
    store (targets start at 0; the runtime evaluates the formula at once).

    Raises:
        BatchError: MissingRequiredProperty (``autoScaleFormula``), InvalidPropertyValue (targets given too, an
            interval out of range), the formula's syntax error.
    """
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        if body.get(name) is not None:
            raise invalid_property(
                name, body[name], f"{name} must not be specified when enableAutoScale is true; the formula sets it."
            )
    if body.get("autoScaleFormula") is None:
        raise missing_property("autoScaleFormula")
    formula = check_formula(req_str(body, "autoScaleFormula"))
    return {
        "enableAutoScale": True,
        "autoScaleFormula": formula,
        "autoScaleEvaluationInterval": _interval(body, min_interval) or DEFAULT_EVALUATION_INTERVAL,
    }


def apply_enable_autoscale(doc: Body, body: object, min_interval: float) -> Body:
    """``POST /pools/{id}/enableautoscale``: set or change the formula and the interval.

    A pool that does not autoscale yet must be steady; one that does keeps the interval (or formula) not given.

    Raises:
        BatchError: PoolBeingDeleted / PoolBeingResized (409), validation and formula errors (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "PoolEnableAutoScaleParameter")
    check_pool_not_deleting(doc)
    enabled = bool(doc.get("enableAutoScale"))
    if not enabled:
        check_pool_steady(doc)
    formula = body.get("autoScaleFormula")
    interval = _interval(body, min_interval)
    updated = dict(doc)
    if formula is not None:
        updated["autoScaleFormula"] = check_formula(req_str(body, "autoScaleFormula"))
    elif not enabled:
        raise missing_property("autoScaleFormula")
    updated["autoScaleEvaluationInterval"] = (
        interval or str(doc.get("autoScaleEvaluationInterval") or "") or DEFAULT_EVALUATION_INTERVAL
    )
    updated["enableAutoScale"] = True
    return updated


def apply_disable_autoscale(doc: Body) -> Body:
    """``POST /pools/{id}/disableautoscale``: the pool keeps its current targets; formula, interval and the last
    run are dropped.

    Raises:
        BatchError: PoolBeingDeleted (409).
    """
    check_pool_not_deleting(doc)
    updated = dict(doc)
    updated["enableAutoScale"] = False
    for name in ("autoScaleFormula", "autoScaleEvaluationInterval", "autoScaleRun"):
        updated.pop(name, None)
    return updated


def evaluate_request_formula(doc: Body, body: object) -> str:
    """The formula of ``POST /pools/{id}/evaluateautoscale`` (checked); the pool must autoscale.

    Raises:
        BatchError: MissingRequiredProperty, the formula's syntax error (400); OperationInvalidForCurrentState (409)
            for a pool without autoscale.
    """
    body = req_object(body)
    reject_unknown_properties(body, "PoolEvaluateAutoScaleParameter")
    if body.get("autoScaleFormula") is None:
        raise missing_property("autoScaleFormula")
    formula = check_formula(req_str(body, "autoScaleFormula"))
    if not doc.get("enableAutoScale"):
        raise _not_autoscaling(doc, "A formula can be evaluated only on a pool with autoscale enabled.")
    return formula


def check_not_autoscaling(doc: Body, operation: str) -> None:
    """Resize and remove-nodes are refused while a formula owns the targets.

    Raises:
        BatchError: OperationInvalidForCurrentState (409).
    """
    if doc.get("enableAutoScale"):
        raise _not_autoscaling(doc, f"The pool has autoscale enabled: its formula sets the targets ({operation}).")


def _not_autoscaling(doc: Body, reason: str) -> BatchError:
    values: dict[str, Any] = {"PoolId": str(doc["id"]), "Reason": reason}
    return BatchError(
        409,
        "OperationInvalidForCurrentState",
        "The specified operation is not valid for the current state of the resource.",
        values,
    )
