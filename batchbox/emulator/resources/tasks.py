"""Task documents: validate add / add-collection / update bodies and build what GET returns."""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import INFINITE_DURATION, now_iso
from batchbox.emulator.errors import BatchError, conflict, invalid_property, missing_property
from batchbox.emulator.node_layout import task_bind_roots, task_dir
from batchbox.emulator.resources.common import (
    Body,
    check_id,
    objects_in,
    opt_duration,
    opt_enum,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    reject_unknown_properties,
    req_object,
    req_str,
    validate_environment,
    validate_resource_files,
    validate_user_identity,
)
from batchbox.emulator.resources.containers import ValidationContext, validate_container_settings
from batchbox.emulator.resources.containers import command_line as container_command_line
from batchbox.emulator.resources.exit_conditions import validate_exit_conditions
from batchbox.emulator.resources.guards import check_job_updatable, check_task_not_completed
from batchbox.emulator.resources.multi_instance import validate_multi_instance
from batchbox.emulator.resources.node_features import validate_package_references

__all__ = [
    "DEFAULT_RETENTION_TIME",
    "MAX_TASKS_PER_COLLECTION",
    "apply_task_update",
    "authentication_token_settings",
    "build_task",
    "check_job_accepts_tasks",
    "collection_bodies",
    "job_max_task_retry_count",
    "task_constraints",
    "validate_output_files",
]

MAX_TASKS_PER_COLLECTION = 100
"""Batch's limit on the number of tasks in one add-task-collection request."""

DEFAULT_RETENTION_TIME = "P7D"
_UPLOAD_CONDITIONS = ("tasksuccess", "taskfailure", "taskcompletion")
_TOKEN_ACCESS = ("job",)
_PACKAGES = "applicationPackageReferences"
_OWN_TASK_CONFLICTS = (
    ("jobPreparationTask", "TaskIdSameAsJobPreparationTask", "The specified task id is the job preparation task's."),
    ("jobReleaseTask", "TaskIdSameAsJobReleaseTask", "The specified task id is the job release task's."),
)


def validate_output_files(items: list[Any] | None, name: str = "outputFiles") -> list[Body] | None:
    """OutputFiles: ``filePattern``, ``destination.container.containerUrl`` and
    ``uploadOptions.uploadCondition`` are required."""
    if items is None:
        return None
    result: list[Body] = []
    for prefix, item in objects_in(items, name):
        pattern = req_str(item, "filePattern", prefix)
        destination = opt_object(item, "destination", prefix)
        if destination is None:
            raise missing_property(f"{prefix}.destination")
        container = opt_object(destination, "container", f"{prefix}.destination")
        if container is None:
            raise missing_property(f"{prefix}.destination.container")
        cprefix = f"{prefix}.destination.container"
        target: Body = {"containerUrl": req_str(container, "containerUrl", cprefix)}
        path = opt_str(container, "path", cprefix)
        if path is not None:
            target["path"] = path
        for extra in ("identityReference", "uploadHeaders"):
            if container.get(extra) is not None:
                target[extra] = container[extra]
        options = opt_object(item, "uploadOptions", prefix)
        if options is None:
            raise missing_property(f"{prefix}.uploadOptions")
        condition = opt_enum(options, "uploadCondition", _UPLOAD_CONDITIONS, f"{prefix}.uploadOptions")
        if condition is None:
            raise missing_property(f"{prefix}.uploadOptions.uploadCondition")
        result.append(
            {
                "filePattern": pattern,
                "destination": {"container": target},
                "uploadOptions": {"uploadCondition": condition},
            }
        )
    return result


def authentication_token_settings(value: Body | None, prefix: str = "") -> Body | None:
    """``authenticationTokenSettings``: ``{"access": ["job"]}`` (the task then gets a token for its job's operations,
    ``job_tokens``)."""
    if value is None:
        return None
    name = f"{prefix}.authenticationTokenSettings" if prefix else "authenticationTokenSettings"
    access = opt_list(value, "access", name)
    if access is None:
        return {}
    checked = []
    for index, item in enumerate(access):
        if not isinstance(item, str) or item.lower() not in _TOKEN_ACCESS:
            raise invalid_property(
                f"{name}.access[{index}]",
                item,
                f"The value must be one of: {', '.join(_TOKEN_ACCESS)}.",
            )
        checked.append(item.lower())
    return {"access": checked}


def job_max_task_retry_count(job: Body) -> int:
    """The job's ``constraints.maxTaskRetryCount`` (0 when absent): the default of its tasks."""
    constraints = job.get("constraints")
    if isinstance(constraints, dict) and isinstance(constraints.get("maxTaskRetryCount"), int):
        return int(constraints["maxTaskRetryCount"])
    return 0


def task_constraints(value: Body | None, job: Body, name: str = "constraints") -> Body:
    """Task constraints with Batch's defaults: no wall-clock limit, 7 days retention, the job's retry count."""
    value = value or {}
    wall = opt_duration(value, "maxWallClockTime", name)
    retention = opt_duration(value, "retentionTime", name)
    retries = opt_int(value, "maxTaskRetryCount", name, minimum=-1)
    return {
        "maxWallClockTime": wall[1] if wall else INFINITE_DURATION,
        "retentionTime": retention[1] if retention else DEFAULT_RETENTION_TIME,
        "maxTaskRetryCount": job_max_task_retry_count(job) if retries is None else retries,
    }


def _depends_on(value: Body | None, job: Body) -> Body | None:
    if value is None:
        return None
    if not job.get("usesTaskDependencies"):
        raise BatchError(
            400,
            "TaskDependenciesNotSpecifiedOnJob",
            "The job does not allow task dependencies: create it with usesTaskDependencies set to true.",
            {"JobId": str(job["id"])},
        )
    result: Body = {}
    ids = opt_list(value, "taskIds", "dependsOn")
    if ids is not None:
        result["taskIds"] = [check_id("dependsOn.taskIds", i) for i in ids]
    ranges = opt_list(value, "taskIdRanges", "dependsOn")
    if ranges is not None:
        checked = []
        for prefix, item in objects_in(ranges, "dependsOn.taskIdRanges"):
            start = opt_int(item, "start", prefix, minimum=0)
            end = opt_int(item, "end", prefix, minimum=0)
            if start is None:
                raise missing_property(f"{prefix}.start")
            if end is None:
                raise missing_property(f"{prefix}.end")
            if end < start:
                raise invalid_property(f"{prefix}.end", end, "The end of a range must not be below its start.")
            checked.append({"start": start, "end": end})
        result["taskIdRanges"] = checked
    return result


def _check_not_own_task(task_id: str, job: Body) -> None:
    """A task may not take the id of the job's preparation or release task (409, as Batch answers)."""
    for name, code, message in _OWN_TASK_CONFLICTS:
        own = job.get(name)
        if isinstance(own, dict) and str(own.get("id", "")).lower() == task_id.lower():
            raise conflict(code, message, {"TaskId": task_id})


def _behaviour(body: Body, job: Body) -> Body:
    """``exitConditions``, ``affinityInfo`` and ``authenticationTokenSettings`` as stored (those given)."""
    parts = {
        "exitConditions": validate_exit_conditions(opt_object(body, "exitConditions"), job),
        "affinityInfo": _affinity(opt_object(body, "affinityInfo")),
        "authenticationTokenSettings": authentication_token_settings(opt_object(body, "authenticationTokenSettings")),
    }
    return {name: value for name, value in parts.items() if value is not None}


def _affinity(value: Body | None) -> Body | None:
    """``affinityInfo``: ``affinityId`` (a node's, ``TVM:<node id>``) is required."""
    if value is None:
        return None
    return {"affinityId": req_str(value, "affinityId", "affinityInfo")}


def build_task(body: object, *, job: Body, base_url: str, context: ValidationContext | None = None) -> Body:
    """Validate an add-task body (``BatchTaskCreateOptions``) and build the stored task document.

    Args:
        body: the parsed JSON of one task.
        job: the job document (for the default retry count, dependencies and the URL).
        base_url: the emulator's base URL.
        context: receives the container registry password; the emulator's settings.

    Raises:
        BatchError: MissingRequiredProperty / InvalidPropertyValue / InvalidRequestBody / UnsupportedProperty /
            TaskDependenciesNotSpecifiedOnJob (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "TaskAddParameter")
    task_id = check_id("id", body.get("id"))
    _check_not_own_task(task_id, job)
    container = _container_settings(opt_object(body, "containerSettings"), str(job["id"]), task_id, context)
    command_line = container_command_line(body, container is not None)
    multi_instance = validate_multi_instance(body, job)
    behaviour = _behaviour(body, job)
    display_name = opt_str(body, "displayName", max_length=1024)
    resource_files = validate_resource_files(opt_list(body, "resourceFiles"))
    output_files = validate_output_files(opt_list(body, "outputFiles"))
    environment = validate_environment(opt_list(body, "environmentSettings"))
    constraints = task_constraints(opt_object(body, "constraints"), job)
    slots = opt_int(body, "requiredSlots", minimum=1)
    identity = validate_user_identity(opt_object(body, "userIdentity"))
    depends_on = _depends_on(opt_object(body, "dependsOn"), job)
    packages = validate_package_references(opt_list(body, "applicationPackageReferences"), _PACKAGES)

    now = now_iso()
    doc: Body = {"id": task_id}
    if display_name is not None:
        doc["displayName"] = display_name
    doc.update(
        {
            "url": f"{base_url}/jobs/{job['id']}/tasks/{task_id}",
            "eTag": "",
            "creationTime": now,
            "lastModified": now,
            "state": "active",
            "stateTransitionTime": now,
            "commandLine": command_line,
        }
    )
    if container is not None:
        doc["containerSettings"] = container
    if multi_instance is not None:
        doc["multiInstanceSettings"] = multi_instance
    doc.update(behaviour)
    _put_nonempty(doc, resourceFiles=resource_files, outputFiles=output_files, environmentSettings=environment)
    doc["userIdentity"] = identity or {"autoUser": {"scope": "task", "elevationLevel": "nonadmin"}}
    doc["constraints"] = constraints
    doc["requiredSlots"] = slots or 1
    doc["executionInfo"] = {"retryCount": 0, "requeueCount": 0}
    if depends_on is not None:
        doc["dependsOn"] = depends_on
    _put_nonempty(doc, applicationPackageReferences=packages)
    return doc


def _container_settings(
    value: Body | None, job_id: str, task_id: str, context: ValidationContext | None
) -> Body | None:
    if value is None:
        return None
    return validate_container_settings(
        value,
        "containerSettings",
        context=context or ValidationContext(),
        bind_roots=task_bind_roots(task_dir(job_id, task_id), job_id),
    )


def _put_nonempty(doc: Body, **values: list[Any] | None) -> None:
    """Set the given list properties that are present and not empty (Batch leaves out empty lists)."""
    for name, value in values.items():
        if value:
            doc[name] = value


def check_job_accepts_tasks(job: Body) -> None:
    """Refuse new tasks for a job that is completed, terminating or being deleted (409)."""
    check_job_updatable(job)


def collection_bodies(body: object) -> list[object]:
    """The task bodies of an add-task-collection request (``{"value": [...]}``), at most 100.

    Raises:
        BatchError: MissingRequiredProperty / InvalidRequestBody, or InvalidPropertyValue for more than 100 tasks.
    """
    body = req_object(body)
    reject_unknown_properties(body, "TaskAddCollectionParameter")
    value = opt_list(body, "value")
    if value is None:
        raise missing_property("value")
    if len(value) > MAX_TASKS_PER_COLLECTION:
        raise invalid_property(
            "value",
            f"{len(value)} tasks",
            f"A task collection may contain at most {MAX_TASKS_PER_COLLECTION} tasks.",
        )
    return value


def apply_task_update(doc: Body, body: object, *, job: Body) -> Body:
    """Apply an update (PUT, a ``BatchTask`` body): only ``constraints`` is updatable; when absent the task gets
    the default constraints. Other properties in the body are ignored.

    Raises:
        BatchError: TaskCompleted (409), validation errors (400).
    """
    body = req_object(body)
    check_task_not_completed(doc)
    updated = dict(doc)
    updated["constraints"] = task_constraints(opt_object(body, "constraints"), job)
    return updated
