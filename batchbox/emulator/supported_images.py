"""The Linux images and node agent SKUs Batch supports, and the checks Batch applies to a pool's image at creation.

``GET /supportedimages`` lists :data:`SUPPORTED_IMAGES` (what Batch listed for Linux in 2024, less the images it has
retired since, plus Ubuntu 24.04). Every image runs the same local node container; the table decides only what is
accepted and listed.

Batch refuses at pool creation, and so do the checks here:

* an ``imageReference`` (publisher/offer/sku) it does not support, or whose ``batchSupportEndOfLife`` has passed;
* a ``virtualMachineImageId`` that is not an Azure Compute Gallery image (version) resource id;
* a ``nodeAgentSKUId`` that is retired (:data:`NODE_AGENT_SKU_END_OF_LIFE`), unknown, or not the one the image uses.

Retirement dates are Batch's published ones (Azure/Batch retirement notices; the recorded supported-images listing for
``batch.node.centos 7``). The checks are pure: the caller passes the current time and turns a returned error into the
response.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from batchbox.emulator.errors import BatchError

__all__ = [
    "NODE_AGENT_SKU_END_OF_LIFE",
    "SUPPORTED_IMAGES",
    "SupportedImage",
    "check_image_reference",
    "check_node_agent_sku",
    "find_supported_image",
    "list_supported_images",
]

_INVALID_VALUE = "The value provided for one of the properties in the request body is invalid."
_GALLERY_IMAGE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/[^/]+/images/[^/]+"
    r"(/versions/[^/]+)?$",
    re.IGNORECASE,
)
_GALLERY_IMAGE_ID_REASON = (
    "The specified resource id must be of the format /subscriptions/{subscriptionId}/resourceGroups/"
    "{resourceGroupName}/providers/Microsoft.Compute/galleries/{galleryName}/images/{galleryImageName}/versions/"
    "{galleryImageVersionName} or /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
    "Microsoft.Compute/galleries/{galleryName}/images/{galleryImageName}"
)


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


NODE_AGENT_SKU_END_OF_LIFE: Mapping[str, datetime] = MappingProxyType(
    {
        "batch.node.ubuntu 14.04": _utc(2019, 8, 1),
        "batch.node.ubuntu 16.04": _utc(2021, 5, 21),
        "batch.node.centos 8": _utc(2021, 12, 31),
        "batch.node.ubuntu 18.04": _utc(2023, 5, 30),
        "batch.node.centos 7": _utc(2024, 6, 30),
        "batch.node.debian 8": _utc(2024, 12, 31),
        "batch.node.debian 9": _utc(2024, 12, 31),
        "batch.node.debian 10": _utc(2024, 12, 31),
        "batch.node.ubuntu 20.04": _utc(2025, 4, 23),
        "batch.node.mariner 2.0": _utc(2025, 7, 30),
        "batch.node.ubuntu 22.04": _utc(2027, 6, 30),
    }
)
"""Node agent SKU -> when Batch stops (or stopped) accepting new pools with it."""

_GEN2 = "Generation2VMImage"
_RDMA = ("SupportsRDMAOnly", "IntelMPIRuntimeInstalled")
_HPC = ("DockerCompatible", "SupportsRDMAOnly", _GEN2, "IntelMPIRuntimeInstalled")


@dataclass(frozen=True)
class SupportedImage:
    """One Marketplace image Batch supports with a node agent SKU."""

    node_agent_sku_id: str
    publisher: str
    offer: str
    sku: str
    verification_type: str = "unverified"
    capabilities: tuple[str, ...] = ()
    os_type: str = "linux"

    @property
    def batch_support_end_of_life(self) -> datetime | None:
        """When Batch stops accepting new pools with this image (its node agent SKU's end of life), if announced."""
        return NODE_AGENT_SKU_END_OF_LIFE.get(self.node_agent_sku_id)

    def to_rest(self) -> dict[str, Any]:
        """The image as ``GET /supportedimages`` lists it (the service's property order)."""
        body: dict[str, Any] = {
            "imageReference": {"publisher": self.publisher, "offer": self.offer, "sku": self.sku, "version": "latest"},
            "verificationType": self.verification_type,
            "nodeAgentSKUId": self.node_agent_sku_id,
        }
        if self.capabilities:
            body["capabilities"] = list(self.capabilities)
        end = self.batch_support_end_of_life
        if end is not None:
            body["batchSupportEndOfLife"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        body["osType"] = self.os_type
        return body


SUPPORTED_IMAGES: tuple[SupportedImage, ...] = (
    SupportedImage("batch.node.el 8", "almalinux", "almalinux-hpc", "8-hpc-gen1", capabilities=_RDMA),
    SupportedImage("batch.node.el 8", "almalinux", "almalinux-hpc", "8-hpc-gen2", capabilities=(*_RDMA, _GEN2)),
    SupportedImage("batch.node.el 8", "almalinux", "almalinux-x86_64", "8-gen1"),
    SupportedImage("batch.node.el 8", "almalinux", "almalinux-x86_64", "8-gen2", capabilities=(_GEN2,)),
    SupportedImage("batch.node.el 9", "almalinux", "almalinux-x86_64", "9-gen1", "verified"),
    SupportedImage("batch.node.el 9", "almalinux", "almalinux-x86_64", "9-gen2", capabilities=(_GEN2,)),
    SupportedImage("batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts", "verified"),
    SupportedImage(
        "batch.node.ubuntu 22.04", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", capabilities=(_GEN2,)
    ),
    SupportedImage("batch.node.ubuntu 24.04", "canonical", "ubuntu-24_04-lts", "server", "verified", (_GEN2,)),
    SupportedImage("batch.node.ubuntu 24.04", "canonical", "ubuntu-24_04-lts", "server-gen1"),
    SupportedImage("batch.node.ubuntu 22.04", "microsoft-dsvm", "ubuntu-hpc", "2204", "verified", _HPC),
    SupportedImage("batch.node.ubuntu 24.04", "microsoft-dsvm", "ubuntu-hpc", "2404", "verified", _HPC),
    SupportedImage("batch.node.el 8", "oracle", "oracle-linux", "81"),
)
"""The Linux images the emulator lists and accepts, ordered as Batch orders them (publisher, offer, sku)."""

_BY_REFERENCE = {(image.publisher, image.offer, image.sku): image for image in SUPPORTED_IMAGES}
_KNOWN_SKUS = frozenset(image.node_agent_sku_id for image in SUPPORTED_IMAGES) | set(NODE_AGENT_SKU_END_OF_LIFE)


def list_supported_images() -> list[dict[str, Any]]:
    """The ``value`` of ``GET /supportedimages``. Images past their end of life stay listed, as Batch keeps them."""
    return [image.to_rest() for image in SUPPORTED_IMAGES]


def find_supported_image(publisher: str, offer: str, sku: str) -> SupportedImage | None:
    """The supported image with this publisher, offer and sku (compared case-insensitively), if any."""
    return _BY_REFERENCE.get((publisher.strip().lower(), offer.strip().lower(), sku.strip().lower()))


def check_image_reference(image_reference: Mapping[str, Any], *, now: datetime) -> BatchError | None:
    """Batch's verdict on a pool's ``imageReference``: ``None`` when accepted, else the error it answers.

    Args:
        image_reference: the REST ``imageReference`` object (publisher/offer/sku, or ``virtualMachineImageId``).
        now: the current time (images past their end of life are refused).
    """
    image_id = image_reference.get("virtualMachineImageId")
    if isinstance(image_id, str):
        if _GALLERY_IMAGE_ID.match(image_id):
            return None
        return BatchError(
            400,
            "InvalidPropertyValue",
            _INVALID_VALUE,
            {"PropertyName": "virtualMachineImageId", "PropertyValue": image_id, "Reason": _GALLERY_IMAGE_ID_REASON},
        )
    publisher, offer, sku = (str(image_reference.get(key) or "") for key in ("publisher", "offer", "sku"))
    image = find_supported_image(publisher, offer, sku)
    end = image.batch_support_end_of_life if image is not None else None
    if image is None or (end is not None and now >= end):
        reason = f"The specified imageReference with publisher {publisher} offer {offer} sku {sku} is not supported."
        return BatchError(
            400, "InvalidPropertyValue", _INVALID_VALUE, {"PropertyName": "imageReference", "Reason": reason}
        )
    return None


def check_node_agent_sku(
    node_agent_sku_id: str, image_reference: Mapping[str, Any], *, now: datetime
) -> BatchError | None:
    """Batch's verdict on a pool's ``nodeAgentSKUId``: ``None`` when accepted, else the error it answers.

    Args:
        node_agent_sku_id: the SKU the pool names (compared case-insensitively).
        image_reference: the pool's ``imageReference``; a Marketplace image must use its own SKU.
        now: the current time (retired SKUs are refused).
    """
    wanted = node_agent_sku_id.strip().lower()
    end = NODE_AGENT_SKU_END_OF_LIFE.get(wanted)
    if end is not None and now >= end:
        return _sku_error(
            node_agent_sku_id,
            f"The specified nodeAgentSKUId {node_agent_sku_id} is retired; Batch stopped accepting new pools with it "
            f"on {end:%Y-%m-%d}.",
        )
    if wanted not in _KNOWN_SKUS:
        return _sku_error(node_agent_sku_id, f"The specified nodeAgentSKUId {node_agent_sku_id} is not supported.")
    if "virtualMachineImageId" in image_reference:
        return None
    publisher, offer, sku = (str(image_reference.get(key) or "") for key in ("publisher", "offer", "sku"))
    image = find_supported_image(publisher, offer, sku)
    if image is not None and image.node_agent_sku_id != wanted:
        return _sku_error(
            node_agent_sku_id,
            f"The specified nodeAgentSKUId {node_agent_sku_id} does not match the imageReference with publisher "
            f"{publisher} offer {offer} sku {sku}, which needs {image.node_agent_sku_id}.",
        )
    return None


def _sku_error(value: str, reason: str) -> BatchError:
    return BatchError(
        400,
        "InvalidPropertyValue",
        _INVALID_VALUE,
        {"PropertyName": "nodeAgentSKUId", "PropertyValue": value, "Reason": reason},
    )
