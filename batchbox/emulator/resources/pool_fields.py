"""The parts of a pool body that adding a pool and changing one share: the start task, the VM configuration, the
scheduling policy, the node targets within the emulator's cap, and the properties copied through as given."""

from __future__ import annotations

from batchbox.emulator.errors import invalid_property, missing_property
from batchbox.emulator.node_layout import START_TASK_DIR, task_bind_roots
from batchbox.emulator.resources.common import (
    Body,
    opt_bool,
    opt_enum,
    opt_int,
    opt_list,
    opt_object,
    validate_environment,
    validate_resource_files,
    validate_user_identity,
)
from batchbox.emulator.resources.containers import ValidationContext, command_line, validate_container_settings
from batchbox.emulator.resources.node_features import validate_vm_settings
from batchbox.emulator.resources.pool_properties import passthrough_object, validate_vm_configuration

__all__ = [
    "DEFAULT_MAX_NODES",
    "DEFAULT_RESIZE_TIMEOUT",
    "MAX_SLOTS",
    "check_targets",
    "copy_passthrough",
    "validate_pool_vm_configuration",
    "validate_scheduling_policy",
    "validate_start_task",
]

DEFAULT_MAX_NODES = 32
"""The most nodes (dedicated + low-priority) one pool of the local emulator may target."""

DEFAULT_RESIZE_TIMEOUT = "PT15M"
"""A pool's ``resizeTimeout`` when the add or resize body gives none."""
MAX_SLOTS = 256
"""The most task slots (``taskSlotsPerNode``) a node may have."""
_FILL_TYPES = ("spread", "pack")

# Properties copied through as given (validated only as JSON objects / lists): the emulator does not act on them.
_PASSTHROUGH_OBJECTS = ("networkConfiguration", "upgradePolicy")


def validate_start_task(
    value: Body | None, name: str = "startTask", context: ValidationContext | None = None
) -> Body | None:
    """A pool's StartTask: ``commandLine`` required (may be empty in a container); retries >= -1;
    ``waitForSuccess`` defaults to true; ``containerSettings`` checked (its registry password goes to ``context``)."""
    if value is None:
        return None
    container = opt_object(value, "containerSettings", name)
    task: Body = {"commandLine": command_line(value, container is not None, name)}
    if container is not None:
        task["containerSettings"] = validate_container_settings(
            container,
            f"{name}.containerSettings",
            context=context or ValidationContext(),
            bind_roots=task_bind_roots(START_TASK_DIR, None),
        )
    files = validate_resource_files(opt_list(value, "resourceFiles", name), f"{name}.resourceFiles")
    if files is not None:
        task["resourceFiles"] = files
    env = validate_environment(opt_list(value, "environmentSettings", name), f"{name}.environmentSettings")
    if env is not None:
        task["environmentSettings"] = env
    identity = opt_object(value, "userIdentity", name)
    task["userIdentity"] = validate_user_identity(identity, f"{name}.userIdentity") or {
        "autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}
    }
    retries = opt_int(value, "maxTaskRetryCount", name, minimum=-1)
    task["maxTaskRetryCount"] = 0 if retries is None else retries
    wait = opt_bool(value, "waitForSuccess", name)
    task["waitForSuccess"] = True if wait is None else wait
    return task


def validate_pool_vm_configuration(value: Body | None, context: ValidationContext) -> Body:
    """A pool's ``virtualMachineConfiguration`` as Batch returns it, its container configuration validated (passwords
    go to ``context``) and its other VM settings checked."""
    config = validate_vm_configuration(value)
    validate_vm_settings(config, context)
    return config


def validate_scheduling_policy(value: Body | None) -> Body:
    """A pool's ``taskSchedulingPolicy``: ``nodeFillType`` required when the policy is given; absent is ``spread``."""
    if value is None:
        return {"nodeFillType": "spread"}
    fill = opt_enum(value, "nodeFillType", _FILL_TYPES, "taskSchedulingPolicy")
    if fill is None:
        raise missing_property("taskSchedulingPolicy.nodeFillType")
    policy: Body = {"nodeFillType": fill}
    order = opt_enum(value, "jobDefaultOrder", ("none", "creationtime"), "taskSchedulingPolicy")
    if order is not None:
        policy["jobDefaultOrder"] = order
    return policy


def check_targets(dedicated: int, low_priority: int, max_nodes: int) -> None:
    """Refuse node targets (dedicated + low-priority) above the emulator's per-pool node cap."""
    if dedicated + low_priority > max_nodes:
        raise invalid_property(
            "targetDedicatedNodes",
            dedicated + low_priority,
            f"The local batchbox emulator runs at most {max_nodes} nodes per pool "
            f"(targetDedicatedNodes + targetLowPriorityNodes).",
        )


def copy_passthrough(body: Body, doc: Body, *, lists: tuple[str, ...] = ()) -> None:
    """Copy the pass-through objects (and the named lists) present in ``body`` into ``doc`` as given (with Batch's
    defaults, see ``passthrough_object``)."""
    for name in _PASSTHROUGH_OBJECTS:
        value = passthrough_object(body, name)
        if value is not None:
            doc[name] = value
    for name in lists:
        items = opt_list(body, name)
        if items is not None:
            doc[name] = items
