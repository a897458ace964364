"""What a completed task's ``exitConditions`` say (pure): its ``dependencyAction`` and its ``jobAction``.

The options that apply are those of the first match: ``exitCodes``, then ``exitCodeRanges`` (by exit code), then,
for a task that failed, ``preProcessingError`` (its process never started: a resource file or the launch failed),
``fileUploadError`` (an output file failed to upload) and ``default``. A task that succeeded and is not listed by its
exit code takes no options. Unset actions take Batch's defaults: for a success ``dependencyAction`` satisfy and
``jobAction`` none; for a failure block and terminate. The job acts on ``jobAction`` only when its ``onTaskFailure``
is ``performexitoptionsjobaction``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["dependency_action", "exit_options", "job_action"]

Doc = Mapping[str, Any]


def _options(item: object) -> Doc | None:
    if isinstance(item, Mapping):
        options = item.get("exitOptions")
        if isinstance(options, Mapping):
            return options
    return None


def _by_exit_code(conditions: Doc, exit_code: int) -> Doc | None:
    for item in conditions.get("exitCodes") or []:
        if isinstance(item, Mapping) and item.get("code") == exit_code:
            return _options(item)
    for item in conditions.get("exitCodeRanges") or []:
        if not isinstance(item, Mapping):
            continue
        start, end = item.get("start"), item.get("end")
        if isinstance(start, int) and isinstance(end, int) and start <= exit_code <= end:
            return _options(item)
    return None


def _named(conditions: Doc, name: str) -> Doc | None:
    value = conditions.get(name)
    return value if isinstance(value, Mapping) else None


def exit_options(doc: Doc) -> Doc | None:
    """The ``exitOptions`` that apply to a completed task, or ``None`` when none do."""
    conditions = doc.get("exitConditions")
    if not isinstance(conditions, Mapping):
        return None
    info = doc.get("executionInfo") or {}
    exit_code = info.get("exitCode")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool):
        listed = _by_exit_code(conditions, exit_code)
        if listed is not None:
            return listed
    if info.get("result") != "failure":
        return None
    failure = info.get("failureInfo")
    code = str(failure.get("code") or "") if isinstance(failure, Mapping) else ""
    if exit_code is None and _named(conditions, "preProcessingError") is not None:
        return _named(conditions, "preProcessingError")
    if code.startswith("FileUpload") and _named(conditions, "fileUploadError") is not None:
        return _named(conditions, "fileUploadError")
    return _named(conditions, "default")


def _succeeded(doc: Doc) -> bool:
    return (doc.get("executionInfo") or {}).get("result") == "success"


def dependency_action(doc: Doc) -> str:
    """``satisfy`` or ``block``: what a task means for the tasks that depend on it (block unless completed)."""
    if doc.get("state") != "completed":
        return "block"
    options = exit_options(doc)
    action = options.get("dependencyAction") if options is not None else None
    if isinstance(action, str) and action.lower() in ("satisfy", "block"):
        return action.lower()
    return "satisfy" if _succeeded(doc) else "block"


def job_action(doc: Doc) -> str:
    """``none``, ``disable`` or ``terminate``: what a completed task asks of its job."""
    if doc.get("state") != "completed":
        return "none"
    options = exit_options(doc)
    action = options.get("jobAction") if options is not None else None
    if isinstance(action, str) and action.lower() in ("none", "disable", "terminate"):
        return action.lower()
    return "none" if _succeeded(doc) else "terminate"
