"""The VM sizes the emulator knows, with the vCPUs and memory Microsoft publishes for each.

The table covers the families Batch users pick for general and memory-heavy work: Av2 (incl. the ``m`` high-memory
sizes), Dv2/DSv2, Dv3/Dsv3, Dv4/Dsv4/Ddv4/Ddsv4, Dav4/Dasv4, Dv5/Dsv5/Ddv5/Ddsv5, Dasv5/Dadsv5, Ev3/Esv3,
Ev4/Esv4/Edv4/Edsv4, Eav4/Easv4, Ev5/Esv5/Edv5/Edsv5, Easv5/Eadsv5 and Fsv2 (figures from the Azure Virtual Machines
size pages). Classic A-series sizes (``Standard_A1``) are not in it: Batch retired them in 2024.

Lookups ignore case, as Batch does (it stores ``Standard_D2s_V3`` as ``standard_d2s_v3``). A size outside the table
is refused with the error :func:`unknown_vm_size_error` builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from batchbox.emulator.errors import BatchError

__all__ = ["VM_SIZES", "VmSize", "lookup_vm_size", "unknown_vm_size_error"]

_GIB = 1024**3


@dataclass(frozen=True)
class VmSize:
    """One VM size.

    Attributes:
        name: the size as Microsoft spells it (``Standard_D2s_v3``).
        vcpus: virtual CPUs.
        memory_gib: memory in GiB.
        family: the series it belongs to (``Dsv3``).
    """

    name: str
    vcpus: int
    memory_gib: float
    family: str

    @property
    def memory_bytes(self) -> int:
        """Memory in bytes."""
        return int(self.memory_gib * _GIB)


def _series(family: str, pattern: str, cores: Iterable[int], gib_per_core: float, **exceptions: float) -> list[VmSize]:
    # ``pattern`` has a ``{n}`` for the core count; ``exceptions`` maps a core count (as ``c64``) to its memory.
    return [VmSize(pattern.format(n=n), n, exceptions.get(f"c{n}", n * gib_per_core), family) for n in cores]


_D_V3 = (2, 4, 8, 16, 32, 48, 64)
_D_V5 = (2, 4, 8, 16, 32, 48, 64, 96)
_E_V3 = (2, 4, 8, 16, 20, 32, 48, 64)
_E_V5 = (2, 4, 8, 16, 20, 32, 48, 64, 96)
_DV2 = (  # (size number, vCPUs, GiB)
    (1, 1, 3.5), (2, 2, 7), (3, 4, 14), (4, 8, 28), (5, 16, 56),
    (11, 2, 14), (12, 4, 28), (13, 8, 56), (14, 16, 112), (15, 20, 140),
)  # fmt: skip

_TABLE: list[VmSize] = [
    # Av2: 2 GiB per vCPU, the m sizes 8 GiB per vCPU.
    *_series("Av2", "Standard_A{n}_v2", (1, 2, 4, 8), 2),
    *_series("Av2", "Standard_A{n}m_v2", (2, 4, 8), 8),
    # Dv2 / DSv2: 3.5 GiB per vCPU; the memory-optimized D11-D15 have 7 GiB per vCPU.
    *(
        VmSize(f"Standard_{prefix}{number}_v2", cores, memory, family)
        for prefix, family in (("D", "Dv2"), ("DS", "DSv2"))
        for number, cores, memory in _DV2
    ),
    # D v3, v4 and v5 (Intel and AMD): 4 GiB per vCPU.
    *_series("Dv3", "Standard_D{n}_v3", _D_V3, 4),
    *_series("Dsv3", "Standard_D{n}s_v3", _D_V3, 4),
    *_series("Dv4", "Standard_D{n}_v4", _D_V3, 4),
    *_series("Dsv4", "Standard_D{n}s_v4", _D_V3, 4),
    *_series("Ddv4", "Standard_D{n}d_v4", _D_V3, 4),
    *_series("Ddsv4", "Standard_D{n}ds_v4", _D_V3, 4),
    *_series("Dav4", "Standard_D{n}a_v4", _D_V5, 4),
    *_series("Dasv4", "Standard_D{n}as_v4", _D_V5, 4),
    *_series("Dv5", "Standard_D{n}_v5", _D_V5, 4),
    *_series("Dsv5", "Standard_D{n}s_v5", _D_V5, 4),
    *_series("Ddv5", "Standard_D{n}d_v5", _D_V5, 4),
    *_series("Ddsv5", "Standard_D{n}ds_v5", _D_V5, 4),
    *_series("Dasv5", "Standard_D{n}as_v5", _D_V5, 4),
    *_series("Dadsv5", "Standard_D{n}ads_v5", _D_V5, 4),
    # E v3, v4 and v5: 8 GiB per vCPU, except the largest sizes.
    *_series("Ev3", "Standard_E{n}_v3", _E_V3, 8, c64=432),
    *_series("Esv3", "Standard_E{n}s_v3", _E_V3, 8, c64=432),
    VmSize("Standard_E64i_v3", 64, 432, "Ev3"),
    VmSize("Standard_E64is_v3", 64, 432, "Esv3"),
    *_series("Ev4", "Standard_E{n}_v4", _E_V3, 8, c64=504),
    *_series("Esv4", "Standard_E{n}s_v4", _E_V3, 8, c64=504),
    *_series("Edv4", "Standard_E{n}d_v4", _E_V3, 8, c64=504),
    *_series("Edsv4", "Standard_E{n}ds_v4", _E_V3, 8, c64=504),
    *_series("Eav4", "Standard_E{n}a_v4", _E_V5, 8, c64=512, c96=672),
    *_series("Easv4", "Standard_E{n}as_v4", _E_V5, 8, c64=512, c96=672),
    *_series("Ev5", "Standard_E{n}_v5", _E_V5, 8, c64=512, c96=672),
    *_series("Esv5", "Standard_E{n}s_v5", _E_V5, 8, c64=512, c96=672),
    *_series("Edv5", "Standard_E{n}d_v5", _E_V5, 8, c64=512, c96=672),
    *_series("Edsv5", "Standard_E{n}ds_v5", _E_V5, 8, c64=512, c96=672),
    *(VmSize(f"Standard_E104i{kind}_v5", 104, 672, f"E{kind}v5") for kind in ("", "s", "d", "ds")),
    *_series("Easv5", "Standard_E{n}as_v5", _E_V5, 8, c64=512, c96=672),
    *_series("Eadsv5", "Standard_E{n}ads_v5", _E_V5, 8, c64=512, c96=672),
    VmSize("Standard_E112ias_v5", 112, 672, "Easv5"),
    VmSize("Standard_E112iads_v5", 112, 672, "Eadsv5"),
    # Fsv2: 2 GiB per vCPU.
    *_series("Fsv2", "Standard_F{n}s_v2", (2, 4, 8, 16, 32, 48, 64, 72), 2),
]

VM_SIZES: Mapping[str, VmSize] = MappingProxyType({size.name.lower(): size for size in _TABLE})
"""Every known size, keyed by its lower-cased name."""


def lookup_vm_size(name: str) -> VmSize | None:
    """The size named ``name`` (any case, surrounding blanks ignored), or ``None`` when the table lacks it."""
    return VM_SIZES.get(name.strip().lower())


def unknown_vm_size_error(name: str) -> BatchError:
    """Batch's answer to a pool whose ``vmSize`` it does not offer: ``400 InvalidPropertyValue`` on ``vmSize``."""
    return BatchError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        {
            "PropertyName": "vmSize",
            "PropertyValue": name[:200],
            "Reason": f"The specified vmSize {name[:200]} is not supported. The local emulator knows the Av2, Dv2-Dv5, "
            "Ev3-Ev5 and Fsv2 families.",
        },
    )
