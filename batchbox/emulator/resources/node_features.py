"""What a pool asks its nodes to carry besides tasks: mounts, certificates, licenses, VM settings, package references.

Each property is implemented elsewhere, kept as a pure description (no local effect by its nature), or refused:

* ``mountConfiguration``: ``azureBlobFileSystemConfiguration`` of the emulator's linked storage account is served
  (a synced directory, see ``batchbox.emulator.mounts``); NFS, CIFS and Azure Files are refused.
* ``applicationLicenses`` and the ``virtualMachineConfiguration`` settings ``diskEncryptionConfiguration``,
  ``nodePlacementConfiguration``, ``osDisk``, ``securityProfile`` and ``serviceArtifactReference``: stored and
  returned, with no local effect (like ``vmSize`` for billing). ``extensions`` are refused: they would install
  software the local node image cannot run.
* ``applicationPackageReferences``: their shape is checked here; whether the packages exist is the handler's check.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import invalid_property, missing_property
from batchbox.emulator.resources.common import (
    Body,
    objects_in,
    opt_list,
    opt_object,
    opt_str,
    req_str,
    unsupported_property,
    validate_relative_path,
)
from batchbox.emulator.resources.containers import Secret, ValidationContext, validate_container_configuration

__all__ = [
    "DESCRIPTION_VM_SETTINGS",
    "MAX_POOL_PACKAGE_REFERENCES",
    "apply_pool_features",
    "mount_secret_name",
    "validate_application_licenses",
    "validate_mount_configuration",
    "validate_package_references",
    "validate_vm_settings",
]

MAX_POOL_PACKAGE_REFERENCES = 10
"""Batch's limit on the application package references of one pool."""

DESCRIPTION_VM_SETTINGS = (
    "diskEncryptionConfiguration",
    "nodePlacementConfiguration",
    "osDisk",
    "securityProfile",
    "serviceArtifactReference",
)
"""``virtualMachineConfiguration`` objects stored and returned with no local effect."""

_OTHER_MOUNTS = {
    "nfsMountConfiguration": "NFS shares",
    "cifsMountConfiguration": "CIFS/SMB shares",
    "azureFileShareConfiguration": "Azure Files shares",
}


def validate_application_licenses(items: list[Any] | None) -> list[str] | None:
    """``applicationLicenses``: license names (stored; no license server runs locally)."""
    if items is None:
        return None
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise invalid_property(f"applicationLicenses[{index}]", item, "A license name must be a string.")
    return [str(item) for item in items]


def validate_vm_settings(config: Body, context: ValidationContext, name: str = "virtualMachineConfiguration") -> None:
    """Validate ``containerConfiguration`` in place (its passwords go to ``context``), refuse ``extensions``, check
    the description-only settings are objects (they are kept as given)."""
    container = opt_object(config, "containerConfiguration", name)
    if container is not None:
        config["containerConfiguration"] = validate_container_configuration(
            container, f"{name}.containerConfiguration", context.secrets
        )
    if opt_list(config, "extensions", name):
        raise unsupported_property(
            f"{name}.extensions",
            "VM extensions install software on Azure VMs; local nodes run the batchbox node image, which cannot run "
            "them. Install what tasks need with a start task or an application package.",
        )
    for setting in DESCRIPTION_VM_SETTINGS:
        opt_object(config, setting, name)


def validate_package_references(items: list[Any] | None, name: str, *, limit: int | None = None) -> list[Body] | None:
    """``applicationPackageReferences``: ``applicationId`` required, ``version`` optional (the default version)."""
    if items is None:
        return None
    if limit is not None and len(items) > limit:
        raise invalid_property(name, f"{len(items)} references", f"At most {limit} references are allowed.")
    references: list[Body] = []
    for prefix, item in objects_in(items, name):
        reference: Body = {"applicationId": req_str(item, "applicationId", prefix)}
        version = opt_str(item, "version", prefix)
        if version:
            reference["version"] = version
        references.append(reference)
    return references


def mount_secret_name(pool_id: str, relative_mount_path: str) -> str:
    """The store name of the account key or SAS of one blob mount of a pool."""
    return f"mount-credential:{pool_id.lower()}:{relative_mount_path}"


def _blob_mount(item: Body, prefix: str, pool_id: str, storage_account: str | None, secrets: list[Secret]) -> Body:
    account = req_str(item, "accountName", prefix)
    container = req_str(item, "containerName", prefix)
    path = validate_relative_path(req_str(item, "relativeMountPath", prefix), f"{prefix}.relativeMountPath")
    if item.get("identityReference") is not None:
        raise unsupported_property(
            f"{prefix}.identityReference", "The local emulator has no managed identities: give accountKey or sasKey."
        )
    if storage_account is None or account != storage_account:
        raise unsupported_property(
            f"{prefix}.accountName",
            f"Only the emulator's linked storage account ({storage_account or 'none configured'}) can be mounted.",
        )
    key, sas = opt_str(item, "accountKey", prefix), opt_str(item, "sasKey", prefix)
    if bool(key) == bool(sas):
        raise missing_property(f"{prefix}.accountKey")
    secrets.append(Secret(mount_secret_name(pool_id, path), f"key:{key}" if key else f"sas:{sas}"))
    mount: Body = {"accountName": account, "containerName": container, "relativeMountPath": path}
    options = opt_str(item, "blobfuseOptions", prefix)
    if options:
        mount["blobfuseOptions"] = options
    return {"azureBlobFileSystemConfiguration": mount}


def validate_mount_configuration(
    items: list[Any] | None, *, pool_id: str, storage_account: str | None, secrets: list[Secret]
) -> list[Body] | None:
    """``mountConfiguration``: blob containers of the linked storage account; other file systems are refused.

    The account key or SAS goes to ``secrets``; the stored mount keeps neither.
    """
    if items is None:
        return None
    mounts: list[Body] = []
    seen: set[str] = set()
    for prefix, item in objects_in(items, "mountConfiguration"):
        for other, what in _OTHER_MOUNTS.items():
            if item.get(other) is not None:
                raise unsupported_property(
                    f"{prefix}.{other}",
                    f"The local emulator cannot mount {what}: nodes reach only this machine. Mount a blob container "
                    "of the linked storage account (azureBlobFileSystemConfiguration) instead.",
                )
        blob = opt_object(item, "azureBlobFileSystemConfiguration", prefix)
        if blob is None:
            raise missing_property(f"{prefix}.azureBlobFileSystemConfiguration")
        mount = _blob_mount(blob, f"{prefix}.azureBlobFileSystemConfiguration", pool_id, storage_account, secrets)
        path = mount["azureBlobFileSystemConfiguration"]["relativeMountPath"]
        if path in seen:
            raise invalid_property(f"{prefix}.azureBlobFileSystemConfiguration.relativeMountPath", path, "Duplicate.")
        seen.add(path)
        mounts.append(mount)
    return mounts


def apply_pool_features(body: Body, doc: Body, context: ValidationContext) -> None:
    """Validate a pool add or patch body's licenses, mounts and package references into ``doc``.

    Only the properties present in ``body`` change; an empty list removes the property.
    """
    values: dict[str, list[Any] | None] = {
        "applicationLicenses": validate_application_licenses(opt_list(body, "applicationLicenses")),
        "mountConfiguration": validate_mount_configuration(
            opt_list(body, "mountConfiguration"),
            pool_id=str(doc.get("id") or ""),
            storage_account=context.storage_account,
            secrets=context.secrets,
        ),
        "applicationPackageReferences": validate_package_references(
            opt_list(body, "applicationPackageReferences"),
            "applicationPackageReferences",
            limit=MAX_POOL_PACKAGE_REFERENCES,
        ),
    }
    for name, value in values.items():
        if value:
            doc[name] = value
        elif value is not None:
            doc.pop(name, None)
