"""A backend: the storage and compute halves a workflow runs on, chosen by name from the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from batchbox.core.compute import ComputeBackend
from batchbox.core.storage import StorageBackend

if TYPE_CHECKING:
    from batchbox.core.settings import Settings

__all__ = ["Backend", "open_backend"]


class Backend(ABC):
    """Storage plus compute, ready to use.

    Subclasses are registered in :mod:`batchbox.core.registry` and built with :meth:`from_settings`, which must
    fail fast (before creating anything anywhere) when a setting is missing or a service is unreachable.

    Args:
        storage: the blob storage half.
        compute: the pools, jobs and tasks half.
    """

    name: str = "abstract"

    def __init__(self, storage: StorageBackend, compute: ComputeBackend) -> None:
        self._storage = storage
        self._compute = compute

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Backend:
        """Build the backend from settings.

        Raises:
            ConfigurationError: a required setting is missing (names the variable).
            BackendUnavailableError: a service does not answer (says which and how to start it).
        """

    @property
    def storage(self) -> StorageBackend:
        """Blob storage."""
        return self._storage

    @property
    def compute(self) -> ComputeBackend:
        """Pools, jobs and tasks."""
        return self._compute

    def describe(self) -> str:
        """One line saying where the work runs (no secrets)."""
        return self.name

    def close(self) -> None:
        """Release connections."""
        self.storage.close()
        self.compute.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_backend(settings: Settings) -> Backend:
    """Build the backend ``settings.backend`` names, through the lazy registry."""
    from batchbox.core.registry import get_backend_class

    cls = get_backend_class(settings.backend)
    backend = cls.from_settings(settings)
    if not isinstance(backend, Backend):
        raise TypeError(f"backend {settings.backend!r} did not build a Backend")
    return backend
