"""Azure's failures, on demand: the emulator's fault layer.

- :mod:`~batchbox.emulator.faults.config`: the ``[faults]`` settings (TOML file or admin JSON), all off by default;
- :mod:`~batchbox.emulator.faults.live`: the running settings and their seeded, order-independent draws;
- :mod:`~batchbox.emulator.faults.quotas`: core quotas and allocation failures as resize errors;
- :mod:`~batchbox.emulator.faults.middleware`: throttling, cut connections, pool quota, task-count lag and
  ``NodeNotReady`` on the Batch API;
- :mod:`~batchbox.emulator.faults.admin`: ``/_admin/v1/faults`` (read, replace, clear);
- :mod:`~batchbox.emulator.faults.storage_proxy`: ``ContainerBeingDeleted``, 503s and resets in front of Azurite.

This package imports neither Starlette nor aiohttp; the modules that need them are imported where they are used.
"""

from batchbox.emulator.faults.config import (
    ACTIVE_FAULTS_FILE,
    FaultConfig,
    FaultConfigError,
    StorageFaults,
    load_fault_file,
)
from batchbox.emulator.faults.live import Faults

__all__ = ["ACTIVE_FAULTS_FILE", "FaultConfig", "FaultConfigError", "Faults", "StorageFaults", "load_fault_file"]
