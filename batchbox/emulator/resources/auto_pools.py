"""Auto pool specifications: ``poolInfo.autoPoolSpecification`` of a job or of a schedule's job specification.

A job may ask Batch to create a pool for it instead of naming one. At add time only the specification's own
properties are checked (prefix, lifetime, keepAlive, the pool's property names); the pool itself is validated when
the pool is created, by the same code as ``POST /pools``, and a pool that cannot be created becomes the job's
``executionInfo.schedulingError`` (``runtime/auto_pools.py``), as on Batch.

The pool specification as given (secrets included) is kept as a store secret of the job or schedule
(:data:`AUTO_POOL_SECRET`); the job document shows it without secrets and with Batch's defaults filled in.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from batchbox.emulator.coverage.properties import known_properties
from batchbox.emulator.errors import BatchError, invalid_property, missing_property
from batchbox.emulator.resources.common import (
    Body,
    check_id,
    invalid_body,
    opt_bool,
    opt_enum,
    opt_object,
    opt_str,
)
from batchbox.emulator.resources.containers import Secret, ValidationContext

__all__ = [
    "AUTO_POOL_SECRET",
    "LIFETIMES",
    "MAX_PREFIX_LENGTH",
    "auto_pool_body",
    "described_pool",
    "validate_auto_pool",
]

AUTO_POOL_SECRET = "auto-pool-specification"
"""The store secret (of a job or schedule owner) holding the pool specification exactly as it was given."""
LIFETIMES = ("job", "jobschedule")
"""``poolLifetimeOption`` values: the pool lives as long as its job, or as its job schedule (schedules only)."""
MAX_PREFIX_LENGTH = 20
"""Batch's limit on ``autoPoolIdPrefix``."""

_PATH = "poolInfo.autoPoolSpecification"
_SPECIFICATION_PROPERTIES = frozenset({"autoPoolIdPrefix", "poolLifetimeOption", "keepAlive", "pool"})
_SECRET_KEYS = frozenset({"password", "accountKey", "sasKey", "sshPrivateKey"})
_DEFAULT_USER = {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}


def _check_names(body: Body, known: frozenset[str], path: str, type_name: str) -> None:
    for name in body:
        if name not in known and not name.startswith("odata."):
            shown = name[:64]
            raise invalid_body(
                f"{path}.{shown}",
                f"The property '{shown}' does not exist on type 'Microsoft.Azure.Batch.Protocol.Entities.{type_name}'. "
                "Make sure to only use property names that are defined by the type.",
            )


def validate_auto_pool(value: Body, *, on_schedule: bool, context: ValidationContext) -> Body:
    """Check an ``autoPoolSpecification`` and return it as a job document shows it.

    Args:
        value: the specification as given.
        on_schedule: whether it belongs to a job schedule's job specification (only those may use the
            ``jobschedule`` lifetime).
        context: receives the pool specification as given (a secret: it may hold passwords), unless the body is
            one the emulator stored before.

    Raises:
        BatchError: 400 MissingRequiredProperty / InvalidPropertyValue / InvalidRequestBody.
    """
    _check_names(value, _SPECIFICATION_PROPERTIES, "poolInfo", "AutoPoolSpecification")
    prefix = opt_str(value, "autoPoolIdPrefix", _PATH, max_length=MAX_PREFIX_LENGTH)
    if prefix:
        check_id(f"{_PATH}.autoPoolIdPrefix", prefix)
    lifetime = opt_enum(value, "poolLifetimeOption", LIFETIMES, _PATH)
    if lifetime is None:
        raise missing_property(f"{_PATH}.poolLifetimeOption")
    if lifetime == "jobschedule" and not on_schedule:
        raise invalid_property(
            f"{_PATH}.poolLifetimeOption",
            lifetime,
            "The jobschedule lifetime may only be applied to job schedules, not to jobs.",
        )
    keep_alive = opt_bool(value, "keepAlive", _PATH)
    pool = opt_object(value, "pool", _PATH)
    if pool is None:
        raise missing_property(f"{_PATH}.pool")
    _check_names(pool, known_properties("PoolAddParameter") - {"id"}, f"{_PATH}.pool", "PoolSpecification")
    if not context.stored:
        context.secrets.append(Secret(AUTO_POOL_SECRET, json.dumps(pool)))
    shown: Body = {}
    if prefix:
        shown["autoPoolIdPrefix"] = prefix
    shown.update({"poolLifetimeOption": lifetime, "keepAlive": bool(keep_alive), "pool": described_pool(pool)})
    return shown


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_secrets(item) for key, item in value.items() if key not in _SECRET_KEYS}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def described_pool(pool: Body) -> Body:
    """The pool specification as a job shows it: no secrets, and Batch's defaults for what was not given."""
    shown: Body = _without_secrets(copy.deepcopy(pool))
    shown.setdefault("taskSlotsPerNode", 1)
    shown.setdefault("taskSchedulingPolicy", {"nodeFillType": "spread"})
    autoscale = shown.get("enableAutoScale") is True
    if not autoscale:
        shown.setdefault("resizeTimeout", "PT15M")
        shown.setdefault("targetDedicatedNodes", 0)
        shown.setdefault("targetLowPriorityNodes", 0)
    shown.setdefault("enableAutoScale", False)
    shown.setdefault("enableInterNodeCommunication", False)
    start_task = shown.get("startTask")
    if isinstance(start_task, dict):
        start_task.setdefault("userIdentity", copy.deepcopy(_DEFAULT_USER))
        start_task.setdefault("maxTaskRetryCount", 0)
        start_task.setdefault("waitForSuccess", True)
    cloud_service = shown.get("cloudServiceConfiguration")
    if isinstance(cloud_service, dict):
        cloud_service.setdefault("osVersion", "*")
    return shown


def auto_pool_body(specification: Body, given: Body | None, pool_id: str) -> Body:
    """The add-pool body of an auto pool: the pool specification as given (``given``, the stored secret; else the
    shown one) with the generated ``pool_id``."""
    pool = given if given is not None else specification.get("pool")
    if not isinstance(pool, dict):
        raise BatchError(400, "InvalidRequestBody", "The auto pool specification has no pool.", {})
    return {**pool, "id": pool_id}
