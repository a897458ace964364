"""Application package references: Batch's checks of pools' references and what a node gets for each reference.

* A pool create, patch or update-properties naming a package that does not exist is refused at once with
  ``409 InvalidApplicationPackageReferences``, one value per bad reference (as the service answers).
* A task naming one fails on its node with ``ApplicationPackageError`` (a pre-processing error: nothing runs).
* Each installed package sets ``AZ_BATCH_APP_PACKAGE_<id>_<version>`` (and, when the reference named no version,
  ``AZ_BATCH_APP_PACKAGE_<id>``) to its directory under ``$AZ_BATCH_NODE_ROOT_DIR/applications``. As on Linux
  nodes, ``.``, ``-`` and ``#`` become ``_`` in the names and the id keeps the case it was referenced with.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from batchbox.emulator.applications.catalog import PackageCatalog, PackageError, ResolvedPackage
from batchbox.emulator.errors import BatchError
from batchbox.emulator.node_layout import APPLICATIONS_DIR, NODE_ROOT

__all__ = [
    "APPLICATION_PACKAGE_ERROR",
    "check_pool_references",
    "delivery",
    "package_directory",
    "package_variables",
]

APPLICATION_PACKAGE_ERROR = "ApplicationPackageError"
"""The task failure code when a package cannot be deployed (Batch's ``TaskFailureInformationCodes``)."""
_MISSING = "The specified application package does not exist."
_FLATTEN = re.compile(r"[.#-]")


def package_variables(reference_id: str, version: str, defaulted: bool, directory: str) -> dict[str, str]:
    """The variables of one installed package (Linux names; ``directory`` relative to the node root)."""
    path = f"{NODE_ROOT}/{directory}"
    name = _FLATTEN.sub("_", f"AZ_BATCH_APP_PACKAGE_{reference_id}")
    variables = {f"{name}_{_FLATTEN.sub('_', version)}": path}
    if defaulted:
        variables[name] = path
    return variables


def package_directory(package: ResolvedPackage) -> str:
    """Where a package is extracted on a node (relative to the node root); a new upload gets a new directory."""
    digest = hashlib.sha256(package.etag.encode()).hexdigest()[:8]
    return f"{APPLICATIONS_DIR}/{package.application_id}_{package.version}_{digest}"


def _problems(catalog: PackageCatalog | None, references: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for reference in references:
        app_id = str(reference.get("applicationId"))
        version = reference.get("version")
        if catalog is None:
            problems[app_id] = _MISSING
            continue
        try:
            catalog.resolve(app_id, str(version) if version else None)
        except PackageError:
            problems[app_id] = _MISSING
    return problems


async def check_pool_references(catalog: PackageCatalog | None, references: object) -> None:
    """Refuse a pool whose package references name a missing application, version or default version.

    Raises:
        BatchError: 409 ``InvalidApplicationPackageReferences`` with one value per bad reference.
    """
    if not isinstance(references, list) or not references:
        return
    problems = await asyncio.to_thread(_problems, catalog, [r for r in references if isinstance(r, Mapping)])
    if problems:
        raise BatchError(
            409,
            "InvalidApplicationPackageReferences",
            "One or more of the specified application package references are invalid.",
            problems,
        )


def _deliver(catalog: PackageCatalog | None, references: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    packages: list[dict[str, Any]] = []
    for reference in references:
        app_id = str(reference.get("applicationId") or "")
        version = reference.get("version")
        try:
            if catalog is None:
                raise PackageError("the emulator has no linked storage account, so no application packages")
            package = catalog.resolve(app_id, str(version) if version else None)
        except PackageError as exc:
            details = [{"name": "ApplicationId", "value": app_id}, {"name": "Message", "value": str(exc)}]
            if version:
                details.insert(1, {"name": "Version", "value": str(version)})
            failure = {
                "category": "usererror",
                "code": APPLICATION_PACKAGE_ERROR,
                "message": f"The application package {app_id} {version or '(default version)'} cannot be deployed",
                "details": details,
            }
            return {"failureInfo": failure}
        directory = package_directory(package)
        packages.append(
            {
                "applicationId": package.application_id,
                "version": package.version,
                "url": catalog.download_url(package),
                "directory": directory,
                "variables": package_variables(app_id, package.version, not version, directory),
            }
        )
    return {"packages": packages}


async def delivery(catalog: PackageCatalog | None, references: object) -> dict[str, Any]:
    """What a node needs to install the packages of an assignment: ``{"packages": [...]}`` or ``{"failureInfo"}``."""
    items = [r for r in references if isinstance(r, Mapping)] if isinstance(references, list) else []
    return await asyncio.to_thread(_deliver, catalog, items)
