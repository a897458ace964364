"""A lazy registry of backends, in the manner of fsspec's ``known_implementations``.

A backend name maps to ``"module:Class"`` and a hint telling how to install what it needs. Nothing is imported
until a backend is asked for, so ``import batchbox`` stays cheap and works without optional SDKs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from batchbox.core.errors import ConfigurationError

__all__ = ["BackendEntry", "get_backend_class", "known_backends", "register_backend"]


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend's class lives and what to install when it cannot be imported."""

    target: str
    install_hint: str
    description: str


_REGISTRY: dict[str, BackendEntry] = {
    "local": BackendEntry(
        target="batchbox.backends.local.backend:LocalBackend",
        install_hint="pip install batchbox (Azurite from npm and a Docker engine are set up by `make setup`)",
        description="Azurite for storage and the batchbox Batch emulator for compute, on this machine",
    ),
    "azure": BackendEntry(
        target="batchbox.backends.azure.backend:AzureBackend",
        install_hint="pip install batchbox (needs azure-batch>=15, azure-storage-blob, azure-identity)",
        description="Azure Batch and Azure Blob Storage",
    ),
    "memory": BackendEntry(
        target="batchbox.backends.memory.backend:MemoryBackend",
        install_hint="pip install batchbox (nothing else: tasks run as local processes)",
        description="storage in memory and tasks as local processes, in one Python process (for tests)",
    ),
}


def known_backends() -> dict[str, BackendEntry]:
    """A copy of the registry: backend name to entry."""
    return dict(_REGISTRY)


def register_backend(
    name: str, target: str, install_hint: str = "", description: str = "", *, clobber: bool = False
) -> None:
    """Add a backend under ``name``.

    Raises:
        ValueError: the name is taken and ``clobber`` is False, or ``target`` is not ``module:Class``.
    """
    if ":" not in target:
        raise ValueError(f"backend target {target!r} must look like 'package.module:Class'")
    if name in _REGISTRY and not clobber:
        raise ValueError(f"backend {name!r} is already registered (pass clobber=True to replace it)")
    _REGISTRY[name] = BackendEntry(target, install_hint, description)


def get_backend_class(name: str) -> Any:
    """Import and return the class registered under ``name``.

    Raises:
        ConfigurationError: the name is unknown, or its module cannot be imported (the message carries the
            install hint).
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        choices = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError("backend", f"unknown backend {name!r}; choose one of: {choices}")
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            "backend", f"backend {name!r} cannot be loaded ({exc}); install it with: {entry.install_hint}"
        ) from exc
    try:
        return getattr(module, class_name)
    except AttributeError as exc:
        raise ConfigurationError("backend", f"backend {name!r}: {entry.target} does not exist") from exc
