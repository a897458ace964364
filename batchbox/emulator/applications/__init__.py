"""Application packages: the catalog in the linked storage, the pool checks, what nodes install."""

from batchbox.emulator.applications.catalog import (
    CONTAINER,
    Application,
    PackageCatalog,
    PackageError,
    ResolvedPackage,
)

__all__ = ["CONTAINER", "Application", "PackageCatalog", "PackageError", "ResolvedPackage"]
