"""Formula errors (Batch's codes and shapes, with positions), the sandbox limits, and the sample history itself."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from batchbox.emulator.autoscale import (
    FORMULA_TOO_LONG,
    SYNTAX_ERROR,
    EvaluationContext,
    EvaluationLimits,
    FormulaError,
    SampleHistory,
    evaluate,
    evaluate_text,
    parse_formula,
)

NOW = datetime(2024, 4, 17, 10, 30, tzinfo=timezone.utc)


def refused(text: str) -> FormulaError:
    with pytest.raises(FormulaError) as caught:
        parse_formula(text)
    return caught.value


# ------------------------------------------------------------------------------------------ syntax and name errors


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("$TargetDedicatedNodes = 1 +* 2;", "Line 1, Col 28: Unexpected '*'"),
        ("a = 1;\nb = 2;\nc = (3 + ;", "Line 3, Col 10: Unexpected ';'"),
        ("a = 1 +", "Line 1, Col 8: Unexpected end of formula"),
        ("a = 1 # 2", "Line 1, Col 7: Unexpected character '#'"),
        ("a = 1\nb = 2", "Line 2, Col 1: Unexpected 'b'"),
        ("a = 'x';", "Line 1, Col 5: Unexpected character '''"),
        ("a = [1, 2];", "Line 1, Col 5: Unexpected character '['"),
        ("", "Line 1, Col 1: The formula contains no statement"),
        ("// only a comment\n;;", "Line 2, Col 3: The formula contains no statement"),
    ],
)
def test_syntax_errors_carry_the_position(text: str, detail: str) -> None:
    error = refused(text)
    assert error.code == SYNTAX_ERROR
    assert error.positioned_detail == detail


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("a = 1;\nb = ceil(a);", "Line 2, Col 5: Unknown function ceil"),
        ('a = __import__("os");', "Line 1, Col 5: Unknown function __import__"),
        ("a = b + 1;", "Line 1, Col 5: Variable b is used before it is assigned"),
        ("a = a + 1;", "Line 1, Col 5: Variable a is used before it is assigned"),
        ("a = $Nope * 2;", "Line 1, Col 5: Unknown variable $Nope"),
        ("$PendingTasks = 3;", "Line 1, Col 1: $PendingTasks is read-only"),
        ("TimeInterval_Minute = 3;", "Line 1, Col 1: TimeInterval_Minute is read-only"),
        ("requeue = 3;", "Line 1, Col 1: requeue is read-only"),
        ("a = 1; b = a.GetSample(1);", "Line 1, Col 12: a is not a service-defined metric with sample methods"),
        ("b = $CPUPercent.GetSamples(1);", "Line 1, Col 5: Unknown method GetSamples"),
        ("b = $CPUPercent.Count(1);", "Line 1, Col 5: Method Count takes 0 arguments, not 1"),
        ("b = $CPUPercent.GetSample();", "Line 1, Col 5: Method GetSample takes 1 to 3 arguments, not 0"),
        ("b = val(1);", "Line 1, Col 5: Function val takes 2 arguments, not 1"),
        ("b = lg();", "Line 1, Col 5: Function lg takes 1 or more arguments, not 0"),
        ("b = time().hours;", "Line 1, Col 5: Unknown timestamp member 'hours'"),
        ("b = time().GetSample(1);", "Line 1, Col 5: Sample methods apply only to service-defined variables"),
    ],
)
def test_names_functions_and_methods_are_checked_before_evaluation(text: str, detail: str) -> None:
    error = refused(text)
    assert error.code == SYNTAX_ERROR
    assert error.positioned_detail == detail


def test_user_variables_are_case_sensitive_and_may_carry_a_dollar() -> None:
    assert (
        refused("Span = 1; b = span;").positioned_detail
        == "Line 1, Col 15: Variable span is used before it is assigned"
    )
    run = evaluate_text("$span = 2; span = 3; x = $span * span;", EvaluationContext(now=NOW, history=SampleHistory()))
    assert run.results is not None and run.results.endswith(";$span=2;span=3;x=6")


def test_a_formula_longer_than_8192_characters_is_too_long() -> None:
    text = "a = 1;" + " " * 8186
    parse_formula(text)  # exactly 8192: accepted
    error = refused(text + " ")
    assert error.code == FORMULA_TOO_LONG
    assert error.message == "The specified auto-scaling formula exceeds lengths limit."


def test_at_most_100_statements() -> None:
    parse_formula("".join(f"a{n} = {n};" for n in range(100)))
    error = refused("".join(f"a{n} = {n};" for n in range(101)))
    assert error.positioned_detail.startswith("Line 1, Col 881: A formula may contain at most 100 statements")


def test_errors_render_in_batchs_two_shapes() -> None:
    error = refused("a = 1;\nb = (2;")
    assert error.to_run_error() == {
        "code": "AutoScalingFormulaSyntaxError",
        "message": "The specified auto-scaling formula has a syntax error.",
        "values": [{"name": "Message", "value": "Line 2, Col 7: Unexpected ';'"}],
    }
    batch_error = error.to_batch_error()
    assert (batch_error.status, batch_error.code) == (400, "AutoScalingFormulaSyntaxError")
    assert batch_error.values == {"Message": "Line 2, Col 7: Unexpected ';'"}


def test_a_run_that_fails_reports_the_error_and_the_results_assigned_so_far() -> None:
    run = evaluate_text(
        "a = 2;\n$TargetDedicatedNodes = a / (a - 2);", EvaluationContext(now=NOW, history=SampleHistory())
    )
    assert run.to_rest() == {
        "timestamp": "2024-04-17T10:30:00.0000000Z",
        "results": "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;a=2",
        "error": {
            "code": "AutoScalingFormulaSyntaxError",
            "message": "The specified auto-scaling formula has a syntax error.",
            "values": [{"name": "Message", "value": "Line 2, Col 27: Division by zero"}],
        },
    }
    assert not run.succeeded and run.target_dedicated_nodes is None


def test_a_formula_that_does_not_parse_gives_a_run_without_results() -> None:
    run = evaluate_text("a = ", EvaluationContext(now=NOW, history=SampleHistory()))
    assert run.results is None and run.error is not None
    assert set(run.to_rest()) == {"timestamp", "error"}


# --------------------------------------------------------------------------------------------------------- sandbox


def test_deep_nesting_is_refused_before_evaluation() -> None:
    assert "nest at most 64 levels" in refused("a = " + "max(" * 40 + "1" + ")" * 40 + ";").detail
    assert "nest at most 64 levels" in refused("a = " + "-" * 70 + "1;").detail
    assert "nest at most 64 levels" in refused("a = " + "1 ? 2 : " * 70 + "3;").detail
    run = evaluate_text(
        "a = " + "max(" * 20 + "1" + ")" * 20 + ";", EvaluationContext(now=NOW, history=SampleHistory())
    )
    assert run.results is not None and run.results.endswith(";a=1")


def test_parentheses_do_not_nest_the_tree() -> None:
    run = evaluate_text("a = " + "(" * 500 + "1" + ")" * 500 + ";", EvaluationContext(now=NOW, history=SampleHistory()))
    assert run.results is not None and run.results.endswith(";a=1")


def test_long_flat_operator_chains_evaluate_without_recursion() -> None:
    chain = "a = " + " + ".join(["1"] * 2000) + ";"
    run = evaluate(parse_formula(chain), EvaluationContext(now=NOW, history=SampleHistory()))
    assert run.results is not None and run.results.endswith(";a=2000")


def test_the_step_budget_bounds_the_work_of_an_evaluation() -> None:
    formula = parse_formula("a = " + " + ".join(["1"] * 200) + ";")
    small = EvaluationContext(now=NOW, history=SampleHistory(), limits=EvaluationLimits(max_steps=100))
    run = evaluate(formula, small)
    assert run.error is not None
    assert run.error.detail == "The formula exceeded the evaluation budget of 100 steps"
    assert evaluate(formula, EvaluationContext(now=NOW, history=SampleHistory())).error is None


def test_vector_length_and_allocation_budgets_bound_memory() -> None:
    history = SampleHistory(period=timedelta(seconds=1), retention=timedelta(hours=1))
    for age in range(999, -1, -1):
        history.record(NOW - timedelta(seconds=age), {"$CPUPercent": 1.0})
    window = "$CPUPercent.GetSample(TimeInterval_Hour)"
    short = EvaluationLimits(max_vector_length=500)
    run = evaluate_text(f"v = {window};", EvaluationContext(now=NOW, history=history, limits=short))
    assert run.error is not None and run.error.detail == "A vector may hold at most 500 values, not 1000"
    few = EvaluationLimits(max_elements=3500)
    growing = f"v = {window}; w = v + 1; x = w + 1; y = x + 1;"
    run = evaluate_text(growing, EvaluationContext(now=NOW, history=history, limits=few))
    assert run.error is not None and run.error.positioned_detail == (
        "Line 1, Col 75: The formula allocated more than 3500 vector values"
    )


def test_long_argument_lists_are_charged_before_they_are_copied() -> None:
    history = SampleHistory(period=timedelta(seconds=1), retention=timedelta(hours=1))
    for age in range(999, -1, -1):
        history.record(NOW - timedelta(seconds=age), {"$CPUPercent": 2.0})
    text = "v = $CPUPercent.GetSample(TimeInterval_Hour); x = avg(" + ", ".join(["v"] * 10) + ");"
    limits = EvaluationLimits(max_steps=5000)
    run = evaluate_text(text, EvaluationContext(now=NOW, history=history, limits=limits))
    assert run.error is not None and run.error.positioned_detail == (
        "Line 1, Col 51: The formula exceeded the evaluation budget of 5000 steps"
    )
    assert evaluate_text(text, EvaluationContext(now=NOW, history=history)).results.endswith(";x=2")  # type: ignore[union-attr]


def test_lg_of_many_vectors_cannot_build_an_unbounded_vector() -> None:
    history = SampleHistory(period=timedelta(seconds=1), retention=timedelta(hours=1))
    for age in range(999, -1, -1):
        history.record(NOW - timedelta(seconds=age), {"$CPUPercent": 2.0})
    v = "$CPUPercent.GetSample(TimeInterval_Hour)"
    text = f"v = {v}; x = lg(" + ", ".join(["v"] * 60) + ");"
    run = evaluate_text(text, EvaluationContext(now=NOW, history=history))
    assert run.error is not None and "at most 50000 values, not 60000" in run.error.detail


# --------------------------------------------------------------------------------------------------- sample history


def test_history_rejects_unknown_metrics_bad_values_and_times() -> None:
    history = SampleHistory()
    with pytest.raises(ValueError, match="unknown metric"):
        history.record(NOW, {"$Nope": 1.0})
    with pytest.raises(ValueError, match="finite"):
        history.record(NOW, {"$CPUPercent": math.nan})
    with pytest.raises(ValueError, match="timezone-aware"):
        history.record(datetime(2024, 1, 1), {"$CPUPercent": 1.0})
    history.record(NOW, {"$CPUPercent": 1.0})
    with pytest.raises(ValueError, match="time order"):
        history.record(NOW, {"$CPUPercent": 2.0})
    with pytest.raises(ValueError, match="positive"):
        SampleHistory(period=timedelta(0))
    with pytest.raises(ValueError, match="at least one sample period"):
        SampleHistory(period=timedelta(minutes=1), retention=timedelta(seconds=1))


def test_history_keeps_only_its_retention() -> None:
    history = SampleHistory(period=timedelta(seconds=10), retention=timedelta(minutes=1))
    for second in range(0, 300, 10):
        history.record(NOW + timedelta(seconds=second), {"$ActiveTasks": float(second)})
    assert history.count("$ActiveTasks") == 7  # 230 .. 290: one minute back from the newest, inclusive
    assert history.begin_time("$ActiveTasks") == NOW + timedelta(seconds=230)
    assert history.last("$ActiveTasks", 2) == (280.0, 290.0)


def test_metrics_are_recorded_independently() -> None:
    history = SampleHistory(period=timedelta(seconds=5))
    history.record(NOW, {"$PendingTasks": 3.0})
    history.record(NOW + timedelta(seconds=5), {"$PendingTasks": 4.0, "$CPUPercent": 0.25})
    assert (history.count("$PendingTasks"), history.count("$CPUPercent"), history.count("$DiskBytes")) == (2, 1, 0)
    assert history.latest("$CPUPercent") == 0.25 and history.latest("$DiskBytes") is None
    end = NOW + timedelta(seconds=5)
    assert history.percent_available("$PendingTasks", end - timedelta(seconds=10), end) == 100.0
    assert history.percent_available("$CPUPercent", end - timedelta(seconds=10), end) == 50.0
