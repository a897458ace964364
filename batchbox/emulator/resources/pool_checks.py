"""What Batch refuses in a pool's machine choice: an unknown ``vmSize``, an unsupported image, a retired node agent SKU.

The tables and the verdicts live in ``vm_sizes.py`` and ``supported_images.py``; this module applies them to a pool
body with the emulator's switches (``--vm-size-limits off`` accepts any size, ``--image-checks off`` any image and
SKU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from batchbox.emulator.supported_images import check_image_reference, check_node_agent_sku
from batchbox.emulator.vm_sizes import lookup_vm_size, unknown_vm_size_error

__all__ = ["PoolRules", "check_pool_machine"]


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
    if vm_size is not None and checks.vm_sizes and lookup_vm_size(vm_size) is None:
        raise unknown_vm_size_error(vm_size)
    if vm_configuration is None or not checks.images:
        return
    moment = now or datetime.now(timezone.utc)
    image = vm_configuration.get("imageReference")
    image = image if isinstance(image, Mapping) else {}
    error = check_image_reference(image, now=moment)
    if error is None:
        sku = vm_configuration.get("nodeAgentSKUId")
        error = check_node_agent_sku(str(sku or ""), image, now=moment)
    if error is not None:
        raise error
