"""A pool's ``vmSize`` -> the CPUs and memory its node containers get.

The size's vCPUs and memory come from ``vm_sizes.py``. A size larger than the machine is capped to the machine (all
its CPUs, all its memory), so that pool creation never fails for a size the machine cannot give; the node then says
so in its ``errors`` (code ``VmSizeCappedToMachine``, state unchanged) and the emulator logs it once per pool. With
``--vm-size-limits off`` containers get no limits at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchbox.emulator.runtime.ports import NodeResources
from batchbox.emulator.vm_sizes import lookup_vm_size

__all__ = ["CAPPED_ERROR_CODE", "NodeSizing", "size_node"]

log = logging.getLogger(__name__)

CAPPED_ERROR_CODE = "VmSizeCappedToMachine"


@dataclass(frozen=True)
class NodeSizing:
    """What a node of a pool gets, and why it differs from its size when it does.

    Attributes:
        resources: the container limits (``None``: none, the limits are off or the size is unknown).
        capped: a node ``errors`` entry when the machine is smaller than the size, else ``None``.
    """

    resources: NodeResources | None
    capped: dict[str, Any] | None = None


def size_node(vm_size: str, host: tuple[int, int], *, limits: bool) -> NodeSizing:
    """The limits of a node of size ``vm_size`` on a machine of ``host`` = (CPUs, memory bytes).

    Args:
        vm_size: the pool's ``vmSize``.
        host: the machine's CPUs and memory in bytes (0 memory: unknown, not capped).
        limits: whether VM sizes bind (``--vm-size-limits``).
    """
    size = lookup_vm_size(vm_size) if limits else None
    if size is None:
        return NodeSizing(None)
    host_cpus, host_memory = max(1, host[0]), host[1]
    cpus = min(size.vcpus, host_cpus)
    memory = min(size.memory_bytes, host_memory) if host_memory > 0 else size.memory_bytes
    if cpus == size.vcpus and memory == size.memory_bytes:
        return NodeSizing(NodeResources(cpus=cpus, memory_bytes=memory))
    message = (
        f"{size.name} has {size.vcpus} vCPUs and {size.memory_gib:g} GiB; this machine has {host_cpus} CPUs and "
        f"{host_memory / 1024**3:.1f} GiB, so the node got {cpus} CPUs and {memory / 1024**3:.1f} GiB."
    )
    capped = {
        "code": CAPPED_ERROR_CODE,
        "message": message,
        "errorDetails": [
            {"name": "vCPUs", "value": str(cpus)},
            {"name": "MemoryBytes", "value": str(memory)},
        ],
    }
    return NodeSizing(NodeResources(cpus=cpus, memory_bytes=memory), capped)


def pool_vm_size(pool_doc: Mapping[str, Any] | None) -> str:
    """The pool document's ``vmSize`` (empty when missing)."""
    value = (pool_doc or {}).get("vmSize")
    return value if isinstance(value, str) else ""
