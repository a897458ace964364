"""Job documents: validate the REST bodies of add / patch (PATCH) / update (PUT) and build what GET returns."""

from __future__ import annotations

from batchbox.emulator.clock import INFINITE_DURATION, now_iso
from batchbox.emulator.errors import BatchError, invalid_property, missing_property
from batchbox.emulator.resources.auto_pools import validate_auto_pool
from batchbox.emulator.resources.common import (
    Body,
    check_id,
    opt_bool,
    opt_duration,
    opt_enum,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    reject_unknown_properties,
    req_object,
    req_str,
    unsupported_property,
    validate_environment,
    validate_metadata,
)
from batchbox.emulator.resources.containers import ValidationContext
from batchbox.emulator.resources.guards import check_job_updatable
from batchbox.emulator.resources.job_tasks import (
    OwnTaskContext,
    validate_job_manager,
    validate_job_preparation,
    validate_job_release,
)

__all__ = [
    "apply_job_patch",
    "apply_job_replace",
    "build_job",
    "job_document",
]

_ALL_TASKS_COMPLETE = ("noaction", "terminatejob")
_TASK_FAILURE = ("noaction", "performexitoptionsjobaction")


def _priority(body: Body) -> int | None:
    value = opt_int(body, "priority")
    if value is not None and not -1000 <= value <= 1000:
        raise BatchError(
            400,
            "OutOfRangePriority",
            "The priority must be between -1000 and 1000.",
            {"PropertyName": "priority", "PropertyValue": str(value)},
        )
    return value


def _max_parallel(body: Body) -> int | None:
    value = opt_int(body, "maxParallelTasks")
    if value is not None and value != -1 and value < 1:
        raise invalid_property("maxParallelTasks", value, "The value must be -1 or greater than 0.")
    return value


def _constraints(value: Body | None) -> Body:
    """Job constraints with Batch's defaults: no wall-clock limit, no retries."""
    if value is None:
        return {"maxWallClockTime": INFINITE_DURATION, "maxTaskRetryCount": 0}
    wall = opt_duration(value, "maxWallClockTime", "constraints")
    retries = opt_int(value, "maxTaskRetryCount", "constraints", minimum=-1)
    return {
        "maxWallClockTime": wall[1] if wall else INFINITE_DURATION,
        "maxTaskRetryCount": 0 if retries is None else retries,
    }


def _pool_info(value: Body | None, *, on_schedule: bool = False, context: ValidationContext | None = None) -> Body:
    """``poolInfo``: a pool id, or an auto pool specification (``resources/auto_pools.py``), not both."""
    if value is None:
        raise missing_property("poolInfo")
    auto = opt_object(value, "autoPoolSpecification", "poolInfo")
    if auto is not None:
        if value.get("poolId") is not None:
            raise invalid_property("poolInfo", "poolId", "Specify either poolId or autoPoolSpecification, not both.")
        spec = validate_auto_pool(auto, on_schedule=on_schedule, context=context or ValidationContext(stored=True))
        return {"autoPoolSpecification": spec}
    pool_id = req_str(value, "poolId", "poolInfo")
    check_id("poolInfo.poolId", pool_id)
    return {"poolId": pool_id}


def build_job(body: object, *, base_url: str, context: ValidationContext | None = None) -> Body:
    """Validate an add-job body (``BatchJobCreateOptions``) and build the stored job document.

    Args:
        body: the parsed JSON body.
        base_url: the emulator's base URL.
        context: receives the registry passwords of the job's own tasks' containers; the emulator's settings.

    Raises:
        BatchError: MissingRequiredProperty / InvalidPropertyValue / InvalidRequestBody / OutOfRangePriority /
            UnsupportedProperty (what the emulator does not emulate).
    """
    body = req_object(body)
    reject_unknown_properties(body, "JobAddParameter")
    return job_document(body, check_id("id", body.get("id")), base_url=base_url, context=context)


def job_document(
    body: Body,
    job_id: str,
    *,
    base_url: str,
    context: ValidationContext | None = None,
    on_schedule: bool = False,
) -> Body:
    """The stored job document of a validated-by-name job body (an add-job body or a schedule's
    ``jobSpecification``: ``on_schedule``) with the id ``job_id``.

    Raises:
        BatchError: as :func:`build_job`.
    """
    pool_info = _pool_info(
        opt_object(body, "poolInfo"), on_schedule=on_schedule, context=context or ValidationContext()
    )
    display_name = opt_str(body, "displayName", max_length=1024)
    uses_dependencies = opt_bool(body, "usesTaskDependencies")
    priority = _priority(body)
    preemption = opt_bool(body, "allowTaskPreemption")
    max_parallel = _max_parallel(body)
    constraints = _constraints(opt_object(body, "constraints"))
    own = OwnTaskContext(job_id, context or ValidationContext())
    manager = validate_job_manager(opt_object(body, "jobManagerTask"), constraints, own)
    preparation = validate_job_preparation(opt_object(body, "jobPreparationTask"), own)
    release = validate_job_release(opt_object(body, "jobReleaseTask"), preparation, own)
    _check_own_task_ids(manager, preparation, release)
    environment = validate_environment(opt_list(body, "commonEnvironmentSettings"), "commonEnvironmentSettings")
    on_complete = opt_enum(body, "onAllTasksComplete", _ALL_TASKS_COMPLETE)
    on_failure = opt_enum(body, "onTaskFailure", _TASK_FAILURE)
    _refuse_network(body)
    metadata = validate_metadata(opt_list(body, "metadata"))

    now = now_iso()
    doc: Body = {"id": job_id}
    if display_name is not None:
        doc["displayName"] = display_name
    doc.update(
        {
            "usesTaskDependencies": bool(uses_dependencies),
            "url": f"{base_url}/jobs/{job_id}",
            "eTag": "",
            "lastModified": now,
            "creationTime": now,
            "state": "active",
            "stateTransitionTime": now,
            "priority": priority or 0,
            "maxParallelTasks": -1 if max_parallel is None else max_parallel,
            "allowTaskPreemption": bool(preemption),
            "constraints": constraints,
        }
    )
    for name, task in (("jobManagerTask", manager), ("jobPreparationTask", preparation), ("jobReleaseTask", release)):
        if task is not None:
            doc[name] = task
    if environment:
        doc["commonEnvironmentSettings"] = environment
    doc["poolInfo"] = pool_info
    doc["executionInfo"] = {"startTime": now}
    if "poolId" in pool_info:  # an auto pool's id is set once the pool is created
        doc["executionInfo"]["poolId"] = pool_info["poolId"]
    doc["onAllTasksComplete"] = on_complete or "noaction"
    doc["onTaskFailure"] = on_failure or "noaction"
    if metadata:
        doc["metadata"] = metadata
    return doc


def _refuse_network(body: Body) -> None:
    if body.get("networkConfiguration") is not None:
        raise unsupported_property(
            "networkConfiguration",
            "The local batchbox emulator runs tasks on the machine's loopback network: a job's subnet is not emulated.",
        )


def _check_own_task_ids(manager: Body | None, preparation: Body | None, release: Body | None) -> None:
    """The job manager becomes a task of the job: its id may not be the preparation's or the release's."""
    if manager is None:
        return
    for name, other in (("jobPreparationTask", preparation), ("jobReleaseTask", release)):
        if other is not None and str(other["id"]).lower() == str(manager["id"]).lower():
            raise invalid_property(f"{name}.id", other["id"], "The id is the job manager task's id.")


def _change_pool(doc: Body, updated: Body, pool_info: Body) -> None:
    if "autoPoolSpecification" in pool_info:
        if pool_info == doc.get("poolInfo"):
            return
        raise unsupported_property(
            "poolInfo.autoPoolSpecification",
            "The local batchbox emulator does not move an existing job to a new or changed auto pool.",
        )
    if pool_info["poolId"].lower() == str(doc["poolInfo"].get("poolId", "")).lower():
        return
    if doc.get("state") != "disabled":
        raise BatchError(
            409,
            "OperationInvalidForCurrentState",
            "The specified operation is not valid for the current state of the resource.",
            {
                "JobId": str(doc["id"]),
                "PropertyName": "poolInfo",
                "Reason": "The pool can change only while the job is disabled.",
            },
        )
    updated["poolInfo"] = pool_info
    updated["executionInfo"] = {**doc.get("executionInfo", {}), "poolId": pool_info["poolId"]}


def _on_schedule(doc: Body) -> bool:
    """Whether a job was created by a job schedule (its id is ``{scheduleId}:job-{n}``; clients cannot send ``:``)."""
    return ":" in str(doc["id"])


def _set_on_all_complete(doc: Body, updated: Body, value: str) -> None:
    if doc.get("onAllTasksComplete") == "terminatejob" and value == "noaction":
        raise invalid_property(
            "onAllTasksComplete", value, "onAllTasksComplete cannot be changed from terminatejob to noaction."
        )
    updated["onAllTasksComplete"] = value


def apply_job_patch(doc: Body, body: object) -> Body:
    """Apply a PATCH (``BatchJobUpdateOptions``): only the properties present change.

    Raises:
        BatchError: JobBeingDeleted / JobBeingTerminated / JobCompleted / OperationInvalidForCurrentState (409),
            validation errors (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "JobPatchParameter")
    check_job_updatable(doc)
    updated = dict(doc)
    priority = _priority(body)
    if priority is not None:
        updated["priority"] = priority
    preemption = opt_bool(body, "allowTaskPreemption")
    if preemption is not None:
        updated["allowTaskPreemption"] = preemption
    max_parallel = _max_parallel(body)
    if max_parallel is not None:
        updated["maxParallelTasks"] = max_parallel
    constraints = opt_object(body, "constraints")
    if constraints is not None:
        updated["constraints"] = _constraints(constraints)
    pool_info = opt_object(body, "poolInfo")
    if pool_info is not None:
        _change_pool(doc, updated, _pool_info(pool_info, on_schedule=_on_schedule(doc)))
    on_complete = opt_enum(body, "onAllTasksComplete", _ALL_TASKS_COMPLETE)
    if on_complete is not None:
        _set_on_all_complete(doc, updated, on_complete)
    metadata = validate_metadata(opt_list(body, "metadata"))
    if metadata is not None:
        if metadata:
            updated["metadata"] = metadata
        else:
            updated.pop("metadata", None)
    _refuse_network(body)
    return updated


def apply_job_replace(doc: Body, body: object) -> Body:
    """Apply an update (PUT, a ``BatchJob`` body): every updatable property is replaced; absent ones get their
    defaults. Read-only properties in the body (id, url, eTag, state, ...) are ignored.

    Raises:
        BatchError: JobBeingDeleted / JobBeingTerminated / JobCompleted / OperationInvalidForCurrentState (409),
            validation errors (400).
    """
    body = req_object(body)
    check_job_updatable(doc)
    updated = dict(doc)
    priority = _priority(body)
    updated["priority"] = priority or 0
    preemption = opt_bool(body, "allowTaskPreemption")
    updated["allowTaskPreemption"] = bool(preemption)
    max_parallel = _max_parallel(body)
    updated["maxParallelTasks"] = -1 if max_parallel is None else max_parallel
    updated["constraints"] = _constraints(opt_object(body, "constraints"))
    _change_pool(doc, updated, _pool_info(opt_object(body, "poolInfo"), on_schedule=_on_schedule(doc)))
    on_complete = opt_enum(body, "onAllTasksComplete", _ALL_TASKS_COMPLETE)
    _set_on_all_complete(doc, updated, on_complete or "noaction")
    metadata = validate_metadata(opt_list(body, "metadata"))
    if metadata:
        updated["metadata"] = metadata
    else:
        updated.pop("metadata", None)
    return updated
