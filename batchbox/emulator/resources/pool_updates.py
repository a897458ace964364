"""Changing an existing pool's document: PATCH, update properties, resize and stop resize."""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import BatchError, missing_property
from batchbox.emulator.resources.autoscale import check_not_autoscaling
from batchbox.emulator.resources.common import (
    Body,
    opt_bool,
    opt_duration,
    opt_enum,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    reject_unknown_properties,
    req_object,
    validate_metadata,
)
from batchbox.emulator.resources.containers import ValidationContext, check_start_task_container
from batchbox.emulator.resources.guards import check_pool_not_deleting, check_pool_steady
from batchbox.emulator.resources.node_features import (
    MAX_POOL_PACKAGE_REFERENCES,
    apply_pool_features,
    validate_package_references,
)
from batchbox.emulator.resources.pool_checks import PoolRules, check_pool_machine
from batchbox.emulator.resources.pool_fields import (
    DEFAULT_MAX_NODES,
    DEFAULT_RESIZE_TIMEOUT,
    MAX_SLOTS,
    check_targets,
    copy_passthrough,
    validate_pool_vm_configuration,
    validate_scheduling_policy,
    validate_start_task,
)
from batchbox.emulator.resources.pool_properties import (
    certificate_references,
    communication_mode,
    resource_tags,
    user_accounts,
)

__all__ = [
    "apply_pool_patch",
    "apply_pool_replace",
    "apply_resize",
    "apply_stop_resize",
    "pool_node_total",
]

_DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")

# What PATCH may change only while the pool has no nodes.
_STRUCTURAL = (
    "vmSize",
    "virtualMachineConfiguration",
    "taskSlotsPerNode",
    "taskSchedulingPolicy",
    "enableInterNodeCommunication",
    "networkConfiguration",
    "userAccounts",
    "mountConfiguration",
    "upgradePolicy",
)


def pool_node_total(doc: Body) -> int:
    """How many nodes the pool has now (dedicated + low-priority)."""
    return int(doc.get("currentDedicatedNodes", 0)) + int(doc.get("currentLowPriorityNodes", 0))


def apply_pool_patch(
    doc: Body, body: object, context: ValidationContext | None = None, rules: PoolRules | None = None
) -> Body:
    """Apply a PATCH (``BatchPoolUpdateOptions``): only the properties present change.

    Properties that reshape nodes (vmSize, image, slots, ...) may change only while the pool has no nodes.

    Raises:
        BatchError: PoolBeingDeleted (409), OperationInvalidForCurrentState (409), validation errors (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "PoolPatchParameter")
    check_pool_not_deleting(doc)
    context = context or ValidationContext()
    structural = [name for name in _STRUCTURAL if body.get(name) is not None]
    if structural and pool_node_total(doc):
        raise BatchError(
            409,
            "OperationInvalidForCurrentState",
            "The specified operation is not valid for the current state of the resource.",
            {"PropertyName": structural[0], "Reason": "This property can be changed only while the pool has no nodes."},
        )
    updated = dict(doc)
    if "startTask" in body:
        start_task = validate_start_task(opt_object(body, "startTask"), context=context)
        if start_task is not None:
            updated["startTask"] = start_task
    metadata = validate_metadata(opt_list(body, "metadata"))
    if metadata is not None:
        _set_or_drop(updated, "metadata", metadata)
    display_name = opt_str(body, "displayName", max_length=1024)
    if display_name is not None:
        updated["displayName"] = display_name
    vm_size = opt_str(body, "vmSize")
    if vm_size:
        updated["vmSize"] = vm_size.lower()
    if body.get("virtualMachineConfiguration") is not None:
        updated["virtualMachineConfiguration"] = validate_pool_vm_configuration(
            opt_object(body, "virtualMachineConfiguration"), context
        )
    check_pool_machine(
        vm_size or None,
        updated["virtualMachineConfiguration"] if body.get("virtualMachineConfiguration") is not None else None,
        rules or PoolRules(),
    )
    slots = opt_int(body, "taskSlotsPerNode", minimum=1, maximum=MAX_SLOTS)
    if slots is not None:
        updated["taskSlotsPerNode"] = slots
    if body.get("taskSchedulingPolicy") is not None:
        updated["taskSchedulingPolicy"] = validate_scheduling_policy(opt_object(body, "taskSchedulingPolicy"))
    inter_node = opt_bool(body, "enableInterNodeCommunication")
    if inter_node is not None:
        updated["enableInterNodeCommunication"] = inter_node
    copy_passthrough(body, updated)
    _patch_described(body, updated)
    apply_pool_features(body, updated, context)
    check_start_task_container(updated)
    return updated


def _patch_described(body: Body, updated: Body) -> None:
    """PATCH of the properties that are replaced when present: lists and tags (an empty one removes them), the node
    communication mode, an empty certificate list."""
    for name, value in (
        ("userAccounts", user_accounts(body)),
        ("resourceTags", resource_tags(body)),
    ):
        if value is not None:
            _set_or_drop(updated, name, value)
    certificates = certificate_references(body)
    if certificates is not None:
        updated["certificateReferences"] = certificates
    communication = communication_mode(body)
    if communication is not None:
        updated["targetNodeCommunicationMode"] = communication


def apply_pool_replace(doc: Body, body: object, context: ValidationContext | None = None) -> Body:
    """Apply update-properties (``BatchPoolReplaceOptions``): startTask, applicationPackageReferences, metadata,
    certificateReferences and targetNodeCommunicationMode are replaced; an absent startTask removes the existing
    one and an absent communication mode becomes ``default``.

    Raises:
        BatchError: PoolBeingDeleted (409), MissingRequiredProperty and validation errors (400).
    """
    body = req_object(body)
    check_pool_not_deleting(doc)
    packages = validate_package_references(
        opt_list(body, "applicationPackageReferences"),
        "applicationPackageReferences",
        limit=MAX_POOL_PACKAGE_REFERENCES,
    )
    if packages is None:
        raise missing_property("applicationPackageReferences")
    metadata = validate_metadata(opt_list(body, "metadata"))
    if metadata is None:
        raise missing_property("metadata")
    certificates = certificate_references(body)
    communication = communication_mode(body)
    updated = dict(doc)
    start_task = validate_start_task(opt_object(body, "startTask"), context=context)
    if start_task is None:
        updated.pop("startTask", None)
    else:
        updated["startTask"] = start_task
    _set_or_drop(updated, "applicationPackageReferences", packages)
    _set_or_drop(updated, "metadata", metadata)
    if certificates is None:
        updated.pop("certificateReferences", None)
    else:
        updated["certificateReferences"] = certificates
    updated["targetNodeCommunicationMode"] = communication or "default"
    check_start_task_container(updated)
    return updated


def apply_resize(
    doc: Body, body: object, *, max_nodes: int = DEFAULT_MAX_NODES, rules: PoolRules | None = None
) -> Body:
    """Apply a resize (``BatchPoolResizeOptions``): new targets, ``allocationState`` resizing.

    Raises:
        BatchError: PoolBeingDeleted / PoolBeingResized (409), validation errors (400).
    """
    body = req_object(body)
    reject_unknown_properties(body, "PoolResizeParameter")
    check_pool_not_deleting(doc)
    check_not_autoscaling(doc, "resize")
    check_pool_steady(doc)
    dedicated = opt_int(body, "targetDedicatedNodes", minimum=0)
    low_priority = opt_int(body, "targetLowPriorityNodes", minimum=0)
    timeout = opt_duration(body, "resizeTimeout", minimum=(rules or PoolRules()).resize_timeout_min)
    option = opt_enum(body, "nodeDeallocationOption", _DEALLOCATION_OPTIONS)
    updated = dict(doc)
    if dedicated is not None:
        updated["targetDedicatedNodes"] = dedicated
    if low_priority is not None:
        updated["targetLowPriorityNodes"] = low_priority
    check_targets(int(updated.get("targetDedicatedNodes", 0)), int(updated.get("targetLowPriorityNodes", 0)), max_nodes)
    updated["resizeTimeout"] = timeout[1] if timeout else DEFAULT_RESIZE_TIMEOUT
    if option is not None:
        updated["nodeDeallocationOption"] = option
    updated.pop("resizeErrors", None)
    now = now_iso()
    updated["allocationState"] = "resizing"
    updated["allocationStateTransitionTime"] = now
    return updated


def apply_stop_resize(doc: Body) -> Body:
    """Stop a resize: the targets become the current counts, the pool is steady and records ``ResizeStopped``.

    Stopping a steady pool changes nothing.

    Raises:
        BatchError: PoolBeingDeleted (409).
    """
    check_pool_not_deleting(doc)
    if doc.get("allocationState") == "steady":
        return dict(doc)
    updated = dict(doc)
    updated["targetDedicatedNodes"] = int(doc.get("currentDedicatedNodes", 0))
    updated["targetLowPriorityNodes"] = int(doc.get("currentLowPriorityNodes", 0))
    updated["allocationState"] = "steady"
    updated["allocationStateTransitionTime"] = now_iso()
    updated["resizeErrors"] = [
        {
            "code": "ResizeStopped",
            "message": "Desired number of dedicated nodes could not be "
            "allocated as a resize operation was stopped by the user.",
        }
    ]
    return updated


def _set_or_drop(doc: Body, name: str, value: list[Any] | Body) -> None:
    if value:
        doc[name] = value
    else:
        doc.pop(name, None)
