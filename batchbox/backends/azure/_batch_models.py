"""Mapping between batchbox's core models and the azure-batch 15.x SDK models.

Core -> SDK builds the ``*CreateOptions`` bodies whose ``as_dict()`` is the REST JSON the service receives
(camelCase, durations as ISO 8601, enums as Batch strings). SDK -> core reads the response models, which may be
partial (``$select``) and may carry enum values the SDK did not recognise (then they are plain strings, in
whatever case the service used).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any, TypeVar

from azure.batch import models as batch_models

from batchbox.core.errors import BatchboxError
from batchbox.core.models import (
    ComputeNodeInfo,
    EnvironmentSetting,
    FailureInfo,
    JobSpec,
    OutputFile,
    PoolInfo,
    PoolSpec,
    ResizeError,
    ResourceFile,
    StartTask,
    TaskConstraints,
    TaskCounts,
    TaskInfo,
    TaskSpec,
)
from batchbox.core.rest_json import output_file_json, resource_file_json
from batchbox.core.states import (
    AllocationState,
    ComputeNodeState,
    ElevationLevel,
    JobState,
    PoolState,
    TaskExecutionResult,
    TaskState,
)

__all__ = [
    "NODE_SELECT",
    "POOL_SELECT",
    "TASK_SELECT",
    "enum_name",
    "from_node",
    "from_pool",
    "from_task",
    "from_task_counts",
    "job_state",
    "pool_state",
    "task_create_json",
    "task_filter",
    "to_environment",
    "to_job_create",
    "to_output_file",
    "to_pool_create",
    "to_resource_file",
    "to_start_task",
    "to_task_constraints",
    "to_task_create",
    "to_user_identity",
]

# The REST properties each core view needs, for ``$select`` (top-level names only, as the service requires).
TASK_SELECT = ["id", "state", "executionInfo", "nodeInfo"]
POOL_SELECT = [
    "id",
    "vmSize",
    "state",
    "allocationState",
    "targetDedicatedNodes",
    "currentDedicatedNodes",
    "taskSlotsPerNode",
    "resizeErrors",
]
NODE_SELECT = ["id", "state", "startTaskInfo", "runningTasksCount", "errors"]

_E = TypeVar("_E", bound=Enum)


# -- core -> SDK ---------------------------------------------------------------------------------------------


def to_environment(settings: Iterable[EnvironmentSetting]) -> list[batch_models.EnvironmentSetting] | None:
    """Environment settings, or None when there are none (the property is then left out)."""
    mapped = [batch_models.EnvironmentSetting(name=item.name, value=item.value) for item in settings]
    return mapped or None


def to_resource_file(item: ResourceFile) -> batch_models.ResourceFile:
    return batch_models.ResourceFile(
        http_url=item.http_url,
        storage_container_url=item.storage_container_url,
        blob_prefix=item.blob_prefix,
        file_path=item.file_path,
        file_mode=item.file_mode,
    )


def _resource_files(items: Iterable[ResourceFile]) -> list[batch_models.ResourceFile] | None:
    mapped = [to_resource_file(item) for item in items]
    return mapped or None


def to_output_file(item: OutputFile) -> batch_models.OutputFile:
    return batch_models.OutputFile(
        file_pattern=item.file_pattern,
        destination=batch_models.OutputFileDestination(
            container=batch_models.OutputFileBlobContainerDestination(container_url=item.container_url, path=item.path)
        ),
        upload_options=batch_models.OutputFileUploadConfiguration(
            upload_condition=batch_models.OutputFileUploadCondition(item.upload_condition.value)
        ),
    )


def to_task_constraints(constraints: TaskConstraints) -> batch_models.BatchTaskConstraints | None:
    """Task constraints, or None when nothing is set (the service defaults apply)."""
    if (
        constraints.max_wall_clock_time is None
        and constraints.retention_time is None
        and constraints.max_task_retry_count is None
    ):
        return None
    return batch_models.BatchTaskConstraints(
        max_wall_clock_time=constraints.max_wall_clock_time,
        retention_time=constraints.retention_time,
        max_task_retry_count=constraints.max_task_retry_count,
    )


def to_user_identity(elevation: ElevationLevel) -> batch_models.UserIdentity:
    """The pool-scoped auto user with the given elevation (what Batch uses when no identity is given)."""
    return batch_models.UserIdentity(
        auto_user=batch_models.AutoUserSpecification(
            scope=batch_models.AutoUserScope.POOL,
            elevation_level=batch_models.ElevationLevel(elevation.value),
        )
    )


def to_start_task(start_task: StartTask) -> batch_models.BatchStartTask:
    return batch_models.BatchStartTask(
        command_line=start_task.command_line,
        resource_files=_resource_files(start_task.resource_files),
        environment_settings=to_environment(start_task.environment),
        user_identity=to_user_identity(start_task.elevation),
        max_task_retry_count=start_task.max_task_retry_count,
        wait_for_success=start_task.wait_for_success,
    )


def to_pool_create(spec: PoolSpec) -> batch_models.BatchPoolCreateOptions:
    image = spec.image
    metadata = [batch_models.BatchMetadataItem(name=name, value=value) for name, value in spec.metadata]
    return batch_models.BatchPoolCreateOptions(
        id=spec.id,
        vm_size=spec.vm_size,
        virtual_machine_configuration=batch_models.VirtualMachineConfiguration(
            image_reference=batch_models.BatchVmImageReference(
                publisher=image.publisher, offer=image.offer, sku=image.sku, version=image.version
            ),
            node_agent_sku_id=image.node_agent_sku_id,
        ),
        target_dedicated_nodes=spec.dedicated_nodes,
        target_low_priority_nodes=spec.low_priority_nodes,
        task_slots_per_node=spec.task_slots_per_node,
        task_scheduling_policy=batch_models.BatchTaskSchedulingPolicy(
            node_fill_type=batch_models.BatchNodeFillType(spec.node_fill_type.value)
        ),
        start_task=to_start_task(spec.start_task) if spec.start_task is not None else None,
        metadata=metadata or None,
    )


def to_job_create(spec: JobSpec) -> batch_models.BatchJobCreateOptions:
    """The job body."""
    constraints = spec.constraints
    job_constraints = None
    if constraints.max_wall_clock_time is not None or constraints.max_task_retry_count is not None:
        job_constraints = batch_models.BatchJobConstraints(
            max_wall_clock_time=constraints.max_wall_clock_time,
            max_task_retry_count=constraints.max_task_retry_count,
        )
    return batch_models.BatchJobCreateOptions(
        id=spec.id,
        display_name=spec.display_name,
        priority=spec.priority,
        constraints=job_constraints,
        common_environment_settings=to_environment(spec.environment),
        pool_info=batch_models.BatchPoolInfo(pool_id=spec.pool_id),
        all_tasks_complete_mode=batch_models.BatchAllTasksCompleteMode(spec.on_all_tasks_complete.value),
    )


def task_create_json(spec: TaskSpec) -> dict[str, Any]:
    """The REST JSON of ``spec``'s task body (``TaskAddParameter``): only dicts, lists, strings and numbers.

    Built directly rather than through the SDK's models: keyword construction of ``BatchTaskCreateOptions`` and
    its nested models costs several times more CPU, which dominated the client's cost of submitting thousands of
    tasks. Every call returns new objects, so a body may be changed without touching another.
    """
    body: dict[str, Any] = {"id": spec.id, "commandLine": spec.command_line}
    if spec.display_name is not None:
        body["displayName"] = spec.display_name
    if spec.resource_files:
        body["resourceFiles"] = [resource_file_json(item) for item in spec.resource_files]
    if spec.output_files:
        body["outputFiles"] = [output_file_json(item) for item in spec.output_files]
    if spec.environment:
        body["environmentSettings"] = [{"name": item.name, "value": item.value} for item in spec.environment]
    constraints = to_task_constraints(spec.constraints)
    if constraints is not None:
        body["constraints"] = constraints.as_dict()
    body["requiredSlots"] = spec.required_slots
    body["userIdentity"] = {"autoUser": {"scope": "pool", "elevationLevel": spec.elevation.value}}
    return body


def to_task_create(spec: TaskSpec) -> batch_models.BatchTaskCreateOptions:
    """The SDK's task body for ``spec``: the JSON of :func:`task_create_json`, filled in through the model's
    mapping interface (which does not convert it), so its nested parts are REST JSON dicts, not SDK models."""
    task = batch_models.BatchTaskCreateOptions(id=spec.id, command_line=spec.command_line)
    task.update(task_create_json(spec))
    return task


# -- SDK -> core ---------------------------------------------------------------------------------------------


def enum_name(value: object) -> str | None:
    """The Batch string of an SDK enum or raw string, lower-cased (the service is not consistent about case)."""
    if value is None:
        return None
    raw = value.value if isinstance(value, Enum) else value
    return str(raw).lower()


def _core_enum(enum_type: type[_E], value: object, what: str) -> _E:
    name = enum_name(value)
    try:
        return enum_type(name)
    except ValueError:
        raise BatchboxError(f"the Batch service reported an unknown {what} {name!r}") from None


def _failure(info: batch_models.BatchTaskFailureInfo | None) -> FailureInfo | None:
    if info is None:
        return None
    return FailureInfo(category=enum_name(info.category) or "", code=info.code, message=info.message)


def from_task(task: batch_models.BatchTask) -> TaskInfo:
    """A core TaskInfo from a (possibly ``$select``-ed) task."""
    execution = task.execution_info
    node = task.node_info
    result = enum_name(execution.result) if execution is not None else None
    return TaskInfo(
        id=task.id,
        state=_core_enum(TaskState, task.state, "task state"),
        exit_code=execution.exit_code if execution is not None else None,
        result=_core_enum(TaskExecutionResult, result, "task result") if result else None,
        failure=_failure(execution.failure_info) if execution is not None else None,
        retry_count=(execution.retry_count or 0) if execution is not None else 0,
        requeue_count=(execution.requeue_count or 0) if execution is not None else 0,
        node_id=node.node_id if node is not None else None,
        start_time=execution.start_time if execution is not None else None,
        end_time=execution.end_time if execution is not None else None,
    )


def pool_state(pool: batch_models.BatchPool) -> PoolState:
    """The state of a (possibly ``$select``-ed) pool."""
    return _core_enum(PoolState, pool.state, "pool state")


def from_pool(pool: batch_models.BatchPool) -> PoolInfo:
    return PoolInfo(
        id=pool.id,
        vm_size=pool.vm_size or "",
        state=pool_state(pool),
        allocation_state=_core_enum(AllocationState, pool.allocation_state, "allocation state"),
        target_dedicated_nodes=pool.target_dedicated_nodes or 0,
        current_dedicated_nodes=pool.current_dedicated_nodes or 0,
        task_slots_per_node=pool.task_slots_per_node or 1,
        resize_errors=tuple(_resize_error(error) for error in pool.resize_errors or ()),
    )


def _resize_error(error: batch_models.ResizeError) -> ResizeError:
    values = tuple((item.name or "", item.value or "") for item in error.error_values or () if item.name)
    return ResizeError(code=error.code or "Unknown", message=error.message or "", values=values)


def _node_error(error: batch_models.BatchNodeError) -> str:
    return ": ".join(part for part in (error.code, error.message) if part) or "unknown error"


def _start_task_failure(node: batch_models.BatchNode, state: ComputeNodeState) -> FailureInfo | None:
    info = node.start_task_info
    failure = _failure(info.failure_info) if info is not None else None
    if failure is not None or state is not ComputeNodeState.START_TASK_FAILED:
        return failure
    exit_code = info.exit_code if info is not None else None
    if exit_code is None:
        return FailureInfo(category="usererror", code=None, message="the start task failed")
    return FailureInfo(
        category="usererror", code="FailureExitCode", message=f"the start task exited with code {exit_code}"
    )


def from_node(node: batch_models.BatchNode) -> ComputeNodeInfo:
    """A core ComputeNodeInfo; a state the core does not know becomes ``unknown``."""
    try:
        state = ComputeNodeState(enum_name(node.state))
    except ValueError:
        state = ComputeNodeState.UNKNOWN
    return ComputeNodeInfo(
        id=node.id,
        state=state,
        start_task_failure=_start_task_failure(node, state),
        running_tasks=node.running_tasks_count or 0,
        errors=tuple(_node_error(error) for error in node.errors or ()),
    )


def from_task_counts(result: batch_models.BatchTaskCountsResult) -> TaskCounts:
    counts = result.task_counts
    return TaskCounts(
        active=counts.active or 0,
        running=counts.running or 0,
        completed=counts.completed or 0,
        succeeded=counts.succeeded or 0,
        failed=counts.failed or 0,
    )


def job_state(job: batch_models.BatchJob) -> JobState:
    return _core_enum(JobState, job.state, "job state")


def task_filter(state: TaskState | None, failed_only: bool) -> str | None:
    """The OData ``$filter`` of a task listing; ``failed_only`` means completed with result failure."""
    clauses: list[str] = []
    if state is not None:
        clauses.append(f"state eq '{state.value}'")
    if failed_only:
        if state is None:
            clauses.append(f"state eq '{TaskState.COMPLETED.value}'")
        clauses.append(f"executionInfo/result eq '{TaskExecutionResult.FAILURE.value}'")
    return " and ".join(clauses) or None
