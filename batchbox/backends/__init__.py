"""Backends of batchbox, each registered by name in :mod:`batchbox.core.registry`.

- ``azure``: Azure Batch and Azure Blob Storage (:mod:`batchbox.backends.azure`);
- ``local``: the same Azure classes pointed at Azurite and the batchbox Batch emulator, whose nodes are Docker
  containers (:mod:`batchbox.backends.local`);
- ``memory``: blobs in memory and tasks as local processes, for tests (:mod:`batchbox.backends.memory`).
"""

__all__: list[str] = []
