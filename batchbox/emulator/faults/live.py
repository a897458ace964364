"""The faults of a running emulator: their settings (replaceable through the admin API) and the seeded draws.

Every fault decision is a draw in ``[0, 1)`` computed from the seed, the kind of fault, what it is about (a
request's method, path and body; a pool) and how many times that was drawn before: a hash, not a shared random
stream. The same seed and the same requests therefore give the same faults even when requests arrive in another
order (concurrent clients, thread scheduling): a fault run is reproducible from its seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchbox.emulator.faults.config import ACTIVE_FAULTS_FILE, FaultConfig
from batchbox.emulator.faults.quotas import CoreUsage, allocate

__all__ = ["Faults"]

log = logging.getLogger(__name__)

_MAX_KEYS = 200_000
"""Draw counters kept; past this many distinct keys they start again from zero (a long run stays bounded)."""


class Faults:
    """The live fault settings of one emulator.

    Args:
        config: the faults to inject (``FaultConfig()``: none).
        state_dir: where ``faults.json`` says what is on (None: nowhere).
    """

    def __init__(self, config: FaultConfig | None = None, state_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._state_dir = state_dir
        self._drawn: dict[tuple[str, str], int] = {}
        self._write_active()

    @property
    def config(self) -> FaultConfig:
        return self._config

    @property
    def enabled(self) -> bool:
        return self._config.enabled

    def replace(self, config: FaultConfig) -> None:
        """Switch to other faults (the draws start again from the new seed)."""
        with self._lock:
            self._config = config
            self._drawn.clear()
        log.warning("faults: %s", config.describe())
        self._write_active()

    def draw(self, kind: str, key: str) -> float:
        """The next draw in ``[0, 1)`` for ``kind`` about ``key`` (see the module docstring)."""
        with self._lock:
            if len(self._drawn) >= _MAX_KEYS:
                self._drawn.clear()
            count = self._drawn.get((kind, key), 0)
            self._drawn[(kind, key)] = count + 1
            seed = self._config.seed
        digest = hashlib.sha256(f"{seed}\0{kind}\0{key}\0{count}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def happens(self, kind: str, key: str, rate: float) -> bool:
        """True with probability ``rate`` (no draw at all when ``rate`` is 0)."""
        return rate > 0 and self.draw(kind, key) < rate

    def allocation(
        self, pool_doc: dict[str, Any], wanted: list[bool], pools: Iterable[tuple[str, int, int]]
    ) -> tuple[list[bool], list[dict[str, Any]]]:
        """Which of the ``wanted`` nodes of a resize of ``pool_doc`` may be created, and the resize errors.

        Args:
            pool_doc: the pool's document (its ``id`` and ``vmSize``).
            wanted: one entry per node to create: True for dedicated, False for low-priority.
            pools: ``(vm size, dedicated nodes, low-priority nodes)`` of every pool now, this one included.
        """
        config = self._config
        pool_key = str(pool_doc.get("id", "")).lower()
        decided = allocate(
            str(pool_doc.get("vmSize") or ""),
            wanted,
            CoreUsage.of(pools),
            family_quotas=config.core_quotas,
            dedicated_quota=config.dedicated_core_quota,
            low_priority_quota=config.low_priority_core_quota,
            allocation_fails=lambda: self.happens("allocation", pool_key, config.allocation_failure_rate),
        )
        return decided.granted, decided.errors

    def _write_active(self) -> None:
        if self._state_dir is None:
            return
        path = self._state_dir / ACTIVE_FAULTS_FILE
        try:
            if self._config.enabled:
                self._state_dir.mkdir(parents=True, exist_ok=True)
                document = {"describe": self._config.describe(), "faults": self._config.as_dict()}
                path.write_text(json.dumps(document, sort_keys=True) + "\n")
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not record the active faults in %s: %s", path, exc)
