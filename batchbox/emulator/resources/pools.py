"""Adding a pool: validate the add body (``BatchPoolCreateOptions``) and build the stored pool document GET returns.

Changes to an existing pool (patch, update properties, resize) are in ``pool_updates``; the body parts both share
(start task, VM configuration, scheduling policy, node targets) in ``pool_fields``.
"""

from __future__ import annotations

from batchbox.emulator.clock import now_iso
from batchbox.emulator.errors import invalid_property
from batchbox.emulator.resources.autoscale import autoscale_add_settings
from batchbox.emulator.resources.common import (
    Body,
    check_id,
    opt_bool,
    opt_duration,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    reject_unknown_properties,
    req_object,
    req_str,
    validate_metadata,
)
from batchbox.emulator.resources.containers import ValidationContext, check_start_task_container
from batchbox.emulator.resources.node_features import apply_pool_features
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
    refuse_cloud_service,
    resource_tags,
    user_accounts,
)

__all__ = ["build_pool"]

_PASSTHROUGH_LISTS: tuple[str, ...] = ()


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
    vm_config = validate_pool_vm_configuration(opt_object(body, "virtualMachineConfiguration"), context)
    rules = rules or PoolRules()
    autoscale, targets = _scaling(body, max_nodes, rules)
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
        resize_timeout=timeout[1] if timeout else DEFAULT_RESIZE_TIMEOUT,
        targets=targets,
        inter_node=bool(inter_node),
    )
    if autoscale is not None:
        doc.update(autoscale)
    doc.update(node_settings)
    doc["virtualMachineConfiguration"] = vm_config
    copy_passthrough(body, doc, lists=_PASSTHROUGH_LISTS)
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


def _scaling(body: Body, max_nodes: int, rules: PoolRules) -> tuple[Body | None, tuple[int, int]]:
    """How an added pool scales: with ``enableAutoScale`` its autoscale settings and no targets yet; else its
    (dedicated, low-priority) targets within the node cap, neither given being a pool of 0 nodes."""
    enabled = opt_bool(body, "enableAutoScale")
    autoscale = autoscale_add_settings(body, rules.autoscale_min_interval) if enabled else None
    if autoscale:
        return autoscale, (0, 0)
    dedicated = opt_int(body, "targetDedicatedNodes", minimum=0) or 0
    low_priority = opt_int(body, "targetLowPriorityNodes", minimum=0) or 0
    check_targets(dedicated, low_priority, max_nodes)
    return autoscale, (dedicated, low_priority)


def _node_settings(body: Body, context: ValidationContext) -> Body:
    """What each node of an added pool gets: ``startTask`` (when given), slots per node, the fill policy."""
    slots = opt_int(body, "taskSlotsPerNode", minimum=1, maximum=MAX_SLOTS)
    legacy = opt_int(body, "maxTasksPerNode", minimum=1, maximum=MAX_SLOTS)
    if slots is not None and legacy is not None and slots != legacy:
        raise invalid_property(
            "maxTasksPerNode", legacy, "maxTasksPerNode is the older name of taskSlotsPerNode: give one, or the same."
        )
    slots = slots if slots is not None else legacy
    policy = validate_scheduling_policy(opt_object(body, "taskSchedulingPolicy"))
    start_task = validate_start_task(opt_object(body, "startTask"), context=context)
    settings: Body = {} if start_task is None else {"startTask": start_task}
    settings["taskSlotsPerNode"] = slots or 1
    settings["taskSchedulingPolicy"] = policy
    return settings
