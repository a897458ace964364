"""A job's own tasks: ``jobManagerTask``, ``jobPreparationTask`` and ``jobReleaseTask`` (validation, stored shape).

Stored shapes and defaults are the ones Batch returns (job manager: ``runExclusive``, ``allowLowPriorityNode`` and
``killJobOnCompletion`` true, the job's retry count; preparation: id ``jobpreparation``, ``waitForSuccess`` and
``rerunOnNodeRebootAfterSuccess`` true, no retries; release: id ``jobrelease``, ``maxWallClockTime`` at most and by
default 15 minutes). The job manager also becomes a task of its job (:func:`manager_task_body`).

``containerSettings`` are validated as a task's (the registry password goes to the validation context's secrets) and
run the same way; the job manager's ``applicationPackageReferences`` are installed as a task's. A job manager's
``authenticationTokenSettings`` give it ``AZ_BATCH_AUTHENTICATION_TOKEN``, as any task's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from batchbox.emulator.clock import INFINITE_DURATION
from batchbox.emulator.errors import invalid_property, missing_property
from batchbox.emulator.node_layout import task_bind_roots, task_dir
from batchbox.emulator.resources.common import (
    Body,
    check_id,
    invalid_body,
    opt_bool,
    opt_duration,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    validate_environment,
    validate_resource_files,
    validate_user_identity,
)
from batchbox.emulator.resources.containers import ValidationContext, command_line, validate_container_settings
from batchbox.emulator.resources.node_features import validate_package_references
from batchbox.emulator.resources.tasks import (
    DEFAULT_RETENTION_TIME,
    authentication_token_settings,
    task_constraints,
    validate_output_files,
)

__all__ = [
    "DEFAULT_PREPARATION_ID",
    "DEFAULT_RELEASE_ID",
    "MAX_RELEASE_WALL_CLOCK",
    "OwnTaskContext",
    "manager_task_body",
    "validate_job_manager",
    "validate_job_preparation",
    "validate_job_release",
]

DEFAULT_PREPARATION_ID = "jobpreparation"
DEFAULT_RELEASE_ID = "jobrelease"
MAX_RELEASE_WALL_CLOCK = timedelta(minutes=15)
_MANAGER_ONLY = ("runExclusive", "allowLowPriorityNode", "killJobOnCompletion")
_POOL_USER: Body = {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}
_PACKAGES = "applicationPackageReferences"
_TYPE_NAMES = {"jobPreparationTask": "JobPreparationTask", "jobReleaseTask": "JobReleaseTask"}


@dataclass(frozen=True)
class OwnTaskContext:
    """What validating a job's own tasks needs: the job's id (the task directories container mounts may use) and
    the validation context (registry passwords, the emulator's settings)."""

    job_id: str
    validation: ValidationContext


def _no_packages(value: Body, name: str) -> None:
    """Batch's preparation and release tasks have no application packages (only the job manager has them)."""
    if value.get(_PACKAGES) is not None:
        raise invalid_body(
            f"{name}.{_PACKAGES}",
            f"The property '{_PACKAGES}' does not exist on type "
            f"'Microsoft.Azure.Batch.Protocol.Entities.{_TYPE_NAMES[name]}'. Make sure to only use property names "
            "that are defined by the type.",
        )


def _common(value: Body, name: str, task_id: str, context: OwnTaskContext) -> Body:
    """``id``, ``commandLine``, ``containerSettings``, resource files and environment, as all three have them."""
    container = opt_object(value, "containerSettings", name)
    task: Body = {"id": task_id, "commandLine": command_line(value, container is not None, name)}
    if container is not None:
        task["containerSettings"] = validate_container_settings(
            container,
            f"{name}.containerSettings",
            context=context.validation,
            bind_roots=task_bind_roots(task_dir(context.job_id, task_id), context.job_id),
        )
    files = validate_resource_files(opt_list(value, "resourceFiles", name), f"{name}.resourceFiles")
    if files:
        task["resourceFiles"] = files
    env = validate_environment(opt_list(value, "environmentSettings", name), f"{name}.environmentSettings")
    if env:
        task["environmentSettings"] = env
    return task


def _identity(value: Body, name: str) -> Body:
    return validate_user_identity(opt_object(value, "userIdentity", name), f"{name}.userIdentity") or dict(_POOL_USER)


def _id(value: Body, name: str, default: str | None) -> str:
    raw = value.get("id")
    if raw is None and default is not None:
        return default
    return check_id(f"{name}.id", raw)


def validate_job_manager(value: Body | None, job_constraints: Body, context: OwnTaskContext) -> Body | None:
    """``jobManagerTask`` as stored in the job (``None`` when absent).

    Args:
        value: the property's JSON object.
        job_constraints: the job's validated constraints (its ``maxTaskRetryCount`` is the default).
        context: the job's id and the validation context.
    """
    if value is None:
        return None
    name = "jobManagerTask"
    task = _common(value, name, _id(value, name, None), context)
    display = opt_str(value, "displayName", name, max_length=1024)
    if display is not None:
        task["displayName"] = display
    outputs = validate_output_files(opt_list(value, "outputFiles", name), f"{name}.outputFiles")
    if outputs:
        task["outputFiles"] = outputs
    task["constraints"] = task_constraints(
        opt_object(value, "constraints", name), {"constraints": job_constraints}, f"{name}.constraints"
    )
    task["requiredSlots"] = opt_int(value, "requiredSlots", name, minimum=1) or 1
    task["userIdentity"] = _identity(value, name)
    token = authentication_token_settings(opt_object(value, "authenticationTokenSettings", name), name)
    if token is not None:
        task["authenticationTokenSettings"] = token
    packages = validate_package_references(opt_list(value, _PACKAGES, name), f"{name}.{_PACKAGES}")
    if packages:
        task[_PACKAGES] = packages
    for flag in ("runExclusive", "allowLowPriorityNode", "killJobOnCompletion"):
        given = opt_bool(value, flag, name)
        task[flag] = True if given is None else given
    return task


def validate_job_preparation(value: Body | None, context: OwnTaskContext) -> Body | None:
    """``jobPreparationTask`` as stored in the job (``None`` when absent)."""
    if value is None:
        return None
    name = "jobPreparationTask"
    _no_packages(value, name)
    task = _common(value, name, _id(value, name, DEFAULT_PREPARATION_ID), context)
    constraints = task_constraints(opt_object(value, "constraints", name), {}, f"{name}.constraints")
    task["constraints"] = constraints
    task["userIdentity"] = _identity(value, name)
    for flag in ("waitForSuccess", "rerunOnNodeRebootAfterSuccess"):
        given = opt_bool(value, flag, name)
        task[flag] = True if given is None else given
    return task


def validate_job_release(value: Body | None, preparation: Body | None, context: OwnTaskContext) -> Body | None:
    """``jobReleaseTask`` as stored in the job (``None`` when absent); it needs a preparation task."""
    if value is None:
        return None
    name = "jobReleaseTask"
    if preparation is None:
        raise missing_property("jobPreparationTask")
    _no_packages(value, name)
    task = _common(value, name, _id(value, name, DEFAULT_RELEASE_ID), context)
    if task["id"].lower() == str(preparation["id"]).lower():
        raise invalid_property(f"{name}.id", task["id"], "The release task's id must differ from the preparation's.")
    wall = opt_duration(value, "maxWallClockTime", name)
    if wall is not None and wall[0] > MAX_RELEASE_WALL_CLOCK:
        raise invalid_property(f"{name}.maxWallClockTime", wall[1], "A job release task may run at most 15 minutes.")
    retention = opt_duration(value, "retentionTime", name)
    task["maxWallClockTime"] = wall[1] if wall else "PT15M"
    task["retentionTime"] = retention[1] if retention else DEFAULT_RETENTION_TIME
    task["userIdentity"] = _identity(value, name)
    return task


def manager_task_body(manager: Body) -> dict[str, Any]:
    """The add-task body of the task a job manager becomes (its job-manager-only flags left out)."""
    body = {k: v for k, v in manager.items() if k not in _MANAGER_ONLY}
    constraints = dict(body.get("constraints") or {})
    constraints.setdefault("maxWallClockTime", INFINITE_DURATION)
    body["constraints"] = constraints
    return body
