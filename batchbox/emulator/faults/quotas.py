"""Core quotas and allocation failures, with the resize errors Azure Batch reports for them.

Batch (in Batch service allocation mode) counts dedicated vCPUs per VM family and for the whole account, and
spot/low-priority vCPUs for the whole account. A resize that would pass a quota stops there: the pool settles
(``steady``) with fewer nodes than its target and a ``resizeErrors`` entry:

- ``AccountVMSeriesCoreQuotaReached``: the family's dedicated quota;
- ``AccountCoreQuotaReached``: the account's dedicated quota;
- ``AccountLowPriorityCoreQuotaReached``: the account's low-priority quota;
- ``AllocationFailed`` ("Desired number of dedicated nodes could not be allocated"): Azure had no capacity.

Family names are Azure's quota names (``standardDSv3Family``); the VM size table's names (``Dsv3``) map to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchbox.emulator.vm_sizes import VM_SIZES, lookup_vm_size

__all__ = ["Allocation", "CoreUsage", "allocate", "family_quota_name", "quota_family_of"]

_FAMILY = re.compile(r"^([a-z]+)(v\d+)$", re.IGNORECASE)
_KNOWN_FAMILIES = {size.family for size in VM_SIZES.values()}


def _azure_name(family: str) -> str:
    match = _FAMILY.match(family)
    if match is None:  # pragma: no cover - every family of the table has a version
        return f"standard{family}Family"
    return f"standard{match.group(1).upper()}{match.group(2).lower()}Family"


_BY_LOWER = {name.lower(): name for name in (_azure_name(f) for f in _KNOWN_FAMILIES)}
_BY_LOWER.update({family.lower(): _azure_name(family) for family in _KNOWN_FAMILIES})


def family_quota_name(name: str) -> str | None:
    """Azure's quota name (``standardDSv3Family``) for a family given either way (``Dsv3``), any case; None when
    the VM size table has no such family."""
    return _BY_LOWER.get(name.strip().lower())


def quota_family_of(vm_size: str) -> tuple[str, int] | None:
    """(quota family name, vCPUs) of a VM size, or None when the table lacks the size."""
    size = lookup_vm_size(vm_size)
    if size is None:
        return None
    return _azure_name(size.family), size.vcpus


@dataclass
class CoreUsage:
    """vCPUs the account's nodes hold now: dedicated per family and in all, and low-priority in all."""

    dedicated_by_family: dict[str, int] = field(default_factory=dict)
    dedicated: int = 0
    low_priority: int = 0

    @classmethod
    def of(cls, pools: Iterable[tuple[str, int, int]]) -> CoreUsage:
        """From ``(vm size, dedicated nodes, low-priority nodes)`` of every pool (sizes the table lacks count 0)."""
        usage = cls()
        for vm_size, dedicated, low_priority in pools:
            known = quota_family_of(vm_size)
            if known is None:
                continue
            family, vcpus = known
            usage.dedicated_by_family[family] = usage.dedicated_by_family.get(family, 0) + dedicated * vcpus
            usage.dedicated += dedicated * vcpus
            usage.low_priority += low_priority * vcpus
        return usage


@dataclass
class Allocation:
    """What one resize may create: ``granted[i]`` for the i-th node asked for, and the resize errors to report."""

    granted: list[bool]
    errors: list[dict[str, Any]]


def allocate(
    vm_size: str,
    wanted: list[bool],
    usage: CoreUsage,
    *,
    family_quotas: Mapping[str, int],
    dedicated_quota: int | None,
    low_priority_quota: int | None,
    allocation_fails: Callable[[], bool],
) -> Allocation:
    """Decide which of the ``wanted`` nodes (True: dedicated, False: low-priority) a resize gets.

    Nodes are granted in order while the quotas allow; a node that passes them may still fail to allocate
    (``allocation_fails()`` draws that). Each kind of refusal is reported once.
    """
    known = quota_family_of(vm_size)
    family, vcpus = known if known is not None else (None, 0)
    used_family = usage.dedicated_by_family.get(family, 0) if family else 0
    used_dedicated, used_low = usage.dedicated, usage.low_priority
    granted: list[bool] = []
    codes: dict[str, dict[str, Any]] = {}
    for dedicated in wanted:
        refusal: dict[str, Any] | None = None
        if dedicated:
            family_quota = family_quotas.get(family) if family else None
            if family_quota is not None and used_family + vcpus > family_quota:
                refusal = _series_quota(str(family))
            elif dedicated_quota is not None and used_dedicated + vcpus > dedicated_quota:
                refusal = _error("AccountCoreQuotaReached", "The specified account has reached core quota")
        elif low_priority_quota is not None and used_low + vcpus > low_priority_quota:
            refusal = _error(
                "AccountLowPriorityCoreQuotaReached", "The specified account has reached low priority core quota"
            )
        if refusal is None and allocation_fails():
            refusal = _allocation_failed(dedicated)
        if refusal is not None:
            codes.setdefault(refusal["code"] + refusal["message"], refusal)
            granted.append(False)
            continue
        granted.append(True)
        if dedicated:
            used_family += vcpus
            used_dedicated += vcpus
        else:
            used_low += vcpus
    return Allocation(granted=granted, errors=list(codes.values()))


def _error(code: str, message: str, values: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "values": values or []}


def _series_quota(family: str) -> dict[str, Any]:
    return _error(
        "AccountVMSeriesCoreQuotaReached", f"The specified account has reached VM series core quota for {family}"
    )


def _allocation_failed(dedicated: bool) -> dict[str, Any]:
    kind = "dedicated" if dedicated else "low priority"
    return _error(
        "AllocationFailed",
        f"Desired number of {kind} nodes could not be allocated",
        [{"name": "Reason", "value": "Allocation failed: no capacity (allocation_failure_rate of the emulator)"}],
    )
