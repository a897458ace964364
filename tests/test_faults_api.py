"""The emulator's fault options themselves: the [faults] settings, the admin API, reproducibility, the quotas, and
throttling / cut connections / pool quota / counts lag as a client sees them (SDK calls, no workflow).

Workflows under each fault are in tests/test_faults_workflow.py; the throttled 10,000-task submission is here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from batchbox.core.errors import InvalidRequestError, ServiceBusyError
from batchbox.core.models import JobSpec, PoolSpec, TaskSpec
from batchbox.emulator.faults import FaultConfig, FaultConfigError, Faults, load_fault_file
from batchbox.emulator.faults.quotas import CoreUsage, allocate, family_quota_name
from tests.fixtures.faults import FaultStack, active_faults_file
from tests.test_readme import _block

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def stack(fault_stack: FaultStack) -> Iterator[FaultStack]:
    fault_stack.clear()
    yield fault_stack
    fault_stack.clear()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns() % 10**10}"


# -- the settings -------------------------------------------------------------------------------------------------


def test_the_faults_table_is_read_checked_and_described(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(
        "[batchbox]\nbackend = 'local'\n\n[faults]\nseed = 5\nthrottle_rate = 0.3\nretry_after_share = 0.5\n"
        "task_counts_lag = 2.5\n[faults.core_quotas]\nDsv3 = 4\nstandardEDSv5Family = 0\n"
        "[faults.storage]\ncontainer_delete_seconds = 30\n"
    )
    config = load_fault_file(path)
    assert config.enabled and config.seed == 5 and config.throttle_rate == 0.3 and config.task_counts_lag == 2.5
    assert dict(config.core_quotas) == {"standardDSv3Family": 4, "standardEDSv5Family": 0}
    assert config.storage.container_delete_seconds == 30
    assert config.describe() == (
        "seed 5; throttle 30% 429, 50% with Retry-After 1 s; task counts lag 2.5 s; "
        "quotas standardDSv3Family=4 standardEDSv5Family=0; storage: ContainerBeingDeleted for 30 s"
    )
    assert not FaultConfig().enabled and FaultConfig().describe() == "off"
    assert not load_fault_file(tmp_path / "faults.toml").storage.busy_rate


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"throtle_rate": 0.3}, "unknown setting 'throtle_rate'"),
        ({"throttle_rate": 1.5}, "throttle_rate must be between 0 and 1"),
        ({"throttle_status": 500}, "throttle_status must be 429 or 503"),
        ({"core_quotas": {"Xv9": 4}}, "unknown VM family 'Xv9'"),
        ({"pool_quota": -1}, "pool_quota must be 0 or more"),
        ({"storage": {"busy": 0.1}}, "unknown storage setting 'busy'"),
        ({"node_not_ready": "yes"}, "node_not_ready must be true or false"),
    ],
)
def test_a_wrong_setting_is_refused_by_name(settings: dict[str, object], named: str) -> None:
    with pytest.raises(FaultConfigError, match=named.replace("(", r"\(")):
        FaultConfig.from_mapping(settings)


def test_the_emulator_refuses_a_wrong_faults_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text("[faults]\nallocation_failure_rate = 2\n")
    done = subprocess.run(
        [sys.executable, "-m", "batchbox.emulator", "--faults", str(path), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "allocation_failure_rate must be between 0 and 1" in done.stderr
    path.write_text("[faults]\n[faults.storage]\nbusy_rate = 0.1\n")
    done = subprocess.run(
        [sys.executable, "-m", "batchbox.emulator", "--faults", str(path), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "needs the storage proxy" in done.stderr


def test_draws_follow_the_seed_and_not_the_order_of_requests() -> None:
    keys = [f"POST /jobs/j/addtaskcollection chunk{i}" for i in range(200)]
    first = Faults(FaultConfig(seed=3, throttle_rate=0.3))
    second = Faults(FaultConfig(seed=3, throttle_rate=0.3))
    other_seed = Faults(FaultConfig(seed=4, throttle_rate=0.3))
    forward = [first.happens("throttle", key, 0.3) for key in keys]
    backward = [second.happens("throttle", key, 0.3) for key in reversed(keys)][::-1]
    assert forward == backward  # the same requests in another order meet the same faults
    assert forward != [other_seed.happens("throttle", key, 0.3) for key in keys]
    assert 30 <= sum(forward) <= 90  # about 30% of 200
    again = [first.happens("throttle", key, 0.3) for key in keys]  # each request's second attempt: new draws
    assert again != forward


def test_quotas_grant_what_fits_and_name_the_quota_that_stopped_the_rest() -> None:
    usage = CoreUsage.of([("Standard_D2s_v3", 1, 0)])  # 2 Dsv3 vCPUs in use
    decided = allocate(
        "standard_d2s_v3",
        [True, True, True],
        usage,
        family_quotas={"standardDSv3Family": 6},
        dedicated_quota=None,
        low_priority_quota=None,
        allocation_fails=lambda: False,
    )
    assert decided.granted == [True, True, False]
    assert decided.errors == [
        {
            "code": "AccountVMSeriesCoreQuotaReached",
            "message": "The specified account has reached VM series core quota for standardDSv3Family",
            "values": [],
        }
    ]
    total = allocate(
        "standard_e2s_v3",
        [True, False],
        usage,
        family_quotas={},
        dedicated_quota=2,
        low_priority_quota=0,
        allocation_fails=lambda: False,
    )
    assert total.granted == [False, False]
    assert [e["code"] for e in total.errors] == ["AccountCoreQuotaReached", "AccountLowPriorityCoreQuotaReached"]
    failing = allocate(
        "standard_f2s_v2", [True], CoreUsage(), family_quotas={}, dedicated_quota=None, low_priority_quota=None,
        allocation_fails=lambda: True,
    )  # fmt: skip
    assert failing.errors[0]["code"] == "AllocationFailed"
    assert failing.errors[0]["message"] == "Desired number of dedicated nodes could not be allocated"
    assert family_quota_name("dsv3") == "standardDSv3Family" and family_quota_name("Ddsv4") == "standardDDSv4Family"


# -- the admin API ------------------------------------------------------------------------------------------------


def test_the_admin_api_reads_replaces_and_clears_the_faults(stack: FaultStack) -> None:
    assert stack.admin("GET") == {"enabled": False, "describe": "off", "faults": {"seed": 11}}
    assert not active_faults_file(stack).exists()
    answer = stack.set_faults(seed=9, task_counts_lag=3, node_not_ready=True)
    assert answer["enabled"] and answer["faults"] == {"seed": 9, "task_counts_lag": 3.0, "node_not_ready": True}
    recorded = json.loads(active_faults_file(stack).read_text())
    assert recorded["describe"] == "seed 9; task counts lag 3 s; node_not_ready"
    with pytest.raises(HttpResponseError) as refused:
        stack.set_faults(throttle_rate=7)
    assert refused.value.status_code == 400 and "throttle_rate must be between 0 and 1" in str(refused.value)
    assert stack.admin("GET")["faults"]["task_counts_lag"] == 3.0  # a refused change changes nothing
    stack.clear()
    assert not stack.admin("GET")["enabled"] and not active_faults_file(stack).exists()


def test_the_readme_admin_snippet_runs_unchanged_but_for_the_port(stack: FaultStack, tmp_path: Path) -> None:
    snippet = _block("Rehearse Azure's failures locally", "python", "from azure.batch import BatchClient")
    assert '"http://127.0.0.1:8446"' in snippet
    (tmp_path / "snippet.py").write_text(snippet.replace("http://127.0.0.1:8446", stack.emulator.url))
    done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "seed 7; quotas standardDSv3Family=0"
    assert not stack.admin("GET")["enabled"]  # its DELETE turned them off again


def test_the_admin_api_needs_the_account_key(stack: FaultStack) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(f"{stack.emulator.url}/_admin/v1/faults?api-version=2025-06-01", timeout=10)
    assert unsigned.value.code == 403


# -- Batch API faults seen through the SDK ------------------------------------------------------------------------


def test_throttled_10000_task_submission_adds_exactly_10000_tasks(stack: FaultStack) -> None:
    pool_id, job_id = "thr-pool", "thr-job"  # fixed: the same seed and requests meet the same faults in every run
    tasks = [TaskSpec(id=f"t{i:05d}", command_line="/bin/true") for i in range(10_000)]
    with stack.compute() as compute:
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
        compute.create_job(JobSpec(id="calm-job", pool_id=pool_id))
        began = time.monotonic()
        compute.add_tasks("calm-job", tasks, max_concurrency=8)  # the same submission without faults, to compare
        calm = time.monotonic() - began
        compute.delete_job("calm-job")
        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        stack.set_faults(seed=21, throttle_rate=0.3, retry_after_share=0.5, retry_after_seconds=1)
        began = time.monotonic()
        result = compute.add_tasks(job_id, tasks, max_concurrency=8)
        elapsed = time.monotonic() - began
        stats = compute.retry_stats
        stack.clear()
        counts = compute.task_counts(job_id)
        listed = compute.list_tasks(job_id)
        compute.delete_job(job_id)
        compute.delete_pool(pool_id)
    print(
        f"\nthrottled submission: 10,000 tasks in {elapsed:.1f} s with 30% of requests answered 429 "
        f"(half with Retry-After: 1): {stats.retries} requests sent again, {stats.throttled} of them after "
        f"429/503, {stats.waited:.1f} s spent waiting in all threads; without faults: {calm:.1f} s"
    )
    assert len(result.added) == 10_000 and result.already_existed == ()
    assert counts.active == 10_000 and counts.total == 10_000
    assert sorted(task.id for task in listed) == [task.id for task in tasks]
    assert stats.throttled > 0  # the fault was on: some requests really were throttled


def test_cut_connections_neither_lose_nor_duplicate_anything(stack: FaultStack) -> None:
    pool_id, job_id = unique("cut-pool"), unique("cut-job")
    stack.set_faults(seed=5, connection_reset_rate=0.25)
    with stack.compute() as compute:
        compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))  # no PoolExists from its own lost attempt
        compute.create_job(JobSpec(id=job_id, pool_id=pool_id))
        result = compute.add_tasks(job_id, [TaskSpec(id=f"t{i}", command_line="/bin/true") for i in range(1000)])
        for _ in range(20):
            assert compute.get_pool(pool_id).id == pool_id
        stats = compute.retry_stats
        stack.clear()
        assert compute.task_counts(job_id).active == 1000
        compute.delete_job(job_id)
        compute.delete_pool(pool_id)
    assert len(result.added) == 1000 and result.already_existed == ()
    assert stats.retries > 0


def test_throttling_past_the_budget_names_the_status_and_the_resource(stack: FaultStack) -> None:
    stack.set_faults(seed=1, throttle_rate=1.0, throttle_status=503)
    with stack.compute(retry_budget=1.0, retry_backoff_factor=0.05, retry_backoff_max=0.2) as compute:
        began = time.monotonic()
        with pytest.raises(ServiceBusyError) as busy:
            compute.create_pool(PoolSpec(id="never-pool", dedicated_nodes=0))
        assert time.monotonic() - began < 30  # bounded by the budget, not hung
    assert "503" in str(busy.value) and "pool 'never-pool'" in str(busy.value) and "ServerBusy" in str(busy.value)


def test_pool_quota_refuses_the_pool_past_it(stack: FaultStack) -> None:
    with stack.compute() as compute:
        existing = len(compute.list_pools())
        stack.set_faults(pool_quota=existing)
        with pytest.raises(InvalidRequestError) as refused:
            compute.create_pool(PoolSpec(id="one-too-many", dedicated_nodes=0))
    assert "PoolQuotaReached" in str(refused.value) and "pool 'one-too-many'" in str(refused.value)


def test_task_counts_lag_behind_the_tasks(stack: FaultStack) -> None:
    pool_id, job_id = unique("lag-pool"), unique("lag-job")
    client = stack.emulator.batch_client()
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=0,
            virtual_machine_configuration=m.VirtualMachineConfiguration(
                image_reference=m.BatchVmImageReference(
                    publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
                ),
                node_agent_sku_id="batch.node.ubuntu 22.04",
            ),
        )
    )
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    stack.set_faults(task_counts_lag=60)
    assert client.get_job_task_counts(job_id).task_counts.active == 0
    client.create_task(job_id, m.BatchTaskCreateOptions(id="t1", command_line="/bin/true"))
    assert [t.id for t in client.list_tasks(job_id)] == ["t1"]  # the task is there ...
    assert client.get_job_task_counts(job_id).task_counts.active == 0  # ... the counts do not say so yet
    stack.clear()
    assert client.get_job_task_counts(job_id).task_counts.active == 1
    client.begin_delete_job(job_id, polling_interval=1)
    client.begin_delete_pool(pool_id, polling_interval=1)
