"""The VM size table (Microsoft's published vCPU and memory figures) and the supported-images table with the checks
Batch applies at pool creation, compared with the real service's recorded answers where they exist."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from batchbox.emulator.errors import BatchError
from batchbox.emulator.supported_images import (
    NODE_AGENT_SKU_END_OF_LIFE,
    SUPPORTED_IMAGES,
    check_image_reference,
    check_node_agent_sku,
    find_supported_image,
    list_supported_images,
)
from batchbox.emulator.vm_sizes import VM_SIZES, lookup_vm_size, unknown_vm_size_error
from tests.fixtures.batch_recordings import recorded_response

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
JAMMY = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts", "version": "latest"}


def recorded_error_values(body: dict[str, object]) -> dict[str, str]:
    values = body["values"]
    assert isinstance(values, list)
    return {item["key"]: item["value"] for item in values}


def assert_same_error(ours: BatchError | None, status: int, body: dict[str, object]) -> None:
    assert ours is not None
    message = body["message"]
    assert isinstance(message, dict)
    assert (ours.status, ours.code) == (status, body["code"])
    assert ours.message == str(message["value"]).split("\n", 1)[0]
    assert ours.values == recorded_error_values(body)


# -------------------------------------------------------------------------------------------------------- VM sizes


@pytest.mark.parametrize(
    ("name", "vcpus", "memory_gib"),
    [
        ("Standard_A1_v2", 1, 2),
        ("Standard_A8m_v2", 8, 64),
        ("Standard_D1_v2", 1, 3.5),
        ("Standard_D15_v2", 20, 140),
        ("Standard_DS3_v2", 4, 14),
        ("Standard_D2s_v3", 2, 8),
        ("Standard_D64_v3", 64, 256),
        ("Standard_D48ds_v4", 48, 192),
        ("Standard_D96as_v4", 96, 384),
        ("Standard_D96d_v5", 96, 384),
        ("Standard_D8ads_v5", 8, 32),
        ("Standard_E20_v3", 20, 160),
        ("Standard_E64s_v3", 64, 432),
        ("Standard_E64is_v3", 64, 432),
        ("Standard_E64ds_v4", 64, 504),
        ("Standard_E96a_v4", 96, 672),
        ("Standard_E64as_v4", 64, 512),
        ("Standard_E96_v5", 96, 672),
        ("Standard_E104ids_v5", 104, 672),
        ("Standard_E112iads_v5", 112, 672),
        ("Standard_E4ads_v5", 4, 32),
        ("Standard_F2s_v2", 2, 4),
        ("Standard_F72s_v2", 72, 144),
    ],
)
def test_vm_sizes_carry_microsofts_figures(name: str, vcpus: int, memory_gib: float) -> None:
    size = lookup_vm_size(name)
    assert size is not None and size.name == name
    assert (size.vcpus, size.memory_gib, size.memory_bytes) == (vcpus, memory_gib, int(memory_gib * 1024**3))


def test_vm_size_lookup_ignores_case_as_batch_does() -> None:
    assert lookup_vm_size("STANDARD_D2S_V3") == lookup_vm_size("standard_d2s_v3") == lookup_vm_size(" Standard_D2s_v3 ")
    assert all(key == size.name.lower() for key, size in VM_SIZES.items())


def test_every_family_the_table_promises_is_present() -> None:
    families = {size.family for size in VM_SIZES.values()}
    expected = {
        "Av2", "Dv2", "DSv2", "Dv3", "Dsv3", "Dv4", "Dsv4", "Ddv4", "Ddsv4", "Dav4", "Dasv4", "Dv5", "Dsv5", "Ddv5",
        "Ddsv5", "Dasv5", "Dadsv5", "Ev3", "Esv3", "Ev4", "Esv4", "Edv4", "Edsv4", "Eav4", "Easv4", "Ev5", "Esv5",
        "Edv5", "Edsv5", "Easv5", "Eadsv5", "Fsv2",
    }  # fmt: skip
    assert expected <= families


@pytest.mark.parametrize("name", ["Standard_A1", "small", "Standard_D2s_v9", "Standard_NC6s_v3", ""])
def test_unknown_vm_sizes_are_refused_on_vm_size(name: str) -> None:
    assert lookup_vm_size(name) is None
    error = unknown_vm_size_error(name)
    assert (error.status, error.code) == (400, "InvalidPropertyValue")
    assert error.values["PropertyName"] == "vmSize" and error.values["PropertyValue"] == name
    assert f"The specified vmSize {name} is not supported." in error.values["Reason"]


# ------------------------------------------------------------------------------------------------ supported images


def test_an_unsupported_image_reference_gets_the_recorded_answer() -> None:
    status, body = recorded_response("test_batch_pool_cmd.yaml", "POST", "/pools?", '"publisher": "a"')
    error = check_image_reference({"publisher": "a", "offer": "b", "sku": "c"}, now=NOW)
    assert_same_error(error, status, body)


def test_a_malformed_virtual_machine_image_id_gets_the_recorded_answer() -> None:
    status, body = recorded_response("test_batch_pool_cmd.yaml", "POST", "/pools?", "virtualMachineImageId")
    image_id = recorded_error_values(body)["PropertyValue"]
    assert_same_error(check_image_reference({"virtualMachineImageId": image_id}, now=NOW), status, body)


def test_image_reference_errors_without_the_recordings() -> None:
    error = check_image_reference({"publisher": "a", "offer": "b", "sku": "c"}, now=NOW)
    assert error is not None and error.values == {
        "PropertyName": "imageReference",
        "Reason": "The specified imageReference with publisher a offer b sku c is not supported.",
    }
    bad_id = check_image_reference({"virtualMachineImageId": "/subscriptions/x/images/y"}, now=NOW)
    assert bad_id is not None and bad_id.values["PropertyName"] == "virtualMachineImageId"
    assert bad_id.values["Reason"].startswith("The specified resource id must be of the format /subscriptions/")


@pytest.mark.parametrize(
    "image_id",
    [
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0",
        "/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.compute/galleries/g/images/i",
    ],
)
def test_gallery_image_ids_pass_the_format_check(image_id: str) -> None:
    assert check_image_reference({"virtualMachineImageId": image_id}, now=NOW) is None


def test_supported_images_are_accepted_in_any_case() -> None:
    assert check_image_reference(JAMMY, now=NOW) is None
    upper = {"publisher": "Canonical", "offer": "ubuntu-24_04-LTS", "sku": "Server"}
    assert check_image_reference(upper, now=NOW) is None
    assert find_supported_image("Canonical", "ubuntu-24_04-LTS", "Server") is not None


def test_images_are_refused_once_batch_support_ends() -> None:
    assert check_image_reference(JAMMY, now=datetime(2027, 6, 29, tzinfo=timezone.utc)) is None
    after = check_image_reference(JAMMY, now=datetime(2027, 6, 30, tzinfo=timezone.utc))
    assert after is not None and after.values["PropertyName"] == "imageReference"


def test_images_batch_has_retired_are_not_supported() -> None:
    for publisher, offer, sku in [
        ("canonical", "0001-com-ubuntu-server-focal", "20_04-lts"),
        ("openlogic", "centos", "7_9"),
        ("microsoftcblmariner", "cbl-mariner", "cbl-mariner-2"),
        ("almalinux", "almalinux", "8-gen1"),
        ("canonical", "ubuntu", "22_04-lts"),
        ("microsoftwindowsserver", "windowsserver", "2022-datacenter"),
    ]:
        assert check_image_reference({"publisher": publisher, "offer": offer, "sku": sku}, now=NOW) is not None


@pytest.mark.parametrize(
    ("sku", "retired_on"),
    [
        ("batch.node.ubuntu 14.04", "2019-08-01"),
        ("batch.node.ubuntu 16.04", "2021-05-21"),
        ("batch.node.ubuntu 18.04", "2023-05-30"),
        ("batch.node.ubuntu 20.04", "2025-04-23"),
        ("batch.node.centos 7", "2024-06-30"),
        ("batch.node.centos 8", "2021-12-31"),
        ("batch.node.debian 10", "2024-12-31"),
        ("batch.node.mariner 2.0", "2025-07-30"),
    ],
)
def test_retired_node_agent_skus_are_refused_from_their_retirement_date(sku: str, retired_on: str) -> None:
    day = datetime.fromisoformat(retired_on).replace(tzinfo=timezone.utc)
    assert NODE_AGENT_SKU_END_OF_LIFE[sku] == day
    error = check_node_agent_sku(sku.upper(), {}, now=day)
    assert error is not None and error.values["PropertyName"] == "nodeAgentSKUId"
    assert error.values["Reason"].endswith(f"stopped accepting new pools with it on {retired_on}.")
    assert check_node_agent_sku(sku, {}, now=day.replace(year=day.year - 1)) is None


def test_node_agent_sku_must_exist_and_match_the_image() -> None:
    assert check_node_agent_sku("batch.node.ubuntu 22.04", JAMMY, now=NOW) is None
    unknown = check_node_agent_sku("batch.node.plan9 4", JAMMY, now=NOW)
    assert unknown is not None and unknown.values["Reason"].endswith("is not supported.")
    mismatch = check_node_agent_sku("batch.node.ubuntu 24.04", JAMMY, now=NOW)
    assert mismatch is not None and mismatch.values["Reason"].endswith("which needs batch.node.ubuntu 22.04.")
    gallery = {
        "virtualMachineImageId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i"
    }
    assert check_node_agent_sku("batch.node.el 9", gallery, now=NOW) is None


def test_the_listing_has_the_shape_the_service_lists() -> None:
    status, body = recorded_response("test_batch_pools_and_nodes.yaml", "GET", "/supportedimages")
    assert status == 200
    recorded = {
        (item["imageReference"]["publisher"], item["imageReference"]["offer"], item["imageReference"]["sku"]): item
        for item in body["value"]
    }
    ours = list_supported_images()
    shared = [item for item in ours if tuple(item["imageReference"].values())[:3] in recorded]
    assert len(shared) == 6
    for item in shared:
        theirs = recorded[tuple(item["imageReference"].values())[:3]]
        assert item["nodeAgentSKUId"] == theirs["nodeAgentSKUId"]
        assert item["imageReference"] == theirs["imageReference"]
        assert item.get("capabilities") == theirs.get("capabilities")
        end_of_life = "batchSupportEndOfLife"
        assert [key for key in item if key != end_of_life] == [key for key in theirs if key != end_of_life]
        if end_of_life in item:  # the service writes it just before osType
            assert list(item)[-2:] == [end_of_life, "osType"]


def test_the_listing_is_linux_sorted_and_shows_announced_ends_of_support() -> None:
    listing = list_supported_images()
    assert len(listing) == len(SUPPORTED_IMAGES)
    keys = [tuple(item["imageReference"][k] for k in ("publisher", "offer", "sku")) for item in listing]
    assert keys == sorted(keys)
    assert {item["osType"] for item in listing} == {"linux"}
    jammy = next(item for item in listing if item["imageReference"]["sku"] == "22_04-lts")
    assert jammy["batchSupportEndOfLife"] == "2027-06-30T00:00:00Z"
    noble = next(item for item in listing if item["imageReference"]["offer"] == "ubuntu-24_04-lts")
    assert "batchSupportEndOfLife" not in noble
