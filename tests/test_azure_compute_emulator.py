"""AzureBatchCompute (the azure-batch 15.x SDK) against a real batchbox emulator process: what is particular to
this pair. What every ComputeBackend does is stated once in tests/contract/ and run there on this pair too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.core.errors import AuthenticationError, InvalidRequestError
from batchbox.core.models import PoolSpec
from tests.contract.helpers import unique
from tests.fixtures.emulator import EmulatorProcess


@pytest.fixture(scope="module")
def compute(emulator: EmulatorProcess) -> Iterator[AzureBatchCompute]:
    backend = AzureBatchCompute.from_shared_key(
        emulator.url,
        emulator.account_name,
        emulator.account_key,
        retry_total=2,
        retry_backoff_factor=0.1,
        lro_polling_interval=1,
    )
    yield backend
    backend.close()


def test_rejected_property_carries_the_batch_code_and_property(compute: AzureBatchCompute) -> None:
    with pytest.raises(InvalidRequestError) as invalid:
        compute.create_pool(PoolSpec(id=unique("pool"), dedicated_nodes=0, task_slots_per_node=1000))
    assert "InvalidPropertyValue" in str(invalid.value) and "taskSlotsPerNode" in str(invalid.value)


def test_wrong_shared_key_is_refused_without_quoting_the_key(
    compute: AzureBatchCompute, emulator: EmulatorProcess
) -> None:
    pool_id = unique("pool")
    compute.create_pool(PoolSpec(id=pool_id, dedicated_nodes=0))
    try:
        wrong = AzureBatchCompute.from_shared_key(
            emulator.url, emulator.account_name, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=", retry_total=0
        )
        with wrong, pytest.raises(AuthenticationError) as refused:
            wrong.get_pool(pool_id)
        assert (refused.value.kind, refused.value.name) == ("pool", pool_id)
        assert emulator.account_key not in str(refused.value)
    finally:
        compute.delete_pool(pool_id)
