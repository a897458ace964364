"""Pool documents: validate the REST bodies of add / patch / update properties / resize and build what GET returns."""

from __future__ import annotations

from typing import Any

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import BatchError, invalid_property, missing_property
from batchbox.emulator.node_layout import START_TASK_DIR, task_bind_roots
from batchbox.emulator.resources.autoscale import autoscale_add_settings, check_not_autoscaling
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
    validate_environment,
    validate_metadata,
    validate_resource_files,
    validate_user_identity,
)
from batchbox.emulator.resources.containers import (
    ValidationContext,
    check_start_task_container,
    command_line,
    validate_container_settings,
)
from batchbox.emulator.resources.guards import check_pool_not_deleting, check_pool_steady
from batchbox.emulator.resources.node_features import (
    MAX_POOL_PACKAGE_REFERENCES,
    apply_pool_features,
    validate_package_references,
    validate_vm_settings,
)
from batchbox.emulator.resources.pool_checks import PoolRules, check_pool_machine
from batchbox.emulator.resources.pool_properties import (
    certificate_references,
    communication_mode,
    passthrough_object,
    refuse_cloud_service,
    resource_tags,
    user_accounts,
    validate_vm_configuration,
)

__all__ = [
    "DEFAULT_MAX_NODES",
    "apply_pool_patch",
    "apply_pool_replace",
    "apply_resize",
    "apply_stop_resize",
    "build_pool",
    "pool_node_total",
    "validate_start_task",
]

DEFAULT_MAX_NODES = 32
"""The most nodes (dedicated + low-priority) one pool of the local emulator may target."""

_DEFAULT_RESIZE_TIMEOUT = "PT15M"
_MAX_SLOTS = 256
_FILL_TYPES = ("spread", "pack")
_DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")

# Properties copied through as given (validated only as JSON objects / lists): the emulator does not act on them.
_PASSTHROUGH_OBJECTS = ("networkConfiguration", "upgradePolicy")
_PASSTHROUGH_LISTS: tuple[str, ...] = ()


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


def _validate_vm_configuration(value: Body | None, context: ValidationContext) -> Body:
    config = validate_vm_configuration(value)
    validate_vm_settings(config, context)
    return config


def _validate_scheduling_policy(value: Body | None) -> Body:
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


def _check_targets(dedicated: int, low_priority: int, max_nodes: int) -> None:
    if dedicated + low_priority > max_nodes:
        raise invalid_property(
            "targetDedicatedNodes",
            dedicated + low_priority,
            f"The local batchbox emulator runs at most {max_nodes} nodes per pool "
            f"(targetDedicatedNodes + targetLowPriorityNodes).",
        )


def pool_node_total(doc: Body) -> int:
    """How many nodes the pool has now (dedicated + low-priority)."""
    return int(doc.get("currentDedicatedNodes", 0)) + int(doc.get("currentLowPriorityNodes", 0))


def build_pool(
    body: object,
    *,
    base_url: str,
    max_nodes: int = DEFAULT_MAX_NODES,
    context: ValidationContext | None = None,
    rules: PoolRules | None = None,
) -> Body:
    """Validate an add-pool body and build the stored pool document: the REST document GET returns, with
    ``allocationState`` ``resizing`` when nodes are wanted.

    Args:
        body: the parsed JSON body (``BatchPoolCreateOptions``).
        base_url: the emulator's base URL (for ``url``).
        max_nodes: the per-pool node cap of the local emulator.
        context: receives the body's secrets (registry passwords, mount keys); the emulator's settings.
        rules: the emulator's switches (VM size and image checks, the autoscale interval floor).

    Raises:
        BatchError: MissingRequiredProperty / InvalidPropertyValue / InvalidRequestBody / UnsupportedProperty /
            CertificateRetired.
    """
    body = req_object(body)
    reject_unknown_properties(body, "PoolAddParameter")
    context = context or ValidationContext()
    pool_id = check_id("id", body.get("id"))
    vm_size = req_str(body, "vmSize")
    refuse_cloud_service(body)
    vm_config = _validate_vm_configuration(opt_object(body, "virtualMachineConfiguration"), context)
    rules = rules or PoolRules()
    enabled = opt_bool(body, "enableAutoScale")
    autoscale = autoscale_add_settings(body, rules.autoscale_min_interval) if enabled else None
    dedicated, low_priority = (0, 0) if autoscale else _initial_targets(body, max_nodes)
    timeout = opt_duration(body, "resizeTimeout", minimum=rules.resize_timeout_min)
    node_settings = _node_settings(body, context)
    metadata = validate_metadata(opt_list(body, "metadata"))
    display_name = opt_str(body, "displayName", max_length=1024)
    inter_node = opt_bool(body, "enableInterNodeCommunication")
    described = _described_properties(body)
    check_pool_machine(vm_size, vm_config, rules)

    doc = _new_pool_document(
        pool_id,
        base_url=base_url,
        display_name=display_name,
        vm_size=vm_size,
        resize_timeout=timeout[1] if timeout else _DEFAULT_RESIZE_TIMEOUT,
        targets=(dedicated, low_priority),
        inter_node=bool(inter_node),
    )
    if autoscale is not None:
        doc.update(autoscale)
    doc.update(node_settings)
    doc["virtualMachineConfiguration"] = vm_config
    _copy_passthrough(body, doc, lists=_PASSTHROUGH_LISTS)
    apply_pool_features(body, doc, context)
    check_start_task_container(doc)
    if metadata is not None:
        doc["metadata"] = metadata
    doc.update(described)
    return doc


def _new_pool_document(
    pool_id: str,
    *,
    base_url: str,
    display_name: str | None,
    vm_size: str,
    resize_timeout: str,
    targets: tuple[int, int],
    inter_node: bool,
) -> Body:
    """The state and allocation properties of a new pool (``resizing`` when it wants nodes)."""
    now = now_iso()
    doc: Body = {"id": pool_id}
    if display_name is not None:
        doc["displayName"] = display_name
    dedicated, low_priority = targets
    doc.update(
        {
            "url": f"{base_url}/pools/{pool_id}",
            "eTag": "",
            "lastModified": now,
            "creationTime": now,
            "state": "active",
            "stateTransitionTime": now,
            "allocationState": "resizing" if dedicated + low_priority else "steady",
            "allocationStateTransitionTime": now,
            "vmSize": vm_size.lower(),
            "resizeTimeout": resize_timeout,
            "currentDedicatedNodes": 0,
            "targetDedicatedNodes": dedicated,
            "currentLowPriorityNodes": 0,
            "targetLowPriorityNodes": low_priority,
            "enableAutoScale": False,
            "enableInterNodeCommunication": inter_node,
        }
    )
    return doc


def _described_properties(body: Body) -> Body:
    """The add body's properties Batch returns as given or in its own form: certificate references (only an empty
    list), user accounts (without passwords), resource tags and the node communication mode."""
    found: Body = {
        "certificateReferences": certificate_references(body),
        "userAccounts": user_accounts(body),
        "resourceTags": resource_tags(body),
        "targetNodeCommunicationMode": communication_mode(body),
    }
    return {name: value for name, value in found.items() if value is not None}


def _initial_targets(body: Body, max_nodes: int) -> tuple[int, int]:
    """The add body's (dedicated, low-priority) targets within the node cap; neither given is a pool of 0 nodes."""
    dedicated = opt_int(body, "targetDedicatedNodes", minimum=0) or 0
    low_priority = opt_int(body, "targetLowPriorityNodes", minimum=0) or 0
    _check_targets(dedicated, low_priority, max_nodes)
    return dedicated, low_priority


def _node_settings(body: Body, context: ValidationContext) -> Body:
    """What each node of an added pool gets: ``startTask`` (when given), slots per node, the fill policy."""
    slots = opt_int(body, "taskSlotsPerNode", minimum=1, maximum=_MAX_SLOTS)
    legacy = opt_int(body, "maxTasksPerNode", minimum=1, maximum=_MAX_SLOTS)
    if slots is not None and legacy is not None and slots != legacy:
        raise invalid_property(
            "maxTasksPerNode", legacy, "maxTasksPerNode is the older name of taskSlotsPerNode: give one, or the same."
        )
    slots = slots if slots is not None else legacy
    policy = _validate_scheduling_policy(opt_object(body, "taskSchedulingPolicy"))
    start_task = validate_start_task(opt_object(body, "startTask"), context=context)
    settings: Body = {} if start_task is None else {"startTask": start_task}
    settings["taskSlotsPerNode"] = slots or 1
    settings["taskSchedulingPolicy"] = policy
    return settings


def _copy_passthrough(body: Body, doc: Body, *, lists: tuple[str, ...] = ()) -> None:
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
        updated["virtualMachineConfiguration"] = _validate_vm_configuration(
            opt_object(body, "virtualMachineConfiguration"), context
        )
    check_pool_machine(
        vm_size or None,
        updated["virtualMachineConfiguration"] if body.get("virtualMachineConfiguration") is not None else None,
        rules or PoolRules(),
    )
    slots = opt_int(body, "taskSlotsPerNode", minimum=1, maximum=_MAX_SLOTS)
    if slots is not None:
        updated["taskSlotsPerNode"] = slots
    if body.get("taskSchedulingPolicy") is not None:
        updated["taskSchedulingPolicy"] = _validate_scheduling_policy(opt_object(body, "taskSchedulingPolicy"))
    inter_node = opt_bool(body, "enableInterNodeCommunication")
    if inter_node is not None:
        updated["enableInterNodeCommunication"] = inter_node
    _copy_passthrough(body, updated)
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
    _check_targets(
        int(updated.get("targetDedicatedNodes", 0)), int(updated.get("targetLowPriorityNodes", 0)), max_nodes
    )
    updated["resizeTimeout"] = timeout[1] if timeout else _DEFAULT_RESIZE_TIMEOUT
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
