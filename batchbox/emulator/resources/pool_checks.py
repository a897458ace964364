"""What Batch refuses in a pool's machine choice: an unsupported image, a retired node agent SKU, an unknown ``vmSize``
(checked in that order, as the service does).

The tables and the verdicts live in ``vm_sizes.py`` and ``supported_images.py``; this module applies them to a pool
body with the emulator's switches (``--vm-size-limits off`` accepts any size, ``--image-checks off`` any image and
SKU). Windows images (``batch.node.windows amd64``) are not checked: the table lists Linux images, and a Windows
pool runs the local Linux node image as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.supported_images import check_image_reference, check_node_agent_sku
from batchbox.emulator.vm_sizes import lookup_vm_size, unknown_vm_size_error

__all__ = ["WINDOWS_SKU_PREFIX", "PoolRules", "check_pool_machine", "pool_rules_of"]

WINDOWS_SKU_PREFIX = "batch.node.windows"
"""Node agent SKUs of Windows images: not checked (the supported-images table lists Linux images only)."""


@dataclass(frozen=True)
class PoolRules:
    """The emulator's switches that change what a pool body may say.

    Attributes:
        vm_sizes: refuse a ``vmSize`` the emulator's table does not know.
        images: refuse unsupported images, malformed gallery image ids and retired or mismatched node agent SKUs.
        autoscale_min_interval: the shortest ``autoScaleEvaluationInterval`` accepted, in seconds.
        resize_timeout_min: the shortest ``resizeTimeout`` accepted (Batch: 5 minutes).
    """

    vm_sizes: bool = True
    images: bool = True
    autoscale_min_interval: float = 300.0
    resize_timeout_min: timedelta = timedelta(minutes=5)


def pool_rules_of(config: EmulatorConfig) -> PoolRules:
    """The emulator's switches for pool bodies (VM size and image checks, autoscale and resize-timeout floors)."""
    return PoolRules(
        vm_sizes=config.vm_size_limits,
        images=config.image_checks,
        autoscale_min_interval=config.autoscale_min_interval,
        resize_timeout_min=timedelta(seconds=config.resize_timeout_min),
    )


def check_pool_machine(
    vm_size: str | None,
    vm_configuration: Mapping[str, Any] | None,
    checks: PoolRules,
    *,
    now: datetime | None = None,
) -> None:
    """Raise Batch's error for the first thing it would refuse in a pool's ``vmSize`` and image.

    Args:
        vm_size: the pool's ``vmSize`` (``None`` when unchanged by a patch).
        vm_configuration: the pool's ``virtualMachineConfiguration`` (``None`` when unchanged).
        checks: which checks apply (``vm_sizes``, ``images``).
        now: the current time (retirement dates), default the clock.

    Raises:
        BatchError: 400 ``InvalidPropertyValue`` naming ``vmSize``, ``imageReference``, ``virtualMachineImageId`` or
            ``nodeAgentSKUId``.
    """
    if vm_configuration is not None and checks.images:
        _check_image(vm_configuration, now or datetime.now(timezone.utc))
    if vm_size is not None and checks.vm_sizes and lookup_vm_size(vm_size) is None:
        raise unknown_vm_size_error(vm_size)


def _check_image(vm_configuration: Mapping[str, Any], moment: datetime) -> None:
    sku = str(vm_configuration.get("nodeAgentSKUId") or "")
    if sku.strip().lower().startswith(WINDOWS_SKU_PREFIX):
        return  # Windows images are accepted as they were: their nodes run the local (Linux) node image.
    image = vm_configuration.get("imageReference")
    image = image if isinstance(image, Mapping) else {}
    error = check_image_reference(image, now=moment) or check_node_agent_sku(sku, image, now=moment)
    if error is not None:
        raise error
