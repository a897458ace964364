"""The local stack's side of the emulator's faults: checking a ``--faults`` file before anything starts, the
emulator's command-line options for it, and what ``local status`` says about the faults of a running emulator."""

from __future__ import annotations

import json
from pathlib import Path

from batchbox.backends.local.azurite import find_free_port
from batchbox.core.errors import ConfigurationError
from batchbox.emulator.faults import ACTIVE_FAULTS_FILE, FaultConfig, FaultConfigError, load_fault_file

__all__ = ["STORAGE_PROXY_FIELD", "active_faults", "checked_faults", "fault_options"]

STORAGE_PROXY_FIELD = "storage_proxy_port"
"""The field of the emulator's PID record holding the storage fault proxy's port (while it runs)."""


def checked_faults(path: Path, *, emulator_running: bool, own_storage: bool) -> FaultConfig:
    """The faults of ``path``, checked against the stack.

    Args:
        path: the TOML file.
        emulator_running: the stack's emulator runs already (its faults cannot change without a restart).
        own_storage: the stack runs its Azurite (storage faults need it behind the proxy).

    Raises:
        ConfigurationError: the file is wrong, the emulator runs already, or storage faults meet storage the
            stack does not run.
    """
    try:
        config = load_fault_file(path)
    except FaultConfigError as exc:
        raise ConfigurationError("--faults", str(exc)) from None
    if emulator_running:
        raise ConfigurationError(
            "--faults",
            "the emulator runs already: `batchbox local down`, then `batchbox local up --faults FILE` (or change "
            "the faults of the running emulator through its admin API, /_admin/v1/faults)",
        )
    if config.storage.enabled and not own_storage:
        raise ConfigurationError(
            "--faults", "[faults.storage] needs the Azurite this stack runs, not --storage-connection-string"
        )
    return config


def fault_options(path: Path, config: FaultConfig, azurite_port: int) -> tuple[list[str], dict[str, int]]:
    """The emulator's command-line options for ``config`` read from ``path``, and what its PID record keeps
    (the storage proxy's port, on a free port, when there are storage faults)."""
    options = ["--faults", str(path)]
    recorded: dict[str, int] = {}
    if config.storage.enabled:
        recorded[STORAGE_PROXY_FIELD] = find_free_port()
        options += [
            "--storage-upstream",
            f"http://127.0.0.1:{azurite_port}",
            "--storage-proxy-port",
            str(recorded[STORAGE_PROXY_FIELD]),
        ]
    return options, recorded


def active_faults(emulator_dir: Path) -> str | None:
    """What the emulator writing into ``emulator_dir`` injects (one line), or None when it records no fault."""
    try:
        recorded = json.loads((emulator_dir / ACTIVE_FAULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return str(recorded.get("describe") or "on") if isinstance(recorded, dict) else None
