"""Every type, operator, function and sample method of the autoscale formula language, checked through the rendered
``autoScaleRun.results`` (the value a user sees) or the targets a run asks for."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from batchbox.emulator.autoscale import (
    INSUFFICIENT_SAMPLES,
    SYNTAX_ERROR,
    AutoScaleRun,
    EvaluationContext,
    SampleHistory,
    evaluate_text,
)

NOW = datetime(2024, 4, 17, 10, 30, 15, 250_000, tzinfo=timezone.utc)
PERIOD = timedelta(seconds=30)


def sampled(values: dict[str, list[float]]) -> SampleHistory:
    """One sample per period per metric, the newest (last value) taken at NOW."""
    history = SampleHistory(period=PERIOD)
    length = max(len(series) for series in values.values())
    for index in range(length):
        age = length - 1 - index
        history.record(NOW - age * PERIOD, {name: series[index] for name, series in values.items()})
    return history


def run(text: str, history: SampleHistory | None = None, **context: object) -> AutoScaleRun:
    ctx = EvaluationContext(now=NOW, history=history or SampleHistory(period=PERIOD), **context)  # type: ignore[arg-type]
    return evaluate_text(text, ctx)


def value_of(expression: str, history: SampleHistory | None = None, **context: object) -> str:
    """``x``'s rendered value after ``x = expression``."""
    result = run(f"x = {expression};", history, **context)
    assert result.error is None, result.error and result.error.positioned_detail
    pairs = dict(pair.split("=", 1) for pair in (result.results or "").split(";"))
    return pairs["x"]


def failure(text: str, history: SampleHistory | None = None) -> str:
    result = run(text, history)
    assert result.error is not None, f"{text!r} evaluated: {result.results}"
    return result.error.positioned_detail


# ------------------------------------------------------------------------------------------------- doubles, operators


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),
        ("12 / 4 / 3", "1"),
        ("7 / 2", "3.5"),
        ("-3 + 1", "-2"),
        ("- -3", "3"),
        ("!0", "1"),
        ("!2.5", "0"),
        ("2 < 3", "1"),
        ("3 <= 3", "1"),
        ("3 == 3.0", "1"),
        ("3 >= 4", "0"),
        ("4 > 3", "1"),
        ("3 != 3", "0"),
        ("1 < 2 == 1", "1"),
        ("1 && 0", "0"),
        ("2 && 3", "1"),
        ("0 || 0.5", "1"),
        ("0 || 0", "0"),
        ("1 || 0 && 0", "1"),
        ("0 ? 5 : 6", "6"),
        ("0.1 ? 5 : 6", "5"),
        ("1 ? 0 ? 1 : 2 : 3", "2"),
        ("1e3 + .5", "1000.5"),
        ("1 / 3", "0.333333"),
        ("1234567", "1.23457e+06"),
    ],
)
def test_double_arithmetic_comparison_logic_and_ternary(expression: str, expected: str) -> None:
    assert value_of(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('"abc" < "abd"', "1"),
        ('"b" >= "a"', "1"),
        ('"x" == "x"', "1"),
        ('"x" != "x"', "0"),
        ('"Mon" < "mon"', "1"),  # ordinal comparison
    ],
)
def test_string_comparisons(expression: str, expected: str) -> None:
    assert value_of(expression) == expected


def test_a_string_variable_renders_as_its_text() -> None:
    assert value_of('"hello world"') == "hello world"


@pytest.mark.parametrize(
    "text",
    ['x = 1 + "a";', 'x = "a" * 2;', "x = !TimeInterval_Second;", 'x = -"a";', "x = 1 < TimeInterval_Second;"],
)
def test_operators_refuse_types_the_table_does_not_list(text: str) -> None:
    assert "cannot" in failure(text)


def test_logical_operators_and_ternary_evaluate_only_what_they_need() -> None:
    # $CPUPercent has no samples: reading it would fail, so these prove the right-hand side is never evaluated.
    assert value_of("0 && $CPUPercent.GetSample(1)") == "0"
    assert value_of("1 || $CPUPercent.GetSample(1)") == "1"
    assert value_of("1 ? 7 : $CPUPercent.GetSample(1)") == "7"
    assert "Insufficient data" in failure("x = 1 && max($CPUPercent.GetSample(1));")


def test_division_by_zero_is_an_error_at_the_operator() -> None:
    assert failure("x = 1;\ny = x / (x - 1);") == "Line 2, Col 7: Division by zero"


# --------------------------------------------------------------------------------------------------------- doubleVec


def test_vector_operators_work_elementwise() -> None:
    history = sampled({"$ActiveTasks": [1, 2, 3], "$RunningTasks": [10, 20, 30]})
    assert value_of("$ActiveTasks.GetSample(3) + 1", history) == "[2,3,4]"
    assert value_of("$ActiveTasks.GetSample(3) * 2", history) == "[2,4,6]"
    assert value_of("$ActiveTasks.GetSample(3) / 2", history) == "[0.5,1,1.5]"
    assert value_of("$RunningTasks.GetSample(3) - $ActiveTasks.GetSample(3)", history) == "[9,18,27]"
    assert value_of("$RunningTasks.GetSample(3) * $ActiveTasks.GetSample(3)", history) == "[10,40,90]"


def test_vector_operators_need_equal_lengths_and_a_vector_on_the_left() -> None:
    history = sampled({"$ActiveTasks": [1, 2, 3]})
    assert "equal length" in failure("x = $ActiveTasks.GetSample(3) + $ActiveTasks.GetSample(2);", history)
    assert "cannot combine a double and a doubleVec" in failure("x = 1 + $ActiveTasks.GetSample(3);", history)
    assert "cannot compare" in failure("x = $ActiveTasks.GetSample(1) > 0;", history)


# ------------------------------------------------------------------------------------------- timestamp, timeinterval


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("TimeInterval_Zero", "00:00:00"),
        ("TimeInterval_100ns", "00:00:00.0000001"),
        ("TimeInterval_Microsecond", "00:00:00.0000010"),
        ("TimeInterval_Millisecond", "00:00:00.0010000"),
        ("TimeInterval_Second", "00:00:01"),
        ("TimeInterval_Minute", "00:01:00"),
        ("TimeInterval_Hour", "01:00:00"),
        ("TimeInterval_Day", "1.00:00:00"),
        ("TimeInterval_Week", "7.00:00:00"),
        ("TimeInterval_Year", "365.00:00:00"),
    ],
)
def test_time_interval_constants(name: str, expected: str) -> None:
    assert value_of(name) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("3 * TimeInterval_Minute", "00:03:00"),
        ("TimeInterval_Minute * 1.5", "00:01:30"),
        ("TimeInterval_Hour / 4", "00:15:00"),
        ("TimeInterval_Hour + TimeInterval_Minute", "01:01:00"),
        ("TimeInterval_Hour - 2 * TimeInterval_Hour", "-01:00:00"),
        ("-TimeInterval_Second", "-00:00:01"),
        ("time() + TimeInterval_Day", "2024-04-18T10:30:15.250Z"),
        ("TimeInterval_Hour + time()", "2024-04-17T11:30:15.250Z"),
        ("time() + -1.5 * TimeInterval_Millisecond", "2024-04-17T10:30:15.248Z"),
        ('time() - time("2024-04-17T10:00:00Z")', "00:30:15.2500000"),
        ("TimeInterval_Minute < TimeInterval_Hour", "1"),
        ('time() > time("2024-01-01")', "1"),
        ("time() == time()", "1"),
    ],
)
def test_timestamp_and_timeinterval_operations(expression: str, expected: str) -> None:
    assert value_of(expression) == expected


def test_timestamp_minus_interval_is_not_in_the_operations_table() -> None:
    assert "cannot combine a timestamp and a timeinterval" in failure("x = time() - TimeInterval_Hour;")


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("year", "2024"),
        ("month", "4"),
        ("day", "17"),
        ("weekday", "3"),
        ("hour", "10"),
        ("minute", "30"),
        ("second", "15"),
    ],
)
def test_timestamp_members(member: str, expected: str) -> None:
    assert value_of(f"time().{member}") == expected


def test_members_exist_only_on_timestamps() -> None:
    assert failure("x = TimeInterval_Hour.hour;") == "Line 1, Col 5: Only a timestamp has the member 'hour'"


# ------------------------------------------------------------------------------------------------------- functions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("avg(1, 2, 3, 6)", "3"),
        ("avg($ActiveTasks.GetSample(3), 8)", "4.25"),  # the doubleVecList (1,2,6,8) flattened
        ("len($ActiveTasks.GetSample(3), 4, 5)", "5"),
        ("len()", "0"),
        ("lg(8)", "3"),
        ("lg($ActiveTasks.GetSample(2))", "[1,2.58496]"),
        ("ln(1)", "0"),
        ("ln(2, 4)", "[0.693147,1.38629]"),
        ("log(1000)", "3"),
        ("log($ActiveTasks.GetSample(1))", "[0.778151]"),
        ("max(1, $ActiveTasks.GetSample(3))", "6"),
        ("min(5, $ActiveTasks.GetSample(3))", "1"),
        ("norm(3, 4)", "5"),
        ("percentile($ActiveTasks.GetSample(3), 50)", "2"),
        ("percentile($ActiveTasks.GetSample(3), 100)", "6"),
        ("percentile($ActiveTasks.GetSample(3), 0)", "1"),
        ("range($ActiveTasks.GetSample(3), -1)", "7"),
        ("std(2, 4, 4, 4, 5, 5, 7, 9)", "2.13809"),
        ("sum($ActiveTasks.GetSample(3), 0.5)", "9.5"),
        ("sum()", "0"),
        ("val($ActiveTasks.GetSample(3), 0)", "1"),
        ("val($ActiveTasks.GetSample(3), 2)", "6"),
        ("time()", "2024-04-17T10:30:15.250Z"),
        ('time("2016-10-14T18:36:43.282Z")', "2016-10-14T18:36:43.282Z"),
        ('time("2016-10-14T20:36:43+02:00")', "2016-10-14T18:36:43.000Z"),
        ('time("2016-10-14")', "2016-10-14T00:00:00.000Z"),
        ('time("2016")', "2016-01-01T00:00:00.000Z"),
        ('time("Fri, 14 Oct 2016 18:36:43 GMT")', "2016-10-14T18:36:43.000Z"),
    ],
)
def test_builtin_functions(expression: str, expected: str) -> None:
    assert value_of(expression, sampled({"$ActiveTasks": [1, 2, 6]})) == expected


def test_rand_draws_from_the_given_source() -> None:
    first = value_of("rand()", random=random.Random(7).random)
    assert first == f"{random.Random(7).random():g}"
    assert 0 <= float(first) < 1


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        ("avg()", "Function avg needs at least one value"),
        ("std(4)", "Function std needs at least two values"),
        ("lg(0)", "Function lg is defined only for positive values"),
        ("val($ActiveTasks.GetSample(3), 3)", "Index 3 is outside the vector of 3 values"),
        ("val($ActiveTasks.GetSample(3), 0.5)", "Function val takes a whole-number index"),
        ("val(3, 0)", "Function val takes a doubleVec, not a double"),
        ("percentile($ActiveTasks.GetSample(3), 101)", "Function percentile takes a percentile between 0 and 100"),
        ('avg("a")', "Function avg takes doubles and doubleVecs, not a string"),
        ('time("yesterday")', "'yesterday' is not a W3C-DTF or RFC 1123 date and time"),
        ("time(1)", "Function time takes a string, not a double"),
    ],
)
def test_function_argument_errors(expression: str, detail: str) -> None:
    assert failure(f"x = {expression};", sampled({"$ActiveTasks": [1, 2, 6]})) == f"Line 1, Col 5: {detail}"


def test_stop_ends_the_evaluation_keeping_earlier_assignments() -> None:
    result = run("$TargetDedicatedNodes = 4; a = 1; b = stop(); $TargetDedicatedNodes = 9; c = 2;")
    assert result.error is None
    assert result.target_dedicated_nodes == 4
    assert result.results == "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;a=1"


# ------------------------------------------------------------------------------------------------- sample methods


def test_get_sample_by_count_returns_the_newest_samples_oldest_first() -> None:
    history = sampled({"$PendingTasks": [5, 6, 7, 8]})
    assert value_of("$PendingTasks.GetSample(2)", history) == "[7,8]"
    assert value_of("$PendingTasks.GetSample(4)", history) == "[5,6,7,8]"


def test_get_sample_by_count_fails_when_fewer_samples_exist() -> None:
    history = sampled({"$PendingTasks": [5, 6, 7, 8]})
    assert failure("x = $PendingTasks.GetSample(5);", history) == (
        "Line 1, Col 5: Insufficient data from data set: $PendingTasks wanted 100%, received 80%"
    )


def test_get_sample_windows_are_look_backs_or_timestamps() -> None:
    history = sampled({"$PendingTasks": [float(n) for n in range(20)]})  # 19 is now, 18 is 30 s ago, ...
    assert value_of("$PendingTasks.GetSample(TimeInterval_Minute * 2)", history) == "[16,17,18,19]"
    assert value_of("$PendingTasks.GetSample(TimeInterval_Minute, TimeInterval_Minute * 2)", history) == "[16,17]"
    assert value_of("$PendingTasks.GetSample(TimeInterval_Minute * 2, TimeInterval_Minute)", history) == "[16,17]"
    window = 'time("2024-04-17T10:28:00Z"), time("2024-04-17T10:29:00Z")'
    assert value_of(f"$PendingTasks.GetSample({window})", history) == "[15,16]"
    assert value_of("$PendingTasks.GetSample(TimeInterval_Minute * 2, 100)", history) == "[16,17,18,19]"


def test_get_sample_with_a_percentage_is_honest_about_missing_samples() -> None:
    history = SampleHistory(period=PERIOD)
    for age in (0, 2, 4, 6, 8, 10, 12, 14, 16, 18):  # every other period of the last ten minutes: 10 of 20
        history.record(NOW - (18 - age) * PERIOD - timedelta(seconds=1), {"$CPUPercent": 0.5})
    assert value_of("$CPUPercent.GetSamplePercent(TimeInterval_Minute * 10)", history) == "50"
    assert value_of("len($CPUPercent.GetSample(TimeInterval_Minute * 10, 50))", history) == "10"
    assert failure("x = $CPUPercent.GetSample(TimeInterval_Minute * 10, 95);", history) == (
        "Line 1, Col 5: Insufficient data from data set: $CPUPercent wanted 95%, received 50%"
    )


def test_a_metric_without_samples_gives_empty_windows_and_fails_when_data_is_required() -> None:
    assert value_of("len($NetworkInBytes.GetSample(TimeInterval_Minute * 5))") == "0"
    assert value_of("$NetworkInBytes.GetSamplePercent(TimeInterval_Minute * 5)") == "0"
    assert value_of("$NetworkInBytes.Count()") == "0"
    result = run("x = $NetworkInBytes.GetSample(TimeInterval_Minute * 5, 1);")
    assert result.error is not None and result.error.code == INSUFFICIENT_SAMPLES
    assert result.error.code == run("x = $NetworkInBytes.HistoryBeginTime();").error.code  # type: ignore[union-attr]


def test_sample_period_count_begin_time_and_percent_between_two_instants() -> None:
    history = sampled({"$RunningTasks": [1, 1, 1, 1]})
    assert value_of("$RunningTasks.GetSamplePeriod()", history) == "00:00:30"
    assert value_of("$RunningTasks.Count()", history) == "4"
    assert value_of("$RunningTasks.HistoryBeginTime()", history) == "2024-04-17T10:28:45.250Z"
    assert value_of("$RunningTasks.GetSamplePercent(TimeInterval_Minute * 4, TimeInterval_Minute * 2)", history) == "0"
    assert value_of("$RunningTasks.GetSamplePercent(TimeInterval_Minute)", history) == "100"


def test_a_metric_read_as_a_value_is_its_current_value_or_its_newest_sample() -> None:
    history = sampled({"$CurrentDedicatedNodes": [2, 3]})
    assert value_of("$CurrentDedicatedNodes * 2", history) == "6"
    assert value_of("$TaskSlotsPerNode", current={"$TaskSlotsPerNode": 4.0}) == "4"
    assert failure("x = $SucceededTasks + 1;") == (
        "Line 1, Col 5: Insufficient data from data set: $SucceededTasks wanted 100%, received 0%"
    )


def test_get_sample_refuses_argument_shapes_it_does_not_have() -> None:
    history = sampled({"$PendingTasks": [1]})
    assert "GetSample cannot take (timeinterval, double, double)" in failure(
        "x = $PendingTasks.GetSample(TimeInterval_Minute, 1, 2);", history
    )
    assert "GetSample(count) takes a positive whole number" in failure("x = $PendingTasks.GetSample(0.5);", history)
    assert "between 0 and 100" in failure("x = $PendingTasks.GetSample(TimeInterval_Minute, 150);", history)


# ------------------------------------------------------------------------------------------- service-defined outputs


def test_targets_start_at_the_pools_current_targets() -> None:
    result = run(
        "x = $TargetDedicatedNodes + $TargetLowPriorityNodes;", target_dedicated_nodes=2, target_low_priority_nodes=5
    )
    assert result.results == "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=5;$NodeDeallocationOption=requeue;x=7"
    assert (result.target_dedicated_nodes, result.target_low_priority_nodes) == (2, 5)


def test_aliases_set_the_targets_unless_the_full_name_is_also_set() -> None:
    assert run("$TargetDedicated = 3; $TargetLowPriority = 4;").target_dedicated_nodes == 3
    assert run("$TargetDedicated = 3; $TargetLowPriority = 4;").target_low_priority_nodes == 4
    both = run("$TargetDedicatedNodes = 5; $TargetDedicated = 3;")
    assert both.target_dedicated_nodes == 5
    assert both.results == "$TargetDedicatedNodes=5;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"


def test_targets_are_truncated_to_whole_nodes() -> None:
    assert run("$TargetDedicatedNodes = 2.9;").target_dedicated_nodes == 2


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("a = 1;\n$TargetDedicatedNodes = -1;", "Line 2, Col 1: $TargetDedicatedNodes must be zero or more, not -1"),
        ('$TargetLowPriorityNodes = "x";', "Line 1, Col 1: $TargetLowPriorityNodes must be a double, not a string"),
        (
            "$NodeDeallocationOption = 1;",
            "Line 1, Col 1: $NodeDeallocationOption must be one of requeue, terminate, taskcompletion, retaineddata, "
            "not 1",
        ),
    ],
)
def test_invalid_outputs_fail_at_their_assignment(text: str, detail: str) -> None:
    result = run(text)
    assert result.error is not None and result.error.code == SYNTAX_ERROR
    assert result.error.positioned_detail == detail
    assert result.target_dedicated_nodes is None


@pytest.mark.parametrize("option", ["requeue", "terminate", "taskcompletion", "retaineddata", '"TaskCompletion"'])
def test_node_deallocation_options_as_words_or_strings(option: str) -> None:
    assert run(f"$NodeDeallocationOption = {option};").node_deallocation_option == option.strip('"').lower()
