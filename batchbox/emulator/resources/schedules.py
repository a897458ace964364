"""Job schedule documents: validate add / patch (PATCH) / update (PUT) bodies and build what GET returns.

A schedule is its ``schedule`` (``doNotRunUntil``, ``doNotRunAfter``, ``startWindow``, ``recurrenceInterval``) and the
``jobSpecification`` of the jobs it creates (an add-job body without ``id``, validated as one). Batch's minimum for
``recurrenceInterval`` and ``startWindow`` is one minute; the emulator's ``min_schedule_interval`` may lower it for
tests. When jobs are created is ``runtime/schedules.py``.
"""

from __future__ import annotations

from datetime import timedelta

from batchbox.emulator.clock import format_time, now_iso, parse_time
from batchbox.emulator.errors import BatchError, conflict, invalid_property, missing_property
from batchbox.emulator.resources.common import (
    Body,
    check_id,
    opt_duration,
    opt_list,
    opt_object,
    opt_str,
    reject_unknown_properties,
    req_object,
    validate_metadata,
)
from batchbox.emulator.resources.containers import ValidationContext
from batchbox.emulator.resources.jobs import job_document

__all__ = [
    "BATCH_MIN_SCHEDULE_INTERVAL",
    "SPECIFICATION_FIELDS",
    "apply_schedule_patch",
    "apply_schedule_replace",
    "build_schedule",
    "check_schedule_updatable",
]

BATCH_MIN_SCHEDULE_INTERVAL = timedelta(minutes=1)
"""Batch's minimum ``recurrenceInterval`` and ``startWindow``."""

SPECIFICATION_FIELDS = (
    "priority", "allowTaskPreemption", "maxParallelTasks", "displayName", "usesTaskDependencies",
    "onAllTasksComplete", "onTaskFailure", "networkConfiguration", "constraints", "jobManagerTask",
    "jobPreparationTask", "jobReleaseTask", "commonEnvironmentSettings", "poolInfo", "metadata",
)  # fmt: skip
"""The properties of a job specification, as a job built from it stores them."""

_STATE_CONFLICTS = {
    "deleting": ("JobScheduleBeingDeleted", "The specified job schedule has been marked for deletion."),
    "terminating": ("JobScheduleBeingTerminated", "The specified job schedule is being terminated."),
    "completed": ("JobScheduleCompleted", "The specified job schedule is already in completed state."),
}
_SPEC_PROBE_ID = "schedule-job"


def check_schedule_updatable(doc: Body) -> None:
    """Refuse changes to a schedule that is being deleted, being terminated or completed (409)."""
    state = str(doc.get("state"))
    if state in _STATE_CONFLICTS:
        code, message = _STATE_CONFLICTS[state]
        raise conflict(code, message, {"JobScheduleId": str(doc["id"])})


def _time(value: Body, name: str) -> str | None:
    text = opt_str(value, name, "schedule")
    if text is None:
        return None
    parsed = parse_time(text)
    if parsed is None:
        raise invalid_property(f"schedule.{name}", text, "The value must be an ISO 8601 date and time.")
    return format_time(parsed)


def validate_schedule(value: Body | None, min_interval: timedelta) -> Body:
    """The ``schedule`` object: times normalised, intervals at least ``min_interval`` (Batch's: one minute)."""
    if value is None:
        raise missing_property("schedule")
    result: Body = {}
    for name in ("doNotRunUntil", "doNotRunAfter"):
        moment = _time(value, name)
        if moment is not None:
            result[name] = moment
    for name in ("startWindow", "recurrenceInterval"):
        duration = opt_duration(value, name, "schedule", minimum=min_interval)
        if duration is not None:
            result[name] = duration[1]
    return result


def _specification(value: Body | None, base_url: str, context: ValidationContext | None) -> Body:
    """A validated job specification, as the jobs built from it will store it (registry passwords of its tasks'
    containers go to ``context``)."""
    if value is None:
        raise missing_property("jobSpecification")
    reject_unknown_properties(value, "JobSpecification")
    try:
        probe = job_document(dict(value), _SPEC_PROBE_ID, base_url=base_url, context=context, on_schedule=True)
    except BatchError as error:
        name = error.values.get("PropertyName")
        if name:
            error.values["PropertyName"] = f"jobSpecification.{name}"
        raise
    return {name: probe[name] for name in SPECIFICATION_FIELDS if name in probe}


def build_schedule(
    body: object,
    *,
    base_url: str,
    min_interval: timedelta = BATCH_MIN_SCHEDULE_INTERVAL,
    context: ValidationContext | None = None,
) -> Body:
    """Validate an add-job-schedule body (``BatchJobScheduleCreateOptions``) and build the stored document
    (``context`` receives the registry passwords of its job specification's containers).

    Raises:
        BatchError: MissingRequiredProperty / InvalidPropertyValue / InvalidRequestBody / UnsupportedProperty (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "JobScheduleAddParameter")
    schedule_id = check_id("id", body.get("id"))
    display_name = opt_str(body, "displayName", max_length=1024)
    schedule = validate_schedule(opt_object(body, "schedule"), min_interval)
    specification = _specification(opt_object(body, "jobSpecification"), base_url, context)
    metadata = validate_metadata(opt_list(body, "metadata"))
    now = now_iso()
    doc: Body = {"id": schedule_id}
    if display_name is not None:
        doc["displayName"] = display_name
    doc.update(
        {
            "url": f"{base_url}/jobschedules/{schedule_id}",
            "eTag": "",
            "lastModified": now,
            "creationTime": now,
            "state": "active",
            "stateTransitionTime": now,
            "schedule": schedule,
            "jobSpecification": specification,
            "executionInfo": {},
        }
    )
    if metadata:
        doc["metadata"] = metadata
    return doc


def apply_schedule_patch(
    doc: Body, body: object, *, base_url: str, min_interval: timedelta, context: ValidationContext | None = None
) -> Body:
    """Apply a PATCH (``BatchJobScheduleUpdateOptions``): ``schedule``, ``jobSpecification`` and ``metadata``
    change when present. A new job specification applies to the jobs created afterwards.

    Raises:
        BatchError: JobScheduleBeingDeleted / JobScheduleBeingTerminated / JobScheduleCompleted (409), validation
            errors (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "JobSchedulePatchParameter")
    check_schedule_updatable(doc)
    updated = dict(doc)
    schedule = opt_object(body, "schedule")
    if schedule is not None:
        updated["schedule"] = validate_schedule(schedule, min_interval)
    specification = opt_object(body, "jobSpecification")
    if specification is not None:
        updated["jobSpecification"] = _specification(specification, base_url, context)
    metadata = validate_metadata(opt_list(body, "metadata"))
    if metadata is not None:
        _set_metadata(updated, metadata)
    return updated


def apply_schedule_replace(
    doc: Body, body: object, *, base_url: str, min_interval: timedelta, context: ValidationContext | None = None
) -> Body:
    """Apply an update (PUT, ``BatchJobSchedule``): ``schedule`` and ``jobSpecification`` are required and
    replaced; ``metadata`` is replaced (removed when absent). Read-only properties in the body are ignored.

    Raises:
        BatchError: as :func:`apply_schedule_patch`.
    """
    body = req_object(body)
    check_schedule_updatable(doc)
    updated = dict(doc)
    updated["schedule"] = validate_schedule(opt_object(body, "schedule"), min_interval)
    updated["jobSpecification"] = _specification(opt_object(body, "jobSpecification"), base_url, context)
    _set_metadata(updated, validate_metadata(opt_list(body, "metadata")) or [])
    return updated


def _set_metadata(doc: Body, metadata: list[Body]) -> None:
    if metadata:
        doc["metadata"] = metadata
    else:
        doc.pop("metadata", None)
