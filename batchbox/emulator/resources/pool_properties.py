"""Pool properties Batch answers in its own form: the VM configuration with its defaults, the network
configuration, and the descriptive properties that have no local effect (resource tags, node communication mode).

Also the refusals of what Batch has retired: cloud service pools and certificates.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import BatchError, missing_property
from batchbox.emulator.resources.common import (
    Body,
    invalid_body,
    opt_enum,
    opt_list,
    opt_object,
    req_str,
    retired_property,
)

__all__ = [
    "COMMUNICATION_MODES",
    "certificate_references",
    "certificates_retired",
    "communication_mode",
    "passthrough_object",
    "refuse_cloud_service",
    "resource_tags",
    "user_accounts",
    "validate_vm_configuration",
]

COMMUNICATION_MODES = ("default", "classic", "simplified")
"""``targetNodeCommunicationMode`` values. Local nodes always reach the emulator outbound (as ``simplified``)."""

_RETIRED_CLOUD_SERVICES = (
    "Cloud Services Configuration pools were retired on 29 February 2024: use virtualMachineConfiguration."
)
_RETIRED_CERTIFICATES = (
    "Batch account certificates were retired on 29 February 2024: remove the pool's certificateReferences (use the "
    "Azure Key Vault VM extension or a managed identity instead)."
)
# Image references naming an image by id carry no marketplace version.
_IMAGE_ID_PROPERTIES = ("virtualMachineImageId", "sharedGalleryImageId", "communityGalleryImageId")


def refuse_cloud_service(body: Body) -> None:
    """Refuse ``cloudServiceConfiguration``: Batch retired cloud service pools.

    Raises:
        BatchError: 400 ``InvalidPropertyValue`` naming the property, with the retirement as its reason.
    """
    if body.get("cloudServiceConfiguration") is not None:
        raise retired_property("cloudServiceConfiguration", _RETIRED_CLOUD_SERVICES)


def validate_vm_configuration(value: Body | None) -> Body:
    """The VM configuration as Batch returns it: a marketplace image without a version gets ``latest``, an
    ``osDisk`` gets (empty) ``ephemeralOSDiskSettings``; the rest is kept as given.

    Raises:
        BatchError: 400 ``MissingRequiredProperty`` without ``imageReference`` or ``nodeAgentSKUId``.
    """
    name = "virtualMachineConfiguration"
    if value is None:
        raise missing_property(name)
    config = dict(value)
    image = opt_object(value, "imageReference", name)
    if image is None:
        raise missing_property(f"{name}.imageReference")
    req_str(value, "nodeAgentSKUId", name)
    if not any(image.get(key) for key in _IMAGE_ID_PROPERTIES) and image.get("version") is None:
        image["version"] = "latest"
    config["imageReference"] = image
    os_disk = opt_object(value, "osDisk", name)
    if os_disk is not None:
        os_disk.setdefault("ephemeralOSDiskSettings", {})
        config["osDisk"] = os_disk
    return config


def passthrough_object(body: Body, name: str) -> Body | None:
    """An object property kept as given; a ``networkConfiguration`` gets Batch's default
    ``dynamicVNetAssignmentScope`` (``none``)."""
    value = opt_object(body, name)
    if value is not None and name == "networkConfiguration":
        value.setdefault("dynamicVNetAssignmentScope", "none")
    return value


def certificates_retired() -> BatchError:
    """The service's current answer to a pool that names certificates: ``400 CertificateRetired`` (seen from the
    service with api-version 2024-07-01.20.0; the same code and message answer its certificate operations)."""
    return BatchError(
        400,
        "CertificateRetired",
        "The 'Azure Batch Certificates' feature was retired on 02/29/2024.",
        {"Reason": _RETIRED_CERTIFICATES},
    )


def certificate_references(body: Body) -> list[Any] | None:
    """``certificateReferences``: an empty list is kept (Batch returns ``[]``).

    Raises:
        BatchError: 400 ``CertificateRetired`` for any certificate: Batch retired certificates.
    """
    references = opt_list(body, "certificateReferences")
    if references:
        raise certificates_retired()
    return references


def communication_mode(body: Body) -> str | None:
    """``targetNodeCommunicationMode`` (``default`` / ``classic`` / ``simplified``), recorded as a description."""
    return opt_enum(body, "targetNodeCommunicationMode", COMMUNICATION_MODES)


def resource_tags(body: Body) -> Body | None:
    """``resourceTags``: a map of strings, the Azure tags of the pool's VMs (recorded; nothing is billed locally).

    Raises:
        BatchError: 400 ``InvalidRequestBody`` for a value that is not a string.
    """
    tags = opt_object(body, "resourceTags")
    for key, value in (tags or {}).items():
        if not isinstance(value, str):
            raise invalid_body(
                f"resourceTags.{key}"[:64], "Cannot convert the value to the expected type 'Edm.String'."
            )
    return tags


def user_accounts(body: Body) -> list[Any] | None:
    """``userAccounts`` as GET returns them: the service never returns a password."""
    accounts = opt_list(body, "userAccounts")
    if accounts is None:
        return None
    return [
        {key: value for key, value in account.items() if key != "password"} if isinstance(account, dict) else account
        for account in accounts
    ]
