"""What faults the emulator injects: the ``[faults]`` table of a TOML file, or the same keys as JSON (admin API).

Every fault is off by default. Unknown keys and out-of-range values are refused with one line naming the key, so a
misspelt fault never goes silently unapplied. An example (every key is optional)::

    [faults]
    seed = 7                          # the same seed and the same requests give the same faults
    throttle_rate = 0.3               # share of Batch API requests answered 429 (or 503, see throttle_status)
    throttle_status = 429
    retry_after_share = 0.5           # share of those answers carrying Retry-After
    retry_after_seconds = 1
    connection_reset_rate = 0.05      # share of Batch API requests whose connection is cut before the answer
    task_counts_lag = 10              # seconds: task counts are recomputed at most this often
    node_not_ready = true             # files of a task whose node is leaving (or gone): 409 NodeNotReady
    allocation_failure_rate = 0.2     # share of nodes a resize cannot allocate (AllocationFailed)
    pool_quota = 20                   # pools per account (PoolQuotaReached)
    dedicated_core_quota = 100        # dedicated vCPUs per account (AccountCoreQuotaReached)
    low_priority_core_quota = 0       # spot/low-priority vCPUs per account (AccountLowPriorityCoreQuotaReached)

    [faults.core_quotas]              # dedicated vCPUs per VM family (AccountVMSeriesCoreQuotaReached)
    standardDSv3Family = 4            # or by the family name of the VM size table: Dsv3 = 4

    [faults.storage]                  # through the storage proxy in front of Azurite (batchbox local up)
    container_delete_seconds = 30     # 409 ContainerBeingDeleted for a new container of a deleted name
    busy_rate = 0.05                  # share of blob requests answered 503 ServerBusy
    connection_reset_rate = 0.02      # share of blob requests whose connection is cut
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from batchbox.emulator.faults.quotas import family_quota_name

__all__ = ["ACTIVE_FAULTS_FILE", "FaultConfig", "FaultConfigError", "StorageFaults", "load_fault_file"]

ACTIVE_FAULTS_FILE = "faults.json"
"""Written in the emulator's state directory while faults are on (``batchbox local status`` reads it)."""


class FaultConfigError(ValueError):
    """A fault setting is unknown or out of range (the message names it)."""


@dataclass(frozen=True)
class StorageFaults:
    """Faults of the storage proxy in front of Azurite."""

    container_delete_seconds: float = 0.0
    busy_rate: float = 0.0
    connection_reset_rate: float = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.container_delete_seconds or self.busy_rate or self.connection_reset_rate)


@dataclass(frozen=True)
class FaultConfig:
    """The faults of one emulator (see the module docstring for each key)."""

    seed: int = 0
    throttle_rate: float = 0.0
    throttle_status: int = 429
    retry_after_share: float = 0.0
    retry_after_seconds: int = 1
    connection_reset_rate: float = 0.0
    task_counts_lag: float = 0.0
    node_not_ready: bool = False
    allocation_failure_rate: float = 0.0
    pool_quota: int | None = None
    dedicated_core_quota: int | None = None
    low_priority_core_quota: int | None = None
    core_quotas: Mapping[str, int] = field(default_factory=dict)
    storage: StorageFaults = field(default_factory=StorageFaults)

    @property
    def enabled(self) -> bool:
        """True when any fault is on (the seed alone is not a fault)."""
        off = FaultConfig(seed=self.seed)
        return self != off

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from the ``[faults]`` table (or the admin API's JSON).

        Raises:
            FaultConfigError: an unknown key, a value of the wrong type, or one out of range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultConfigError(f"faults: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name in ("throttle_rate", "retry_after_share", "connection_reset_rate", "allocation_failure_rate"):
            if name in data:
                values[name] = _rate(name, data[name])
        if "task_counts_lag" in data:
            values["task_counts_lag"] = _seconds("task_counts_lag", data["task_counts_lag"])
        if "seed" in data:
            values["seed"] = _integer("seed", data["seed"], minimum=None)
        if "retry_after_seconds" in data:
            values["retry_after_seconds"] = _integer("retry_after_seconds", data["retry_after_seconds"], minimum=1)
        if "throttle_status" in data:
            status = _integer("throttle_status", data["throttle_status"], minimum=None)
            if status not in (429, 503):
                raise FaultConfigError("faults: throttle_status must be 429 or 503")
            values["throttle_status"] = status
        if "node_not_ready" in data:
            if not isinstance(data["node_not_ready"], bool):
                raise FaultConfigError("faults: node_not_ready must be true or false")
            values["node_not_ready"] = data["node_not_ready"]
        for name in ("pool_quota", "dedicated_core_quota", "low_priority_core_quota"):
            if data.get(name) is not None:
                values[name] = _integer(name, data[name], minimum=0)
        if "core_quotas" in data:
            values["core_quotas"] = _core_quotas(data["core_quotas"])
        if "storage" in data:
            values["storage"] = _storage(data["storage"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults, as the admin API and ``faults.json`` show them."""
        defaults = asdict(FaultConfig())
        mine = asdict(self)
        shown = {name: value for name, value in mine.items() if value != defaults[name] and name != "storage"}
        shown["seed"] = self.seed
        storage = {k: v for k, v in mine["storage"].items() if v != defaults["storage"][k]}
        if storage:
            shown["storage"] = storage
        if self.core_quotas:
            shown["core_quotas"] = dict(self.core_quotas)
        return shown

    def describe(self) -> str:
        """One line: what is on (``throttle 30% 429 (half with Retry-After: 1 s), ...``), or ``off``."""
        if not self.enabled:
            return "off"
        parts: list[str] = []
        if self.throttle_rate:
            retry_after = (
                f", {self.retry_after_share:.0%} with Retry-After {self.retry_after_seconds} s"
                if self.retry_after_share
                else ""
            )
            parts.append(f"throttle {self.throttle_rate:.0%} {self.throttle_status}{retry_after}")
        if self.connection_reset_rate:
            parts.append(f"connection resets {self.connection_reset_rate:.0%}")
        if self.task_counts_lag:
            parts.append(f"task counts lag {self.task_counts_lag:g} s")
        if self.node_not_ready:
            parts.append("node_not_ready")
        if self.allocation_failure_rate:
            parts.append(f"allocation failures {self.allocation_failure_rate:.0%}")
        quotas = [f"{name}={value}" for name, value in sorted(self.core_quotas.items())]
        for name in ("pool_quota", "dedicated_core_quota", "low_priority_core_quota"):
            value = getattr(self, name)
            if value is not None:
                quotas.append(f"{name}={value}")
        if quotas:
            parts.append("quotas " + " ".join(quotas))
        storage = self.storage
        if storage.container_delete_seconds:
            parts.append(f"storage: ContainerBeingDeleted for {storage.container_delete_seconds:g} s")
        if storage.busy_rate:
            parts.append(f"storage: 503 {storage.busy_rate:.0%}")
        if storage.connection_reset_rate:
            parts.append(f"storage: resets {storage.connection_reset_rate:.0%}")
        return f"seed {self.seed}; " + "; ".join(parts)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def load_fault_file(path: Path) -> FaultConfig:
    """The ``[faults]`` table of a TOML file (a file without one configures no fault).

    Raises:
        FaultConfigError: the file cannot be read or parsed, or a setting is wrong.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise FaultConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FaultConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("faults", {})
    if not isinstance(table, dict):
        raise FaultConfigError(f"{path}: [faults] must be a table")
    return FaultConfig.from_mapping(table)


def _rate(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise FaultConfigError(f"faults: {name} must be between 0 and 1, got {value!r}")
    return number


def _seconds(name: str, value: Any) -> float:
    number = _number(name, value)
    if number < 0:
        raise FaultConfigError(f"faults: {name} must be 0 or more seconds, got {value!r}")
    return number


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FaultConfigError(f"faults: {name} must be a number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultConfigError(f"faults: {name} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise FaultConfigError(f"faults: {name} must be {minimum} or more, got {value!r}")
    return value


def _core_quotas(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise FaultConfigError("faults: core_quotas must be a table of VM family = vCPUs")
    quotas: dict[str, int] = {}
    for family, cores in value.items():
        name = family_quota_name(str(family))
        if name is None:
            raise FaultConfigError(
                f"faults: core_quotas: unknown VM family {family!r} (e.g. standardDSv3Family or Dsv3)"
            )
        quotas[name] = _integer(f"core_quotas.{family}", cores, minimum=0)
    return quotas


def _storage(value: Any) -> StorageFaults:
    if not isinstance(value, Mapping):
        raise FaultConfigError("faults: storage must be a table")
    known = {f.name for f in fields(StorageFaults)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise FaultConfigError(f"faults: unknown storage setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return StorageFaults(
        container_delete_seconds=_seconds(
            "storage.container_delete_seconds", value.get("container_delete_seconds", 0.0)
        ),
        busy_rate=_rate("storage.busy_rate", value.get("busy_rate", 0.0)),
        connection_reset_rate=_rate("storage.connection_reset_rate", value.get("connection_reset_rate", 0.0)),
    )
