"""Drives the pool and node operations of the batchbox emulator with the azure-batch 14.x (msrest) SDK; run by
tests/test_emulator_sdk14.py.

Runs in the second venv (.venv-sdk14), so it imports nothing from batchbox. Usage:
    python drive_sdk14_nodes.py URL ACCOUNT KEY PREFIX
Prints one JSON object describing what it saw; exits non-zero on the first unexpected answer.
"""

import json
import sys
import time

import azure.batch.models as batchmodels
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials


def wait(what, probe, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    url, account, key, prefix = sys.argv[1:5]
    client = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=url)
    pool_id = f"{prefix}-nodes"
    seen = {}
    seen["jammy_sku"] = sorted(
        {i.node_agent_sku_id for i in client.account.list_supported_images() if "jammy" in i.image_reference.offer}
    )
    client.pool.add(
        batchmodels.PoolAddParameter(
            id=pool_id,
            vm_size="STANDARD_A1_V2",
            virtual_machine_configuration=batchmodels.VirtualMachineConfiguration(
                image_reference=batchmodels.ImageReference(
                    publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts", version="latest"
                ),
                node_agent_sku_id="batch.node.ubuntu 22.04",
            ),
            target_dedicated_nodes=2,
        )
    )
    nodes = wait(
        "two idle nodes",
        lambda: (
            [n for n in client.compute_node.list(pool_id) if n.state.value == "idle"]
            if len([n for n in client.compute_node.list(pool_id) if n.state.value == "idle"]) == 2
            else None
        ),
    )
    first, second = nodes[0].id, nodes[1].id
    client.compute_node.reboot(pool_id, first, node_reboot_option="requeue")
    seen["after_reboot"] = wait(
        "the node idle again",
        lambda: (
            client.compute_node.get(pool_id, first).state.value
            if client.compute_node.get(pool_id, first).state.value == "idle"
            else None
        ),
    )
    client.compute_node.disable_scheduling(pool_id, first, node_disable_scheduling_option="taskcompletion")
    seen["scheduling"] = client.compute_node.get(pool_id, first).scheduling_state.value
    client.compute_node.enable_scheduling(pool_id, first)
    client.compute_node.add_user(
        pool_id, first, batchmodels.ComputeNodeUser(name="bob", is_admin=False, password="x1Y!z")
    )
    client.compute_node.delete_user(pool_id, first, "bob")
    try:
        client.compute_node.delete_user(pool_id, first, "bob")
        seen["user_deleted_twice"] = "no error"
    except batchmodels.BatchErrorException as exc:
        seen["user_deleted_twice"] = exc.error.code
    client.pool.enable_auto_scale(pool_id, auto_scale_formula="$TargetDedicatedNodes = 1;")
    seen["evaluated"] = client.pool.evaluate_auto_scale(pool_id, "$TargetDedicatedNodes = 4;").results
    client.pool.disable_auto_scale(pool_id)
    wait("a steady pool", lambda: client.pool.get(pool_id).allocation_state.value == "steady")
    client.pool.remove_nodes(pool_id, batchmodels.NodeRemoveParameter(node_list=[second]))
    wait("the node removed", lambda: second not in [n.id for n in client.compute_node.list(pool_id)])
    seen["target_after_remove"] = client.pool.get(pool_id).target_dedicated_nodes
    seen["usage_pools"] = sorted({u.pool_id for u in client.pool.list_usage_metrics()} & {pool_id})
    client.pool.delete(pool_id)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
