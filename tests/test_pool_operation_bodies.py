"""The pure parts of the pool and node operations: request bodies, machine checks, autoscale settings, usage metrics.

No emulator process: these call ``batchbox.emulator.resources`` and ``node_usage`` directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from batchbox.emulator.errors import BatchError
from batchbox.emulator.node_usage import NodeLifetime, usage_metrics
from batchbox.emulator.resources import build_pool
from batchbox.emulator.resources.autoscale import apply_disable_autoscale, apply_enable_autoscale
from batchbox.emulator.resources.nodes import node_option, node_user, remove_nodes_request, upload_logs_request
from batchbox.emulator.resources.pool_checks import PoolRules, check_pool_machine

_JAMMY = {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}
_POOL = {"id": "p", "vmSize": "Standard_D2s_v3", "virtualMachineConfiguration": _JAMMY}


def _values(error: BatchError) -> dict[str, str]:
    return {str(k): str(v) for k, v in error.values.items()}


def test_the_image_is_checked_before_the_size_as_the_service_does() -> None:
    vm = {"imageReference": {"publisher": "a", "offer": "b", "sku": "c"}, "nodeAgentSKUId": "batch.node.ubuntu 22.04"}
    with pytest.raises(BatchError) as refused:
        check_pool_machine("Standard_A1", vm, PoolRules())
    assert _values(refused.value)["PropertyName"] == "imageReference"


def test_switches_lift_the_machine_checks() -> None:
    vm = {"imageReference": {"publisher": "a", "offer": "b", "sku": "c"}, "nodeAgentSKUId": "batch.node.ubuntu 18.04"}
    check_pool_machine("Standard_Anything", vm, PoolRules(vm_sizes=False, images=False))
    windows = {"imageReference": {"publisher": "microsoftwindowsserver", "offer": "windowsserver", "sku": "2022"}}
    check_pool_machine("Standard_D2s_v3", {**windows, "nodeAgentSKUId": "batch.node.windows amd64"}, PoolRules())


def test_autoscale_pool_add_takes_the_formula_and_no_targets() -> None:
    body = {**_POOL, "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = 1;"}
    doc = build_pool(body, base_url="http://h")
    assert (doc["enableAutoScale"], doc["autoScaleEvaluationInterval"], doc["targetDedicatedNodes"]) == (
        True,
        "PT15M",
        0,
    )
    with pytest.raises(BatchError) as both:
        build_pool({**body, "targetDedicatedNodes": 2}, base_url="http://h")
    assert _values(both.value)["PropertyName"] == "targetDedicatedNodes"
    with pytest.raises(BatchError) as short:
        build_pool({**body, "autoScaleEvaluationInterval": "PT1M"}, base_url="http://h")
    assert _values(short.value)["PropertyName"] == "autoScaleEvaluationInterval"
    fast = build_pool(
        {**body, "autoScaleEvaluationInterval": "PT5S"}, base_url="http://h", rules=PoolRules(autoscale_min_interval=5)
    )
    assert fast["autoScaleEvaluationInterval"] == "PT5S"


def test_a_bad_formula_is_refused_with_its_position() -> None:
    with pytest.raises(BatchError) as bad:
        build_pool({**_POOL, "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = ;"}, base_url="h")
    assert bad.value.code == "AutoScalingFormulaSyntaxError"
    assert _values(bad.value)["Message"].startswith("Line 1, Col")


def test_enable_keeps_the_interval_and_disable_drops_the_formula() -> None:
    pool = {**build_pool(_POOL, base_url="h"), "allocationState": "steady"}
    enabled = apply_enable_autoscale(pool, {"autoScaleFormula": "$TargetDedicatedNodes = 2;"}, 300)
    assert (enabled["enableAutoScale"], enabled["autoScaleEvaluationInterval"]) == (True, "PT15M")
    changed = apply_enable_autoscale(
        {**enabled, "allocationState": "resizing"}, {"autoScaleEvaluationInterval": "PT10M"}, 300
    )
    assert (changed["autoScaleFormula"], changed["autoScaleEvaluationInterval"]) == (
        "$TargetDedicatedNodes = 2;",
        "PT10M",
    )
    with pytest.raises(BatchError) as resizing:
        apply_enable_autoscale({**pool, "allocationState": "resizing"}, {"autoScaleFormula": "$x = 1;"}, 300)
    assert resizing.value.code == "PoolBeingResized"
    disabled = apply_disable_autoscale({**changed, "autoScaleRun": {"timestamp": "t"}})
    assert disabled["enableAutoScale"] is False
    assert not {"autoScaleFormula", "autoScaleEvaluationInterval", "autoScaleRun"} & set(disabled)


def test_node_operation_options() -> None:
    assert node_option("reboot", None) == "requeue"
    assert node_option("reboot", {"nodeRebootKind": "taskcompletion"}) == "taskcompletion"
    assert node_option("deallocate", {"nodeDeallocateOption": "retaineddata"}) == "retaineddata"
    with pytest.raises(BatchError) as bad:
        node_option("disablescheduling", {"nodeDisableSchedulingOption": "retaineddata"})
    assert bad.value.code == "InvalidPropertyValue"
    with pytest.raises(BatchError) as unknown:
        node_option("reimage", {"nodeRebootOption": "requeue"})
    assert unknown.value.code == "InvalidRequestBody"


def test_remove_nodes_body() -> None:
    removal = remove_nodes_request({"nodeList": ["a", "A", "b"], "resizeTimeout": "PT10M"}, timedelta(minutes=5))
    assert (removal.node_ids, removal.option, removal.resize_timeout) == (("a", "b"), "requeue", "PT10M")
    with pytest.raises(BatchError) as empty:
        remove_nodes_request({"nodeList": []}, timedelta(minutes=5))
    assert _values(empty.value)["PropertyName"] == "nodeList"
    with pytest.raises(BatchError) as short:
        remove_nodes_request({"nodeList": ["a"], "resizeTimeout": "PT1M"}, timedelta(minutes=5))
    assert _values(short.value)["PropertyName"] == "resizeTimeout"


def test_node_user_bodies() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    user = node_user({"name": "ann", "isAdmin": True, "password": "x"}, now=now)
    assert (user.is_admin, user.expiry_date, user.ssh_public_key) == (True, "2030-01-02", None)
    replaced = node_user({"sshPublicKey": "ssh-ed25519 K"}, name="ann", now=now)
    assert (replaced.name, replaced.password, replaced.ssh_public_key) == ("ann", None, "ssh-ed25519 K")
    with pytest.raises(BatchError):
        node_user({"name": "ann", "expiryTime": "2029-01-01T00:00:00Z"}, now=now)
    with pytest.raises(BatchError) as unknown:
        node_user({"isAdmin": True}, name="ann", now=now)
    assert unknown.value.code == "InvalidRequestBody"


def test_upload_logs_body() -> None:
    upload = upload_logs_request({"containerUrl": "http://127.0.0.1:1/c?sv=x", "startTime": "2030-01-01T00:00:00Z"})
    assert upload.end is None and upload.start.year == 2030
    with pytest.raises(BatchError) as missing:
        upload_logs_request({"containerUrl": "http://127.0.0.1:1/c"})
    assert _values(missing.value)["PropertyName"] == "startTime"


def test_usage_metrics_split_core_hours_by_hour() -> None:
    hour = datetime(2030, 1, 1, 10, tzinfo=timezone.utc).timestamp()
    lifetimes = [
        NodeLifetime("n1", "p", "standard_d2s_v3", 2, hour + 1800, hour + 5400),  # 10:30 to 11:30, 2 vCPUs
        NodeLifetime("n2", "q", "standard_a1_v2", 1, hour, None),  # still running at 12:00
    ]
    values = usage_metrics(lifetimes, now=hour + 7200)
    by_key = {(v["poolId"], v["startTime"][11:16]): v["totalCoreHours"] for v in values}
    assert by_key == {("p", "10:00"): 1.0, ("p", "11:00"): 1.0, ("q", "10:00"): 1.0, ("q", "11:00"): 1.0}
    later = usage_metrics(lifetimes, now=hour + 7200, start=hour + 3600)
    assert {v["startTime"][11:16] for v in later} == {"11:00"}


def test_max_tasks_per_node_is_the_older_name_of_task_slots_per_node() -> None:
    assert build_pool({**_POOL, "maxTasksPerNode": 3}, base_url="http://h")["taskSlotsPerNode"] == 3
    assert (
        build_pool({**_POOL, "maxTasksPerNode": 3, "taskSlotsPerNode": 3}, base_url="http://h")["taskSlotsPerNode"] == 3
    )
    with pytest.raises(BatchError) as differ:
        build_pool({**_POOL, "maxTasksPerNode": 3, "taskSlotsPerNode": 2}, base_url="http://h")
    assert _values(differ.value)["PropertyName"] == "maxTasksPerNode"
