"""A task's ``exitConditions`` and the job's ``onTaskFailure`` rule about them: validation and the stored shape.

``exitConditions`` maps how a task ends to ``exitOptions`` (``jobAction`` none | disable | terminate,
``dependencyAction`` satisfy | block): ``exitCodes`` (one code each), ``exitCodeRanges`` (inclusive), then
``preProcessingError`` (the task never started: a resource file failed), ``fileUploadError`` (an output file failed)
and ``default`` (any other failure). What the runtime does with them is ``runtime/exit_conditions.py``.

As in Batch, a ``jobAction`` may only be given when the job's ``onTaskFailure`` is ``performexitoptionsjobaction``
(else 400 ``InvalidPropertyValue``).
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import invalid_property, missing_property
from batchbox.emulator.resources.common import Body, objects_in, opt_enum, opt_int, opt_list, opt_object

__all__ = ["DEPENDENCY_ACTIONS", "JOB_ACTIONS", "validate_exit_conditions"]

JOB_ACTIONS = ("none", "disable", "terminate")
DEPENDENCY_ACTIONS = ("satisfy", "block")
_SINGLE_OPTIONS = ("preProcessingError", "fileUploadError", "default")


def _exit_options(value: Body | None, name: str, job: Body) -> Body:
    if value is None:
        raise missing_property(name)
    options: Body = {}
    job_action = opt_enum(value, "jobAction", JOB_ACTIONS, name)
    if job_action is not None:
        if str(job.get("onTaskFailure") or "noaction") != "performexitoptionsjobaction":
            raise invalid_property(
                f"{name}.jobAction",
                job_action,
                "A jobAction needs the job's onTaskFailure to be performexitoptionsjobaction.",
            )
        options["jobAction"] = job_action
    dependency_action = opt_enum(value, "dependencyAction", DEPENDENCY_ACTIONS, name)
    if dependency_action is not None:
        options["dependencyAction"] = dependency_action
    return options


def _required_int(item: Body, name: str, prefix: str) -> int:
    value = opt_int(item, name, prefix)
    if value is None:
        raise missing_property(f"{prefix}.{name}")
    return value


def validate_exit_conditions(value: Body | None, job: Body, name: str = "exitConditions") -> Body | None:
    """Validate ``exitConditions`` against its job and return the stored document (``None`` when absent).

    Raises:
        BatchError: MissingRequiredProperty / InvalidRequestBody / InvalidPropertyValue (400).
    """
    if value is None:
        return None
    result: dict[str, Any] = {}
    codes = opt_list(value, "exitCodes", name)
    if codes is not None:
        result["exitCodes"] = [
            {
                "code": _required_int(item, "code", prefix),
                "exitOptions": _exit_options(opt_object(item, "exitOptions", prefix), f"{prefix}.exitOptions", job),
            }
            for prefix, item in objects_in(codes, f"{name}.exitCodes")
        ]
    ranges = opt_list(value, "exitCodeRanges", name)
    if ranges is not None:
        checked = []
        for prefix, item in objects_in(ranges, f"{name}.exitCodeRanges"):
            start, end = _required_int(item, "start", prefix), _required_int(item, "end", prefix)
            if end < start:
                raise invalid_property(f"{prefix}.end", end, "The end of a range must not be below its start.")
            options = _exit_options(opt_object(item, "exitOptions", prefix), f"{prefix}.exitOptions", job)
            checked.append({"start": start, "end": end, "exitOptions": options})
        result["exitCodeRanges"] = checked
    for single in _SINGLE_OPTIONS:
        options_value = opt_object(value, single, name)
        if options_value is not None:
            result[single] = _exit_options(options_value, f"{name}.{single}", job)
    return result
