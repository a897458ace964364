"""The documented example formulas ("Create a formula to automatically scale compute nodes in a Batch pool") and the
results strings the real service returned, evaluated against histories whose answers are computed by hand.

Histories use Batch's 30-second sample period: a look-back of 180 s expects 6 samples, 15 minutes expects 30.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest

from batchbox.emulator.autoscale import (
    INSUFFICIENT_SAMPLES,
    EvaluationContext,
    SampleHistory,
    evaluate,
    evaluate_text,
    parse_formula,
)
from tests.fixtures.batch_recordings import recorded_response

NOW = datetime(2024, 4, 17, 10, 30, tzinfo=timezone.utc)  # a Wednesday
PERIOD = timedelta(seconds=30)


def history_of(metric: str, values: Sequence[float], *, now: datetime = NOW, every: int = 1) -> SampleHistory:
    """Samples of one metric ending at ``now``: ``values[-1]`` is the newest; ``every=2`` keeps every other period."""
    history = SampleHistory(period=PERIOD)
    for age, value in zip(range(len(values) - 1, -1, -1), values, strict=True):
        if age % every == 0:
            history.record(now - age * PERIOD, {metric: value})
    return history


PENDING_TASKS = """startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;
"""  # noqa: E501


def test_pending_tasks_formula_follows_the_average_of_the_last_three_minutes() -> None:
    run = evaluate_text(
        PENDING_TASKS, EvaluationContext(now=NOW, history=history_of("$PendingTasks", [2, 4, 6, 8, 10, 12]))
    )
    assert run.error is None
    assert run.target_dedicated_nodes == 7  # avg(2..12) = 7
    assert run.node_deallocation_option == "taskcompletion"
    assert run.results == (
        "$TargetDedicatedNodes=7;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;"
        "maxNumberofVMs=25;pendingTaskSamplePercent=100;pendingTaskSamples=7;startingNumberOfVMs=1"
    )


def test_pending_tasks_formula_caps_the_pool_at_25() -> None:
    history = history_of("$PendingTasks", [10, 20, 30, 40, 50, 60])
    assert evaluate_text(PENDING_TASKS, EvaluationContext(now=NOW, history=history)).target_dedicated_nodes == 25


def test_pending_tasks_formula_starts_with_one_node_when_samples_are_missing() -> None:
    history = history_of("$PendingTasks", [50, 50, 50, 50, 50, 50], every=2)  # 3 of 6 samples: 50 % < 70 %
    run = evaluate_text(PENDING_TASKS, EvaluationContext(now=NOW, history=history))
    assert run.target_dedicated_nodes == 1
    assert "pendingTaskSamplePercent=50;" in (run.results or "")


PREEMPTED_NODES = """maxNumberofVMs = 25;
$TargetDedicatedNodes = min(maxNumberofVMs, $PreemptedNodeCount.GetSample(180 * TimeInterval_Second));
$TargetLowPriorityNodes = min(maxNumberofVMs , maxNumberofVMs - $TargetDedicatedNodes);
$NodeDeallocationOption = taskcompletion;
"""


def test_preempted_nodes_formula_replaces_preempted_spot_nodes_with_dedicated_ones() -> None:
    history = history_of("$PreemptedNodeCount", [3, 3, 4, 4, 5, 5])
    run = evaluate_text(PREEMPTED_NODES, EvaluationContext(now=NOW, history=history))
    assert (run.target_dedicated_nodes, run.target_low_priority_nodes) == (3, 22)  # min(25, 3..5) = 3; 25 - 3


TIME_OF_DAY = """$curTime = time();
$workHours = $curTime.hour >= 8 && $curTime.hour < 18;
$isWeekday = $curTime.weekday >= 1 && $curTime.weekday <= 5;
$isWorkingWeekdayHour = $workHours && $isWeekday;
$TargetDedicatedNodes = $isWorkingWeekdayHour ? 20:10;
$NodeDeallocationOption = taskcompletion;
"""


@pytest.mark.parametrize(
    ("now", "nodes"),
    [
        (datetime(2024, 4, 17, 10, 30, tzinfo=timezone.utc), 20),  # Wednesday morning
        (datetime(2024, 4, 17, 18, 0, tzinfo=timezone.utc), 10),  # Wednesday 18:00, after hours
        (datetime(2024, 4, 20, 10, 30, tzinfo=timezone.utc), 10),  # Saturday
        (datetime(2024, 4, 21, 10, 30, tzinfo=timezone.utc), 10),  # Sunday (weekday 0)
        (datetime(2024, 4, 15, 8, 0, tzinfo=timezone.utc), 20),  # Monday 08:00
    ],
)
def test_time_of_day_formula_sizes_the_pool_for_working_hours(now: datetime, nodes: int) -> None:
    run = evaluate_text(TIME_OF_DAY, EvaluationContext(now=now, history=SampleHistory()))
    assert run.target_dedicated_nodes == nodes


def test_time_of_day_results_list_the_user_variables_in_name_order() -> None:
    run = evaluate_text(TIME_OF_DAY, EvaluationContext(now=NOW, history=SampleHistory()))
    assert run.results == (
        "$TargetDedicatedNodes=20;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;"
        "$curTime=2024-04-17T10:30:00.000Z;$isWeekday=1;$isWorkingWeekdayHour=1;$workHours=1"
    )


def test_time_of_day_with_a_utc_offset_moves_the_working_hours() -> None:
    formula = TIME_OF_DAY.replace("$curTime = time();", "$curTime = time() + (-6 * TimeInterval_Hour);")
    late_utc = datetime(2024, 4, 17, 20, 0, tzinfo=timezone.utc)  # 14:00 at UTC-6
    assert evaluate_text(formula, EvaluationContext(now=late_utc, history=SampleHistory())).target_dedicated_nodes == 20
    early_utc = datetime(2024, 4, 17, 10, 0, tzinfo=timezone.utc)  # 04:00 at UTC-6
    assert (
        evaluate_text(formula, EvaluationContext(now=early_utc, history=SampleHistory())).target_dedicated_nodes == 10
    )


TASK_BASED = """// Get pending tasks for the past 15 minutes.
$samples = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 15);
// If we have fewer than 70 percent data points, we use the last sample point, otherwise we use the maximum of last sample point and the history average.
$tasks = $samples < 70 ? max(0, $ActiveTasks.GetSample(1)) : 
max( $ActiveTasks.GetSample(1), avg($ActiveTasks.GetSample(TimeInterval_Minute * 15)));
// If number of pending tasks is not 0, set targetVM to pending tasks, otherwise half of current dedicated.
$targetVMs = $tasks > 0 ? $tasks : max(0, $TargetDedicatedNodes / 2);
// The pool size is capped at 20, if target VM value is more than that, set it to 20. This value should be adjusted according to your use case.
cappedPoolSize = 3;
$TargetDedicatedNodes = max(1, min($targetVMs, cappedPoolSize));
// Set node deallocation mode - keep nodes active only until tasks finish
$NodeDeallocationOption = taskcompletion;"""  # noqa: E501, W291


def test_task_based_formula_reproduces_a_result_the_service_returned() -> None:
    # A pool at one dedicated node whose queue stayed empty: 29 of the 30 samples of the last 15 minutes are held.
    history = SampleHistory(period=PERIOD)
    for age in range(28, -1, -1):
        history.record(NOW - age * PERIOD - timedelta(seconds=1), {"$ActiveTasks": 0.0})
    run = evaluate_text(TASK_BASED, EvaluationContext(now=NOW, history=history, target_dedicated_nodes=1))
    assert run.results == (
        "$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;"
        "$samples=96.6667;$targetVMs=0.5;$tasks=0;cappedPoolSize=3"
    )


def test_task_based_formula_grows_to_the_queue_up_to_its_cap() -> None:
    history = history_of("$ActiveTasks", [2.0] * 29 + [12.0])
    run = evaluate_text(TASK_BASED, EvaluationContext(now=NOW, history=history, target_dedicated_nodes=1))
    assert run.target_dedicated_nodes == 3  # max(12, avg) = 12 tasks, capped at 3


PARALLEL_TASKS = """$samples = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 15);
$tasks = $samples < 70 ? max(0,$ActiveTasks.GetSample(1)) : max( $ActiveTasks.GetSample(1),avg($ActiveTasks.GetSample(TimeInterval_Minute * 15)));
$cores = $TargetDedicatedNodes * 4;
$extraVMs = (($tasks - $cores) + 3) / 4;
$targetVMs = ($TargetDedicatedNodes + $extraVMs);
$TargetDedicatedNodes = max(0,min($targetVMs,3));
$NodeDeallocationOption = taskcompletion;"""  # noqa: E501


def test_parallel_tasks_formula_adds_a_node_per_four_queued_tasks() -> None:
    history = history_of("$ActiveTasks", [9.0])  # one sample: 3 % of the window, so the last sample counts
    run = evaluate_text(PARALLEL_TASKS, EvaluationContext(now=NOW, history=history, target_dedicated_nodes=1))
    assert run.error is None
    assert run.target_dedicated_nodes == 3  # 1 + ((9 - 4) + 3) / 4 = 3
    assert "$extraVMs=2;" in (run.results or "")


def test_parallel_tasks_formula_fails_on_a_pool_without_any_sample() -> None:
    run = evaluate_text(PARALLEL_TASKS, EvaluationContext(now=NOW, history=SampleHistory(), target_dedicated_nodes=1))
    assert run.error is not None and run.error.code == INSUFFICIENT_SAMPLES
    assert run.error.positioned_detail == (
        "Line 2, Col 32: Insufficient data from data set: $ActiveTasks wanted 100%, received 0%"
    )
    assert run.target_dedicated_nodes is None


INITIAL_SIZE = """$TargetDedicatedNodes = 4;
lifespan         = time() - time("Mon, 15 Apr 2024 10:00:00 GMT");
span             = TimeInterval_Minute * 60;
startup          = TimeInterval_Minute * 10;
ratio            = 50;
$TargetDedicatedNodes = (lifespan > startup ? (max($RunningTasks.GetSample(span, ratio), $ActiveTasks.GetSample(span, ratio)) == 0 ? 0 : $TargetDedicatedNodes) : 4);
"""  # noqa: E501
CREATED = datetime(2024, 4, 15, 10, 0, tzinfo=timezone.utc)


def idle_history(now: datetime, running: float = 0.0) -> SampleHistory:
    history = SampleHistory(period=PERIOD)
    for age in range(119, -1, -1):
        history.record(now - age * PERIOD, {"$RunningTasks": running, "$ActiveTasks": 0.0})
    return history


def test_initial_size_formula_keeps_four_nodes_during_startup() -> None:
    now = CREATED + timedelta(minutes=5)
    assert evaluate_text(INITIAL_SIZE, EvaluationContext(now=now, history=SampleHistory())).target_dedicated_nodes == 4


def test_initial_size_formula_empties_an_idle_pool_after_startup() -> None:
    now = CREATED + timedelta(hours=2)
    run = evaluate_text(INITIAL_SIZE, EvaluationContext(now=now, history=idle_history(now)))
    assert run.target_dedicated_nodes == 0
    assert "lifespan=02:00:00;" in (run.results or "")


def test_initial_size_formula_keeps_a_busy_pool() -> None:
    now = CREATED + timedelta(hours=2)
    run = evaluate_text(INITIAL_SIZE, EvaluationContext(now=now, history=idle_history(now, running=2.0)))
    assert run.target_dedicated_nodes == 4


def test_initial_size_formula_refuses_to_decide_on_half_an_hour_of_data() -> None:
    now = CREATED + timedelta(hours=2)
    quarter = SampleHistory(period=PERIOD)
    for age in range(29, -1, -1):  # 30 of the 120 samples the 60-minute window expects: 25 %
        quarter.record(now - age * PERIOD, {"$RunningTasks": 0.0, "$ActiveTasks": 0.0})
    run = evaluate_text(INITIAL_SIZE, EvaluationContext(now=now, history=quarter))
    assert run.error is not None and run.error.code == INSUFFICIENT_SAMPLES
    assert run.error.detail == "Insufficient data from data set: $RunningTasks wanted 50%, received 25%"
    half = SampleHistory(period=PERIOD)
    for age in range(59, -1, -1):  # 60 of 120: exactly the 50 % the formula asks for
        half.record(now - age * PERIOD, {"$RunningTasks": 0.0, "$ActiveTasks": 0.0})
    assert evaluate_text(INITIAL_SIZE, EvaluationContext(now=now, history=half)).target_dedicated_nodes == 0


CPU_BASED = """$totalDedicatedNodes =
    (min($CPUPercent.GetSample(TimeInterval_Minute * 10)) > 0.7) ?
    ($CurrentDedicatedNodes * 1.1) : $CurrentDedicatedNodes;
$totalDedicatedNodes =
    (avg($CPUPercent.GetSample(TimeInterval_Minute * 60)) < 0.2) ?
    ($CurrentDedicatedNodes * 0.9) : $totalDedicatedNodes;
$TargetDedicatedNodes = min(400, $totalDedicatedNodes)"""


@pytest.mark.parametrize(("cpu", "nodes"), [(0.9, 11), (0.5, 10), (0.1, 9)])
def test_cpu_formula_grows_busy_pools_and_shrinks_idle_ones(cpu: float, nodes: int) -> None:
    history = history_of("$CPUPercent", [cpu] * 120)
    context = EvaluationContext(now=NOW, history=history, current={"$CurrentDedicatedNodes": 10.0})
    assert evaluate(parse_formula(CPU_BASED), context).target_dedicated_nodes == nodes


def test_cli_evaluation_matches_the_recorded_service_answer() -> None:
    status, body = recorded_response(
        "test_batch_pools_and_nodes.yaml", "POST", "/evaluateautoscale", "$TargetLowPriorityNodes=3"
    )
    assert status == 200
    run = evaluate_text("$TargetLowPriorityNodes=3", EvaluationContext(now=NOW, history=SampleHistory()))
    assert run.results == body["results"]
    assert set(run.to_rest()) == set(body) - {"odata.metadata"}
