"""batchbox: Azure Batch in a box.

Write a Batch workload once and run it on Azure Batch + Azure Blob Storage, or offline on Azurite and the
batchbox Batch emulator. The public Python API lives in :mod:`batchbox.core`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
