"""The memory backend: blob storage in memory and Batch tasks as local processes, in one Python process.

For unit-testing workloads in milliseconds and for testing the workflow without Docker. What it does not
emulate is listed in the README ("The memory backend").
"""

from batchbox.backends.memory.backend import MemoryBackend
from batchbox.backends.memory.compute import MemoryCompute
from batchbox.backends.memory.storage import MemoryStorage

__all__ = ["MemoryBackend", "MemoryCompute", "MemoryStorage"]
