"""The memory backend: :class:`MemoryStorage` and :class:`MemoryCompute` in this process, for tests.

Nothing to configure and nothing to start: ``open_backend(load_settings(backend="memory"))`` or
``MemoryBackend()`` is ready at once. Node directories go to a fresh temporary directory, removed by
:meth:`MemoryBackend.close` unless a ``root`` was given.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from batchbox.backends.memory.compute import MemoryCompute
from batchbox.backends.memory.storage import DEFAULT_ACCOUNT, MemoryStorage
from batchbox.core.backend import Backend
from batchbox.core.settings import Settings

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Blobs in memory and tasks as local processes, all gone when it is closed.

    Args:
        root: where node directories are made and kept; by default a temporary directory removed on close.
        account_name: the storage and Batch account name tasks and URLs show.
    """

    name = "memory"

    def __init__(self, root: Path | None = None, *, account_name: str = DEFAULT_ACCOUNT) -> None:
        self._owned_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="batchbox-memory-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        storage = MemoryStorage(account_name)
        super().__init__(storage, MemoryCompute(storage, self.root, account_name=account_name))

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryBackend:
        return cls()

    def describe(self) -> str:
        return f"memory (tasks as local processes, node directories in {self.root})"

    def close(self) -> None:
        """Stop every task process, then remove the node directories (unless ``root`` was given)."""
        super().close()
        if self._owned_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> MemoryBackend:
        return self
